"""stack.yml, the OpenFaaS deployment."""

from __future__ import annotations

import pytest

from .support import DOCKERFILE, FUNCTIONS, REPO, Doc, build_args

COPY_PATHS = {
    "./shared",
    "./pyproject.toml",
    "./requirements",
    "./scripts",
    "./functions",
    "./web",
}
CE_MAX_REPLICAS = 5


def test_stack_file_format(stack_text: str, stack: Doc) -> None:
    assert "\nversion: 1.0\n" in stack_text
    assert stack["provider"]["name"] == "openfaas"
    assert set(stack["functions"]) == set(FUNCTIONS)


def test_build_context_copies_the_project_into_each_function(stack: Doc) -> None:
    copy = set(stack["configuration"]["copy"])

    assert copy == COPY_PATHS
    for path in copy:
        assert (REPO / path).exists(), path


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_build_the_one_dockerfile_with_their_build_args(name: str, stack: Doc) -> None:
    """lang: dockerfile builds the handler folder's Dockerfile: functions/Dockerfile for
    all three, the function chosen by build_args (as scripts/build-images does)."""
    function = stack["functions"][name]

    assert function["lang"] == "dockerfile"
    assert function["handler"] == "./functions"
    assert REPO / function["handler"] / "Dockerfile" == DOCKERFILE
    assert DOCKERFILE.is_file()
    assert function["build_args"] == build_args(name)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_run_read_only_with_limits(name: str, stack: Doc) -> None:
    function = stack["functions"][name]

    assert function["readonly_root_filesystem"] is True
    assert {"cpu", "memory"} <= function["requests"].keys()
    assert "memory" in function["limits"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_health_probes_point_at_healthz(name: str, stack: Doc) -> None:
    annotations = stack["functions"][name]["annotations"]

    assert annotations["com.openfaas.health.http.path"] == "/healthz"
    assert annotations["com.openfaas.ready.http.path"] == "/healthz"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_pods_invite_prometheus_to_scrape_metrics(name: str, stack: Doc) -> None:
    """faas-netes sets prometheus.io.scrape "false" on function pods unless one is given."""
    annotations = stack["functions"][name]["annotations"]

    assert annotations["prometheus.io.scrape"] == "true"
    assert annotations["prometheus.io.port"] == "8080"
    assert annotations["prometheus.io.path"] == "/metrics"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_scale_labels_fit_community_edition(name: str, stack: Doc) -> None:
    labels = stack["functions"][name]["labels"]

    assert all(isinstance(value, str) for value in labels.values())
    assert 1 <= int(labels["com.openfaas.scale.min"]) <= int(labels["com.openfaas.scale.max"])
    assert int(labels["com.openfaas.scale.max"]) <= CE_MAX_REPLICAS
    assert int(labels["com.openfaas.scale.target"]) <= int(
        stack["functions"][name]["environment"]["max_inflight"]
    )


def test_process_file_scales_to_zero_and_retries_on_pro(stack: Doc) -> None:
    function = stack["functions"]["process-file"]

    assert function["labels"]["com.openfaas.scale.zero"] == "true"
    codes = function["annotations"]["com.openfaas.retry.codes"].split(",")
    assert "503" in codes and not [code for code in codes if code.startswith("4") and code != "429"]


def test_pro_and_community_edition_differences_are_written_down(stack_text: str) -> None:
    docs = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")

    for text in (stack_text, docs):
        assert "Community Edition" in text and "Pro" in text
        assert "scale to zero" in text and "retries" in text
