"""The optional notify-sink component: a SinkBinding gives every notification sender K_SINK,
the address of a Broker the overlay defines, and the senders may reach the broker."""

from __future__ import annotations

import pytest

from .support import NOTIFY_OVERLAY, Doc, find, knative_services, one

SENDERS = {"process-file", "status", "reconcile"}


@pytest.fixture
def docs(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[NOTIFY_OVERLAY]


def test_every_sender_and_only_the_senders_are_bound(docs: list[Doc]) -> None:
    bindings = find(docs, "SinkBinding")
    subjects = {b["spec"]["subject"]["name"]: b["spec"]["subject"] for b in bindings}

    assert set(subjects) == SENDERS and len(bindings) == len(SENDERS)
    services = knative_services(docs)
    for name in ("process-file", "status"):
        assert subjects[name]["kind"] == "Service"
        assert subjects[name]["apiVersion"] == services[name]["apiVersion"]
    cronjob = one(docs, "CronJob", "reconcile")
    assert (subjects["reconcile"]["kind"], subjects["reconcile"]["apiVersion"]) == (
        "CronJob",
        cronjob["apiVersion"],
    )


def test_the_sink_is_the_overlays_broker_in_the_same_namespace(docs: list[Doc]) -> None:
    [broker] = find(docs, "Broker")
    for binding in find(docs, "SinkBinding"):
        ref = binding["spec"]["sink"]["ref"]
        assert (ref["kind"], ref["name"]) == ("Broker", broker["metadata"]["name"])
        assert binding["metadata"]["namespace"] == broker["metadata"]["namespace"]


def test_the_senders_may_reach_the_broker_ingress(docs: list[Doc]) -> None:
    policy = one(docs, "NetworkPolicy", "notify-sink-egress")
    senders = set(policy["spec"]["podSelector"]["matchExpressions"][0]["values"])
    [rule] = policy["spec"]["egress"]
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in rule["to"]
    }

    assert senders == SENDERS
    assert namespaces == {"knative-eventing"}


def test_k_sink_is_left_to_the_binding(docs: list[Doc]) -> None:
    config = one(docs, "ConfigMap", "csv-ingest-config")["data"]

    assert "K_SINK" not in config  # an empty value would only hide a missing binding
