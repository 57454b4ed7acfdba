#!/usr/bin/env python3
"""Validates the deployment files without Docker, Kubernetes or Asterisk: run through scripts/lint-deploy.sh.

What it checks (each problem is printed; the exit status is 1 if there was any):
  - every YAML file of deploy/ and compose.yaml parses (all documents; duplicate keys are errors);
  - compose.yaml, after ${VAR} interpolation with the values of .env.example, validates against the Compose
    Specification JSON schema vendored in deploy/schemas/, plus cross-references (depends_on, healthchecks,
    build targets, replicas without fixed names, ports or ARI application names);
  - the Kubernetes manifests: required fields per kind, label selectors against pod templates, probes,
    security context, references between objects (ConfigMap, Secrets, HPA and PDB targets, Service ports),
    one ARI application per pod, grace period above the drain timeout; and, when kubernetes-validate is
    importable, every object against the Kubernetes OpenAPI schemas (strict: unknown fields are errors);
  - kustomization.yaml lists every manifest but the examples, and `kubectl kustomize` builds it if kubectl exists;
  - deploy/Dockerfile: the three targets exist, and every final stage runs as a non-root USER with a HEALTHCHECK;
  - the Asterisk samples agree with the rest (contexts, the test extensions, the carrier endpoint, ARI user);
  - .env.example documents every variable the services read and every variable compose.yaml uses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE_SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
SECRET_PLACEHOLDER = "SECRET_KEY=replace-with-at-least-32-random-bytes-of-secret"
# Kubernetes versions the manifests must be valid for: the oldest still supported by major providers and the
# newest schema kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.29.0", "latest"]
DOCKER_TARGETS = ["api-gateway", "dialer-worker", "webhook-dispatcher", "campaign-scheduler"]

problems: list[str] = []
notes: list[str] = []


def problem(where: str | Path, message: str) -> None:
    """Records one problem; `where` is a file (shown relative to the repository) or a short location."""
    if isinstance(where, Path):
        where = str(where.relative_to(ROOT)) if where.is_relative_to(ROOT) else str(where)
    problems.append(f"{where}: {message}")


# MARK: - YAML


class StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML silently keeps the last one, which hides mistakes such as
    two `env:` lists in one container)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=deep))


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_documents(path: Path) -> list[Any] | None:
    """All documents of a YAML file (empty documents dropped), or None after recording a parse error."""
    try:
        with path.open(encoding="utf-8") as handle:
            return [document for document in yaml.load_all(handle, Loader=StrictLoader) if document is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem(path, f"does not parse as YAML: {error}")
        return None


def yaml_files() -> list[Path]:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [COMPOSE, *files] if COMPOSE.exists() else files


# MARK: - .env.example


def read_env_example() -> tuple[dict[str, str], set[str]]:
    """The variables set in .env.example and every variable it documents (set, or shown commented out)."""
    values: dict[str, str] = {}
    documented: set[str] = set()
    if not ENV_EXAMPLE.exists():
        problem(ENV_EXAMPLE, "is missing")
        return values, documented
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    if SECRET_PLACEHOLDER not in lines:
        problem(ENV_EXAMPLE, f"must contain the line {SECRET_PLACEHOLDER!r} (the placeholder the gateway refuses)")
    assignment = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
    commented = re.compile(r"^#\s?([A-Z][A-Z0-9_]*)=")
    for number, line in enumerate(lines, start=1):
        if match := assignment.match(line):
            name, value = match.groups()
            if name in values:
                problem(ENV_EXAMPLE, f"line {number}: {name} is set twice")
            values[name] = value
            documented.add(name)
        elif match := commented.match(line):
            documented.add(match.group(1))
        elif line.strip() and not line.startswith("#"):
            problem(ENV_EXAMPLE, f"line {number}: not NAME=value or a comment: {line!r}")
    return values, documented


def variables_read_by_services() -> dict[str, set[str]]:
    """Environment variables the Swift services read, by name, with the files that read them.

    Found from the reading calls of ServiceSupport's EnvironmentReader (`string("X"`, `int("X"`, `required("X")`,
    ...), subscripts of the environment dictionary and `name: "X"` arguments.
    """
    sources = [ROOT / "Services", ROOT / "Packages" / "Shared" / "Sources"]
    call = re.compile(
        r'(?:\b(?:string|int|double|bool|list|required|raw|choice|seconds|name)\(\s*'
        r'|\b(?:values|environment|env)\[\s*|\bname:\s*)"([A-Z][A-Z0-9_]{2,})"')
    found: dict[str, set[str]] = {}
    for directory in sources:
        for path in sorted(directory.rglob("*.swift")) if directory.exists() else []:
            if "Tests" in path.parts:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if "EnvironmentReader" not in text and "environment" not in text:
                continue
            for match in call.finditer(text):
                found.setdefault(match.group(1), set()).add(str(path.relative_to(ROOT)))
    return found


def check_env_example(documented: set[str]) -> None:
    for name, files in sorted(variables_read_by_services().items()):
        if name not in documented:
            problem(ENV_EXAMPLE, f"does not document {name} (read in {', '.join(sorted(files))})")


# MARK: - Compose


_interpolation = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, environment: dict[str, str], referenced: dict[str, bool], where: str) -> Any:
    """Compose-style ${VAR} substitution over every string of a parsed document; records each variable used and
    whether it is required (`:?` / `?`)."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment, referenced, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment, referenced, f"{where}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        required = op in (":?", "?")
        referenced[name] = referenced.get(name, False) or required
        current = environment.get(name)
        if op in (":-", ":?", ":+"):
            unset = not current
        else:
            unset = current is None
        if op in (":-", "-"):
            return arg if unset else current
        if op in (":?", "?"):
            if unset:
                problem(COMPOSE, f"{where}: ${{{name}}} is required but .env.example does not set it")
                return ""
            return current
        if op in (":+", "+"):
            return "" if unset else arg
        return current or ""

    return _interpolation.sub(substitute, value)


