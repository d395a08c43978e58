"""The one Dockerfile (functions/Dockerfile, the function chosen by build arguments), and the
image names and build arguments that scripts/build-images, k8s/ and stack.yml share."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import functions_framework._cli
import pytest
import yaml

from .support import (
    DOCKERFILE,
    FUNCTIONS,
    OVERLAYS,
    REPO,
    Doc,
    build_args,
    dockerfile_instructions,
    dockerfile_lines,
    knative_services,
    substitute_env,
)

IMAGE_USER = 10001
IGNORE_FILE = DOCKERFILE.with_name("Dockerfile.dockerignore")


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of functions/Dockerfile as built for function <name>."""
    return dockerfile_instructions(name)


def arguments_of(name: str, keyword: str) -> list[str]:
    return [arguments for kw, arguments in instructions(name) if kw == keyword]


def image_env(name: str) -> dict[str, str]:
    """The variables the ENV instructions set in function <name>'s image."""
    env: dict[str, str] = {}
    for arguments in arguments_of(name, "ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def build_commands(*functions: str, **env: str) -> list[list[str]]:
    """The docker commands scripts/build-images would run, as argument lists."""
    result = subprocess.run(
        [str(REPO / "scripts" / "build-images"), *functions],
        env={**os.environ, "DRY_RUN": "1", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def build_images(registry: str, tag: str) -> list[str]:
    """The image names scripts/build-images builds, in order."""
    commands = build_commands(REGISTRY=registry, TAG=tag)
    return [command[command.index("-t") + 1] for command in commands]


def option_values(command: list[str], option: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == option]


def guard() -> str:
    """The RUN instruction that refuses a build without valid build arguments."""
    (run,) = [args for kw, args in dockerfile_lines() if kw == "RUN" and "$TARGET" in args]
    return run


def run_guard(**args: str) -> subprocess.CompletedProcess[str]:
    """The guard as the build runs it: /bin/sh in WORKDIR (the repository layout), the
    build arguments in its environment."""
    return subprocess.run(
        ["/bin/sh", "-c", guard()],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **args},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def openfaas_context(handler: Path, copy: list[str], root: Path) -> Path:
    """build/<name>/ as faas-cli prepares it for lang: dockerfile: the handler folder's
    entries (but build/ and template/) at the top, then every configuration.copy path at
    its own relative path."""
    root.mkdir(parents=True)
    for entry in handler.iterdir():
        if entry.name in ("build", "template"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, root / entry.name)
        else:
            shutil.copy(entry, root / entry.name)
    for path in copy:
        source, target = REPO / path, root / path
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return root


def ignore_sends() -> set[str]:
    """The top-level paths Dockerfile.dockerignore lets into the build context."""
    text = IGNORE_FILE.read_text(encoding="utf-8")
    return {line[1:].rstrip("/") for line in text.splitlines() if line.startswith("!")}


@pytest.mark.parametrize(("name", "target"), FUNCTIONS.items())
def test_cmd_runs_the_contracts_source_and_target(name: str, target: str) -> None:
    """CMD is functions-framework; the build arguments reach it as the variables it reads
    for --source, --target and --signature-type (an exec-form CMD expands nothing)."""
    (cmd,) = arguments_of(name, "CMD")
    options = {param.name: param.envvar for param in functions_framework._cli._cli.params}
    env = image_env(name)

    assert json.loads(cmd) == ["functions-framework"]
    assert env[options["source"]] == f"functions/{name}/main.py"
    assert env[options["target"]] == target
    assert env[options["signature_type"]] == "http"
    assert (REPO / "functions" / name / "main.py").is_file()
    assert arguments_of(name, "WORKDIR") == ["/app"]


def test_one_dockerfile_serves_every_function() -> None:
    """functions/Dockerfile and its ignore file; no function folder has a copy of its own."""
    assert DOCKERFILE.is_file()
    assert IGNORE_FILE.is_file()
    for name in FUNCTIONS:
        assert not (REPO / "functions" / name / "Dockerfile").exists(), name
        assert not (REPO / "functions" / name / "Dockerfile.dockerignore").exists(), name


def test_the_build_arguments_come_after_the_shared_layers() -> None:
    """ARG FUNCTION and ARG TARGET (no defaults) are declared after the lock, the project
    and scripts/ are installed, so the three images share those layers and their cache."""
    lines = dockerfile_lines()
    first_from = next(i for i, (kw, _) in enumerate(lines) if kw == "FROM")
    declared = [i for i, (kw, _) in enumerate(lines) if kw == "ARG" and i > first_from]
    own = min(declared)
    shared = [arguments for kw, arguments in lines[:own] if kw in ("RUN", "COPY")]

    assert [lines[i][1] for i in declared] == sorted(build_args("presign"))
    assert "-r requirements/runtime.lock" in " ".join(shared)
    assert "pip install --no-deps ." in " ".join(shared)
    assert "scripts/ scripts/" in shared
    assert len({tuple(dockerfile_instructions(name)[:own]) for name in FUNCTIONS}) == 1


@pytest.mark.parametrize(("name", "target"), FUNCTIONS.items())
def test_each_image_holds_only_its_own_function(name: str, target: str) -> None:
    copies = [arguments for arguments in arguments_of(name, "COPY") if "functions" in arguments]

    result = run_guard(FUNCTION=name, TARGET=target)

    assert copies == [f"functions/{name}/ functions/{name}/"]
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"FUNCTION": "presign"},
        {"TARGET": "presign"},
        {"FUNCTION": "nothing", "TARGET": "presign"},
        {"FUNCTION": "process-file", "TARGET": "process-file"},
        {"FUNCTION": "status", "TARGET": "presign"},
    ],
    ids=["none", "no-target", "no-function", "unknown-function", "dashed-target", "wrong-target"],
)
def test_a_build_without_valid_build_arguments_fails(args: dict[str, str]) -> None:
    result = run_guard(**args)

    assert result.returncode != 0
    assert "--build-arg FUNCTION=" in result.stderr


