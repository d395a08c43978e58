"""Shared knowledge of the static deployment checks: the contract's names, YAML loading,
and a model of the kustomize features k8s/ uses (resources, components, strategic-merge
patches, generators, images, namespace). test_kustomize.py checks the model against
`kubectl kustomize` where kubectl exists.
"""

from __future__ import annotations

import base64
import copy
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

# The contract's table: function folder -> functions-framework target (all http).
FUNCTIONS = {"presign": "presign", "process-file": "process_file", "status": "status"}
# The one Dockerfile of the three images (build arguments choose the function).
DOCKERFILE = REPO / "functions" / "Dockerfile"

# Every environment variable the code reads, and which of them are secret.
SECRET_ENV = {
    "DATABASE_URL",
    "REDIS_URL",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "API_TOKENS",
    "WEBHOOK_TOKEN",
    "NOTIFY_WEBHOOK_SECRET",
    "SMTP_URL",
}
PLAIN_ENV = {
    "S3_ENDPOINT",
    "S3_PUBLIC_ENDPOINT",
    "S3_REGION",
    "S3_BUCKET",
    "AUTH_DISABLED",
    "CORS_ORIGINS",
    "MAX_FILES_PER_BATCH",
    "MAX_FILE_BYTES",
    "ALLOWED_EXTENSIONS",
    "PROCESS_FILE_URL",
    "DATABASE_POOL_SIZE",
    "TMPDIR",
    "NOTIFY_WEBHOOK_URLS",
    "NOTIFY_EMAIL_FROM",
    "NOTIFY_EMAIL_TO",
    "NOTIFY_ALLOWED_RECIPIENTS",
    "NOTIFY_ALLOWED_HOSTS",
    "NOTIFY_RETRY_HOURS",
    "NOTIFY_TIMEOUT_SECONDS",
    "NOTIFY_BACKOFF_SECONDS",
    "STATUS_PUBLIC_URL",
}
# Injected by the platform, not configured: K_SINK by a Knative SinkBinding
# (k8s/components/notify-sink); on OpenFaaS, stack.yml passes it through from the deployer.
INJECTED_ENV = {"K_SINK"}
CONTRACT_ENV = SECRET_ENV | PLAIN_ENV

OVERLAYS = ("dev", "prod")
# prod with the optional broker component added, as docs/deploy.md says to.
BROKER_OVERLAY = "prod-broker"
# prod with the optional notify-sink component (CloudEvents to a Broker through K_SINK).
NOTIFY_OVERLAY = "prod-notify"
GENERATED_ENV_FILES = ("secrets.env", "minio-admin.env")
NAMESPACED_EXCEPTIONS = {"Namespace"}

Doc = dict[str, Any]


def load_docs(path: Path) -> list[Doc]:
    """All non-empty YAML documents of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [
        doc
        for doc in docs
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def knative_services(docs: list[Doc]) -> dict[str, Doc]:
    return {
        doc["metadata"]["name"]: doc
        for doc in docs
        if doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev")
    }


def pod_spec(doc: Doc) -> Doc:
    """The pod spec of a Knative Service, Job or CronJob."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc: Doc) -> dict[str, str]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return doc["spec"]["template"]["metadata"]["labels"]


def build_args(name: str) -> dict[str, str]:
    """The build arguments that make functions/Dockerfile the image of function <name>."""
    return {"FUNCTION": name, "TARGET": FUNCTIONS[name]}


def dockerfile_lines() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of functions/Dockerfile as written, continuations joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    parsed = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            parsed.append((keyword.upper(), arguments.strip()))
    return parsed


# The instructions in which Docker itself substitutes $VAR / ${VAR} (RUN leaves it to the
# shell, and the exec forms of CMD and ENTRYPOINT to nobody).
DOCKER_EXPANDS = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "USER", "VOLUME", "WORKDIR"}