def dockerfile_targets() -> set[str]:
    if not DOCKERFILE.exists():
        return set()
    return {stage.name for stage in parse_dockerfile(DOCKERFILE) if stage.name}


def check_compose(env_values: dict[str, str], env_documented: set[str]) -> None:
    documents = load_yaml_documents(COMPOSE) if COMPOSE.exists() else None
    if COMPOSE.exists() is False:
        problem(COMPOSE, "is missing")
        return
    if documents is None:
        return
    if len(documents) != 1 or not isinstance(documents[0], dict):
        problem(COMPOSE, "must hold exactly one mapping")
        return
    referenced: dict[str, bool] = {}
    project = interpolate(documents[0], env_values, referenced, "compose")
    for name in sorted(referenced):
        if name not in env_documented:
            problem(COMPOSE, f"uses ${{{name}}}, which .env.example does not document")

    try:
        schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        problem(COMPOSE_SCHEMA, f"cannot be read: {error}")
        return
    # The schema declares draft 2019-09 with a `$schema` URI spelling jsonschema does not map, so name it.
    validator_class = jsonschema.Draft201909Validator
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for error in sorted(validator.iter_errors(project), key=lambda e: list(e.absolute_path)):
        location = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        problem(COMPOSE, f"Compose schema: {location}: {error.message}")

    services: dict[str, Any] = project.get("services") or {}
    volumes = set((project.get("volumes") or {}).keys())
    targets = dockerfile_targets()
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        where = f"services.{name}"
        one_shot = service.get("restart") in ("no", None) and "restart" in service
        if "image" not in service and "build" not in service:
            problem(COMPOSE, f"{where}: needs an image or a build section")
        build = service.get("build")
        if isinstance(build, dict):
            dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                problem(COMPOSE, f"{where}: build.dockerfile {dockerfile} does not exist")
            elif dockerfile.resolve() == DOCKERFILE.resolve() and build.get("target") not in targets:
                problem(COMPOSE, f"{where}: build.target {build.get('target')!r} is not a stage of deploy/Dockerfile")
        if not one_shot and "healthcheck" not in service:
            problem(COMPOSE, f"{where}: a long-running service needs a healthcheck")
        if service.get("restart") is None:
            problem(COMPOSE, f"{where}: set restart (unless-stopped, or \"no\" for a one-shot job)")
        for dependency, condition in _depends_on(service):
            other = services.get(dependency)
            if other is None:
                problem(COMPOSE, f"{where}: depends_on {dependency!r}, which is not a service")
                continue
            if condition == "service_healthy" and "healthcheck" not in other:
                problem(COMPOSE, f"{where}: waits for {dependency} to be healthy, but it has no healthcheck")
            if condition == "service_completed_successfully" and other.get("restart") != "no":
                problem(COMPOSE, f"{where}: waits for {dependency} to complete, but it is not a one-shot service")
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/", "~")) and source not in volumes:
                problem(COMPOSE, f"{where}: named volume {source!r} is not declared under volumes")
        replicas = (service.get("deploy") or {}).get("replicas", 1)
        if isinstance(replicas, int) and replicas > 1:
            if "container_name" in service:
                problem(COMPOSE, f"{where}: container_name cannot be used with {replicas} replicas")
            for port in service.get("ports") or []:
                text = str(port if not isinstance(port, dict) else port.get("published", ""))
                if ":" in text or (isinstance(port, dict) and port.get("published")):
                    problem(COMPOSE, f"{where}: {replicas} replicas cannot share the published port {text}")
            environment = service.get("environment") or {}
            if isinstance(environment, dict) and environment.get("ARI_APP"):
                problem(COMPOSE, f"{where}: {replicas} replicas would share ARI_APP; leave it unset (unique default)")
        environment = service.get("environment")
        if isinstance(environment, dict) and any(key in environment for key in ("NODE_ID", "ARI_HTTP_URL")):
            grace = _seconds(service.get("stop_grace_period", "10s"))
            drain = float(environment.get("DRAIN_TIMEOUT_SECONDS") or 30)
            if grace is None or grace <= drain:
                problem(COMPOSE, f"{where}: stop_grace_period must exceed DRAIN_TIMEOUT_SECONDS ({drain:g} s)")


