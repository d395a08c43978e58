"""The YAML parses, and the kustomizations resolve to the objects we expect."""

from __future__ import annotations

import base64
import fnmatch
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .support import BROKER_OVERLAY, OVERLAYS, REPO, Doc, load_docs, referenced_files

YAML_FILES = sorted([*REPO.joinpath("k8s").rglob("*.yaml"), *REPO.joinpath("k8s").rglob("*.yml")])
KUSTOMIZATION_DIRS = sorted(
    path.parent for path in REPO.joinpath("k8s").rglob("kustomization.yaml")
)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_parses_into_named_objects(path: Path) -> None:
    docs = load_docs(path)

    assert docs, f"{path} holds no YAML document"
    if isinstance(docs[0], list):  # a JSON 6902 patch: a list of operations
        assert all({"op", "path"} <= operation.keys() for operation in docs[0]), path
        return
    for doc in docs:
        assert {"apiVersion", "kind"} <= doc.keys(), f"{path}: {doc}"
        if path.name != "kustomization.yaml":
            assert doc["metadata"]["name"], f"{path}: an object without a name"


def test_stack_yml_parses() -> None:
    assert yaml.safe_load((REPO / "stack.yml").read_text(encoding="utf-8"))["functions"]


def test_the_expected_kustomizations_exist() -> None:
    relative = {str(path.relative_to(REPO)) for path in KUSTOMIZATION_DIRS}

    assert {"k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"} <= relative
    assert "k8s/components/broker" in relative


@pytest.mark.parametrize("kdir", KUSTOMIZATION_DIRS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_referenced_file_exists(kdir: Path) -> None:
    for path in referenced_files(kdir):
        if path.name in ("secrets.env", "minio-admin.env"):
            # Real secrets are never committed: their examples are.
            path = path.with_name(path.name + ".example")
        assert path.is_file(), f"{kdir} refers to {path}, which does not exist"


def test_real_secret_files_are_git_ignored() -> None:
    patterns = [
        line.strip()
        for line in (REPO / "k8s" / ".gitignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    for overlay in OVERLAYS:
        for name in ("secrets.env", "minio-admin.env"):
            path = f"overlays/{overlay}/{name}"
            assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), path


@pytest.mark.parametrize("overlay", [*OVERLAYS, BROKER_OVERLAY])
def test_kubectl_kustomize_builds_what_the_tests_check(
    overlay: str, k8s_copy: Path, rendered: dict[str, list[Doc]]
) -> None:
    """The Python model in conftest.py renders exactly what kustomize renders.
    Where no kubectl is installed, the model's output alone is checked by the other tests."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        assert rendered[overlay]
        return

    result = subprocess.run(
        [kubectl, "kustomize", str(k8s_copy / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert _by_identity(built) == _by_identity(rendered[overlay])


def _by_identity(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    identified = {}
    for doc in docs:
        if doc["kind"] == "Secret":
            # kustomize wraps base64 lines; compare the decoded values.
            doc = {**doc, "data": {k: base64.b64decode(v) for k, v in doc["data"].items()}}
        identified[(doc["kind"], doc["metadata"]["name"])] = doc
    return identified


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_deploy_the_default_event_path_without_a_broker(
    overlay: str, rendered: dict[str, list[Doc]]
) -> None:
    kinds = {doc["kind"] for doc in rendered[overlay]}

    assert not kinds & {"Broker", "Trigger", "KafkaSource"}


@pytest.mark.parametrize("overlay", [*OVERLAYS, BROKER_OVERLAY])
def test_every_object_lands_in_the_overlay_namespace(
    overlay: str, k8s_copy: Path, rendered: dict[str, list[Doc]]
) -> None:
    kustomization = load_docs(k8s_copy / "overlays" / overlay / "kustomization.yaml")[0]
    namespace = kustomization["namespace"]
    namespaces = [doc for doc in rendered[overlay] if doc["kind"] == "Namespace"]

    assert [doc["metadata"]["name"] for doc in namespaces] == [namespace]
    for doc in rendered[overlay]:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]
