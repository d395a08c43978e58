"""Fixtures of the static checks of the deployment artefacts (no cluster, no Docker):
the overlays rendered from a copy of k8s/ whose secrets.env files come from the committed
*.example files, and stack.yml."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from .support import (
    BROKER_OVERLAY,
    GENERATED_ENV_FILES,
    NOTIFY_OVERLAY,
    OVERLAYS,
    REPO,
    Doc,
    one,
    render,
)


@pytest.fixture(scope="session")
def k8s_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """k8s/ copied with every overlay's env files made from their examples, plus the
    prod overlay with the broker component added."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(REPO / "k8s", root)
    broker = root / "overlays" / BROKER_OVERLAY
    shutil.copytree(root / "overlays" / "prod", broker)
    with (broker / "kustomization.yaml").open("a", encoding="utf-8") as handle:
        handle.write("\ncomponents:\n  - ../../components/broker\n")
    notify = root / "overlays" / NOTIFY_OVERLAY
    shutil.copytree(root / "overlays" / "prod", notify)
    with (notify / "kustomization.yaml").open("a", encoding="utf-8") as handle:
        handle.write("\ncomponents:\n  - ../../components/notify-sink\n")
    for overlay in (*OVERLAYS, BROKER_OVERLAY, NOTIFY_OVERLAY):
        for name in GENERATED_ENV_FILES:
            example = root / "overlays" / overlay / f"{name}.example"
            shutil.copy(example, example.with_suffix(""))
    return root


@pytest.fixture(scope="session")
def rendered(k8s_copy: Path) -> dict[str, list[Doc]]:
    return {
        overlay: render(k8s_copy / "overlays" / overlay)
        for overlay in (*OVERLAYS, BROKER_OVERLAY, NOTIFY_OVERLAY)
    }


@pytest.fixture(scope="session")
def stack_text() -> str:
    return (REPO / "stack.yml").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def stack(stack_text: str) -> Doc:
    return yaml.safe_load(stack_text)


@pytest.fixture(scope="session")
def config_of() -> Callable[[list[Doc]], dict[str, str]]:
    def config(docs: list[Doc]) -> dict[str, str]:
        return one(docs, "ConfigMap", "csv-ingest-config")["data"]

    return config