def _depends_on(service: dict) -> Iterable[tuple[str, str]]:
    depends = service.get("depends_on") or []
    if isinstance(depends, list):
        return [(name, "service_started") for name in depends]
    return [(name, (spec or {}).get("condition", "service_started")) for name, spec in depends.items()]


def _seconds(text: Any) -> float | None:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(text))
    if not match or not any(match.groups()):
        return None
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


# MARK: - Kubernetes


def _labels_match(selector: dict | None, labels: dict | None) -> bool:
    """Whether a label selector (matchLabels, or a plain map as in a Service) selects the given labels."""
    if not selector:
        return False
    match_labels = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if "matchExpressions" in selector:
        notes.append("matchExpressions are not evaluated by this checker")
    labels = labels or {}
    return bool(match_labels) and all(labels.get(key) == value for key, value in match_labels.items())


def _pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return (spec.get("template") or {}).get("spec")
    if obj.get("kind") == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    return None


def check_kubernetes(env_documented: set[str]) -> None:
    if not KUBERNETES.is_dir():
        problem(KUBERNETES, "is missing")
        return
    objects: list[tuple[Path, dict]] = []
    kustomization: dict | None = None
    for path in sorted(KUBERNETES.glob("*.y*ml")):
        documents = load_yaml_documents(path)
        if documents is None:
            continue
        for index, document in enumerate(documents):
            if not isinstance(document, dict):
                problem(path, f"document {index + 1} is not a mapping")
                continue
            if path.name == "kustomization.yaml":
                kustomization = document
                continue
            objects.append((path, document))

    by_kind: dict[str, dict[str, tuple[Path, dict]]] = {}
    for path, obj in objects:
        where = f"{path.relative_to(ROOT)}: {obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"
        for field in ("apiVersion", "kind"):
            if not obj.get(field):
                problem(where, f"has no {field}")
        metadata = obj.get("metadata") or {}
        if not metadata.get("name"):
            problem(where, "has no metadata.name")
        if "namespace" in metadata:
            problem(where, "sets metadata.namespace: the manifests must stay namespace-agnostic")
        kind, name = obj.get("kind"), metadata.get("name")
        if kind and name:
            if name in by_kind.setdefault(kind, {}):
                problem(where, "is defined twice")
            by_kind[kind][name] = (path, obj)

    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    deployments = by_kind.get("Deployment", {})
    config_values: dict[str, str] = {}
    for _, (path, config_map) in config_maps.items():
        for key, value in (config_map.get("data") or {}).items():
            if not isinstance(value, str):
                problem(path, f"ConfigMap data {key} must be a string (quote it)")
            if key not in env_documented and not key.startswith("KAFKA_PROP_"):
                problem(path, f"ConfigMap key {key} is not a variable documented in .env.example")
            config_values[key] = str(value)
    for _, (path, secret) in secrets.items():
        for key in list((secret.get("stringData") or {}).keys()) + list((secret.get("data") or {}).keys()):
            if key not in env_documented and not key.startswith("KAFKA_PROP_"):
                problem(path, f"Secret key {key} is not a variable documented in .env.example")
        if secret.get("data"):
            problem(path, "use stringData in the example Secret (readable placeholders, no base64)")

    for kind, named in by_kind.items():
        for name, (path, obj) in named.items():
            where = f"{path.relative_to(ROOT)}: {kind}/{name}"
            pod = _pod_spec(obj)
            if pod is not None:
                _check_pod(where, obj, pod, config_maps, secrets, config_values)
            if kind == "Deployment":
                spec = obj.get("spec") or {}
                template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
                if not _labels_match(spec.get("selector"), template_labels):
                    problem(where, "spec.selector.matchLabels does not match the pod template's labels")
                for other_name, (_, other) in deployments.items():
                    other_labels = (((other.get("spec") or {}).get("template") or {}).get("metadata") or {})
                    if other_name != name and _labels_match(spec.get("selector"), other_labels.get("labels")):
                        problem(where, f"its selector also selects the pods of Deployment/{other_name}")
            elif kind == "Service":
                selector = (obj.get("spec") or {}).get("selector")
                targets = [d for d in deployments.values() if _labels_match(selector, _template_labels(d[1]))]
                if not targets:
                    problem(where, "its selector matches no Deployment's pods")
                for port in (obj.get("spec") or {}).get("ports") or []:
                    target = port.get("targetPort", port.get("port"))
                    for _, (_, deployment) in [(None, t) for t in targets]:
                        if not _container_has_port(deployment, target):
                            problem(where, f"targetPort {target!r} is not a container port of the selected pods")
            elif kind == "HorizontalPodAutoscaler":
                _check_hpa(where, obj, deployments)
            elif kind == "PodDisruptionBudget":
                _check_pdb(where, obj, deployments)
            elif kind == "Job":
                policy = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("restartPolicy")
                if policy not in ("Never", "OnFailure"):
                    problem(where, "a Job's pods need restartPolicy Never or OnFailure")

    # The eviction API refuses to evict a pod that more than one PodDisruptionBudget selects.
    budgets = by_kind.get("PodDisruptionBudget", {})
    for name, (path, deployment) in deployments.items():
        selecting = [b for b, (_, pdb) in budgets.items()
                     if _labels_match((pdb.get("spec") or {}).get("selector"), _template_labels(deployment))]
        if len(selecting) > 1:
            problem(path, f"Deployment/{name}: its pods are selected by several PodDisruptionBudgets {selecting}")

    _check_workers(deployments, config_values)
    _check_kustomization(kustomization, objects)
    _validate_against_openapi(objects)


