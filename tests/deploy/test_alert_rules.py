"""The alert rules and the dashboard's "Gateways up" panel, evaluated by Prometheus's own promtool.

`promtool test rules` runs deploy/prometheus/alerts.test.yml (down, absent, calls failing), then
the same kind of cases against the rules the chart ships with a nameOverride, and the panel's
queries against a Prometheus that also scrapes something else. promtool comes with Debian's
`prometheus` package; without it these tests skip (in CI they fail: .ci/run installs it).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEPLOY, NAMESPACE, HelmHarness, require, require_promtool

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gateway.json"


def _yaml(path: Path) -> Any:
    require("yaml")
    import yaml

    return yaml.safe_load(path.read_text())


def _promtool(*args: str, cwd: Path) -> str:
    promtool = require_promtool()
    proc = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output[-6000:]}"
    return output


def _run_rule_tests(tmp_path: Path, rules: dict[str, Any], tests: list[dict[str, Any]]) -> str:
    import yaml

    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp_path / "rules.test.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    return _promtool("test", "rules", "rules.test.yml", cwd=tmp_path)


def _alert(rules: dict[str, Any], name: str) -> dict[str, Any]:
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == name]
    return rule


def _expected(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """An expected alert of `rule` with these target labels, its annotations' templates filled in."""
    annotations = {key: value.replace("{{ $labels.instance }}", labels.get("instance", ""))
                   for key, value in rule["annotations"].items()}
    assert "{{" not in "".join(annotations.values()), "a template the test does not fill in"
    return {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": annotations}


# -- the rule file and its own tests ---------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    output = _promtool("check", "rules", str(ALERTS), cwd=DEPLOY)
    assert "SUCCESS" in output


def test_rules_pass_their_unit_tests() -> None:
    output = _promtool("test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert "SUCCESS" in output


def test_unit_tests_cover_down_absent_and_failing_calls() -> None:
    tests = _yaml(ALERTS_TEST)
    assert tests["rule_files"] == [ALERTS.name]
    firing = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if not case["exp_alerts"]}
    for name in ("VoiceGatewayDown", "VoiceGatewayAbsent", "VoiceGatewayCallsFailing"):
        assert name in firing and name in quiet, f"{name}: a case where it fires and one where it does not"
    rules = _yaml(ALERTS)
    assert {case for case in firing} <= {r["alert"] for g in rules["groups"] for r in g["rules"]}


def test_a_vanished_gateway_alerts() -> None:
    """absent(): a gateway that disappears from discovery leaves no `up` series to be 0."""
    absent = _alert(_yaml(ALERTS), "VoiceGatewayAbsent")
    assert re.fullmatch(r"absent(_over_time)?\(up\{[^}]*\}(\[\w+\])?\)", absent["expr"].strip())
    assert absent["labels"]["severity"] == "critical"


def test_only_the_target_alerts_name_the_job() -> None:
    """The chart rewrites `job="voice-gateway"`; any other use of the job would escape that."""
    for group in _yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            uses_job = "job" in re.sub(r"\{\{.*?\}\}", "", rule["expr"])
            if rule["alert"] in ("VoiceGatewayDown", "VoiceGatewayAbsent"):
                assert 'up{job="voice-gateway"}' in rule["expr"], rule["alert"]
            else:
                assert not uses_job, f"{rule['alert']} selects by job: select by the gateway's metrics instead"


# -- the chart's PrometheusRule follows nameOverride ------------------------------------------


def _chart_rules(helm: HelmHarness, values: dict[str, Any], release: str) -> dict[str, Any]:
    _, server = helm.install({"prometheusRule": {"enabled": True}, **values}, release=release)
    (rule,) = [o for o in server.created_manifests() if o["kind"] == "PrometheusRule"]
    return {"groups": rule["spec"]["groups"]}


def test_chart_rules_follow_name_override(helm: HelmHarness, tmp_path: Path) -> None:
    rules = _chart_rules(helm, {"nameOverride": "vg"}, "calls")
    down, absent = _alert(rules, "VoiceGatewayDown"), _alert(rules, "VoiceGatewayAbsent")
    assert 'job="vg"' in down["expr"] and f'namespace="{NAMESPACE}"' in down["expr"]
    assert 'job="voice-gateway"' not in json.dumps(rules)

    target = {"job": "vg", "namespace": NAMESPACE, "instance": "10.0.0.7:9090"}
    series = f'up{{job="vg", namespace="{NAMESPACE}", instance="10.0.0.7:9090"}}'
    compose_like = 'up{job="voice-gateway", namespace="other", instance="10.0.9.9:9090"}'
    _run_rule_tests(tmp_path, rules, [
        {   # this release's pod stops answering; a gateway of another job is down too, and is not ours
            "interval": "1m",
            "input_series": [{"series": series, "values": "1 1 0x8"}, {"series": compose_like, "values": "0x10"}],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "VoiceGatewayDown", "exp_alerts": [_expected(down, target)]},
                {"eval_time": "5m", "alertname": "VoiceGatewayAbsent", "exp_alerts": []},
            ],
        },
        {   # only the other job is there: this release's gateways are absent
            "interval": "1m",
            "input_series": [{"series": compose_like, "values": "1x10"}],
            "alert_rule_test": [
                {"eval_time": "6m", "alertname": "VoiceGatewayAbsent",
                 "exp_alerts": [_expected(absent, {"job": "vg", "namespace": NAMESPACE})]},
                {"eval_time": "6m", "alertname": "VoiceGatewayDown", "exp_alerts": []},
            ],
        },
    ])


