"""The MinIO configuration Job: its script, run with exactly the environment the Job's
container gets, against a stand-in `mc` that records its calls."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .support import BROKER_OVERLAY, OVERLAYS, Doc, find, knative_services, one, pod_spec

MC_STUB = """#!{python}
import json, os, sys
with open(os.environ["MC_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:4] == ["admin", "config", "set"]:
    print("Successfully applied new settings.")
    if os.environ.get("MC_WANTS_RESTART"):
        print("Please restart your server 'mc admin service restart ingest-store'.")
"""


def container_env(job: Doc, docs: list[Doc]) -> dict[str, str]:
    """The environment Kubernetes would give the Job's container."""
    container = pod_spec(job)["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "configMapKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = one(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = one(docs, "Secret", ref["name"])["data"][ref["key"]]
            env[item["name"]] = base64.b64decode(value).decode()
    return env


def run_job_script(docs: list[Doc], tmp_path: Path, **extra: str) -> list[list[str]]:
    job = one(docs, "Job", "minio-notify")
    container = pod_spec(job)["containers"][0]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "script")
    volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == "script")
    scripts = one(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    script_name = Path(container["command"][-1]).relative_to(mount["mountPath"])
    tmp_path.mkdir(exist_ok=True)
    script = tmp_path / str(script_name)
    script.write_text(scripts[str(script_name)], encoding="utf-8")
    stub = tmp_path / "bin" / "mc"
    stub.parent.mkdir()
    stub.write_text(MC_STUB.format(python=sys.executable), encoding="utf-8")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "mc.log"
    env = {
        **container_env(job, docs),
        "PATH": f"{stub.parent}:/usr/bin:/bin",
        "MC_LOG": str(log),
        **extra,
    }

    result = subprocess.run(
        [container["command"][0], str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def config_set(calls: list[list[str]], subsystem: str) -> dict[str, str]:
    matching = [c for c in calls if c[:5] == ["admin", "config", "set", "ingest-store", subsystem]]
    assert len(matching) == 1, f"{subsystem} configured {len(matching)} times"
    return dict(arg.split("=", 1) for arg in matching[0][5:])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhook_endpoint_is_process_files_in_cluster_url(
    overlay: str, rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    docs = rendered[overlay]
    process_file = knative_services(docs)["process-file"]["metadata"]
    in_cluster_url = f"http://{process_file['name']}.{process_file['namespace']}.svc.cluster.local/"
    secret = one(docs, "Secret", "csv-ingest-secrets")["data"]

    webhook = config_set(run_job_script(docs, tmp_path), "notify_webhook:ingest")

    assert webhook["endpoint"] == in_cluster_url
    assert webhook["auth_token"] == base64.b64decode(secret["WEBHOOK_TOKEN"]).decode()
    assert webhook["queue_dir"].startswith("/")
    assert int(webhook["queue_limit"]) > 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_uploads_of_every_allowed_extension_notify(
    overlay: str,
    rendered: dict[str, list[Doc]],
    tmp_path: Path,
) -> None:
    docs = rendered[overlay]
    extensions = one(docs, "ConfigMap", "csv-ingest-config")["data"]["ALLOWED_EXTENSIONS"]

    calls = run_job_script(docs, tmp_path)

    events = [c for c in calls if c[:2] == ["event", "add"]]
    for ext in extensions.split(","):
        rule = [c for c in events if c[c.index("--suffix") + 1] == ext]
        assert rule, f"no event rule for {ext}"
        assert rule[0][3] == "arn:minio:sqs::ingest:webhook"
        assert rule[0][rule[0].index("--event") + 1] == "put"
        assert rule[0][rule[0].index("--prefix") + 1] == "uploads/"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_browsers_may_upload_from_the_cors_origins(
    overlay: str, rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    docs = rendered[overlay]
    origins = one(docs, "ConfigMap", "csv-ingest-config")["data"]["CORS_ORIGINS"]

    api = config_set(run_job_script(docs, tmp_path), "api")

    assert api["cors_allow_origin"] == origins


def test_minio_is_restarted_only_when_it_asks(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    calls = run_job_script(rendered["prod"], tmp_path / "no", MC_WANTS_RESTART="")
    calls_restart = run_job_script(rendered["prod"], tmp_path / "yes", MC_WANTS_RESTART="1")

    restart = ["admin", "service", "restart", "ingest-store"]
    assert restart not in calls
    assert restart in calls_restart


def test_broker_variant_sends_to_kafka_and_drops_webhook_rules(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    docs = rendered[BROKER_OVERLAY]
    source = find(docs, "KafkaSource")[0]["spec"]

    calls = run_job_script(docs, tmp_path)

    kafka = config_set(calls, "notify_kafka:ingest")
    assert kafka["brokers"] == ",".join(source["bootstrapServers"])
    assert kafka["topic"] == source["topics"][0]
    assert [
        "event",
        "remove",
        "ingest-store/seasonality-uploads",
        "arn:minio:sqs::ingest:webhook",
    ] in calls
    assert not [c for c in calls if c[:2] == ["event", "add"] and c[3].endswith(":webhook")]


def test_the_job_sees_only_the_secret_keys_it_needs(rendered: dict[str, list[Doc]]) -> None:
    container = pod_spec(one(rendered["prod"], "Job", "minio-notify"))["containers"][0]
    secret_refs = {
        (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
        for item in container["env"]
        if "secretKeyRef" in item.get("valueFrom", {})
    }

    assert not [s for s in container.get("envFrom", []) if "secretRef" in s]
    assert secret_refs == {
        ("csv-ingest-secrets", "WEBHOOK_TOKEN"),
        ("minio-admin", "MINIO_ADMIN_USER"),
        ("minio-admin", "MINIO_ADMIN_PASSWORD"),
    }