def _template_labels(obj: dict) -> dict:
    return ((((obj.get("spec") or {}).get("template") or {}).get("metadata")) or {}).get("labels") or {}


def _containers(obj: dict) -> list[dict]:
    pod = _pod_spec(obj) or {}
    return list(pod.get("containers") or [])


def _container_has_port(obj: dict, port: Any) -> bool:
    for container in _containers(obj):
        for declared in container.get("ports") or []:
            if port in (declared.get("name"), declared.get("containerPort")):
                return True
    return False


def _check_pod(where: str, obj: dict, pod: dict, config_maps: dict, secrets: dict, config: dict) -> None:
    long_running = obj.get("kind") != "Job" and obj.get("kind") != "CronJob"
    pod_security = pod.get("securityContext") or {}
    if pod.get("automountServiceAccountToken") is not False:
        problem(where, "set automountServiceAccountToken: false (the services never call the Kubernetes API)")
    containers = pod.get("containers") or []
    if not containers:
        problem(where, "has no containers")
    volumes = {volume.get("name") for volume in pod.get("volumes") or []}
    for container in containers:
        cwhere = f"{where} container {container.get('name', '?')}"
        if not container.get("name"):
            problem(cwhere, "has no name")
        image = container.get("image")
        if not image:
            problem(cwhere, "has no image")
        elif ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            problem(cwhere, f"image {image} has no tag")
        elif image.endswith(":latest"):
            problem(cwhere, f"image {image} uses the mutable :latest tag")
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        if long_running:
            for probe_name in ("livenessProbe", "readinessProbe"):
                probe = container.get(probe_name)
                if not probe:
                    problem(cwhere, f"has no {probe_name}")
                    continue
                http = probe.get("httpGet")
                if not http:
                    continue
                if http.get("port") not in ports and http.get("port") not in ports.values():
                    problem(cwhere, f"{probe_name} port {http.get('port')!r} is not a declared container port")
                expected = "/health" if probe_name == "livenessProbe" else "/ready"
                if http.get("path") != expected:
                    problem(cwhere, f"{probe_name} should GET {expected} (got {http.get('path')})")
        security = container.get("securityContext") or {}
        if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
            problem(cwhere, "must set runAsNonRoot: true")
        if (security.get("runAsUser", pod_security.get("runAsUser")) or 0) == 0:
            problem(cwhere, "must set a non-zero runAsUser (the image's user is 10001)")
        if security.get("readOnlyRootFilesystem") is not True:
            problem(cwhere, "must set readOnlyRootFilesystem: true")
        if security.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "must set allowPrivilegeEscalation: false")
        if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
            problem(cwhere, "must drop ALL capabilities")
        resources = container.get("resources") or {}
        if not (resources.get("requests") or {}).get("cpu") or not (resources.get("requests") or {}).get("memory"):
            problem(cwhere, "needs cpu and memory requests")
        if not (resources.get("limits") or {}).get("memory"):
            problem(cwhere, "needs a memory limit")
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                problem(cwhere, f"mounts volume {mount.get('name')!r}, which the pod does not define")
        for source in container.get("envFrom") or []:
            if ref := source.get("configMapRef"):
                if ref.get("name") not in config_maps and not ref.get("optional"):
                    problem(cwhere, f"reads ConfigMap {ref.get('name')!r}, which no manifest defines")
            if ref := source.get("secretRef"):
                if ref.get("name") not in secrets and not ref.get("optional"):
                    problem(cwhere, f"reads Secret {ref.get('name')!r}, which secret.example.yaml does not show")
        defined: set[str] = set()
        for variable in container.get("env") or []:
            for reference in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(variable.get("value", ""))):
                if reference not in defined:
                    problem(cwhere, f"env {variable.get('name')} uses $({reference}) before it is defined")
            defined.add(variable.get("name"))


