"""Completion notifications over real processes: workers started as the contract starts them,
a real webhook receiver verifying with `standardwebhooks`, scripts/reconcile as the sweep."""

import base64
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from devstack import ROOT
from devstack.client import Client
from devstack.data import ohlcv_csv
from devstack.processes import kill
from devstack.receiver import Received, Receiver
from tests.support.stack import Spawned, Stack

pytestmark = pytest.mark.e2e
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _notifying(receiver: Receiver) -> dict[str, str]:
    return {
        "NOTIFY_WEBHOOK_URLS": receiver.url,
        "NOTIFY_WEBHOOK_SECRET": SECRET,
        "NOTIFY_BACKOFF_SECONDS": "0.05",
    }


def _deliveries(database_url: str, batch_id: str) -> list[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT state, attempts FROM ingest_notifications WHERE batch_id = %s ORDER BY id",
            (batch_id,),
        ).fetchall()
    return [(str(state), int(attempts)) for state, attempts in rows]


def _waiting_at_batch_lock(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'SELECT final_status%%'"
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_two_workers_finishing_the_last_two_files_at_once_send_one_notification(
    stack: Stack, client: Client, spawn: Callable[..., Spawned]
) -> None:
    env, _ = stack
    with Receiver(SECRET) as receiver:
        workers = [spawn(**_notifying(receiver)) for _ in range(2)]
        batch, events = client.upload_batch(
            [("TWOA.csv", ohlcv_csv(None, 50)), ("TWOB.csv", ohlcv_csv(None, 50))]
        )
        with psycopg.connect(env["DATABASE_URL"]) as holder:
            # GIVEN each worker's load transaction written and held at the batch row
            holder.execute(
                "SELECT 1 FROM ingest_batches WHERE id = %s FOR UPDATE", (batch["batchId"],)
            )
            senders = [
                threading.Thread(target=client.send, args=(event,), kwargs={"url": worker.url})
                for event, worker in zip(events, workers, strict=True)
            ]
            for sender in senders:
                sender.start()
            _wait_for(lambda: _waiting_at_batch_lock(env["DATABASE_URL"]) == 2, "both at the lock")
            # WHEN both go on at the same moment
            holder.rollback()
        for sender in senders:
            sender.join(60)

        # THEN exactly one notification, verified, and none more after redeliveries
        [got] = receiver.wait(1)
        for event, worker in zip(events, workers, strict=True):
            client.send(event, url=worker.url)
        time.sleep(0.3)
        assert len(receiver.received) == 1 and got.error is None
        assert got.payload["data"]["status"] == "COMPLETED"
        assert _deliveries(env["DATABASE_URL"], batch["batchId"]) == [("SENT", 1)]


def test_a_worker_killed_after_the_commit_and_before_the_send_is_recorded_leaves_it_to_the_sweep(
    stack: Stack, client: Client, spawn: Callable[..., Spawned]
) -> None:
    env, _ = stack
    victim: list[Spawned] = []

    def kill_the_sender(received: Received) -> None:
        if victim:  # the worker dies while its first delivery is in flight
            kill(victim.pop().process)

    with Receiver(SECRET, answers=[503], on_request=kill_the_sender) as receiver:
        worker = spawn(**_notifying(receiver))
        victim.append(worker)
        batch, [event] = client.upload_batch([("KILLN.csv", ohlcv_csv(None, 50))])
        threading.Thread(target=_send_ignoring_errors, args=(client, event, worker.url)).start()
        _wait_for(lambda: len(receiver.received) == 1, "the first delivery")
        _wait_for(lambda: worker.process.poll() is not None, "the worker killed")
        # the batch's final state and its outbox row were committed; no attempt was recorded
        assert client.status(batch["batchId"])["status"] == "COMPLETED"
        assert _deliveries(env["DATABASE_URL"], batch["batchId"]) == [("PENDING", 0)]

        # WHEN the reconcile CronJob runs
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "reconcile")],
            env={**env, **_notifying(receiver)},
            check=True,
            capture_output=True,
            timeout=120,
        )

        # THEN it delivers: one accepted delivery, with the same id (the sweep may also finish
        # other tests' leftover files in this database, and their batches notify this receiver)
        ours = [
            r for r in receiver.received if r.headers["webhook-id"].startswith(batch["batchId"])
        ]
        assert sum(1 for r in ours if r.accepted) == 1
        assert {r.headers["webhook-id"] for r in ours} == {f"{batch['batchId']}_1"}
        assert _deliveries(env["DATABASE_URL"], batch["batchId"]) == [("SENT", 1)]


def _send_ignoring_errors(client: Client, event: dict[str, object], url: str) -> None:
    try:
        client.send(event, url=url, timeout=60)
    except Exception:  # the worker is killed under this request
        pass
