"""The optional broker component: KafkaSource -> Broker -> Trigger -> process-file, with
retries and a dead-letter sink on process-file's own dead-letter path."""

from __future__ import annotations

import re

import pytest

from .support import BROKER_OVERLAY, Doc, find, knative_services, one

# The CloudEvent type KafkaSource gives every Kafka message it forwards.
KAFKA_SOURCE_EVENT_TYPE = "dev.knative.kafka.event"
ISO_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def seconds(duration: str) -> float:
    match = ISO_DURATION.match(duration)
    assert match and any(match.groups()), f"not an ISO-8601 duration: {duration}"
    hours, minutes, secs = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


@pytest.fixture
def docs(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[BROKER_OVERLAY]


@pytest.fixture
def trigger(docs: list[Doc]) -> Doc:
    triggers = find(docs, "Trigger")
    assert len(triggers) == 1
    return triggers[0]


def is_process_file(ref: Doc) -> bool:
    return ref == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": "process-file",
    }


def test_trigger_subscriber_is_process_file(trigger: Doc, docs: list[Doc]) -> None:
    assert is_process_file(trigger["spec"]["subscriber"]["ref"])
    assert "process-file" in knative_services(docs)


def test_trigger_filters_on_the_type_the_adapter_emits(trigger: Doc, docs: list[Doc]) -> None:
    assert trigger["spec"]["filter"]["attributes"] == {"type": KAFKA_SOURCE_EVENT_TYPE}
    assert len(find(docs, "KafkaSource")) == 1


def test_events_flow_from_the_kafka_source_through_the_broker(
    trigger: Doc, docs: list[Doc]
) -> None:
    broker = one(docs, "Broker", trigger["spec"]["broker"])
    source = find(docs, "KafkaSource")[0]

    assert source["spec"]["sink"]["ref"] == {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "name": broker["metadata"]["name"],
    }
    # Not the in-memory channel broker, which loses events.
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"


def test_delivery_retries_with_exponential_backoff(trigger: Doc, docs: list[Doc]) -> None:
    delivery = trigger["spec"]["delivery"]
    process_file = knative_services(docs)["process-file"]

    assert delivery["retry"] >= 3
    assert delivery["backoffPolicy"] == "exponential"
    assert seconds(delivery["backoffDelay"]) > 0
    assert (
        seconds(delivery["timeout"]) >= process_file["spec"]["template"]["spec"]["timeoutSeconds"]
    )


def test_dead_letters_go_to_process_files_dead_letter_path(trigger: Doc) -> None:
    sink = trigger["spec"]["delivery"]["deadLetterSink"]

    assert is_process_file(sink["ref"])
    assert sink["uri"] == "/dead-letter"


def test_minio_notifies_the_kafka_topic_the_source_reads(docs: list[Doc]) -> None:
    notify = one(docs, "ConfigMap", "minio-notify")["data"]
    source = find(docs, "KafkaSource")[0]["spec"]

    assert notify["NOTIFY_TARGET"] == "kafka"
    assert notify["KAFKA_BROKERS"] == ",".join(source["bootstrapServers"])
    assert [notify["KAFKA_TOPIC"]] == source["topics"]


def test_broker_deliveries_are_not_refused_for_lacking_a_webhook_token(
    docs: list[Doc], rendered: dict[str, list[Doc]]
) -> None:
    """A Trigger sends no bearer token: the component switches process-file's check off,
    and only there (the image and the rest of the container stay as the base has them)."""
    container = knative_services(docs)["process-file"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "WEBHOOK_TOKEN", "value": ""} in container["env"]
    assert container["image"] and container["envFrom"]
    base = knative_services(rendered["prod"])["process-file"]["spec"]["template"]["spec"]
    assert all(e["name"] != "WEBHOOK_TOKEN" for e in base["containers"][0].get("env", []))