def _check_hpa(where: str, obj: dict, deployments: dict) -> None:
    spec = obj.get("spec") or {}
    target = spec.get("scaleTargetRef") or {}
    if target.get("kind") != "Deployment" or target.get("name") not in deployments:
        problem(where, f"scaleTargetRef {target.get('kind')}/{target.get('name')} is not a Deployment defined here")
        return
    if target.get("apiVersion") != "apps/v1":
        problem(where, "scaleTargetRef.apiVersion must be apps/v1")
    if (spec.get("minReplicas") or 1) > (spec.get("maxReplicas") or 0):
        problem(where, "minReplicas exceeds maxReplicas")
    deployment = deployments[target["name"]][1]
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    if replicas < (spec.get("minReplicas") or 1):
        problem(where, f"the Deployment starts with {replicas} replicas, below minReplicas")
    for metric in spec.get("metrics") or []:
        resource = (metric.get("resource") or {}).get("name")
        if metric.get("type") == "Resource" and resource:
            for container in _containers(deployment):
                if not ((container.get("resources") or {}).get("requests") or {}).get(resource):
                    problem(where, f"scales on {resource} utilization but {container.get('name')} has no request")


def _check_pdb(where: str, obj: dict, deployments: dict) -> None:
    spec = obj.get("spec") or {}
    if ("minAvailable" in spec) == ("maxUnavailable" in spec):
        problem(where, "set exactly one of minAvailable and maxUnavailable")
    matched = [name for name, (_, d) in deployments.items() if _labels_match(spec.get("selector"), _template_labels(d))]
    if len(matched) != 1:
        problem(where, f"its selector must match exactly one Deployment's pods (matches {matched or 'none'})")
        return
    replicas = (deployments[matched[0]][1].get("spec") or {}).get("replicas", 1)
    if isinstance(spec.get("minAvailable"), int) and spec["minAvailable"] >= replicas:
        problem(where, f"minAvailable {spec['minAvailable']} blocks every eviction with {replicas} replicas")


