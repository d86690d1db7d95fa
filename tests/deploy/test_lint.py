"""helm lint (Helm's own linter, through helm-sdkpy) and yamllint on the non-template YAML."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import CHART, DEPLOY, REPO, HelmHarness, require, values_for

# helm lint's severities (helm.sh/helm/v3/pkg/lint/support).
INFO, WARNING, ERROR = 1, 2, 3


@pytest.mark.parametrize("values_set", ["default", "all-on", "production"])
def test_helm_lint(helm: HelmHarness, values_set: str) -> None:
    result = helm.lint(values_for(values_set))
    assert result["TotalChartsLinted"] == 1
    problems = [m for m in result["Messages"] if m["Severity"] >= WARNING]
    # helm-sdkpy drops the messages' text; the render tests show the cause of a template error.
    assert not problems, f"helm lint ({values_set}) reported {problems}: see the render tests for the details"
    assert not result["Errors"]


def test_helm_lint_catches_a_broken_template(helm: HelmHarness, tmp_path) -> None:
    """The lint really renders the templates: a broken one is reported as an error."""
    import shutil

    chart = tmp_path / "voice-gateway"
    shutil.copytree(CHART, chart, symlinks=False)
    (chart / "templates" / "broken.yaml").write_text("kind: {{ .Values.no.such.value }}\n")
    result = helm.call({"action": "lint", "chart": str(chart)}, timeout=60)["lint"]
    assert any(m["Severity"] == ERROR and m["Path"].startswith("templates") for m in result["Messages"])


def _yaml_files() -> list[str]:
    files = [CHART / "Chart.yaml", CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml")),
             DEPLOY / "docker-compose.yml", DEPLOY / "yamllint.yaml",
             *sorted((DEPLOY / "prometheus").glob("*.yml")), *sorted((DEPLOY / "grafana").rglob("*.yml"))]
    return [str(f.relative_to(REPO)) for f in files]


def test_yamllint() -> None:
    require("yamllint")
    files = _yaml_files()
    assert "deploy/docker-compose.yml" in files and "helm/values.yaml" in files
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", "-c", str(DEPLOY / "yamllint.yaml"),
         *files],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_config_skips_templates_only() -> None:
    """Templates are Go templates (checked by rendering); everything else is linted."""
    require("yamllint")
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(DEPLOY / "yamllint.yaml"))
    assert config.is_file_ignored("helm/templates/deployment.yaml")
    assert not config.is_file_ignored("helm/values.yaml")
    assert not config.is_file_ignored("deploy/docker-compose.yml")
