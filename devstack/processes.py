"""The functions as real processes, started exactly as the contract starts them:
`functions-framework --source functions/<name>/main.py --target <t> --signature-type http`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path

import requests

from . import ROOT

FUNCTIONS = {
    "presign": ("functions/presign/main.py", "presign"),
    "process-file": ("functions/process-file/main.py", "process_file"),
    "status": ("functions/status/main.py", "status"),
}
Process = subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Call `check` until it returns something true; connection failures count as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def spawn_function(
    name: str, port: int, env: Mapping[str, str], log_dir: Path, log_name: str | None = None
) -> Process:
    """Start a function with the functions-framework CLI in a process group of its own (so
    stopping the group stops gunicorn's workers too), logging to log_dir/<name>.log."""
    source, target = FUNCTIONS[name]
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / (log_name or f"{name}.log")).open("ab") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "functions-framework"),
                "--source",
                source,
                "--target",
                target,
                "--signature-type",
                "http",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(process: Process, port: int, name: str, timeout: float = 60.0) -> str:
    """Wait for /healthz to answer; the function's base URL (no trailing slash)."""
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"function {name} exited with {process.returncode}")
        return requests.get(f"{url}/healthz", timeout=1).ok

    wait_until(healthy, f"function {name}", timeout)
    return url


def end_on_signals() -> None:
    """SIGTERM, SIGHUP and SIGINT end the program through its cleanup (the stack's processes
    stop with it): by default SIGTERM ends it at once and leaves them running, and a shell
    starts a background job with SIGINT ignored."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, leave)


def stop(process: Process, sig: int = signal.SIGTERM) -> None:
    """Signal the process's group, then make sure it is gone."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(10)
        except (subprocess.TimeoutExpired, ProcessLookupError, PermissionError):
            process.kill()
            process.wait()


def kill(process: Process) -> None:
    """SIGKILL the whole group: what a crashed or OOM-killed pod looks like."""
    stop(process, signal.SIGKILL)


def start_function(
    stack: ExitStack, name: str, port: int, env: Mapping[str, str], log_dir: Path
) -> str:
    """One function, healthy, stopped when `stack` closes; its URL."""
    process = spawn_function(name, port, env, log_dir)
    stack.callback(stop, process)
    return wait_healthy(process, port, name)


def start_functions(
    stack: ExitStack,
    env: dict[str, str],
    log_dir: Path,
    extra: Mapping[str, Mapping[str, str]] | None = None,
    ports: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """The three functions on `ports` (free ones by default), each with its `extra`
    variables; their URLs.

    Sets env["PROCESS_FILE_URL"] to the process-file just started, as a deployment does."""
    ports = ports or {name: free_port() for name in FUNCTIONS}
    env["PROCESS_FILE_URL"] = f"http://127.0.0.1:{ports['process-file']}/"
    extra = extra or {}
    return {
        name: start_function(stack, name, port, {**env, **extra.get(name, {})}, log_dir)
        for name, port in ports.items()
    }
