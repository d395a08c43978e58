"""Process supervision: a function started as the contract starts it, healthy, and gone with
its whole process group when stopped or killed."""

from pathlib import Path

import psutil
import pytest
import requests

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
