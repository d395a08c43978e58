"""The local disk a process works on: one folder per file being read, and DuckDB's spill
folder, each named after the process so that leftovers of a killed process (SIGKILL or an
OOM-kill removes nothing) are told from a live one's and removed at the next start.

    $TMPDIR/ingest-<pid>-duckdb      DuckDB's temp_directory for this process
    $TMPDIR/ingest-<pid>-file-<rnd>  one file's staged copy and intermediate CSVs
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "ingest-"


def spill_directory() -> Path:
    return Path(tempfile.gettempdir()) / f"{PREFIX}{os.getpid()}-duckdb"


@contextmanager
def file_workdir() -> Iterator[Path]:
    """A private folder for one file, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-file-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale() -> int:
    """Remove the folders of processes that no longer run; how many were removed."""
    removed = 0
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True
