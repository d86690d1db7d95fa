"""Fixtures of the deploy checks: the chart rendered by the real Helm engine, offline.

helm-sdkpy (Python 3.12+) bundles Helm's Go library but has no `template` action; its
Install talks to an API server. So each render starts a loopback FakeKubeAPIServer,
runs `helm install` (and an upgrade) against it in a child process (helm_worker.py)
and takes the objects Helm created from the server's recording.

These checks need `deploy/requirements-check.txt` (which `make test` installs in .venv with
the rest) and, for the alert-rule tests, promtool (Debian's `prometheus` package). Where one
of them is missing, the checks that need it skip, all with one message naming everything
missing, so pytest's summary shows a single SKIPPED line. With DEPLOY_CHECKS_STRICT=1 or
CI=true (.ci/run sets the first, CI runners the second) a missing tool is a failure instead.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .fake_apiserver import FakeKubeAPIServer

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm"
DEPLOY = REPO / "deploy"
WORKER = Path(__file__).with_name("helm_worker.py")

# What the deploy checks use that may be missing, and how to get it.
PACKAGES = {"helm_sdkpy": "helm-sdkpy", "yaml": "PyYAML", "kubernetes_validate": "kubernetes-validate",
            "yamllint": "yamllint"}
PACKAGES_HINT = "`make test` installs them from deploy/requirements-check.txt"
PROMTOOL_HINT = "`apt-get install prometheus`: Debian's package ships it"
MIN_PYTHON = (3, 12)  # helm-sdkpy's floor

# Kubernetes versions the fake API server reports: the chart's minimum, and a recent one.
KUBE_MIN = "v1.27.0"
KUBE_RECENT = "v1.34.0"

# name -> (values file or None, release name, Kubernetes version reported to Helm)
VALUES_SETS: dict[str, tuple[Path | None, str, str]] = {
    "default": (None, "voice-gateway", KUBE_MIN),
    "all-on": (CHART / "ci" / "all-on-values.yaml", "all-on", KUBE_RECENT),
    "production": (CHART / "ci" / "production-values.yaml", "gw", KUBE_RECENT),
}
NAMESPACE = "telephony"

# The gateway's environment. The variables the deploy issue fixed are always routed; the
# rest come from .env.example, the gateway's own list (test_values_route_every_variable keeps
# helm/values.yaml in step with it).
BASE_ENV = {
    "HOST", "PORT", "PUBLIC_URL", "METRICS_PORT", "LOG_LEVEL", "LOG_FORMAT", "DRAIN_TIMEOUT_S", "MAX_CONCURRENT_CALLS",
    "REALTIME_PROVIDER", "OPENAI_REALTIME_MODEL", "OPENAI_REALTIME_URL", "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_DEPLOYMENT", "AZURE_OPENAI_API_VERSION", "REALTIME_URL", "REALTIME_AUTH", "REALTIME_DIALECT",
    "UPSTREAM_CONNECT_TIMEOUT_S", "AGENT_INSTRUCTIONS", "AGENT_INSTRUCTIONS_FILE", "AGENT_VOICE", "AGENT_GREETING",
    "TURN_DETECTION", "VAD_THRESHOLD", "VAD_PREFIX_PADDING_MS", "VAD_SILENCE_DURATION_MS", "VAD_EAGERNESS",
    "INPUT_TRANSCRIPTION_MODEL", "NOISE_REDUCTION", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "REALTIME_API_KEY",
    "TWILIO_AUTH_TOKEN", "STREAM_TOKEN_SECRET", "ADMIN_TOKEN",
}
# Set by the chart from other values, not through `config`.
CHART_OWNED_ENV = {"HOST", "PORT", "METRICS_PORT", "DRAIN_TIMEOUT_S"}
ENV_EXAMPLE = REPO / ".env.example"


def is_secret_name(name: str) -> bool:
    """Keys, secrets, tokens and passwords go to a Secret; identifiers (..._SID) and TTLs do not."""
    secret = re.search(r"(API_KEY|SIGNING_KEY|PRIVATE_KEY|SECRET|PASSWORD|_TOKEN)$", name)
    return bool(secret) and not name.endswith("_SID")


def env_example_names() -> set[str]:
    """Variable names of .env.example (set or commented out); empty when the file is missing."""
    if not ENV_EXAMPLE.exists():
        return set()
    return set(re.findall(r"^#?[ \t]*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def gateway_env() -> set[str]:
    return BASE_ENV | env_example_names()


# The gateway's metrics (prefix gateway_), the names the dashboard and alerts may use.
GATEWAY_METRICS = {
    "gateway_calls_active", "gateway_calls_total", "gateway_call_duration_seconds",
    "gateway_turn_latency_seconds", "gateway_heard_latency_seconds", "gateway_upstream_connect_seconds",
    "gateway_barge_ins_total", "gateway_barge_in_reaction_seconds", "gateway_truncations_rejected_total",
    "gateway_upstream_errors_total", "gateway_carrier_protocol_errors_total", "gateway_realtime_tokens_total",
    "gateway_event_loop_lag_seconds", "gateway_audio_frames_total", "gateway_webhook_requests_total",
}

METRICS_SOURCE = REPO / "gateway" / "observability" / "metrics.py"


def defined_metrics() -> dict[str, str]:
    """Metric name -> type, read from the gateway's metrics module as text (the gateway is not imported)."""
    if not METRICS_SOURCE.exists():
        return {}
    found = re.findall(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"(gateway_[a-z0-9_]+)\"", METRICS_SOURCE.read_text())
    return {name: kind for kind, name in found}


