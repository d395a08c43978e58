"""The local disk: per-process folders, and what a killed process leaves behind."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from shared import workspace


def test_a_killed_process_leaves_folders_that_the_next_start_removes() -> None:
    # GIVEN a process killed by SIGKILL while it held a file's folder and its spill folder
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from shared import workspace\n"
            "workspace.spill_directory().mkdir()\n"
            "with workspace.file_workdir() as path:\n"
            "    (path / 'rows.csv').write_bytes(b'x' * 1000)\n"
            "    print(path, flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    left = Path(child.stdout.readline().strip())
    spill = left.parent / f"ingest-{child.pid}-duckdb"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert left.exists() and spill.exists()
    # AND a folder of this live process
    with workspace.file_workdir() as mine:
        # WHEN a process starts and sweeps, THEN only the dead process's folders go
        assert workspace.remove_stale() >= 2
        assert not left.exists() and not spill.exists()
        assert mine.exists()
    assert not mine.exists()


def test_each_process_spills_to_a_folder_of_its_own() -> None:
    other = subprocess.run(
        [sys.executable, "-c", "from shared import workspace; print(workspace.spill_directory())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert other != str(workspace.spill_directory())
    assert str(os.getpid()) in str(workspace.spill_directory())
