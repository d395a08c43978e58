"""The Dockerfiles, and the image names that scripts/build-images, k8s/ and stack.yml share."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from .support import (
    FUNCTIONS,
    OVERLAYS,
    REPO,
    Doc,
    dockerfile_instructions,
    knative_services,
    substitute_env,
)

IMAGE_USER = 10001


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of functions/<name>/Dockerfile, continuations joined."""
    return dockerfile_instructions(name)


def arguments_of(name: str, keyword: str) -> list[str]:
    return [arguments for kw, arguments in instructions(name) if kw == keyword]


def build_images(registry: str, tag: str) -> list[str]:
    result = subprocess.run(
        [str(REPO / "scripts" / "build-images")],
        env={**os.environ, "REGISTRY": registry, "TAG": tag, "DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return re.findall(r" -t (\S+) ", result.stdout)


@pytest.mark.parametrize(("name", "target"), FUNCTIONS.items())
def test_cmd_runs_the_contracts_source_and_target(name: str, target: str) -> None:
    (cmd,) = arguments_of(name, "CMD")

    assert json.loads(cmd) == [
        "functions-framework",
        "--source",
        f"functions/{name}/main.py",
        "--target",
        target,
        "--signature-type",
        "http",
    ]
    assert (REPO / "functions" / name / "main.py").is_file()
    assert arguments_of(name, "WORKDIR") == ["/app"]


def test_the_three_dockerfiles_have_the_same_shape() -> None:
    shapes = {
        (REPO / "functions" / name / "Dockerfile")
        .read_text(encoding="utf-8")
        .replace(f'"--target", "{target}"', '"--target", "<target>"')
        .replace(name, "<name>")
        for name, target in FUNCTIONS.items()
    }
    ignores = {
        (REPO / "functions" / name / "Dockerfile.dockerignore").read_text(encoding="utf-8")
        for name in FUNCTIONS
    }

    assert len(shapes) == 1
    assert len(ignores) == 1


@pytest.mark.parametrize("name", FUNCTIONS)
def test_base_image_is_debian_slim_python_311(name: str) -> None:
    assert arguments_of(name, "ARG") == ["PYTHON_IMAGE=python:3.11-slim"]
    assert arguments_of(name, "FROM") == ["${PYTHON_IMAGE}"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_runs_as_the_non_root_user_the_manifests_expect(
    name: str, rendered: dict[str, list[Doc]]
) -> None:
    (user,) = arguments_of(name, "USER")
    service = knative_services(rendered["prod"])[name]
    context = service["spec"]["template"]["spec"]["containers"][0]["securityContext"]

    assert user == f"{IMAGE_USER}:{IMAGE_USER}"
    assert context["runAsUser"] == IMAGE_USER


@pytest.mark.parametrize("name", FUNCTIONS)
def test_installs_the_lock_then_the_project_without_dependencies(name: str) -> None:
    runs = arguments_of(name, "RUN")
    lock = next(i for i, run in enumerate(runs) if "-r requirements/runtime.lock" in run)
    project = next(i for i, run in enumerate(runs) if "pip install --no-deps ." in run)

    assert lock < project


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_copy_source_is_in_both_build_contexts(name: str, stack: Doc) -> None:
    """Repository root (docker build -f … .) and OpenFaaS (handler + configuration.copy)."""
    openfaas = [path.removeprefix("./").rstrip("/") for path in stack["configuration"]["copy"]]
    ignore = (REPO / "functions" / name / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    sent = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}

    for copy in arguments_of(name, "COPY"):
        *sources, _ = copy.split()
        for source in sources:
            source = source.rstrip("/")
            top = source.split("/")[0]
            assert (REPO / source).exists(), f"{source} is not in the repository"
            assert top in sent, f"{source} is not sent by Dockerfile.dockerignore"
            assert top in openfaas, f"{source} is not in stack.yml's configuration.copy"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_entrypoint_is_the_script_copied_into_the_image(name: str) -> None:
    (entrypoint,) = arguments_of(name, "ENTRYPOINT")

    assert json.loads(entrypoint) == ["/bin/sh", "/app/scripts/entrypoint"]
    assert "scripts/ scripts/" in arguments_of(name, "COPY")
    assert (REPO / "scripts" / "entrypoint").is_file()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_deploys_the_images_build_images_builds(
    overlay: str, rendered: dict[str, list[Doc]]
) -> None:
    services = knative_services(rendered[overlay])
    deployed = {
        name: service["spec"]["template"]["spec"]["containers"][0]["image"]
        for name, service in services.items()
    }
    registry, _, rest = deployed["presign"].rpartition("/")
    tag = rest.rpartition(":")[2]

    assert build_images(registry, tag) == [deployed[name] for name in FUNCTIONS]


def test_stack_yml_deploys_the_images_build_images_builds(stack_text: str) -> None:
    env = {"REGISTRY": "registry.example.com/team", "TAG": "1.2.3"}
    stack = yaml.safe_load(substitute_env(stack_text, env))

    assert build_images(env["REGISTRY"], env["TAG"]) == [
        stack["functions"][name]["image"] for name in FUNCTIONS
    ]
