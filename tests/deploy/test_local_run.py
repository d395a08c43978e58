"""Each function started exactly as its image starts it (functions/Dockerfile's ENTRYPOINT +
CMD and ENV, with that function's build arguments, from the repository root, which has the
image's WORKDIR layout) answers GET /healthz and serves its Prometheus metrics at
GET /metrics.

Needs the local PostgreSQL (tests/conftest.py's database_url: a fresh migrated database,
since status counts waiting files at scrape time) and Redis; S3_ENDPOINT points where nothing
listens, which health and metrics never touch. Every process runs in its own session and its
whole process group is killed at the end; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import FUNCTIONS, REPO, dockerfile_instructions

START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 5.0
STOP_TIMEOUT = 10.0
METRIC_FAMILIES = {
    "csv_files_uploaded_total": "counter",
    "csv_files_processed_total": "counter",
    "csv_files_failed_total": "counter",
    "csv_rows_loaded_total": "counter",
    "csv_rows_rejected_total": "counter",
    "csv_processing_duration_seconds": "histogram",
    "csv_queue_length": "gauge",
}
# What the image's ENV sets that must point into this test's sandbox instead.
SANDBOXED_ENV = ("HOME", "TMPDIR", "PORT")


@dataclass
class Started:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def image_command(name: str) -> tuple[list[str], dict[str, str]]:
    """The image's ENTRYPOINT + CMD (exec form) with WORKDIR paths mapped onto the
    repository root, and the variables its ENV instructions set (among them the
    functions-framework source and target its build arguments choose)."""
    parsed = dockerfile_instructions(name)
    (workdir,) = [arguments for keyword, arguments in parsed if keyword == "WORKDIR"]
    entrypoint = [json.loads(arguments) for keyword, arguments in parsed if keyword == "ENTRYPOINT"]
    cmd = [json.loads(arguments) for keyword, arguments in parsed if keyword == "CMD"]
    assert len(cmd) == 1 and len(entrypoint) <= 1, f"{name}: one CMD, at most one ENTRYPOINT"
    prefix = workdir.rstrip("/") + "/"
    argv = [
        str(REPO / arg.removeprefix(prefix)) if arg.startswith(prefix) else arg
        for arg in (entrypoint[0] if entrypoint else []) + cmd[0]
    ]
    env: dict[str, str] = {}
    for keyword, arguments in parsed:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                key, sep, value = pair.partition("=")
                assert sep, f"{name}: ENV {pair!r} is not key=value"
                env[key] = value
    return argv, env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the process group (gunicorn's arbiter and workers), then kill it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    # The group may outlive its leader; leave nothing behind.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_healthy(started: Started, deadline: float) -> None:
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            pytest.fail(
                f"{started.name} exited with {started.process.returncode}:\n"
                + started.log.read_text(errors="replace")[-4000:]
            )
        try:
            if get(f"{started.url}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"{started.name} did not answer /healthz in {START_TIMEOUT} s:\n"
        + started.log.read_text(errors="replace")[-4000:]
    )


@pytest.fixture(scope="module")
def functions_running(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Started]]:
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "functions-framework").exists(), f"no functions-framework in {venv_bin}"
    started: dict[str, Started] = {}
    try:
        for name in FUNCTIONS:
            sandbox = tmp_path_factory.mktemp(f"run-{name}")
            argv, image_env = image_command(name)
            port = free_port()
            env = {
                **{k: v for k, v in image_env.items() if k not in SANDBOXED_ENV},
                "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
                "HOME": str(sandbox),
                "TMPDIR": str(sandbox),
                "PORT": str(port),
                # The entrypoint's OpenFaaS secrets folder: absent, as on Knative.
                "OPENFAAS_SECRETS_DIR": str(sandbox / "no-openfaas-secrets"),
                "DATABASE_URL": database_url,
                "REDIS_URL": "redis://127.0.0.1:6379/0",
                "S3_ENDPOINT": "http://127.0.0.1:9",
                "API_TOKENS": "x",
            }
            log = sandbox / "output.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started[name] = Started(name, f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + START_TIMEOUT
        for each in started.values():
            wait_healthy(each, deadline)
        yield started
    finally:
        for each in started.values():
            stop(each.process)


def test_the_images_run_functions_framework_through_the_entrypoint() -> None:
    for name in FUNCTIONS:
        argv, env = image_command(name)
        assert argv[:2] == ["/bin/sh", str(REPO / "scripts" / "entrypoint")], name
        assert argv[2] == "functions-framework", name
        assert env["PORT"] == "8080", name
        assert env["FUNCTION_SOURCE"] == f"functions/{name}/main.py", name
        assert env["FUNCTION_TARGET"] == FUNCTIONS[name], name


@pytest.mark.parametrize("name", FUNCTIONS)
def test_healthz_answers_200(name: str, functions_running: dict[str, Started]) -> None:
    status, _ = get(f"{functions_running[name].url}/healthz")

    assert status == 200


@pytest.mark.parametrize("name", FUNCTIONS)
def test_metrics_serves_every_family(name: str, functions_running: dict[str, Started]) -> None:
    status, body = get(f"{functions_running[name].url}/metrics")

    assert status == 200, body[-2000:]
    types = dict(line.split()[2:4] for line in body.splitlines() if line.startswith("# TYPE "))
    for family, kind in METRIC_FAMILIES.items():
        assert types.get(family) == kind, f"{name}: {family} missing or not a {kind}"


def test_status_counts_the_waiting_files(functions_running: dict[str, Started]) -> None:
    """The gauge is read from PostgreSQL at scrape time: an empty ledger is 0, not NaN."""
    _, body = get(f"{functions_running['status'].url}/metrics")

    (sample,) = [line for line in body.splitlines() if line.startswith("csv_queue_length ")]
    assert float(sample.split()[1]) == 0.0