def test_chart_rules_take_a_target_selector(helm: HelmHarness) -> None:
    selector = 'job="kubernetes-pods", app_kubernetes_io_name="voice-gateway"'
    rules = _chart_rules(helm, {"prometheusRule": {"enabled": True, "targetSelector": selector}}, "annotated")
    assert _alert(rules, "VoiceGatewayDown")["expr"].startswith(f"up{{{selector}}}")
    assert _alert(rules, "VoiceGatewayAbsent")["expr"].strip() == f"absent(up{{{selector}}})"


# -- the dashboard's "Gateways up" panel -------------------------------------------------------


def _grafana_all(values: list[str]) -> str:
    """What Grafana substitutes for "All" when a variable has no allValue: a regex of its values."""
    return "(" + "|".join(re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", v) for v in values) + ")"


def test_gateways_up_counts_gateway_targets_only(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["job"].get("allValue") in (None, ""), "All must mean the gateway's jobs, not '.*'"
    assert "gateway_" in variables["job"]["query"]["query"], "the job variable lists jobs exporting gateway metrics"
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == "Gateways up"]
    queries = {t["legendFormat"]: t["expr"] for t in panel["targets"]}
    assert set(queries) == {"up", "down"}

    # Prometheus scrapes itself and one gateway; the gateway goes down at 3m (its series go stale).
    # Checked with the job variable as Grafana fills it for "All", and with the '.*' it used to be.
    inputs = [
        {"series": 'up{job="prometheus", instance="localhost:9090"}', "values": "1x10"},
        {"series": 'up{job="voice-gateway", instance="gateway:9090"}', "values": "1 1 1 0x7"},
        {"series": 'gateway_calls_active{job="voice-gateway", instance="gateway:9090"}', "values": "2 2 2 stale"},
    ]
    cases = []
    for job in (_grafana_all(["voice-gateway"]), ".*"):
        for name, expr in queries.items():
            expr = expr.replace("$job", job).replace("$instance", variables["instance"].get("allValue") or ".*")
            for at, want in (("2m", {"up": 1, "down": 0}), ("5m", {"up": 0, "down": 1})):
                cases.append({"expr": expr, "eval_time": at, "exp_samples": [{"labels": "{}", "value": want[name]}]})
    require("yaml")
    import yaml

    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "panel.test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": cases}]}, sort_keys=False))
    _promtool("test", "rules", "panel.test.yml", cwd=tmp_path)


def test_failed_calls_panel_matches_the_alert() -> None:
    """The dashboard's failed calls are the outcomes VoiceGatewayCallsFailing counts."""
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if p.get("title") == "Failed calls (1h)"]
    failing = _alert(_yaml(ALERTS), "VoiceGatewayCallsFailing")["expr"]
    outcomes = re.search(r'outcome=~"([^"]+)"', failing).group(1)  # type: ignore[union-attr]
    assert f'outcome=~"{outcomes}"' in panel["targets"][0]["expr"]
    assert "abandoned" in outcomes.split("|")


@pytest.mark.parametrize("name", ["VoiceGatewayDown", "VoiceGatewayAbsent", "VoiceGatewayCallsFailing"])
def test_deploy_readme_documents_the_alert(name: str) -> None:
    assert f"`{name}`" in (DEPLOY / "README.md").read_text()
