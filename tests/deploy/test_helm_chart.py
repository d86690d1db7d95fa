"""The Helm chart rendered by the real Helm engine, validated and checked for what matters.

Every test here uses the `rendered` fixture (conftest.py): `helm install` + `helm upgrade`
of helm/ against a loopback fake API server, for the default values, helm/ci/all-on-values.yaml
and helm/ci/production-values.yaml.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .conftest import (
    CHART,
    CHART_OWNED_ENV,
    DEPLOY,
    ENV_EXAMPLE,
    KUBE_MIN,
    NAMESPACE,
    HelmFailed,
    HelmHarness,
    Render,
    gateway_env,
    is_secret_name,
    require,
    secret_data,
    values_for,
)

# Kinds whose schemas kubernetes-validate does not ship (Prometheus Operator CRDs).
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

EXPECTED_KINDS = {
    "default": {"ConfigMap", "Secret", "Service", "ServiceAccount", "Deployment", "PodDisruptionBudget"},
    "all-on": {"ConfigMap", "Secret", "Service", "ServiceAccount", "Deployment", "PodDisruptionBudget", "Ingress",
               "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"},
    "production": {"ConfigMap", "Secret", "Service", "ServiceAccount", "Deployment", "PodDisruptionBudget",
                   "Ingress", "HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"},
}


def _container(render: Render) -> dict[str, Any]:
    pod = render.one("Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["gateway"]
    return pod["containers"][0]


def _prestop_seconds(container: dict[str, Any]) -> int:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep", command
    return int(command[1])


def _config(render: Render) -> dict[str, str]:
    return render.one("ConfigMap")["data"]


# -- rendering -------------------------------------------------------------------------------


def test_renders_the_expected_objects(rendered: Render) -> None:
    kinds = {o["kind"] for o in rendered.objects}
    assert kinds == EXPECTED_KINDS[rendered.name]
    for obj in rendered.objects:
        assert obj["metadata"]["namespace"] == NAMESPACE
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == rendered.release
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_recorded_objects_are_the_release_manifest(rendered: Render) -> None:
    """What reached the API server is what Helm rendered: nothing lost on the way."""
    sent = sorted((o["kind"], o["metadata"]["name"]) for o in rendered.objects)
    manifest = sorted((o["kind"], o["metadata"]["name"]) for o in rendered.manifest)
    assert sent == manifest
    assert ("GET", "/version") in rendered.requests


def test_helm_test_runs_the_hook_pod(rendered: Render) -> None:
    """`helm test` creates the test pod (validated with the rest) and sees it succeed."""
    (pod,) = rendered.hooks
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    service = rendered.one("Service")
    assert f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}" in script
    assert "/readyz" in script and "/metrics" in script
    assert [o["metadata"]["name"] for o in rendered.created_hooks] == [pod["metadata"]["name"]]
    (hook,) = rendered.test_result["hooks"]
    assert hook["last_run"]["phase"] == "Succeeded"
    # Helm really waited: client-go listed/watched the pods (initial events, then the bookmark).
    assert any("watch=true" in path and "/pods" in path for _, path in rendered.requests)


def test_helm_test_fails_when_the_test_pod_fails(helm: HelmHarness) -> None:
    with pytest.raises(HelmFailed, match="failed"):
        helm.install({}, release="failing", test=True, pod_phase="Failed")


# -- schemas ---------------------------------------------------------------------------------


def _validate(obj: dict[str, Any], version: str) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version} at {path}: "
                    f"{exc.message}")


def test_objects_are_valid_kubernetes_in_strict_mode(rendered: Render) -> None:
    require("kubernetes_validate")
    import kubernetes_validate

    # The version Helm was told the cluster runs, and the newest that kubernetes-validate ships.
    versions = sorted({rendered.kube_version.lstrip("v"), kubernetes_validate.latest_version()})
    checked = 0
    for obj in rendered.all_objects():
        if obj["kind"] in CRD_KINDS:
            continue
        for version in versions:
            _validate(obj, version)
            checked += 1
    assert checked >= 2 * len(EXPECTED_KINDS["default"])


def test_strict_validation_rejects_unknown_fields(helm: HelmHarness) -> None:
    """The validator really is strict: a misspelt field fails (so a passing render means something)."""
    require("kubernetes_validate")
    import kubernetes_validate

    deployment = helm.render("default").one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_prometheus_operator_objects_are_well_formed(helm: HelmHarness) -> None:
    render = helm.render("all-on")
    monitor = render.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= {"jobLabel", "selector", "namespaceSelector", "endpoints"}
    service = render.one("Service")
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["jobLabel"] in service["metadata"]["labels"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "relabelings",
                             "metricRelabelings"}
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"]) and re.fullmatch(r"\d+[smh]", endpoint["scrapeTimeout"])
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    rule = render.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert alerts and all({"alert", "expr"} <= set(r) for r in alerts)
    assert all(set(r) <= {"alert", "expr", "for", "labels", "annotations"} for r in alerts)
    assert all(r["labels"]["team"] == "voice" and r["labels"]["severity"] for r in alerts)


# -- draining, probes, security --------------------------------------------------------------


def test_probes_use_the_gateway_endpoints(rendered: Render) -> None:
    container = _container(rendered)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    http = [p for p in container["ports"] if p["name"] == "http"]
    assert http and http[0]["containerPort"] == int(_config(rendered)["PORT"])


def test_termination_grace_covers_prestop_and_drain(rendered: Render) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    drain = int(_config(rendered)["DRAIN_TIMEOUT_S"])
    pre_stop = _prestop_seconds(_container(rendered))
    assert pre_stop >= 5, "the preStop pause lets load balancers forget the pod before SIGTERM"
    assert drain == values_for(rendered.name).get("drain", {}).get("timeoutSeconds", 600)
    assert pod["terminationGracePeriodSeconds"] > drain + pre_stop


def test_prestop_uses_sleep_action_only_where_kubernetes_has_it(rendered: Render) -> None:
    pre_stop = _container(rendered)["lifecycle"]["preStop"]
    assert ("sleep" in pre_stop) is (rendered.kube_version != KUBE_MIN)


def test_rollout_keeps_capacity_while_pods_drain(rendered: Render) -> None:
    strategy = rendered.one("Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_pods_run_locked_down(rendered: Render) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    container = _container(rendered)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    for hook in rendered.hooks:
        hook_sc = hook["spec"]["containers"][0]["securityContext"]
        assert hook_sc["readOnlyRootFilesystem"] is True and hook_sc["allowPrivilegeEscalation"] is False


# -- configuration and secrets ---------------------------------------------------------------


def test_config_and_secrets_are_routed_apart(rendered: Render) -> None:
    config = _config(rendered)
    secret = rendered.one("Secret")
    known = gateway_env()
    assert set(config) <= known, f"unknown variables in the ConfigMap: {set(config) - known}"
    assert not [k for k in config if is_secret_name(k)], "a secret landed in the ConfigMap"
    assert set(secret["data"]) <= known and all(is_secret_name(k) for k in secret["data"])
    assert "stringData" not in secret
    name = rendered.one("Deployment")["metadata"]["name"]
    env_from = _container(rendered)["envFrom"]
    assert env_from[0] == {"configMapRef": {"name": name}}
    assert env_from[1] == {"secretRef": {"name": name}}
    assert config["HOST"] == "0.0.0.0"
    # No secret value appears anywhere in the ConfigMap, not even under another key.
    for value in secret_data(secret).values():
        assert all(value not in v for v in config.values())


def test_metrics_stay_off_the_public_port(rendered: Render) -> None:
    config = _config(rendered)
    assert config["METRICS_PORT"] != config["PORT"]
    service_ports = {p["name"]: p for p in rendered.one("Service")["spec"]["ports"]}
    assert service_ports["metrics"]["port"] == int(config["METRICS_PORT"])
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"] == {"name": "http"}


@pytest.mark.parametrize("key", ["STREAM_TOKEN_SECRET", "ADMIN_TOKEN"])
def test_generated_secrets_are_kept_on_upgrade(helm: HelmHarness, key: str) -> None:
    tokens = {}
    for name in ("default", "production"):
        render = helm.render(name)
        installed = secret_data(render.one("Secret"))[key]
        (upgraded_secret,) = [o for o in render.upgrade_manifest if o["kind"] == "Secret"]
        assert secret_data(upgraded_secret)[key] == installed, f"upgrade changed {key}"
        assert re.fullmatch(r"[A-Za-z0-9]{48}", installed)
        tokens[name] = installed
    assert tokens["default"] != tokens["production"], f"the generated {key} is not random"
    # Given explicitly, it is used as is.
    given = values_for("all-on")["secrets"]["values"][key]
    assert secret_data(helm.render("all-on").one("Secret"))[key] == given


def test_existing_secret_is_loaded_last(helm: HelmHarness) -> None:
    render = helm.render("production")
    env_from = _container(render)["envFrom"]
    assert env_from[-1] == {"secretRef": {"name": "voice-gateway-keys"}}
    assert set(render.one("Secret")["data"]) == {"STREAM_TOKEN_SECRET", "ADMIN_TOKEN"}


def test_api_keys_go_to_the_secret(helm: HelmHarness) -> None:
    values = {"secrets": {"values": {"OPENAI_API_KEY": "sk-test-123", "TWILIO_AUTH_TOKEN": "tw-456",
                                     "ADMIN_TOKEN": "adm-789"}},
              "config": {"AGENT_VOICE": "marin"}}
    answer, server = helm.install(values, release="keys")
    objects = server.created_manifests()
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret_data(secret).keys() == {"OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "ADMIN_TOKEN",
                                          "STREAM_TOKEN_SECRET"}
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert config["data"]["AGENT_VOICE"] == "marin"
    assert "sk-test-123" not in str(config) and "sk-test-123" not in answer["install"]["info"]["notes"]


def test_agent_instructions_are_mounted_as_a_file(helm: HelmHarness) -> None:
    render = helm.render("all-on")
    instructions = render.one("ConfigMap", "-instructions")
    assert "Example Dental" in instructions["data"]["instructions.txt"]
    assert _config(render)["AGENT_INSTRUCTIONS_FILE"] == "/etc/voice-gateway/instructions.txt"
    mounts = {m["name"]: m for m in _container(render)["volumeMounts"]}
    assert mounts["instructions"]["mountPath"] == "/etc/voice-gateway" and mounts["instructions"]["readOnly"]


def test_public_url_comes_from_the_ingress_host(helm: HelmHarness) -> None:
    assert _config(helm.render("all-on"))["PUBLIC_URL"] == "https://gw.example.com"
    assert _config(helm.render("production"))["PUBLIC_URL"] == "https://voice.example.com"
    assert "PUBLIC_URL" not in _config(helm.render("default"))


def test_values_route_every_variable() -> None:
    """values.yaml has every variable of the gateway (.env.example), secrets under secrets.values,
    the rest under config, each with its comment; the values schema knows the same names."""
    require("yaml")
    import yaml

    assert ENV_EXAMPLE.exists(), ".env.example is missing at the repository root (docker-compose.yml uses .env)"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    config, secrets = set(values["config"]), set(values["secrets"]["values"])
    expected = gateway_env()
    assert config | secrets | CHART_OWNED_ENV == expected, (
        f"not in helm/values.yaml: {sorted(expected - config - secrets - CHART_OWNED_ENV)}; "
        f"not in .env.example: {sorted((config | secrets) - expected)}")
    assert not config & CHART_OWNED_ENV
    assert all(is_secret_name(k) for k in secrets), "a non-secret under secrets.values"
    assert not [k for k in config if is_secret_name(k)], "a secret under config"
    text = (CHART / "values.yaml").read_text()
    for name in config | secrets:
        assert re.search(rf"#[^\n]*\n\s+{name}:", text), f"{name} is not documented in values.yaml"
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert set(schema["config"]["properties"]) == config
    assert set(schema["secrets"]["properties"]["values"]["properties"]) == secrets


def test_values_are_documented_field_by_field() -> None:
    """Every key of values.yaml down to the second level has a comment right above it, but for the
    children of objects passed through to Kubernetes as they are (security contexts, resources)."""
    passthrough = {"podSecurityContext", "securityContext", "resources"}
    parent, undocumented = "", []
    lines = (CHART / "values.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^( {0,2})([A-Za-z][A-Za-z0-9_]*):", line)
        if not match:
            continue
        if not match.group(1):
            parent = match.group(2)
        elif parent in passthrough:
            continue
        if not lines[i - 1].strip().startswith("#"):
            undocumented.append(f"{i + 1}: {line.strip()}")
    assert not undocumented, f"values.yaml fields without a comment: {undocumented}"


# -- exposure and scaling --------------------------------------------------------------------


def test_ingress_keeps_websockets_open(helm: HelmHarness) -> None:
    nginx = helm.render("production").one("Ingress")
    annotations = nginx["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert nginx["spec"]["ingressClassName"] == "nginx"
    assert nginx["spec"]["tls"][0]["hosts"] == ["voice.example.com"]

    alb = helm.render("all-on").one("Ingress")
    annotations = alb["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/load-balancer-attributes"] == "idle_timeout.timeout_seconds=3600"
    assert annotations["alb.ingress.kubernetes.io/target-group-attributes"] == (
        "deregistration_delay.timeout_seconds=1800")
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"  # user annotations kept
    paths = {p["path"] for r in alb["spec"]["rules"] for p in r["http"]["paths"]}
    assert {"/voice", "/media"} <= paths


def test_hpa_scales_on_cpu_and_active_calls(helm: HelmHarness) -> None:
    for name, calls in (("production", "40"), ("all-on", "30")):
        render = helm.render(name)
        hpa = render.one("HorizontalPodAutoscaler")
        deployment = render.one("Deployment")
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": deployment["metadata"]["name"]}
        resources = {m["resource"]["name"]: m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"}
        assert resources["cpu"]["target"]["type"] == "Utilization"
        (pods,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        assert pods["metric"]["name"] == "gateway_calls_active"
        assert pods["target"] == {"type": "AverageValue", "averageValue": calls}
        scale_down = hpa["spec"]["behavior"]["scaleDown"]
        assert scale_down["stabilizationWindowSeconds"] >= 300, "scale-down drains calls: do it slowly"


def test_cpu_only_hpa_by_default_when_enabled(helm: HelmHarness) -> None:
    _, server = helm.install({"autoscaling": {"enabled": True}}, release="cpu")
    (hpa,) = [o for o in server.created_manifests() if o["kind"] == "HorizontalPodAutoscaler"]
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["Resource"]
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_disruption_budget_selects_the_pods(rendered: Render) -> None:
    pdb = rendered.one("PodDisruptionBudget")
    selector = pdb["spec"]["selector"]["matchLabels"]
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])


def test_service_selects_the_pods(rendered: Render) -> None:
    service = rendered.one("Service")
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in _container(rendered)["ports"]}


def test_dashboard_configmap_carries_the_dashboard(helm: HelmHarness) -> None:
    dashboard = helm.render("all-on").one("ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["voice-gateway.json"])
    assert shipped == json.loads((DEPLOY / "grafana" / "dashboards" / "gateway.json").read_text())


# -- NOTES.txt -------------------------------------------------------------------------------


def test_notes_tell_how_to_point_twilio_at_it(rendered: Render) -> None:
    notes = rendered.notes
    assert "Twilio" in notes and "HTTP POST" in notes
    assert "/voice" in notes and "/media" in notes
    if rendered.name == "production":
        assert "https://voice.example.com/voice/twilio" in notes
        assert "wss://voice.example.com/media/twilio" in notes
    if rendered.name == "default":
        assert "echo line" in notes and "port-forward" in notes


# -- values that must not render -------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"drain": {"terminationGracePeriodSeconds": 600}}, "must exceed"),
        ({"secrets": {"existingSecret": "keys", "values": {"OPENAI_API_KEY": "sk-x"}}}, "existingSecret"),
        ({"config": {"LOG_LEVL": "debug"}}, "LOG_LEVL"),
        ({"agentInstructions": "Be brief.", "config": {"AGENT_INSTRUCTIONS": "Be long."}}, "not both"),
        ({"secrets": {"values": {"STREAM_TOKEN_SECRET": "short"}}}, "STREAM_TOKEN_SECRET"),
        ({"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 0}}, "has no metric"),
        ({"metrics": {"port": 8080}}, "metrics.port must differ"),
    ],
    ids=["grace-too-short", "secret-both-ways", "typo-in-config", "instructions-twice", "short-hmac-secret",
         "hpa-without-metric", "metrics-port-clash"],
)
def test_bad_values_are_refused(helm: HelmHarness, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailed, match=message):
        helm.install(values, release="bad")


def test_chart_refuses_clusters_older_than_its_minimum(helm: HelmHarness) -> None:
    with pytest.raises(HelmFailed, match="kubeVersion"):
        helm.install({}, release="old", kube_version="v1.26.0")


def test_manifest_parses_as_plain_yaml(rendered: Render) -> None:
    """The release manifest (what `helm template` would print) is valid YAML with one object per document."""
    assert all(isinstance(doc, dict) and doc.get("kind") for doc in rendered.manifest)
    assert len(rendered.manifest) == len(rendered.objects)


# -- NetworkPolicy egress ----------------------------------------------------------------------


def _egress(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return policy["spec"]["egress"]


def test_network_policy_allows_dns_and_the_listed_ports(helm: HelmHarness) -> None:
    for name, ports in (("all-on", [443, 8443]), ("production", [443])):
        policy = helm.render(name).one("NetworkPolicy")
        dns, listed, *extra = _egress(policy)
        assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
        assert [(p["port"], p["protocol"]) for p in listed["ports"]] == [(port, "TCP") for port in ports]
        assert "to" not in listed, "the listed ports are open towards any address"
        assert not extra
    assert "egressPorts" in (CHART / "values.yaml").read_text()


def test_network_policy_takes_more_ports_ranges_and_rules(helm: HelmHarness) -> None:
    """CALL_REPORT_URL, tool servers and proxies may listen on ports other than 443."""
    require("kubernetes_validate")
    import kubernetes_validate

    extra_rule = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 3128, "protocol": "TCP"}]}
    _, server = helm.install({"networkPolicy": {
        "enabled": True,
        "egressPorts": [443, 8080, {"port": 9000, "endPort": 9010}, {"port": 5060, "protocol": "UDP"}],
        "extraEgress": [extra_rule],
    }}, release="egress")
    (policy,) = [o for o in server.created_manifests() if o["kind"] == "NetworkPolicy"]
    _dns, listed, extra = _egress(policy)
    assert listed["ports"] == [{"port": 443, "protocol": "TCP"}, {"port": 8080, "protocol": "TCP"},
                               {"port": 9000, "endPort": 9010, "protocol": "TCP"},
                               {"port": 5060, "protocol": "UDP"}]
    assert extra == extra_rule
    kubernetes_validate.validate(policy, kubernetes_validate.latest_version(), strict=True)


def test_network_policy_refuses_a_port_entry_without_a_port(helm: HelmHarness) -> None:
    with pytest.raises(HelmFailed, match="egressPorts"):
        helm.install({"networkPolicy": {"enabled": True, "egressPorts": [{"endPort": 9010}]}}, release="bad")


# -- operator documentation ----------------------------------------------------------------------


def test_docs_say_how_to_build_and_push_the_image() -> None:
    """The default image repository is a placeholder: values.yaml and deploy/README.md say how to make one."""
    values = (CHART / "values.yaml").read_text()
    readme = (DEPLOY / "README.md").read_text()
    for text in (values, readme):
        assert "docker build -f deploy/Dockerfile" in text and "docker push" in text
    assert "image.repository" in readme and "image.tag" in readme


def test_docs_give_sizing_from_the_benchmark() -> None:
    values = (CHART / "values.yaml").read_text()
    readme = (DEPLOY / "README.md").read_text()
    for text in (values, readme):
        assert "docs/benchmarks.md" in text
        assert re.search(r"ms\s+of\s+CPU\s+per\s+call-second", text), "CPU per call-second"
        assert re.search(r"KB\s+(of\s+memory\s+)?per\s+call", text), "memory per call"
        assert re.search(r"one\s+machine", text), "say that the figures are one machine's"
