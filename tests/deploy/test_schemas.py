"""Core Kubernetes objects validate against the Kubernetes OpenAPI schemas
(kubernetes-validate, offline, strict: unknown fields are errors)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from .support import BROKER_OVERLAY, OVERLAYS, Doc, knative_services

KUBERNETES_VERSION = "1.30.0"
CORE_KINDS = {
    "ConfigMap",
    "CronJob",
    "Deployment",
    "Job",
    "Namespace",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Secret",
    "ServiceAccount",
}
# Knative revision fields that a plain PodSpec does not have.
KNATIVE_ONLY_FIELDS = ("containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds")


def validate(doc: Doc) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")


@pytest.mark.parametrize("overlay", [*OVERLAYS, BROKER_OVERLAY])
def test_core_objects_match_the_kubernetes_schemas(
    overlay: str, rendered: dict[str, list[Doc]]
) -> None:
    core = [doc for doc in rendered[overlay] if doc["kind"] in CORE_KINDS]

    assert {"ConfigMap", "CronJob", "Job", "NetworkPolicy", "PodDisruptionBudget", "Secret"} <= {
        doc["kind"] for doc in core
    }
    for doc in core:
        validate(doc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_knative_pod_templates_are_valid_pod_specs(
    overlay: str, rendered: dict[str, list[Doc]]
) -> None:
    """Knative validates the rest itself; a typo in a container field shows up here."""
    for name, service in knative_services(rendered[overlay]).items():
        spec = copy.deepcopy(service["spec"]["template"]["spec"])
        for field in KNATIVE_ONLY_FIELDS:
            spec.pop(field, None)
        for container in spec["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                # Knative probes may omit the port: it fills in the container port.
                container.get(probe, {}).get("httpGet", {}).setdefault("port", 8080)
        validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def test_the_validator_rejects_an_unknown_field() -> None:
    """Guards the two tests above against a validator that accepts anything."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "imag": "i"}]}}},
    }

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