@pytest.mark.parametrize("name", FUNCTIONS)
def test_base_image_is_debian_slim_python_311(name: str) -> None:
    as_written = [arguments for kw, arguments in dockerfile_lines() if kw in ("ARG", "FROM")]

    assert as_written[:2] == ["PYTHON_IMAGE=python:3.11-slim", "${PYTHON_IMAGE}"]
    assert arguments_of(name, "FROM") == ["python:3.11-slim"]


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
    """Repository root (docker build -f functions/Dockerfile … .) and OpenFaaS (handler +
    configuration.copy)."""
    openfaas = [path.removeprefix("./").rstrip("/") for path in stack["configuration"]["copy"]]
    sent = ignore_sends()

    for copy in arguments_of(name, "COPY"):
        *sources, _ = copy.split()
        for source in sources:
            source = source.rstrip("/")
            top = source.split("/")[0]
            assert (REPO / source).exists(), f"{source} is not in the repository"
            assert top in sent, f"{source} is not sent by Dockerfile.dockerignore"
            assert top in openfaas, f"{source} is not in stack.yml's configuration.copy"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_openfaas_build_context_builds_the_same_image(
    name: str, stack: Doc, tmp_path: Path
) -> None:
    """faas-cli's build/<name>/ holds the same Dockerfile and ignore file at its top, and
    every path the image copies, built with the same build arguments."""
    function = stack["functions"][name]
    context = openfaas_context(
        REPO / function["handler"], stack["configuration"]["copy"], tmp_path / "build" / name
    )

    assert (context / "Dockerfile").read_bytes() == DOCKERFILE.read_bytes()
    assert (context / "Dockerfile.dockerignore").read_bytes() == IGNORE_FILE.read_bytes()
    assert function["build_args"] == build_args(name)
    for copy in arguments_of(name, "COPY"):
        *sources, _ = copy.split()
        for source in sources:
            assert (context / source).exists(), f"{source} is not in build/{name}/"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_entrypoint_is_the_script_copied_into_the_image(name: str) -> None:
    (entrypoint,) = arguments_of(name, "ENTRYPOINT")

    assert json.loads(entrypoint) == ["/bin/sh", "/app/scripts/entrypoint"]
    assert "scripts/ scripts/" in arguments_of(name, "COPY")
    assert (REPO / "scripts" / "entrypoint").is_file()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_build_images_builds_the_one_dockerfile_with_the_functions_build_args(
    name: str,
) -> None:
    (command,) = build_commands(name, REGISTRY="registry.example.com", TAG="1")
    passed = dict(arg.partition("=")[::2] for arg in option_values(command, "--build-arg"))

    assert command[:2] == ["docker", "build"]
    assert option_values(command, "-f") == ["functions/Dockerfile"]
    assert command[-1] == "."
    assert passed == build_args(name)


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
