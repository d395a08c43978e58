"""The operator scripts: usage text, strict mode, and the commands they would run."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from .support import GENERATED_ENV_FILES, OVERLAYS, REPO

SCRIPTS = ("build-images", "deploy", "scale", "redeploy", "logs")
POSIX_SCRIPTS = (REPO / "scripts" / "entrypoint", REPO / "k8s" / "base" / "configure-minio.sh")
KUBECTL_STUB = """#!/bin/sh
printf '%s\\n' "$*" >> "$KUBECTL_LOG"
"""


def run(root: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "scripts" / script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def commands(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The scripts, k8s/ (with env files) and stack.yml, as in a filled-in checkout."""
    for script in SCRIPTS:
        (tmp_path / "scripts").mkdir(exist_ok=True)
        shutil.copy2(REPO / "scripts" / script, tmp_path / "scripts" / script)
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    shutil.copy(REPO / "stack.yml", tmp_path / "stack.yml")
    for overlay in OVERLAYS:
        for name in GENERATED_ENV_FILES:
            example = tmp_path / "k8s" / "overlays" / overlay / f"{name}.example"
            shutil.copy(example, example.with_suffix(""))
    return tmp_path


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_strict_executable_bash(script: str) -> None:
    path = REPO / "scripts" / script
    text = path.read_text(encoding="utf-8")

    assert path.stat().st_mode & stat.S_IXUSR
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


@pytest.mark.parametrize("path", POSIX_SCRIPTS, ids=lambda p: p.name)
def test_posix_scripts_parse(path: Path) -> None:
    assert "\nset -eu\n" in path.read_text(encoding="utf-8")
    subprocess.run(["sh", "-n", str(path)], check=True, timeout=30)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage(script: str) -> None:
    result = run(REPO, script, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ")


@pytest.mark.parametrize("script", ("deploy", "scale", "redeploy", "logs"))
def test_wrong_arguments_print_usage_and_fail(script: str) -> None:
    result = run(REPO, script, "nowhere")

    assert result.returncode == 2
    assert "Usage: " in result.stderr


def test_deploy_knative_migrates_before_rolling_out(checkout: Path) -> None:
    ran = commands(run(checkout, "deploy", "knative", "prod", DRY_RUN="1"))

    assert ran == [
        "kubectl delete job --namespace csv-ingest --selector "
        "csv-ingest/rerun-on-deploy=true --ignore-not-found",
        "kubectl apply -k k8s/overlays/prod --selector csv-ingest/apply-phase=pre",
        "kubectl wait --namespace csv-ingest --for=condition=complete job/migrate --timeout=10m",
        "kubectl apply -k k8s/overlays/prod",
        "kubectl wait --namespace csv-ingest --for=condition=Ready ksvc --all --timeout=10m",
    ]


def test_deploy_knative_refuses_without_secrets(checkout: Path) -> None:
    (checkout / "k8s" / "overlays" / "dev" / "secrets.env").unlink()

    result = run(checkout, "deploy", "knative", "dev", DRY_RUN="1")

    assert result.returncode == 2
    assert "secrets.env.example" in result.stderr


def test_deploy_openfaas_is_faas_cli_up(checkout: Path) -> None:
    assert commands(run(checkout, "deploy", "openfaas", DRY_RUN="1")) == [
        "faas-cli up -f stack.yml"
    ]


def test_redeploy_knative_sets_the_tag_and_deploys(checkout: Path) -> None:
    stub = checkout / "bin" / "kubectl"
    stub.parent.mkdir()
    stub.write_text(KUBECTL_STUB, encoding="utf-8")
    stub.chmod(0o755)
    log = checkout / "kubectl.log"
    path = f"{stub.parent}:{os.environ['PATH']}"

    result = run(checkout, "redeploy", "knative", "dev", "2.0.1", PATH=path, KUBECTL_LOG=str(log))

    assert result.returncode == 0, result.stderr
    kustomization = (checkout / "k8s" / "overlays" / "dev" / "kustomization.yaml").read_text()
    assert re.findall(r"newTag: (.*)", kustomization) == ['"2.0.1"'] * 3
    assert not (checkout / "k8s" / "overlays" / "dev" / "kustomization.yaml.bak").exists()
    assert "apply -k k8s/overlays/dev" in log.read_text()


def test_redeploy_refuses_a_bad_tag(checkout: Path) -> None:
    result = run(checkout, "redeploy", "knative", "dev", "x;rm -rf /")

    assert result.returncode == 2


def test_redeploy_openfaas_deploys_the_tag_without_building(checkout: Path) -> None:
    assert commands(run(checkout, "redeploy", "openfaas", "2.0.1", DRY_RUN="1")) == [
        "env TAG=2.0.1 faas-cli deploy -f stack.yml"
    ]


def test_scale_knative_patches_min_and_max_scale(checkout: Path) -> None:
    (ran,) = commands(
        run(checkout, "scale", "knative", "dev", "process-file", "0", "4", DRY_RUN="1")
    )
    patch = json.loads(ran.split(" --patch ", 1)[1])

    assert ran.startswith("kubectl patch ksvc process-file --namespace csv-ingest-dev ")
    assert patch["spec"]["template"]["metadata"]["annotations"] == {
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": "4",
    }


@pytest.mark.parametrize(
    "args", [("process-file", "5", "2"), ("nothing", "0", "1"), ("status", "x", "2")]
)
def test_scale_refuses_bad_bounds(checkout: Path, args: tuple[str, str, str]) -> None:
    assert run(checkout, "scale", "knative", "dev", *args, DRY_RUN="1").returncode == 2


def test_scale_openfaas_needs_the_deployed_tag(checkout: Path) -> None:
    without_tag = run(checkout, "scale", "openfaas", "status", "1", "3", DRY_RUN="1", TAG="")
    with_tag = run(checkout, "scale", "openfaas", "status", "1", "3", DRY_RUN="1", TAG="1.0")

    assert without_tag.returncode == 2
    assert commands(with_tag) == [
        "faas-cli deploy -f stack.yml --filter status "
        "--label com.openfaas.scale.min=1 --label com.openfaas.scale.max=3"
    ]


def test_logs_follow_every_replica(checkout: Path) -> None:
    (knative,) = commands(run(checkout, "logs", "knative", "prod", "status", DRY_RUN="1"))
    (openfaas,) = commands(run(checkout, "logs", "openfaas", "status", "20", DRY_RUN="1"))

    assert knative.startswith("kubectl logs --namespace csv-ingest ")
    assert "--selector serving.knative.dev/service=status --container function --follow" in knative
    assert openfaas == "faas-cli logs status --lines 20 --tail"


def test_build_images_refuses_an_unknown_function() -> None:
    result = run(REPO, "build-images", "nothing", DRY_RUN="1")

    assert result.returncode == 2