def _check_workers(deployments: dict, config: dict) -> None:
    """Worker Deployments: one per Asterisk node, a unique ARI application per pod, room to drain."""
    nodes: dict[str, str] = {}
    drain = float(config.get("DRAIN_TIMEOUT_SECONDS", "30"))
    for name, (path, deployment) in deployments.items():
        where = f"{path.relative_to(ROOT)}: Deployment/{name}"
        for container in _containers(deployment):
            env = {v.get("name"): v for v in container.get("env") or []}
            if "NODE_ID" not in env:
                continue
            node = env["NODE_ID"].get("value")
            if node in nodes:
                problem(where, f"NODE_ID {node} is already served by Deployment/{nodes[node]}: one Deployment per node")
            nodes[node] = name
            if not name.endswith(str(node)):
                problem(where, f"name it after its node (dialer-worker-{node})")
            if "ARI_HTTP_URL" not in env:
                problem(where, "sets NODE_ID but no ARI_HTTP_URL")
            ari_app = env.get("ARI_APP")
            if ari_app is not None:
                references = re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(ari_app.get("value", "")))
                from_pod = any(
                    ((env.get(ref) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
                    in ("metadata.name", "metadata.uid")
                    for ref in references)
                if not from_pod:
                    problem(where, "ARI_APP must be unique per pod: derive it from the pod name (downward API)")
            grace = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
                "terminationGracePeriodSeconds", 30)
            if grace <= drain:
                problem(where, f"terminationGracePeriodSeconds {grace} must exceed DRAIN_TIMEOUT_SECONDS {drain:g}")
    if not nodes:
        problem(KUBERNETES, "no worker Deployment (a container with NODE_ID) found")


def _check_kustomization(kustomization: dict | None, objects: list[tuple[Path, dict]]) -> None:
    path = KUBERNETES / "kustomization.yaml"
    if kustomization is None:
        problem(path, "is missing")
        return
    resources = kustomization.get("resources") or []
    for resource in resources:
        if not (KUBERNETES / resource).exists():
            problem(path, f"lists {resource}, which does not exist")
        if ".example." in resource:
            problem(path, f"lists {resource}: examples (placeholder secrets) must never be applied")
    for manifest in sorted({p.name for p, _ in objects}):
        if ".example." not in manifest and manifest not in resources:
            problem(path, f"does not list {manifest}")
    used_images = {
        container.get("image", "").rsplit(":", 1)[0]
        for file, obj in objects if file.name in resources for container in _containers(obj)}
    for image in kustomization.get("images") or []:
        if image.get("name") not in used_images:
            problem(path, f"images: {image.get('name')} is not used by any listed manifest")
    kubectl = shutil.which("kubectl")
    if kubectl:
        result = subprocess.run([kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True)
        if result.returncode != 0:
            problem(path, f"kubectl kustomize failed: {result.stderr.strip()}")
        else:
            notes.append("kubectl kustomize deploy/kubernetes: builds")
    else:
        notes.append("kubectl not installed: kustomize build not tried")


def _validate_against_openapi(objects: list[tuple[Path, dict]]) -> None:
    try:
        import kubernetes_validate  # type: ignore[import-not-found]
        from kubernetes_validate import utils as kv_utils  # type: ignore[import-not-found]
    except ImportError:
        if os.environ.get("LINT_DEPLOY_ALLOW_NO_K8S_SCHEMA") == "1":
            notes.append("kubernetes-validate not installed: OpenAPI schema validation skipped")
            return
        problem("kubernetes-validate", "is not importable (scripts/lint-deploy.sh installs it)")
        return
    versions = [kv_utils.latest_version() if v == "latest" else v for v in KUBERNETES_VERSIONS]
    for path, obj in objects:
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kv_utils.ValidationError as error:
                location = "/".join(str(part) for part in error.path) or "(top level)"
                problem(path, f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}: Kubernetes {version} "
                              f"schema: {location}: {error.message}")
            except kv_utils.SchemaNotFoundError as error:
                problem(path, error.message)
    notes.append(f"Kubernetes OpenAPI schemas (strict): {', '.join(versions)}")


# MARK: - Dockerfile


class Stage:
    def __init__(self, base: str, name: str | None) -> None:
        self.base = base
        self.name = name
        self.user: str | None = None
        self.healthcheck: str | None = None
        self.entrypoint = False
        self.copies_from: list[str] = []
        self.exposed: list[str] = []


def parse_dockerfile(path: Path) -> list[Stage]:
    """Instructions per stage (continuation lines joined; comments and parser directives dropped)."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    if current:
        logical.append(current)
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG" and not stages and "=" in rest:
            name, _, value = rest.partition("=")
            global_args[name.strip()] = value.strip().strip('"')
            continue
        if instruction == "FROM":
            # Base images given through a global ARG (FROM ${SWIFT_IMAGE}) are checked with its default value.
            rest = re.sub(
                r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: global_args.get(m.group(1), m.group(0)), rest)
            match = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            if not match:
                problem(path, f"cannot parse FROM {rest}")
                continue
            stages.append(Stage(match.group(1), match.group(2)))
        elif not stages:
            continue
        elif instruction == "USER":
            stages[-1].user = rest
        elif instruction == "HEALTHCHECK":
            stages[-1].healthcheck = rest
        elif instruction in ("ENTRYPOINT", "CMD"):
            stages[-1].entrypoint = True
        elif instruction in ("COPY", "ADD"):
            stages[-1].copies_from += re.findall(r"--from=(\S+)", rest)
        elif instruction == "EXPOSE":
            stages[-1].exposed += rest.split()
    return stages


def check_dockerfile() -> None:
    if not DOCKERFILE.exists():
        problem(DOCKERFILE, "is missing")
        return
    stages = parse_dockerfile(DOCKERFILE)
    by_name = {stage.name: stage for stage in stages if stage.name}
    for target in DOCKER_TARGETS:
        if target not in by_name:
            problem(DOCKERFILE, f"has no stage (target) named {target}")
    used_as_base = {stage.base for stage in stages} | {name for stage in stages for name in stage.copies_from}
    for stage in stages:
        for source in stage.copies_from:
            if source not in by_name and not re.match(r"^\d+$", source) and ":" not in source:
                problem(DOCKERFILE, f"stage {stage.name}: COPY --from={source} names no earlier stage")
        if stage.base not in by_name and "$" not in stage.base:
            if ":" not in stage.base.rsplit("/", 1)[-1] and "@" not in stage.base:
                problem(DOCKERFILE, f"FROM {stage.base}: pin a tag")
    finals = [stage for stage in stages if stage.name not in used_as_base or stage.name in DOCKER_TARGETS]
    for stage in finals:
        user, healthcheck, entrypoint = stage.user, stage.healthcheck, stage.entrypoint
        base = by_name.get(stage.base)
        while base is not None:
            user = user or base.user
            healthcheck = healthcheck or base.healthcheck
            entrypoint = entrypoint or base.entrypoint
            base = by_name.get(base.base)
        label = stage.name or stage.base
        if not user or user.split(":")[0] in ("root", "0"):
            problem(DOCKERFILE, f"final stage {label}: must switch to a non-root USER (got {user or 'none'})")
        if not healthcheck or healthcheck.upper().startswith("NONE"):
            problem(DOCKERFILE, f"final stage {label}: needs a HEALTHCHECK")
        elif "/health" not in healthcheck:
            problem(DOCKERFILE, f"final stage {label}: the HEALTHCHECK should probe /health")
        if not entrypoint:
            problem(DOCKERFILE, f"final stage {label}: has no ENTRYPOINT or CMD")
    ignore = ROOT / ".dockerignore"
    if not ignore.exists():
        problem(ignore, "is missing (the host's .build would be sent to the builder)")
    else:
        patterns = {line.strip() for line in ignore.read_text(encoding="utf-8").splitlines()}
        for needed in (".build", ".devstack"):
            if not ({needed, f"**/{needed}", f"{needed}/"} & patterns):
                problem(ignore, f"should exclude {needed}")
        for required in ("Package.swift", "Packages", "Services", "Tests"):
            if required in patterns or f"{required}/" in patterns:
                problem(ignore, f"excludes {required}, which the image build needs")


# MARK: - Asterisk samples


def read_asterisk_conf(path: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Sections of an Asterisk .conf file in order, each with its (key, value) lines (comments removed)."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = re.sub(r"(?<!\\);.*$", "", raw).strip()
        if not line:
            continue
        if match := re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line):
            sections.append((match.group(1), []))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(=>|=)\s*(.*)", line)
        if not match or not sections:
            problem(path, f"line {number}: not a section header or key = value: {raw.strip()!r}")
            continue
        sections[-1][1].append((match.group(1), match.group(3).strip()))
    return sections


def check_asterisk(config: dict[str, str]) -> None:
    directory = DEPLOY / "asterisk"
    files = {name: directory / name for name in ("http.conf", "ari.conf", "extensions.conf", "pjsip.conf")}
    for name, path in files.items():
        if not path.exists():
            problem(path, "is missing")
    if any(not path.exists() for path in files.values()):
        return
    http = dict(read_asterisk_conf(files["http.conf"]))
    general = dict(http.get("general", []))
    if general.get("enabled") != "yes":
        problem(files["http.conf"], "[general] must set enabled = yes (ARI runs on the HTTP server)")
    if general.get("bindport") != "8088":
        problem(files["http.conf"], "[general] bindport should be 8088 (the port of ARI_HTTP_URL in the samples)")
    if general.get("bindaddr") in (None, "0.0.0.0", "::"):
        problem(files["http.conf"], "bind ARI to a private address, not every interface")

    ari = read_asterisk_conf(files["ari.conf"])
    ari_general = dict(dict(ari).get("general", []))
    if ari_general.get("enabled") != "yes":
        problem(files["ari.conf"], "[general] must set enabled = yes")
    users = [(name, dict(values)) for name, values in ari if dict(values).get("type") == "user"]
    if not users:
        problem(files["ari.conf"], "defines no ARI user (type = user)")
    for name, values in users:
        if values.get("read_only") != "no":
            problem(files["ari.conf"], f"[{name}] needs read_only = no (the workers originate and hang up)")
        if values.get("password_format") not in ("plain", "crypt") or not values.get("password"):
            problem(files["ari.conf"], f"[{name}] needs a password and password_format plain or crypt")

    extensions = read_asterisk_conf(files["extensions.conf"])
    contexts: dict[str, set[str]] = {}
    for name, values in extensions:
        exts = contexts.setdefault(name, set())
        for key, value in values:
            if key == "exten":
                exts.add(value.split(",", 1)[0].strip())
    for required in ("agents", "outbound", "dialer-test"):
        if required not in contexts:
            problem(files["extensions.conf"], f"has no [{required}] context")
    for extension in ("answer", "ring-answer", "busy", "busy-hangup", "congestion", "congestion-hangup",
                      "noanswer", "reject", "unallocated", "unavailable"):
        if extension not in contexts.get("dialer-test", set()):
            problem(files["extensions.conf"], f"[dialer-test] has no extension {extension}")
    wanted = {config.get("DEFAULT_CONTEXT", "outbound")}
    wanted |= {c.strip() for c in config.get("ALLOWED_CONTEXTS", "").split(",") if c.strip()}
    for context in sorted(wanted):
        if context not in contexts:
            problem(files["extensions.conf"], f"has no [{context}] context, which the ConfigMap lets calls go to")
        elif config.get("DEFAULT_EXTENSION", "s") not in contexts[context] and context == config.get(
                "DEFAULT_CONTEXT"):
            problem(files["extensions.conf"], f"[{context}] has no extension {config.get('DEFAULT_EXTENSION')}")
    for name, values in extensions:
        for key, value in values:
            for target in re.findall(r"\b(?:Goto|Gosub)\(([A-Za-z0-9_-]+),", value):
                if target not in contexts and not target.startswith("$"):
                    # Goto(exten,priority) inside the context has two arguments; only three-argument forms name a
                    # context.
                    arguments = re.search(r"\b(?:Goto|Gosub)\(([^)]*)\)", value)
                    if arguments and arguments.group(1).count(",") >= 2:
                        problem(files["extensions.conf"], f"[{name}] jumps to unknown context {target}")
    if "dialer-test" in {c.strip() for c in config.get("ALLOWED_CONTEXTS", "").split(",")}:
        problem(KUBERNETES / "configmap.yaml", "ALLOWED_CONTEXTS must not include the test context dialer-test")

    pjsip = read_asterisk_conf(files["pjsip.conf"])
    typed: dict[str, set[str]] = {}
    for name, values in pjsip:
        kind = dict(values).get("type")
        if kind:
            typed.setdefault(kind, set()).add(name)
    template = config.get("ENDPOINT_TEMPLATE", "PJSIP/{to}@carrier")
    if match := re.fullmatch(r"PJSIP/\{to\}@([A-Za-z0-9_.-]+)", template):
        if match.group(1) not in typed.get("endpoint", set()):
            problem(files["pjsip.conf"], f"has no endpoint [{match.group(1)}] for ENDPOINT_TEMPLATE {template}")
    for name, values in pjsip:
        settings = dict(values)
        for key, kind in (("aors", "aor"), ("outbound_auth", "auth"), ("transport", "transport"),
                          ("endpoint", "endpoint")):
            for reference in filter(None, (part.strip() for part in settings.get(key, "").split(","))):
                if reference not in typed.get(kind, set()):
                    problem(files["pjsip.conf"], f"[{name}] {key} = {reference}: no section of type {kind}")
        if settings.get("type") == "endpoint" and settings.get("context") and settings["context"] not in contexts:
            problem(files["pjsip.conf"], f"[{name}] context {settings['context']} is not in extensions.conf")


# MARK: - Main


def main() -> int:
    for path in yaml_files():
        load_yaml_documents(path)
    env_values, env_documented = read_env_example()
    check_env_example(env_documented)
    check_compose(env_values, env_documented)
    config_values: dict[str, str] = {}
    config_map = KUBERNETES / "configmap.yaml"
    if config_map.exists():
        for document in load_yaml_documents(config_map) or []:
            if isinstance(document, dict) and document.get("kind") == "ConfigMap":
                config_values.update({k: str(v) for k, v in (document.get("data") or {}).items()})
    check_kubernetes(env_documented)
    check_dockerfile()
    check_asterisk(config_values)

    for note in dict.fromkeys(notes):
        print(f"lint-deploy: note: {note}")
    if problems:
        for line in dict.fromkeys(problems):
            print(f"lint-deploy: {line}", file=sys.stderr)
        print(f"lint-deploy: {len(set(problems))} problem(s)", file=sys.stderr)
        return 1
    print("lint-deploy: deployment files OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