# Seconds a whole helm install (+ upgrade) may take in the child process.
HELM_TIMEOUT_S = 90


def strict() -> bool:
    """In CI a deploy check never skips: a missing tool fails it."""
    return os.environ.get("DEPLOY_CHECKS_STRICT") == "1" or os.environ.get("CI", "").lower() == "true"


def _missing() -> dict[str, str]:
    """What the deploy checks use and this environment lacks (looked up once): name -> how to get it."""
    missing = {}
    if sys.version_info < MIN_PYTHON:
        missing["python"] = (f"Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ (this is {sys.version.split()[0]}; "
                             "`make test` builds .venv with one)")
    for module, package in PACKAGES.items():
        if importlib.util.find_spec(module) is None:
            missing[module] = f"{package} ({PACKAGES_HINT})"
    if shutil.which("promtool") is None:
        missing["promtool"] = f"promtool ({PROMTOOL_HINT})"
    return missing


def _skip_message(missing: dict[str, str]) -> str:
    parts = [missing["python"]] if "python" in missing else []
    packages = [package for module, package in PACKAGES.items() if module in missing]
    if packages:
        parts.append(f"{', '.join(packages)} ({PACKAGES_HINT})")
    if "promtool" in missing:
        parts.append(missing["promtool"])
    return "deploy checks skipped, missing " + "; ".join(parts)


MISSING = _missing()
# One message for every skip, whatever each test needed, so that pytest's summary folds them into
# a single "SKIPPED [n]" line.
SKIP_MESSAGE = _skip_message(MISSING)


def require(*needs: str, python: tuple[int, int] | None = None) -> None:
    """Skip (or, in CI, fail) unless the modules (or "promtool") and the interpreter are there."""
    lacking = [MISSING[n] for n in needs if n in MISSING]
    if python and sys.version_info < python:
        lacking.append(MISSING.get("python", f"Python {python[0]}.{python[1]}+"))
    if not lacking:
        return
    if strict():
        pytest.fail("deploy check cannot run (DEPLOY_CHECKS_STRICT or CI: no skipping), missing " + "; ".join(lacking))
    pytest.skip(SKIP_MESSAGE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Report every skip of a missing deploy tool at one place, so `-ra` folds them into one line
    ("SKIPPED [n] tests/deploy/conftest.py:…: deploy checks skipped, missing …") instead of one per test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and SKIP_MESSAGE in str(report.longrepr[2]):
        report.longrepr = (str(Path(__file__)), require.__code__.co_firstlineno, report.longrepr[2])


def require_helm() -> None:
    require("helm_sdkpy", "yaml", python=MIN_PYTHON)


def require_promtool() -> str:
    require("promtool")
    return shutil.which("promtool") or "promtool"


def load_yaml_all(text: str) -> list[dict[str, Any]]:
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if doc]


def values_for(name: str) -> dict[str, Any]:
    import yaml

    path = VALUES_SETS[name][0]
    if path is None:
        return {}
    return yaml.safe_load(path.read_text()) or {}


@dataclass
class Render:
    """What one `helm install` (+ `helm upgrade`) of the chart produced."""

    name: str
    release: str
    kube_version: str
    objects: list[dict[str, Any]]  # bodies Helm POSTed to the API server, in order (hooks apart)
    manifest: list[dict[str, Any]]  # the release manifest, parsed
    hooks: list[dict[str, Any]]  # hook manifests (helm test pod), parsed
    notes: str
    upgrade_manifest: list[dict[str, Any]] = field(default_factory=list)
    created_hooks: list[dict[str, Any]] = field(default_factory=list)  # hook objects `helm test` created
    test_result: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def all_objects(self) -> list[dict[str, Any]]:
        return self.objects + self.created_hooks

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"].endswith(name_suffix)]
        if name_suffix == "" and kind == "ConfigMap":
            found = [o for o in found if not o["metadata"]["name"].endswith(("-instructions", "-dashboard"))]
        assert len(found) == 1, f"{self.name}: expected one {kind}{name_suffix!r}, got {len(found)}"
        return found[0]

    def values(self) -> dict[str, Any]:
        return values_for(self.name)