def dockerfile_instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of functions/Dockerfile as built for function <name>: its
    build arguments, and the values of earlier ENV instructions, expanded where Docker
    expands variables. An ARG before FROM is in scope for FROM only."""
    args = build_args(name)
    scope: dict[str, str] = {}
    parsed = []
    for keyword, arguments in dockerfile_lines():
        if keyword in DOCKER_EXPANDS:
            arguments = _expand(arguments, scope)
        parsed.append((keyword, arguments))
        if keyword == "ARG":
            key, _, default = arguments.partition("=")
            scope[key] = args.get(key, default)
        elif keyword == "FROM":
            scope = {}
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                scope[key] = value
    return parsed


def _expand(text: str, scope: dict[str, str]) -> str:
    assert not re.search(r"\$\{\w+:", text), f"unmodelled substitution in {text!r}"
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda match: scope.get(match.group(1) or match.group(2), ""),
        text,
    )


def parse_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


# --- a model of kustomize -------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge as kustomize applies it to these files: maps merge, lists of
    named maps merge by name, other lists are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge_patch(target[key], value) if key in target else value
        return merged
    if _named_list(target) and _named_list(patch):
        merged_list = [copy.deepcopy(item) for item in target]
        names = [item["name"] for item in merged_list]
        for item in patch:
            if item["name"] in names:
                index = names.index(item["name"])
                merged_list[index] = merge_patch(merged_list[index], item)
            else:
                merged_list.append(item)
        return merged_list
    return copy.deepcopy(patch)


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "name" in item for item in value)
    )


def _generated(kind: str, spec: Doc, kdir: Path, options: Doc) -> Doc:
    data: dict[str, str] = {}
    for env_file in spec.get("envs", []):
        data.update(parse_env_file(kdir / env_file))
    for file_name in spec.get("files", []):
        key, _, source = file_name.rpartition("=")
        data[key or Path(source).name] = (kdir / source).read_text(encoding="utf-8")
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    labels = {**options.get("labels", {}), **spec.get("options", {}).get("labels", {})}
    doc: Doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if labels:
        doc["metadata"]["labels"] = labels
    if kind == "Secret":
        doc["type"] = "Opaque"
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    doc["data"] = data
    return doc


def _apply_json6902(doc: Doc, operations: list[Doc]) -> Doc:
    """The `add` and `replace` operations of a JSON 6902 patch (`/-` appends to a list)."""
    patched = copy.deepcopy(doc)
    for operation in operations:
        assert operation["op"] in ("add", "replace"), operation
        *parents, last = operation["path"].lstrip("/").split("/")
        node: Any = patched
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            if last == "-":
                node.append(operation["value"])
            else:
                node[int(last)] = operation["value"]
        else:
            node[last] = operation["value"]
    return patched


def _apply_patches(docs: list[Doc], kustomization: Doc, kdir: Path) -> list[Doc]:
    for entry in kustomization.get("patches", []):
        if "target" in entry:
            target = entry["target"]
            matches = [
                i
                for i, doc in enumerate(docs)
                if doc["kind"] == target["kind"]
                and doc["metadata"]["name"] == target["name"]
                and doc["apiVersion"].startswith(target.get("group", ""))
            ]
            assert len(matches) == 1, f"patch {entry['path']} matches {len(matches)}"
            docs[matches[0]] = _apply_json6902(docs[matches[0]], load_docs(kdir / entry["path"])[0])
            continue
        for patch in load_docs(kdir / entry["path"]):
            matches = [
                i
                for i, doc in enumerate(docs)
                if doc["kind"] == patch["kind"]
                and doc["metadata"]["name"] == patch["metadata"]["name"]
            ]
            assert len(matches) == 1, f"patch {entry['path']} matches {len(matches)}"
            docs[matches[0]] = merge_patch(docs[matches[0]], patch)
    return docs


def _set_images(node: Any, images: dict[str, Doc]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    image = images.get(container.get("image", ""))
                    if image:
                        container["image"] = f"{image['newName']}:{image['newTag']}"
            _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def render(kdir: Path) -> list[Doc]:
    """Build a kustomization directory (a Kustomization or a Component)."""
    kustomization = load_docs(kdir / "kustomization.yaml")[0]
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = kdir / resource
        docs += render(path) if path.is_dir() else load_docs(path)
    for component in kustomization.get("components", []):
        docs = _apply_component(docs, kdir / component)
    options = kustomization.get("generatorOptions", {})
    for spec in kustomization.get("configMapGenerator", []):
        docs.append(_generated("ConfigMap", spec, kdir, options))
    for spec in kustomization.get("secretGenerator", []):
        docs.append(_generated("Secret", spec, kdir, options))
    docs = _apply_patches(docs, kustomization, kdir)
    images = {image["name"]: image for image in kustomization.get("images", [])}
    _set_images(docs, images)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in NAMESPACED_EXCEPTIONS:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _apply_component(docs: list[Doc], cdir: Path) -> list[Doc]:
    component = load_docs(cdir / "kustomization.yaml")[0]
    assert component["kind"] == "Component", f"{cdir} is not a Component"
    for resource in component.get("resources", []):
        docs = docs + load_docs(cdir / resource)
    return _apply_patches(docs, component, cdir)


def referenced_files(kdir: Path) -> Iterator[Path]:
    """Every path a kustomization (and what it includes) names, recursively."""
    kustomization = load_docs(kdir / "kustomization.yaml")[0]
    for entry in kustomization.get("resources", []) + kustomization.get("components", []):
        path = kdir / entry
        if path.is_dir():
            yield path / "kustomization.yaml"
            yield from referenced_files(path)
        else:
            yield path
    for entry in kustomization.get("patches", []):
        yield kdir / entry["path"]
    generators = kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    )
    for spec in generators:
        for env_file in spec.get("envs", []):
            yield kdir / env_file
        for file_name in spec.get("files", []):
            yield kdir / file_name.rpartition("=")[2]


def substitute_env(text: str, env: dict[str, str]) -> str:
    """faas-cli's ${VAR} / ${VAR:-default} substitution of stack.yml."""

    def replace(match: re.Match[str]) -> str:
        return env.get(match.group(1)) or match.group(3) or ""

    return re.sub(r"\$\{(\w+)(:-([^}]*))?\}", replace, text)
