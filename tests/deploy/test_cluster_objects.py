"""Jobs, network policies, disruption budgets and alerts around the functions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .support import OVERLAYS, Doc, find, knative_services, one, pod_labels, pod_spec, render

KNATIVE_DATA_PATH = {"knative-serving", "kourier-system", "istio-system", "knative-eventing"}
MINIO_NAMESPACE = "minio"
# Where the functions may connect: DNS, PostgreSQL, Redis, MinIO.
ALLOWED_EGRESS_PORTS = {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 9000)}
# Webhooks and email leave the cluster from the functions that send them (shared/notify.py).
NOTIFICATION_SENDERS = {"process-file", "status", "reconcile"}
NOTIFICATION_PORTS = {("TCP", 443), ("TCP", 465), ("TCP", 587)}
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"}
# Prometheus scrapes the user container's port (Knative: user-port) from this namespace.
MONITORING_NAMESPACE = "monitoring"
METRICS_PORT = 8080


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


def is_metrics_rule(rule: Doc) -> bool:
    """An ingress rule that admits only the monitoring namespace's scrapes of /metrics."""
    ports = {(p["protocol"], p["port"]) for p in rule.get("ports", [])}
    namespaces = set().union(*(peer_namespaces(peer) for peer in rule.get("from", [{}])))
    return ports == {("TCP", METRICS_PORT)} and namespaces == {MONITORING_NAMESPACE}


def test_only_knative_and_minio_reach_process_file(docs: list[Doc]) -> None:
    labels = pod_labels(knative_services(docs)["process-file"])
    allowed: set[str] = set()

    for policy in policies_for(docs, labels, "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']} admits everyone"
            if is_metrics_rule(rule):
                continue
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
                if any("ipBlock" in peer for peer in rule["to"]):
                    assert_notification_egress(labels, rule)
                    continue
                namespaces = set().union(*(peer_namespaces(peer) for peer in rule["to"]))
                rule_ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
                if namespaces <= KNATIVE_DATA_PATH:
                    # Handing files to process-file goes through the Knative gateway.
                    assert labels["app.kubernetes.io/name"] in {"presign", "status", "reconcile"}
                else:
                    ports |= rule_ports
        assert ports == ALLOWED_EGRESS_PORTS, workload["metadata"]["name"]


def assert_notification_egress(labels: dict[str, str], rule: Doc) -> None:
    """Outside the cluster only the notification senders, only to public addresses, only
    HTTPS and SMTP submission."""
    assert labels["app.kubernetes.io/name"] in NOTIFICATION_SENDERS
    assert {(p["protocol"], p["port"]) for p in rule["ports"]} <= NOTIFICATION_PORTS
    for peer in rule["to"]:
        assert set(peer) == {"ipBlock"} and peer["ipBlock"]["cidr"] == "0.0.0.0/0"
        assert PRIVATE_RANGES <= set(peer["ipBlock"]["except"])


def test_only_the_notification_senders_leave_the_cluster(docs: list[Doc]) -> None:
    leaving = {
        pod_labels(workload)["app.kubernetes.io/name"]
        for workload in workloads(docs)
        for policy in policies_for(docs, pod_labels(workload), "Egress")
        for rule in policy["spec"].get("egress", [])
        if any("ipBlock" in peer for peer in rule["to"])
    }

    assert leaving == NOTIFICATION_SENDERS


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
    # Every status replica reports the same database count: max, not sum; and only status
    # counts (presign and process-file export a constant 0).
    assert queue["expr"] == 'max(csv_queue_length{function="status"}) > 100'
    assert queue["for"] == "5m"
    failure = rules["CsvFileFailureRate"]
    expr = " ".join(failure["expr"].split())
    failed, _, finished = expr.partition(" / ")
    assert failed == "sum(increase(csv_files_failed_total[15m]))"
    assert "csv_files_failed_total" in finished and "csv_files_processed_total" in finished
    assert expr.endswith("> 0.10")
    # Counters restart in every new pod (scale to zero): never read them raw.
    for counter in re.findall(r"csv_\w+_total", expr):
        assert f"increase({counter}[" in expr or f"rate({counter}[" in expr


def test_a_pod_monitor_scrapes_every_function_on_knatives_user_port(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["prod"]
    monitor = one(docs, "PodMonitor", "csv-ingest")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    scraped = {
        name
        for name, service in knative_services(docs).items()
        if selects(monitor["spec"]["selector"], pod_labels(service))
    }

    assert scraped == {"presign", "process-file", "status"}
    # Knative renames the user container's port to user-port in the revision's pods.
    assert endpoint["port"] == "user-port" and endpoint["path"] == "/metrics"
    for service in knative_services(docs).values():
        (port,) = service["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert port["containerPort"] == METRICS_PORT
    targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert targets["function"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]


def test_the_monitoring_namespace_reaches_every_function_on_the_metrics_port_only(
    docs: list[Doc],
) -> None:
    for name, service in knative_services(docs).items():
        rules = [
            rule
            for policy in policies_for(docs, pod_labels(service), "Ingress")
            for rule in policy["spec"].get("ingress", [])
            if MONITORING_NAMESPACE
            in set().union(*(peer_namespaces(peer) for peer in rule.get("from", [{}])))
        ]
        assert rules and all(is_metrics_rule(rule) for rule in rules), name


def test_an_overlay_names_its_own_monitoring_namespace(k8s_copy: Path, tmp_path: Path) -> None:
    """The prod overlay's patch replaces the base rule as a whole, in kustomize too."""
    overlay = tmp_path / "k8s"
    shutil.copytree(k8s_copy, overlay)
    patch = overlay / "overlays" / "prod" / "metrics-ingress.yaml"
    patch.write_text(
        patch.read_text(encoding="utf-8").replace(
            "kubernetes.io/metadata.name: monitoring", "team: observability"
        ),
        encoding="utf-8",
    )
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        docs = render(overlay / "overlays" / "prod")
    else:
        built = subprocess.run(
            [kubectl, "kustomize", str(overlay / "overlays" / "prod")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        docs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]

    (rule,) = one(docs, "NetworkPolicy", "metrics-ingress")["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"team": "observability"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": METRICS_PORT}]


def test_prometheus_alerts_when_notifications_die(rendered: dict[str, list[Doc]]) -> None:
    rules = {
        rule["alert"]: rule
        for group in one(rendered["prod"], "PrometheusRule", "csv-ingest")["spec"]["groups"]
        for rule in group["rules"]
    }

    expr = " ".join(rules["NotificationsDying"]["expr"].split())
    assert expr == "sum by (channel) (increase(csv_notifications_failed_total[1h])) > 0"