class HelmFailed(Exception):
    pass


class HelmHarness:
    """Runs helm-sdkpy in a child process against a fake API server it starts and stops."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._servers: list[FakeKubeAPIServer] = []
        self._cache: dict[str, Render] = {}

    def _env(self) -> dict[str, str]:
        home = self.workdir / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "HELM_"))}
        env.update(
            HOME=str(home),
            HELM_DRIVER="memory",
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_DATA_HOME=str(home / "data"),
            KUBECONFIG=str(home / "no-kubeconfig"),
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    def call(self, request: dict[str, Any], timeout: float = HELM_TIMEOUT_S) -> dict[str, Any]:
        try:
            proc = subprocess.run(
                [sys.executable, str(WORKER)], input=json.dumps(request), capture_output=True, text=True,
                timeout=timeout, env=self._env(), cwd=self.workdir, check=False,
            )
        except subprocess.TimeoutExpired as exc:  # the child is killed by subprocess.run
            raise AssertionError(f"helm {request['action']} did not finish in {timeout} s") from exc
        if proc.returncode != 0 or not proc.stdout.strip():
            raise AssertionError(f"helm worker exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        answer = json.loads(proc.stdout)
        if not answer["ok"]:
            raise HelmFailed(answer["error"])
        return answer

    def install(
        self,
        values: dict[str, Any],
        *,
        release: str = "voice-gateway",
        kube_version: str = KUBE_RECENT,
        upgrade: bool = False,
        test: bool = False,
        pod_phase: str = "Succeeded",
        chart: Path = CHART,
        seed: list[dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], FakeKubeAPIServer]:
        # No kubelet runs the `helm test` pod: the fake server reports it finished with pod_phase.
        server = FakeKubeAPIServer(git_version=kube_version, pod_phase=pod_phase).start()
        self._servers.append(server)
        try:
            for obj in seed or []:
                server.add_object(obj)
            answer = self.call({
                "action": "install", "chart": str(chart), "release": release, "namespace": NAMESPACE,
                "kubeconfig": server.kubeconfig(NAMESPACE), "values": values, "upgrade": upgrade,
                "test": test, "timeout": (HELM_TIMEOUT_S - 10) // 2,
            })
        finally:
            server.stop()
            self._servers.remove(server)
        assert not server.errors, f"fake API server errors: {server.errors}"
        return answer, server

    def render(self, name: str) -> Render:
        if name not in self._cache:
            _, release, kube_version = VALUES_SETS[name]
            answer, server = self.install(values_for(name), release=release, kube_version=kube_version,
                                          upgrade=True, test=True)
            install = answer["install"]
            created = server.created_manifests()
            is_hook = [bool(o["metadata"].get("annotations", {}).get("helm.sh/hook")) for o in created]
            self._cache[name] = Render(
                name=name,
                release=release,
                kube_version=kube_version,
                objects=[o for o, hook in zip(created, is_hook, strict=True) if not hook],
                created_hooks=[o for o, hook in zip(created, is_hook, strict=True) if hook],
                test_result=answer["test"],
                manifest=load_yaml_all(install["manifest"]),
                hooks=[doc for hook in install.get("hooks") or [] for doc in load_yaml_all(hook["manifest"])],
                notes=install["info"].get("notes", ""),
                upgrade_manifest=load_yaml_all(answer["upgrade"]["manifest"]),
                requests=list(server.requests),
            )
        return copy.deepcopy(self._cache[name])

    def lint(self, values: dict[str, Any] | None = None) -> dict[str, Any]:
        """helm lint on a copy of the chart whose values.yaml has `values` merged in (Lint takes no values)."""
        import yaml

        chart = Path(tempfile.mkdtemp(prefix="chart-", dir=self.workdir)) / "voice-gateway"
        shutil.copytree(CHART, chart, symlinks=False)
        if values:
            merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
            (chart / "values.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
        return self.call({"action": "lint", "chart": str(chart)}, timeout=60)["lint"]

    def close(self) -> None:
        for server in list(self._servers):
            server.stop()
        self._servers.clear()


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's way of layering a values file over the chart's values."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory):
    require_helm()
    harness = HelmHarness(tmp_path_factory.mktemp("helm"))
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture(scope="session", params=list(VALUES_SETS))
def rendered(request: pytest.FixtureRequest, helm: HelmHarness) -> Render:
    return helm.render(request.param)
