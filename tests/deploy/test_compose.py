"""deploy/: the Dockerfile, the compose stack, Prometheus and Grafana provisioning.

No Docker engine is needed: the files are parsed and cross-checked (build context,
mounts and env files exist, Prometheus scrapes the port the gateway serves metrics on,
Grafana loads the dashboard from where it is mounted, the image runs unprivileged and
gets SIGTERM). The YAML checks need pyyaml (skipped with a message without it); the
Dockerfile and dashboard checks need nothing beyond the standard library.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from .conftest import CHART, DEPLOY, GATEWAY_METRICS, REPO, defined_metrics, is_secret_name, require

COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"

HISTOGRAMS = {m for m in GATEWAY_METRICS if m.endswith("_seconds")} | {
    name for name, kind in defined_metrics().items() if kind == "Histogram"}


def _check_metrics_exist(used: set[str]) -> None:
    """Names in the dashboard or the alerts are metrics the gateway defines (a rename breaks them)."""
    defined = defined_metrics()
    known = set(defined) or GATEWAY_METRICS
    assert used <= known, f"metrics the gateway does not define: {sorted(used - known)}"

# Keys of a compose service (compose specification) that this file may use: a typo fails.
SERVICE_KEYS = {
    "build", "image", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes", "tmpfs",
    "depends_on", "restart", "healthcheck", "stop_signal", "stop_grace_period", "read_only", "cap_drop",
    "cap_add", "security_opt", "user", "init", "networks", "labels", "logging", "deploy", "ulimits",
    "working_dir", "container_name", "profiles", "pull_policy", "mem_limit", "cpus",
}


def _yaml(path: Path) -> Any:
    require("yaml")
    import yaml

    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(gateway_[a-z0-9_]+)", expr))
    out = set()
    for name in names:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
                name = name[: -len(suffix)]
        out.add(name)
    return out


# -- Dockerfile (no yaml needed) -------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction, args in _instructions():
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, args))
    return stages


def _build_args() -> dict[str, str]:
    args = {}
    for instruction, value in _instructions():
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            args[key] = default
    return args


def _base_image(from_args: str) -> str:
    image = from_args.split()[0]
    for key, value in _build_args().items():
        image = image.replace(f"${{{key}}}", value).replace(f"${key}", value)
    return image


def test_dockerfile_is_multi_stage_on_python_313_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2, "build and runtime stages"
    bases = [_base_image(stage[0][1]) for stage in stages]
    assert all(base == "python:3.13-slim" for base in bases), bases
    final = stages[-1]
    copies_from = [args for ins, args in final if ins == "COPY" and args.startswith("--from=")]
    assert copies_from, "the runtime stage copies the built environment from the build stage"


def test_final_image_has_no_build_tools() -> None:
    final = " ".join(args for ins, args in _stages()[-1] if ins == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make ", "python3-dev", "libc6-dev", "apt-get install"):
        assert tool not in final, f"{tool!r} installed in the runtime stage"
    assert "pip uninstall" in final, "pip is removed from the runtime image"


def test_image_runs_as_an_unprivileged_user() -> None:
    final = _stages()[-1]
    users = [args for ins, args in final if ins == "USER"]
    assert users, "USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root")
    # The chart runs the pods with the same uid.
    values = (CHART / "values.yaml").read_text()
    assert f"runAsUser: {user}" in values


def test_healthcheck_probes_healthz() -> None:
    final = _stages()[-1]
    healthchecks = [args for ins, args in final if ins == "HEALTHCHECK"]
    assert healthchecks and "/healthz" in healthchecks[-1]
    command = healthchecks[-1].split(" CMD ", 1)[1].strip()
    assert command.startswith("["), "exec form: no shell needed in the image"
    assert json.loads(command)[0] == "python"
    assert re.search(r"--timeout=\d+s", healthchecks[-1])


def test_sigterm_reaches_the_gateway() -> None:
    final = _stages()[-1]
    stop = [args for ins, args in final if ins == "STOPSIGNAL"]
    assert not stop or stop[-1] == "SIGTERM"
    entry = [args for ins, args in final if ins in ("ENTRYPOINT", "CMD")]
    assert entry, "ENTRYPOINT/CMD"
    for args in entry:
        # Exec form (a JSON array): python is PID 1, no shell in between to swallow SIGTERM.
        assert args.startswith("["), f"shell form {args!r} keeps SIGTERM from the gateway"
        json.loads(args)
    entrypoint = json.loads([a for i, a in final if i == "ENTRYPOINT"][-1])
    cmd = json.loads([a for i, a in final if i == "CMD"][-1])
    assert entrypoint + cmd == ["python", "-m", "gateway", "serve"]


def test_configuration_only_through_the_environment() -> None:
    for instruction, args in _instructions():
        if instruction in ("ENV", "ARG"):
            names = set(re.findall(r"([A-Z_][A-Z0-9_]*)=", args)) | {args.split("=")[0].split()[0]}
            assert not [n for n in names if is_secret_name(n)], f"{instruction} {args}: no secret baked in the image"
        if instruction in ("COPY", "ADD"):
            assert ".env" not in args.split(), "no env file is copied into the image"


def test_copied_sources_exist_and_pass_the_dockerignore() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.strip().startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if pattern == "**" or fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    for stage in _stages():
        for instruction, args in stage:
            if instruction != "COPY" or args.startswith("--from"):
                continue
            *sources, _dest = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the build context (repository root)"
                assert included(str(PurePosixPath(source))), f"COPY {source}: excluded by Dockerfile.dockerignore"


# -- dashboard (no yaml needed) --------------------------------------------------------------


def test_dashboard_covers_the_gateway_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    used = set().union(*(_metric_names(e) for e in exprs))
    _check_metrics_exist(used)
    for required in ("gateway_calls_active", "gateway_calls_total", "gateway_turn_latency_seconds",
                     "gateway_heard_latency_seconds", "gateway_barge_ins_total", "gateway_realtime_tokens_total",
                     "gateway_upstream_errors_total", "gateway_event_loop_lag_seconds"):
        assert required in used, f"the dashboard does not show {required}"
    quantiles = {q for e in exprs for q in re.findall(r"histogram_quantile\((0\.\d+)", e)}
    assert {"0.5", "0.95", "0.99"} <= quantiles
    # The data source is a variable, so the same JSON works in compose and in any Grafana.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_metrics_module_is_readable() -> None:
    """The drift check above reads gateway/observability/metrics.py; the metrics of the issue are there."""
    defined = defined_metrics()
    assert defined, f"no metric found in {CHART.parent / 'gateway/observability/metrics.py'}"
    assert GATEWAY_METRICS <= set(defined), sorted(GATEWAY_METRICS - set(defined))
    assert defined["gateway_turn_latency_seconds"] == "Histogram"


def test_chart_files_link_to_the_deploy_files() -> None:
    for link, target in (("prometheus-rules.yaml", ALERTS), ("gateway-dashboard.json", DASHBOARD)):
        path = CHART / "files" / link
        assert path.exists(), f"helm/files/{link} is missing or dangling"
        assert path.resolve() == target.resolve() or path.read_bytes() == target.read_bytes()


# -- compose (pyyaml) ------------------------------------------------------------------------


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = volume.split(":")[0], volume.split(":")[1]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE.parent / source).resolve(), target))
    return mounts


def test_compose_parses_with_the_three_services() -> None:
    compose = _compose()
    assert set(compose["services"]) == {"gateway", "prometheus", "grafana"}
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        if name != "gateway":
            assert ":" in service["image"] and not service["image"].endswith(":latest"), "pin the image"
    assert set(compose) <= {"name", "services", "volumes", "networks", "configs", "secrets"}
    named = {v.split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])
             if not v.startswith((".", "/"))}
    assert named <= set(compose.get("volumes") or {})


def test_compose_build_references_exist() -> None:
    build = _compose()["services"]["gateway"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == REPO, "the build context is the repository root"
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()
    assert (context / "pyproject.toml").exists()
    assert Path(str(DOCKERFILE) + ".dockerignore").exists()


def test_compose_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for source, target in _bind_mounts(service):
            assert source.exists(), f"{name}: mounted {source} does not exist"
            looks_like_file = PurePosixPath(target).suffix in (".yml", ".yaml", ".json")
            assert source.is_file() == looks_like_file, f"{name}: {source} -> {target}"


def test_compose_env_files() -> None:
    gateway = _compose()["services"]["gateway"]
    for entry in gateway["env_file"]:
        entry = {"path": entry, "required": True} if isinstance(entry, str) else entry
        path = (COMPOSE.parent / entry["path"]).resolve()
        if entry.get("required", True):
            assert path.exists(), f"required env file {path} is missing"
        else:
            # Optional (the stack works without it); its template must be there to copy.
            example = path.with_name(path.name + ".example")
            assert example.exists(), f"{example} (copied to {path.name}) is missing"
    assert not [n for n in gateway.get("environment", {}) if is_secret_name(n)], "secrets come from the env file"


def test_gateway_drains_on_stop_and_runs_locked_down() -> None:
    gateway = _compose()["services"]["gateway"]
    assert gateway.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = gateway["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", grace).group(1))  # type: ignore[union-attr]
    assert seconds > 600, "docker compose stop must wait for the default drain (DRAIN_TIMEOUT_S=600)"
    assert gateway["read_only"] is True and "/tmp" in gateway["tmpfs"]
    assert gateway["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in gateway["security_opt"]
    assert any(p.endswith(":8080") for p in gateway["ports"])


def test_prometheus_scrapes_the_gateway() -> None:
    compose = _compose()
    prometheus = compose["services"]["prometheus"]
    mounts = {target: source for source, target in _bind_mounts(prometheus)}
    config_target = next(a.split("=", 1)[1] for a in prometheus["command"] if a.startswith("--config.file="))
    config = _yaml(mounts[config_target])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job = jobs["voice-gateway"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    metrics_port = compose["services"]["gateway"]["environment"]["METRICS_PORT"]
    assert targets == [f"gateway:{metrics_port}"]
    # The rule file is mounted where rule_files looks.
    rule_targets = [t for t in mounts if fnmatch.fnmatch(t, config["rule_files"][0])]
    assert rule_targets and mounts[rule_targets[0]].resolve() == ALERTS.resolve()


def test_alert_rules_are_well_formed() -> None:
    rules = _yaml(ALERTS)
    alerts = [r for group in rules["groups"] for r in group["rules"]]
    assert len(alerts) >= 5
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    used = set()
    for alert in alerts:
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}
        assert alert["labels"]["severity"] in ("critical", "warning", "info")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", alert["for"])
        assert alert["expr"].count("(") == alert["expr"].count(")")
        used |= _metric_names(alert["expr"])
    _check_metrics_exist(used)
    assert {"gateway_turn_latency_seconds", "gateway_upstream_errors_total",
            "gateway_event_loop_lag_seconds"} <= used


def test_grafana_provisions_prometheus_and_the_dashboard() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]
    mounts = {target: source for source, target in _bind_mounts(grafana)}
    datasources_dir = mounts["/etc/grafana/provisioning/datasources"]
    (datasource,) = [d for f in sorted(datasources_dir.glob("*.y*ml")) for d in _yaml(f)["datasources"]]
    assert datasource["type"] == "prometheus"
    prometheus_port = compose["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"

    providers_dir = mounts["/etc/grafana/provisioning/dashboards"]
    (provider,) = [p for f in sorted(providers_dir.glob("*.y*ml")) for p in _yaml(f)["providers"]]
    dashboards_path = provider["options"]["path"]
    assert mounts[dashboards_path].resolve() == DASHBOARD.parent.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_path}/{DASHBOARD.name}"
    assert DASHBOARD.exists()


@pytest.mark.parametrize("name", ["gateway", "prometheus", "grafana"])
def test_services_restart_and_publish_ports(name: str) -> None:
    service = _compose()["services"][name]
    assert service["restart"] == "unless-stopped"
    for port in service["ports"]:
        # Monitoring UIs stay on the loopback interface; the gateway must be reachable by Twilio.
        assert port.startswith("127.0.0.1:") or name == "gateway", port
