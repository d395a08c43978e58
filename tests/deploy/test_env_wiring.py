"""Every environment variable the code reads is provided on both platforms, from the
places the manifests say."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .support import (
    BROKER_OVERLAY,
    CONTRACT_ENV,
    FUNCTIONS,
    INJECTED_ENV,
    OVERLAYS,
    PLAIN_ENV,
    REPO,
    SECRET_ENV,
    Doc,
    find,
    knative_services,
    one,
    pod_spec,
)

ENTRYPOINT = REPO / "scripts" / "entrypoint"


def run_entrypoint(env: dict[str, str], secrets_dir: Path) -> dict[str, str]:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "env"],
        env={"PATH": "/usr/bin:/bin", "OPENFAAS_SECRETS_DIR": str(secrets_dir), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_and_secret_hold_exactly_the_contract_variables(
    overlay: str, rendered: dict[str, list[Doc]]
) -> None:
    config = one(rendered[overlay], "ConfigMap", "csv-ingest-config")["data"]
    secret = one(rendered[overlay], "Secret", "csv-ingest-secrets")["data"]

    assert set(config) == PLAIN_ENV
    assert set(secret) == SECRET_ENV
    assert set(config) | set(secret) == CONTRACT_ENV


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_process_file_url_is_the_in_cluster_url_of_the_overlay(
    overlay: str,
    rendered: dict[str, list[Doc]],
    config_of: Callable[[list[Doc]], dict[str, str]],
) -> None:
    metadata = knative_services(rendered[overlay])["process-file"]["metadata"]

    assert config_of(rendered[overlay])["PROCESS_FILE_URL"] == (
        f"http://{metadata['name']}.{metadata['namespace']}.svc.cluster.local/"
    )


def config_references(workload: Doc) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None) of every ConfigMap and Secret a workload's pods use."""
    refs = {"configMapRef": "ConfigMap", "secretRef": "Secret"}
    key_refs = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}
    for container in pod_spec(workload)["containers"]:
        for source in container.get("envFrom", []):
            for ref, kind in refs.items():
                if ref in source:
                    yield kind, source[ref]["name"], None
        for item in container.get("env", []):
            for ref, kind in key_refs.items():
                if ref in item.get("valueFrom", {}):
                    yield kind, item["valueFrom"][ref]["name"], item["valueFrom"][ref]["key"]
    for volume in pod_spec(workload).get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None


@pytest.mark.parametrize("overlay", [*OVERLAYS, BROKER_OVERLAY])
def test_every_config_reference_resolves(overlay: str, rendered: dict[str, list[Doc]]) -> None:
    docs = rendered[overlay]
    workloads = list(knative_services(docs).values()) + find(docs, "Job") + find(docs, "CronJob")

    for workload in workloads:
        for kind, name, key in config_references(workload):
            data = one(docs, kind, name)["data"]
            assert key is None or key in data, f"{workload['metadata']['name']}: {name}.{key}"


def test_openfaas_provides_every_variable(stack: Doc) -> None:
    for name in FUNCTIONS:
        function = stack["functions"][name]
        from_secrets = {secret.upper().replace("-", "_") for secret in function["secrets"]}

        assert set(function["environment"]) == PLAIN_ENV | INJECTED_ENV | {"max_inflight"}, name
        assert from_secrets == SECRET_ENV, name


def test_entrypoint_exports_openfaas_secret_files_as_variables(stack: Doc, tmp_path: Path) -> None:
    for secret in stack["functions"]["process-file"]["secrets"]:
        (tmp_path / secret).write_text(f"value of {secret}\n", encoding="utf-8")

    env = run_entrypoint({}, tmp_path)

    for variable in SECRET_ENV:
        secret = variable.lower().replace("_", "-")
        assert env[variable] == f"value of {secret}"


def test_entrypoint_keeps_variables_that_are_already_set(tmp_path: Path) -> None:
    (tmp_path / "webhook-token").write_text("from file", encoding="utf-8")

    env = run_entrypoint({"WEBHOOK_TOKEN": "from environment"}, tmp_path)

    assert env["WEBHOOK_TOKEN"] == "from environment"


def test_max_inflight_sets_the_threads_and_matches_the_pool(stack: Doc, tmp_path: Path) -> None:
    for name in FUNCTIONS:
        environment = stack["functions"][name]["environment"]

        env = run_entrypoint({"max_inflight": environment["max_inflight"]}, tmp_path)

        assert environment["max_inflight"] == environment["DATABASE_POOL_SIZE"], name
        assert int(env["THREADS"]) == int(environment["max_inflight"]) + 1, name


def test_the_wired_names_are_the_settings_the_code_reads() -> None:
    """Every setting without a default is provided, and every provided name is read."""
    from shared.settings import Settings

    fields = {name.upper(): info for name, info in Settings.model_fields.items()}
    required = {name for name, info in fields.items() if info.is_required()}
    assert required <= CONTRACT_ENV
    assert (CONTRACT_ENV | INJECTED_ENV) - {"TMPDIR"} <= set(fields)


def test_every_notification_setting_is_wired() -> None:
    from shared.settings import Settings

    notification = {name.upper() for name in Settings.model_fields if "notify" in name}
    assert notification | {"SMTP_URL", "K_SINK"} <= CONTRACT_ENV | INJECTED_ENV
