"""Process supervision: a function started as the contract starts it, healthy, and gone with
its whole process group when stopped or killed."""

import contextlib
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import requests

from devstack import ROOT
from devstack.processes import free_port, kill, spawn_function, stop, wait_healthy, wait_until


def test_wait_until_reports_what_never_came() -> None:
    with pytest.raises(RuntimeError, match="the thing did not come up"):
        wait_until(lambda: False, "the thing", timeout=0.3)


@pytest.mark.parametrize("end", [stop, kill])
def test_a_started_function_is_healthy_and_its_group_ends_with_it(
    environment: dict[str, str], tmp_path: Path, end: object
) -> None:
    port = free_port()
    process = spawn_function("status", port, {**environment, "WORKERS": "2"}, tmp_path)
    try:
        url = wait_healthy(process, port, "status")
        assert requests.get(f"{url}/healthz", timeout=5).ok
        master = psutil.Process(process.pid)
        wait_until(lambda: len(master.children(True)) >= 2, "gunicorn's two workers", 30)
        group = [process.pid, *(p.pid for p in master.children(True))]
    finally:
        end(process)  # type: ignore[operator]
    assert process.poll() is not None
    wait_until(lambda: not any(psutil.pid_exists(p) for p in group), "the group's end", 10)
    assert (tmp_path / "status.log").is_file()


def test_wait_healthy_fails_fast_when_the_function_exits(tmp_path: Path) -> None:
    port = free_port()
    process = spawn_function("status", port, {"WORKERS": "not-a-number"}, tmp_path)
    with pytest.raises(RuntimeError, match="exited"):
        wait_healthy(process, port, "status", timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_dev_stack_stops_with_all_its_processes_when_signalled(sig: int) -> None:
    # GIVEN scripts/dev holding its stack up, started as a shell starts a background job
    dev = subprocess.Popen(
        [str(ROOT / "scripts" / "dev"), "--files", "2", "--rows", "5", "--keep-running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    stack: list[psutil.Process] = []

    def left() -> list[psutil.Process]:
        return [p for p in stack if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    try:
        assert dev.stdout is not None
        for line in dev.stdout:
            if b"Ctrl-C stops it" in line:
                break
        stack = psutil.Process(dev.pid).children(recursive=True)
        assert len(stack) >= 6  # the services and the three functions with their workers

        # WHEN it is told to stop
        dev.send_signal(sig)

        # THEN it ends through its cleanup, and no process of its stack is left
        assert dev.wait(60) == 128 + sig
        wait_until(lambda: not left(), "the end of the stack's processes", 30)
    finally:
        dev.kill()
        for process in left():  # a failing run leaves nothing behind either
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
