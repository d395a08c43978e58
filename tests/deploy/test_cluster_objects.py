"""Jobs, network policies, disruption budgets and alerts around the functions."""

from __future__ import annotations

import pytest

from .support import OVERLAYS, Doc, find, knative_services, one, pod_labels, pod_spec

KNATIVE_DATA_PATH = {"knative-serving", "kourier-system", "istio-system", "knative-eventing"}
MINIO_NAMESPACE = "minio"
# Where the functions may connect: DNS, PostgreSQL, Redis, MinIO.
ALLOWED_EGRESS_PORTS = {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 9000)}


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        matched = {
            "In": present and value in expression.get("values", []),
            "NotIn": not present or value not in expression.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expression["operator"]]
        if not matched:
            return False
    return True


def policies_for(docs: list[Doc], labels: dict[str, str], direction: str) -> list[Doc]:
    return [
        policy
        for policy in find(docs, "NetworkPolicy")
        if direction in policy["spec"]["policyTypes"]
        and selects(policy["spec"]["podSelector"], labels)
    ]


def peer_namespaces(peer: Doc) -> set[str]:
    """Namespace names a peer selects by kubernetes.io/metadata.name."""
    assert set(peer) <= {"namespaceSelector", "podSelector"}, f"unexpected peer {peer}"
    selector = peer["namespaceSelector"]
    key = "kubernetes.io/metadata.name"
    names = set(selector.get("matchLabels", {}).get(key, "").split()) - {""}
    for expression in selector.get("matchExpressions", []):
        assert expression["key"] == key and expression["operator"] == "In"
        names |= set(expression["values"])
    assert names, f"peer selects no named namespace: {peer}"
    return names


def workloads(docs: list[Doc]) -> list[Doc]:
    return list(knative_services(docs).values()) + find(docs, "Job") + find(docs, "CronJob")


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[request.param]


def test_migration_job_runs_the_migrate_script_with_the_process_file_image(
    docs: list[Doc],
) -> None:
    job = one(docs, "Job", "migrate")
    container = pod_spec(job)["containers"][0]
    image = knative_services(docs)["process-file"]["spec"]["template"]["spec"]["containers"][0]

    assert container["command"] == ["python", "scripts/migrate"]
    assert container["workingDir"] == "/app"
    assert container["image"] == image["image"]
    # scripts/deploy applies this phase first and waits for the Job: it holds the Job and
    # everything the Job's pod needs.
    needed = {
        ("Namespace", job["metadata"]["namespace"]),
        ("ServiceAccount", pod_spec(job)["serviceAccountName"]),
        ("ConfigMap", "csv-ingest-config"),
        ("Secret", "csv-ingest-secrets"),
        ("Job", "migrate"),
    }
    pre = {
        (doc["kind"], doc["metadata"]["name"])
        for doc in docs
        if doc["metadata"].get("labels", {}).get("csv-ingest/apply-phase") == "pre"
    }
    assert needed <= pre


def test_reconcile_runs_every_five_minutes_one_at_a_time(docs: list[Doc]) -> None:
    cron = one(docs, "CronJob", "reconcile")
    container = pod_spec(cron)["containers"][0]

    assert cron["spec"]["schedule"] == "*/5 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert container["command"] == ["python", "scripts/reconcile"]
    assert cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 300


def test_everything_is_denied_unless_allowed(docs: list[Doc]) -> None:
    deny = [
        policy
        for policy in find(docs, "NetworkPolicy")
        if policy["spec"]["podSelector"] == {}
        and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]

    assert len(deny) == 1


def test_only_knative_and_minio_reach_process_file(docs: list[Doc]) -> None:
    labels = pod_labels(knative_services(docs)["process-file"])
    allowed: set[str] = set()

    for policy in policies_for(docs, labels, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']} admits everyone"
            for peer in rule["from"]:
                allowed |= peer_namespaces(peer)

    assert allowed <= KNATIVE_DATA_PATH | {MINIO_NAMESPACE}
    assert {"knative-serving", "knative-eventing", MINIO_NAMESPACE} <= allowed


def test_workloads_reach_only_dns_the_stores_and_process_file(docs: list[Doc]) -> None:
    for workload in workloads(docs):
        labels = pod_labels(workload)
        policies = policies_for(docs, labels, "Egress")
        ports = set()
        for policy in policies:
            for rule in policy["spec"].get("egress", []):
                assert rule.get("to") and rule.get("ports"), policy["metadata"]["name"]
                namespaces = set().union(*(peer_namespaces(peer) for peer in rule["to"]))
                rule_ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
                if namespaces <= KNATIVE_DATA_PATH:
                    # Handing files to process-file goes through the Knative gateway.
                    assert labels["app.kubernetes.io/name"] in {"presign", "status", "reconcile"}
                else:
                    ports |= rule_ports
        assert ports == ALLOWED_EGRESS_PORTS, workload["metadata"]["name"]


def test_disruption_budgets_cover_the_people_facing_functions(docs: list[Doc]) -> None:
    services = knative_services(docs)
    covered = {
        name
        for budget in find(docs, "PodDisruptionBudget")
        for name, service in services.items()
        if selects(budget["spec"]["selector"], pod_labels(service))
    }

    assert covered == {"presign", "status"}


def test_prometheus_alerts_on_queue_length_and_failure_rate(
    rendered: dict[str, list[Doc]],
) -> None:
    rules = {
        rule["alert"]: rule
        for group in one(rendered["prod"], "PrometheusRule", "csv-ingest")["spec"]["groups"]
        for rule in group["rules"]
    }

    queue = rules["LargeProcessingQueue"]
    assert "csv_queue_length" in queue["expr"] and queue["expr"].endswith("> 100")
    assert queue["for"] == "5m"
    failure = rules["CsvFileFailureRate"]
    failed, _, processed = failure["expr"].partition("/")
    assert "csv_files_failed_total" in failed and "csv_files_processed_total" in processed
