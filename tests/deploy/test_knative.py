"""The Knative Services: scaling sized to the database pool, timeouts, probes, config,
and a locked-down container."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .support import FUNCTIONS, OVERLAYS, Doc, find, knative_services, pod_spec

AUTOSCALING = "autoscaling.knative.dev/"
# PostgreSQL's default max_connections is 100; keep room for superusers and humans.
CONNECTION_BUDGET = 90


def annotations(service: Doc) -> dict[str, str]:
    return service["spec"]["template"]["metadata"]["annotations"]


def container(service: Doc) -> Doc:
    containers = service["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_value(container_doc: Doc, name: str) -> str:
    values = [item["value"] for item in container_doc.get("env", []) if item["name"] == name]
    assert len(values) == 1, f"{container_doc['name']}: env {name} not set once"
    return values[0]


@pytest.fixture(params=OVERLAYS)
def services(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> dict[str, Doc]:
    return knative_services(rendered[request.param])


def test_one_knative_service_per_function(services: dict[str, Doc]) -> None:
    assert set(services) == set(FUNCTIONS)


def test_autoscaling_annotations_are_explicit_strings(services: dict[str, Doc]) -> None:
    for name, service in services.items():
        given = annotations(service)
        for key in ("min-scale", "max-scale", "target", "scale-down-delay", "metric"):
            assert isinstance(given.get(AUTOSCALING + key), str), f"{name}: {key}"
        assert int(given[AUTOSCALING + "min-scale"]) <= int(given[AUTOSCALING + "max-scale"])


def test_process_file_scales_to_zero_and_waits_for_large_files(
    services: dict[str, Doc],
) -> None:
    process_file = services["process-file"]

    assert annotations(process_file)[AUTOSCALING + "min-scale"] == "0"
    assert process_file["spec"]["template"]["spec"]["timeoutSeconds"] == 600


def test_concurrency_matches_the_database_pool(
    services: dict[str, Doc],
    rendered: dict[str, list[Doc]],
    config_of: Callable[[list[Doc]], dict[str, str]],
) -> None:
    pool = int(config_of(rendered["prod"])["DATABASE_POOL_SIZE"])

    for name, service in services.items():
        concurrency = service["spec"]["template"]["spec"]["containerConcurrency"]
        assert concurrency == pool, f"{name}: containerConcurrency != DATABASE_POOL_SIZE"
        assert int(annotations(service)[AUTOSCALING + "target"]) <= concurrency, name
        # One gunicorn thread more than requests, so /healthz answers while all are busy.
        assert int(env_value(container(service), "THREADS")) == concurrency + 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_all_replicas_fit_in_postgresqls_connections(
    overlay: str,
    rendered: dict[str, list[Doc]],
    config_of: Callable[[list[Doc]], dict[str, str]],
) -> None:
    docs = rendered[overlay]
    pool = int(config_of(docs)["DATABASE_POOL_SIZE"])
    # process-file holds a second pool of the same size for its file locks
    pools = {name: 2 if name.startswith("process-file") else 1 for name in knative_services(docs)}
    functions = sum(
        int(annotations(service)[AUTOSCALING + "max-scale"]) * pool * pools[name]
        for name, service in knative_services(docs).items()
    )
    jobs = sum(
        int(env["value"])
        for doc in find(docs, "Job") + find(docs, "CronJob")
        for env in pod_spec(doc)["containers"][0].get("env", [])
        if env["name"] == "DATABASE_POOL_SIZE"
    )

    assert functions + jobs <= CONNECTION_BUDGET


def test_health_probes_use_healthz(services: dict[str, Doc]) -> None:
    for name, service in services.items():
        for probe in ("readinessProbe", "livenessProbe"):
            assert container(service)[probe]["httpGet"]["path"] == "/healthz", f"{name} {probe}"


def test_settings_come_from_the_configmap_and_the_secret(services: dict[str, Doc]) -> None:
    for name, service in services.items():
        sources = container(service)["envFrom"]

        assert {"configMapRef": {"name": "csv-ingest-config"}} in sources, name
        assert {"secretRef": {"name": "csv-ingest-secrets"}} in sources, name


def test_containers_run_locked_down_with_a_writable_tmp(services: dict[str, Doc]) -> None:
    for name, service in services.items():
        context = container(service)["securityContext"]
        spec = service["spec"]["template"]["spec"]

        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] != 0, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        mounts = {m["name"]: m["mountPath"] for m in container(service)["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        tmp = [volume for volume, path in mounts.items() if path == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]], f"{name}: /tmp is not an emptyDir"


def test_resources_are_requested_and_limited(services: dict[str, Doc]) -> None:
    for name, service in services.items():
        resources = container(service)["resources"]

        assert {"cpu", "memory"} <= resources["requests"].keys(), name
        assert "memory" in resources["limits"], name


def test_only_presign_and_status_are_public(services: dict[str, Doc]) -> None:
    visibility = "networking.knative.dev/visibility"

    assert services["process-file"]["metadata"]["labels"][visibility] == "cluster-local"
    for name in ("presign", "status"):
        assert visibility not in services[name]["metadata"].get("labels", {}), name


def test_prod_keeps_people_facing_functions_warm(rendered: dict[str, list[Doc]]) -> None:
    services = knative_services(rendered["prod"])

    for name in ("presign", "status"):
        assert int(annotations(services[name])[AUTOSCALING + "min-scale"]) >= 1, name
