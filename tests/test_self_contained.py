"""No file of the repository refers to a path outside it.

A fresh clone has nothing beside it: every file the repository holds (tracked, plus new files
not ignored, i.e. what the next commit holds) is scanned for paths that leave the checkout —
the sibling `../shared` folder, absolute paths of this machine (`/work/...`, home folders),
relative `../` climbs above the root, and `Path(__file__)` parents above the root — and each
hit is named as file:line.
"""

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()
# What may name a place outside the repository, on purpose: (file, text on the line).
ALLOWED = {
    # CI points the optional originals' tests at the third-party sample files beside the
    # checkout when they are there (tests/support/samples.py); nothing else depends on them.
    (".ci/run", "SAMPLES_DIR="),
}
# Paths that are outside the repository wherever they are written.
ABSOLUTE = re.compile(
    r"(?<![\w.-])\.\./shared\b"  # the sibling folder the project once leaned on
    r"|(?<![\w.~-])/work(?:/|\b)"  # this machine's work tree
    r"|(?<![\w.~-])/home/[A-Za-z0-9_.-]+"  # home folders
    r"|(?<![\w.~-])/Users/[A-Za-z0-9_.-]+"
    r"|(?<![\w.~-])/root/"
    r"|\b[A-Za-z]:\\Users\\"
)
# `../` climbs: outside the repository when they climb above the root from the file's folder
# and what they lead to is no path of the repository from any of its folders (documentation
# quotes paths relative to another folder, e.g. a kustomization's `../../components/x`).
CLIMB = re.compile(r"(?<![\w.])((?:\.\.[/\\])+)([\w.-]+(?:/[\w.-]+)*)?")
# Path(__file__).resolve().parents[N] / Path(__file__).parent.parent…
PARENTS = re.compile(r"__file__\)(?:\.resolve\(\)|\.absolute\(\))?\.parents\[(\d+)\]")
PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\)|\.absolute\(\))?((?:\.parent\b)+)")


def repository_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the repository's file list is unknown")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return  # binary
    yield from enumerate(data.decode("utf-8", "replace").splitlines(), start=1)


def folders(names: list[str]) -> set[Path]:
    """Every folder of the repository, the root included."""
    return {parent for name in names for parent in Path(name).parents}


def leads_inside(target: str | None, inside: set[Path]) -> bool:
    return bool(target) and any((ROOT / folder / str(target)).exists() for folder in inside)


def outside_references(name: str, inside: set[Path]) -> Iterator[tuple[int, str, str]]:
    """(line number, what leaves the repository, the line) for one file; `inside`: the
    repository's folders."""
    depth = len(Path(name).parts) - 1  # folders between the root and the file
    for number, line in text_lines(ROOT / name):
        if not any(name == allowed and text in line for allowed, text in ALLOWED):
            for found in line_references(line, depth, inside):
                yield number, found, line


def line_references(line: str, depth: int, inside: set[Path]) -> Iterator[str]:
    absolute = list(ABSOLUTE.finditer(line))
    yield from (match.group(0) for match in absolute)
    for match in CLIMB.finditer(line):
        if any(hit.start() == match.start() for hit in absolute):
            continue  # reported above
        if match.group(1).count("..") > depth and not leads_inside(match.group(2), inside):
            yield match.group(0)
    for match in PARENTS.finditer(line):
        if int(match.group(1)) > depth:
            yield f"parents[{match.group(1)}]"
    for match in PARENT_CHAIN.finditer(line):
        if match.group(1).count(".parent") > depth + 1:
            yield match.group(1)


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    names = repository_files()
    inside = folders(names)
    hits = [
        f"{name}:{number}: {found!r} in {line.strip()[:160]!r}"
        for name in names
        if name != SELF
        for number, found, line in outside_references(name, inside)
    ]
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    ("name", "line", "found"),
    [
        ("README.md", "The contract is `../shared/contract.md`.", True),
        ("tests/conftest.py", 'S = Path(__file__).resolve().parents[2] / "shared"', True),
        ("tests/conftest.py", "ROOT = Path(__file__).resolve().parents[1]", False),
        ("tests/support/env.py", "ROOT = Path(__file__).resolve().parents[2]", False),
        ("tests/x.py", "ROOT = Path(__file__).parent.parent.parent", True),
        ("tests/x.py", "ROOT = Path(__file__).parent.parent", False),
        ("docs/a.md", "see [deploy](../README.md)", False),
        ("docs/a.md", "see ../../elsewhere/notes.md", True),
        ("docs/deploy.md", "- ../../components/broker", False),  # relative to k8s/overlays/x
        ("docs/deploy.md", "- ../../components/missing", True),
        ("scripts/dev", "cd /work/main && ls", True),
        ("k8s/x.yaml", "path: /home/alice/kube", True),
        ("tests/unit/t.py", 'name = "../x y.csv"', False),
        ("shared/a.py", 'key = "uploads/b_1/0000_x.csv"', False),
        (".ci/run", 'export SAMPLES_DIR="$PWD/../shared/samples/real"', False),
        ("scripts/ci", 'export SAMPLES_DIR="$PWD/../shared/samples/real"', True),
    ],
)
def test_the_scan_finds_what_it_should(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, line: str, found: bool
) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(line + "\n", encoding="utf-8")
    (tmp_path / "k8s" / "components" / "broker").mkdir(parents=True)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    inside = folders([name, "k8s/components/broker/kustomization.yaml"])
    assert bool(list(outside_references(name, inside))) is found
