"""The Kubernetes manifests (k8s/): valid API objects, and the properties production relies on.

Offline and fast. Every complete object of the base and of the example overlay is validated strictly
(unknown fields are errors) against the Kubernetes API schemas bundled with kubernetes-validate. The
overlay's strategic-merge patches are partial objects: they are checked to target objects of the base.
The overlay is also rendered (`kubectl kustomize`, or `kustomize build` where there is no kubectl:
`make test` builds kustomize then; local files only) and the rendered objects go through the same
validation and invariants.
Custom resources (KEDA, Prometheus Operator) have no bundled schema and get structural checks of their own.

The invariants follow the code: defaults come from `gateway_app.settings.Settings`, so a renamed
setting or a longer default deadline breaks a test here, not a rollout.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway_app.settings import Settings, TopicNames
from gateway_app.web.auth import Mode, StartupRefused, mode_for

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
SCALED_OBJECT = K8S / "keda" / "scaledobject.yaml"
SERVICE_MONITOR = K8S / "monitoring" / "servicemonitor.yaml"

# Validated against the oldest Kubernetes the manifests are meant for and the newest schemas bundled
# with the pinned kubernetes-validate (1.37.x).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

# Environment variables that only help build others in the pod spec (`$(POD_NAME)`), not read by the gateway.
POD_HELPERS = {"POD_NAME", "POD_NAMESPACE"}
# What a secret's name looks like: provider keys, the keyring, web tokens.
SECRET_NAME = re.compile(r"(_KEY|_TOKEN|_TOKENS|_SECRET|_PASSWORD|KEYRING)$")
GATEWAY_NAME = re.compile(r"\bGATEWAY_[A-Z0-9_]*[A-Z0-9]\b")
# Sample values the downward API would give a pod, to build its environment in a test.
POD_FIELDS = {"metadata.name": "ai-gateway-0", "metadata.namespace": "ai-gateway", "status.podIP": "10.1.2.3"}

SETTING_NAMES = frozenset(
    {f"GATEWAY_{name.upper()}" for name in Settings.model_fields if name != "topics"}
    | {f"GATEWAY_TOPIC_{name.upper()}" for name in TopicNames.model_fields})


# ---------------------------------------------------------------------------------------------------
# Reading the manifests


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    return documents(directory / "kustomization.yaml")[0]


def local_resources(directory: Path) -> list[Path]:
    """The files (not directories) a kustomization lists under `resources`."""
    paths = [directory / entry for entry in kustomization(directory).get("resources", [])]
    return [path for path in paths if path.is_file()]


def git_ignored() -> list[str]:
    """The name patterns k8s/'s own .gitignore files hold (the secretGenerator's local inputs)."""
    return [line.strip() for path in K8S.rglob(".gitignore") for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def committed_files() -> list[Path]:
    """Every file of k8s/ but the git-ignored ones (a local credentials file is nobody's business here)."""
    patterns = git_ignored()
    return [path for path in K8S.rglob("*")
            if path.is_file() and not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)]


def base_documents() -> list[dict[str, Any]]:
    return [doc for path in local_resources(BASE) for doc in documents(path)]


def validate_strict(obj: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} against {version}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(error.message)


def quantity(value: str | int) -> float:
    """A Kubernetes quantity as a number (the suffixes these manifests use)."""
    text = str(value)
    for suffix, factor in (("m", 1e-3), ("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def every_worker_gets_a_partition(partitions: int, workers: int) -> bool:
    """faust's assignor gives each worker ceil(partitions / workers) partitions of a topic: with 8
    partitions and 5 workers, 2 + 2 + 2 + 2 + 0 (README, "Known limits")."""
    return math.ceil(partitions / workers) * (workers - 1) < partitions


@dataclass(frozen=True)
class Manifests:
    """The objects of one variant (the base, or the rendered overlay) and what the tests look up in them."""

    docs: list[dict[str, Any]]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [doc for doc in self.all(kind) if name is None or doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    @property
    def statefulset(self) -> dict[str, Any]:
        return self.one("StatefulSet", "ai-gateway")

    @property
    def pod(self) -> dict[str, Any]:
        return self.statefulset["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["spec"]["containers"]
        assert [c["name"] for c in containers] == ["gateway"], "one container, named gateway"
        return containers[0]

    @property
    def env(self) -> dict[str, dict[str, Any]]:
        entries = self.container.get("env", [])
        names = [entry["name"] for entry in entries]
        assert len(names) == len(set(names)), f"an env variable set twice: {names}"
        return {entry["name"]: entry for entry in entries}

    @property
    def config(self) -> dict[str, str]:
        refs = [source["configMapRef"]["name"] for source in self.container.get("envFrom", [])
                if "configMapRef" in source]
        assert len(refs) == 1, "the settings come from one ConfigMap"
        return self.one("ConfigMap", refs[0]).get("data", {})

    def port(self, port: str | int) -> int:
        """A container port by name or number."""
        ports = {p.get("name"): p["containerPort"] for p in self.container["ports"]}
        if isinstance(port, int):
            assert port in ports.values(), f"port {port} is not a container port"
            return port
        assert port in ports, f"no container port named {port!r}"
        return ports[port]


def kustomize_command() -> list[str]:
    """kubectl's built-in kustomize, or kustomize itself (`make test` installs it where kubectl is absent)."""
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    local = Path(__file__).resolve().parents[2] / ".local" / "bin" / "kustomize"
    kustomize = shutil.which("kustomize") or (str(local) if local.exists() else None)
    assert kustomize is not None, "neither kubectl nor kustomize is installed (make test installs kustomize)"
    return [kustomize, "build"]


def render_overlay(workdir: Path) -> list[dict[str, Any]]:
    command = kustomize_command()
    # A copy, with the secretGenerator's git-ignored inputs made from their examples (empty values).
    tree = workdir / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns(*git_ignored()))
    overlay = tree / OVERLAY.relative_to(K8S)
    for example in overlay.glob("*.env.example"):
        example.with_name(example.name.removesuffix(".example")).write_text(example.read_text())
    done = subprocess.run([*command, str(overlay)], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "KUBECONFIG": os.devnull})
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Manifests:
    return Manifests(render_overlay(tmp_path_factory.mktemp("overlay")))


@pytest.fixture(scope="module", params=["base", "overlay"])
def manifests(request) -> Manifests:
    """The base's objects, then the rendered overlay's."""
    if request.param == "base":
        return Manifests(base_documents())
    return request.getfixturevalue("rendered")


def overlay_patches() -> list[dict[str, Any]]:
    return [documents(OVERLAY / patch["path"])[0] for patch in kustomization(OVERLAY).get("patches", [])]


def overlay_config() -> dict[str, str]:
    """The overlay's settings without rendering: the base ConfigMap's data, updated by the overlay's
    ConfigMap patches (a strategic merge of `data` is exactly that)."""
    base = Manifests(base_documents())
    config = dict(base.config)
    for patch in overlay_patches():
        if patch["kind"] == "ConfigMap":
            config.update(patch.get("data", {}))
    return config


def pod_environment(manifests: Manifests, config: dict[str, str]) -> dict[str, str]:
    """The environment the container would get: the ConfigMap, then `env` (which wins), with the
    downward API's fields, `$(VAR)` expansion, and a sample web token for the token Secret."""
    environment = dict(config)
    for name, entry in manifests.env.items():
        source = entry.get("valueFrom", {})
        if "value" in entry:
            environment[name] = re.sub(r"\$\((\w+)\)", lambda m: environment.get(m[1], m[0]), entry["value"])
        elif "fieldRef" in source:
            environment[name] = POD_FIELDS[source["fieldRef"]["fieldPath"]]
    environment["GATEWAY_WEB_READ_TOKENS"] = "a-read-token"
    return environment


def settings_for(monkeypatch, environment: dict[str, str]) -> Settings:
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        if name.startswith("GATEWAY_"):
            monkeypatch.setenv(name, value)
    return Settings()


# ---------------------------------------------------------------------------------------------------
# Schemas


def test_strict_validation_rejects_what_kubernetes_would_reject():
    # A validator that passes everything proves nothing: an unknown field and a number where the API
    # wants a string both fail.
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"A": "1"}}
    kubernetes_validate.validate(config_map, KUBERNETES_VERSIONS[-1], strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**config_map, "spec": {}}, KUBERNETES_VERSIONS[-1], strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**config_map, "data": {"A": 1}}, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_base_kustomization_lists_every_manifest_of_the_base():
    listed = kustomization(BASE)["resources"]
    assert all((BASE / entry).is_file() for entry in listed), listed
    on_disk = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk


@pytest.mark.parametrize("path", local_resources(BASE) + local_resources(OVERLAY),
                         ids=lambda path: str(path.relative_to(K8S)))
def test_every_complete_object_is_a_valid_kubernetes_object(path):
    for doc in documents(path):
        validate_strict(doc)


def test_the_rendered_overlay_is_valid(rendered):
    for doc in rendered.docs:
        validate_strict(doc)


def test_custom_resources_stay_out_of_the_kustomizations():
    # KEDA and the Prometheus Operator may not be installed: `kubectl apply -k` must not need them.
    for directory in (BASE, OVERLAY):
        for doc in [d for path in local_resources(directory) for d in documents(path)]:
            assert doc["apiVersion"].split("/")[0] in {"v1", "apps", "policy"}, doc["apiVersion"]
        for entry in kustomization(directory).get("resources", []):
            assert not re.search(r"keda|monitoring", entry), entry


# ---------------------------------------------------------------------------------------------------
# The overlay, file by file


def test_the_overlay_patches_target_objects_of_the_base():
    base = Manifests(base_documents())
    patches = overlay_patches()
    assert {p["kind"] for p in patches} >= {"ConfigMap", "StatefulSet"}
    for patch in patches:
        target = base.one(patch["kind"], patch["metadata"]["name"])
        assert patch["apiVersion"] == target["apiVersion"]
        if patch["kind"] == "StatefulSet":
            containers = patch["spec"]["template"]["spec"]["containers"]
            assert {c["name"] for c in containers} <= {base.container["name"]}, "a patch would add a container"


def test_the_overlay_sets_namespace_image_replicas_and_settings():
    spec = kustomization(OVERLAY)
    base = Manifests(base_documents())
    namespace = documents(OVERLAY / "namespace.yaml")[0]
    assert spec["namespace"] == namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    image = base.container["image"]
    assert [entry["name"] for entry in spec["images"]] == [image.split(":")[0]]
    assert spec["images"][0]["newTag"] and spec["images"][0]["newName"]
    [replicas] = spec["replicas"]
    assert replicas["name"] == base.statefulset["metadata"]["name"]
    partitions = int(overlay_config().get("GATEWAY_TOPIC_PARTITIONS", Settings.model_fields["topic_partitions"].default))
    assert 1 <= replicas["count"] <= partitions
    assert every_worker_gets_a_partition(partitions, replicas["count"])
    assert overlay_config()["GATEWAY_BROKER_URL"] != base.config["GATEWAY_BROKER_URL"]


def test_the_overlay_resources_patch_keeps_requests_within_limits():
    patch = next(p for p in overlay_patches() if p["kind"] == "StatefulSet")
    resources = patch["spec"]["template"]["spec"]["containers"][0]["resources"]
    for resource in ("cpu", "memory"):
        assert quantity(resources["requests"][resource]) <= quantity(resources["limits"][resource])


def test_secrets_are_generated_from_git_ignored_files_with_empty_examples():
    base = Manifests(base_documents())
    referenced: dict[str, set[str]] = {}
    for entry in base.env.values():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            referenced.setdefault(ref["name"], set()).add(ref["key"])
    generators = {g["name"]: g for g in kustomization(OVERLAY)["secretGenerator"]}
    assert set(generators) == set(referenced), "every Secret the base refers to is generated by the overlay"
    ignored = (OVERLAY / ".gitignore").read_text().split()
    for name, generator in generators.items():
        assert set(generator) == {"name", "envs"}, "from files only, never `literals:`"
        for env_file in generator["envs"]:
            assert env_file in ignored, f"{env_file} must be git-ignored"
            example = OVERLAY / f"{env_file}.example"
            lines = [line for line in example.read_text().splitlines() if line.strip() and not line.startswith("#")]
            pairs = dict(line.split("=", 1) for line in lines)
            assert set(pairs) <= referenced[name], f"{example.name} has keys nothing reads"
            required = {e["valueFrom"]["secretKeyRef"]["key"] for e in base.env.values()
                        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == name
                        and not e["valueFrom"]["secretKeyRef"].get("optional")}
            assert required <= set(pairs), f"{example.name} lacks the required {required - set(pairs)}"
            assert all(value == "" for value in pairs.values()), f"{example.name}: values stay empty in the repo"


def test_the_rendered_overlay_applies_namespace_image_replicas_and_generated_secrets(rendered):
    spec = kustomization(OVERLAY)
    for doc in rendered.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == spec["namespace"], doc["metadata"]["name"]
    image = spec["images"][0]
    assert rendered.container["image"] == f"{image['newName']}:{image['newTag']}"
    assert rendered.statefulset["spec"]["replicas"] == spec["replicas"][0]["count"]
    assert rendered.config == overlay_config()
    secrets = {doc["metadata"]["name"] for doc in rendered.all("Secret")}
    for entry in rendered.env.values():
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] in secrets, f"{entry['name']} refers to {ref['name']}, which is not generated"


# ---------------------------------------------------------------------------------------------------
# Invariants of the workers (the base, and the rendered overlay)


def test_the_grace_period_outlasts_the_deadline_a_commit_and_the_drain(manifests, monkeypatch):
    settings = settings_for(monkeypatch, pod_environment(manifests, manifests.config))
    needed = settings.message_deadline_seconds + settings.commit_interval_seconds + settings.shutdown_grace_seconds
    assert manifests.pod["spec"]["terminationGracePeriodSeconds"] > needed


def test_probes_ask_ready_and_health_on_the_port_the_service_targets(manifests, monkeypatch):
    settings = settings_for(monkeypatch, pod_environment(manifests, manifests.config))
    container = manifests.container
    service = manifests.one("Service", manifests.statefulset["spec"]["serviceName"])
    [service_port] = service["spec"]["ports"]
    web = manifests.port(service_port["targetPort"])
    assert web == settings.web_port == service_port["port"]
    assert service_port["name"] == "web"
    probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/ready"
    assert probes["livenessProbe"]["path"] == "/health"
    if "startupProbe" in container:
        probes["startupProbe"] = container["startupProbe"]["httpGet"]
        assert probes["startupProbe"]["path"] == "/health"
    assert all(manifests.port(probe["port"]) == web for probe in probes.values())
    # A worker is restarted only after it has stopped answering for a while (a restart costs its calls in
    # flight), and every probe gives a busy event loop a few seconds to answer.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30
    assert all(container[kind].get("timeoutSeconds", 1) >= 2 for kind in probes)


def test_one_data_volume_per_pod_mounted_at_the_data_dir(manifests, monkeypatch):
    settings = settings_for(monkeypatch, pod_environment(manifests, manifests.config))
    [template] = manifests.statefulset["spec"]["volumeClaimTemplates"]
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = [m for m in manifests.container["volumeMounts"] if m["name"] == template["metadata"]["name"]]
    assert len(mounts) == 1 and not mounts[0].get("readOnly")
    assert Path(mounts[0]["mountPath"]) == settings.data_dir
    assert manifests.env["GATEWAY_DATA_DIR"]["value"] == mounts[0]["mountPath"]


def test_static_membership_and_a_web_address_that_survive_a_restart(manifests):
    env = manifests.env
    names = list(env)
    assert env["GATEWAY_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # The pod's DNS name under the headless Service: $(<pod name>).<service>.$(<namespace>).svc, with
    # both variables from the downward API and defined before it (Kubernetes expands only those).
    service = manifests.statefulset["spec"]["serviceName"]
    match = re.fullmatch(rf"\$\((\w+)\)\.{re.escape(service)}\.\$\((\w+)\)\.svc", env["GATEWAY_WEB_HOST"]["value"])
    assert match, env["GATEWAY_WEB_HOST"]
    for variable, field in zip(match.groups(), ("metadata.name", "metadata.namespace")):
        assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == field
        assert names.index(variable) < names.index("GATEWAY_WEB_HOST")
    assert manifests.one("Service", service)["spec"]["publishNotReadyAddresses"] is True


def test_the_container_runs_as_non_root_with_nothing_more_than_it_needs(manifests):
    pod = manifests.pod["spec"]
    context = {**pod.get("securityContext", {}), **manifests.container["securityContext"]}
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001 and context["runAsGroup"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    for resource in ("cpu", "memory"):
        resources = manifests.container["resources"]
        assert quantity(resources["requests"][resource]) <= quantity(resources["limits"][resource])


def test_no_secret_value_in_the_manifests(manifests):
    for name, entry in manifests.env.items():
        if SECRET_NAME.search(name):
            assert "value" not in entry and "secretKeyRef" in entry.get("valueFrom", {}), f"{name} is a secret"
    for name in manifests.config:
        assert not SECRET_NAME.search(name), f"{name} belongs in a Secret, not the ConfigMap"
    for source in manifests.container.get("envFrom", []):
        assert set(source) <= {"configMapRef", "secretRef"}


def test_no_secret_value_anywhere_in_k8s():
    assert not [doc for doc in base_documents() if doc["kind"] == "Secret"], "Secrets come from the overlay's generator"
    key_shaped = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|Bearer\s+[A-Za-z0-9._-]{16,})")
    for path in committed_files():
        assert not key_shaped.search(path.read_text()), f"{path.relative_to(REPO)} holds a key-shaped string"


def test_the_headless_service_is_the_statefulsets_service(manifests):
    service = manifests.one("Service", manifests.statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    labels = manifests.pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_disruption_budget_selects_the_workers(manifests):
    budget = manifests.one("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    selector = budget["spec"]["selector"]["matchLabels"]
    assert selector == manifests.statefulset["spec"]["selector"]["matchLabels"]
    assert selector.items() <= manifests.pod["metadata"]["labels"].items()


def test_prometheus_annotations_point_at_metrics_on_the_web_port(manifests):
    annotations = manifests.pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == manifests.port("web")


# ---------------------------------------------------------------------------------------------------
# Settings and environment names follow the code


def test_every_gateway_variable_named_in_k8s_is_a_setting():
    for path in committed_files():
        unknown = set(GATEWAY_NAME.findall(path.read_text())) - SETTING_NAMES
        assert not unknown, f"{path.relative_to(REPO)} names {sorted(unknown)}, not in gateway_app/settings.py"


def test_every_other_variable_is_one_the_gateway_reads():
    base = Manifests(base_documents())
    names = set(base.env) | set(overlay_config())
    for example in OVERLAY.glob("*.env.example"):
        names |= {line.split("=", 1)[0].lstrip("# ") for line in example.read_text().splitlines()
                  if re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line)}
    sources = "\n".join(path.read_text() for path in (REPO / "gateway_app").rglob("*.py"))
    for name in names - POD_HELPERS:
        if not name.startswith("GATEWAY_"):
            assert re.search(rf"\b{name}\b", sources), f"nothing in gateway_app reads {name}"


@pytest.mark.parametrize("variant", ["base", "overlay"])
def test_the_configuration_is_valid_settings(variant, monkeypatch):
    base = Manifests(base_documents())
    config = base.config if variant == "base" else overlay_config()
    assert set(config) <= SETTING_NAMES | {"AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "LOCAL_LLM_BASE_URL",
                                           "LOCAL_LLM_ALLOWED_HOSTS", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"}
    # The whole environment parses (types, bounds, the deadline below the rebalance timeout) ...
    settings = settings_for(monkeypatch, pod_environment(base, config))
    assert settings.instance_id == POD_FIELDS["metadata.name"]
    assert settings.web_host == f"{POD_FIELDS['metadata.name']}.ai-gateway.{POD_FIELDS['metadata.namespace']}.svc"
    # ... the StatefulSet's grace period outlasts this configuration's deadline, last commit and drain ...
    needed = settings.message_deadline_seconds + settings.commit_interval_seconds + settings.shutdown_grace_seconds
    assert base.pod["spec"]["terminationGracePeriodSeconds"] > needed
    # ... and the worker would start: a network-facing address with a token is allowed, without one refused.
    assert mode_for(settings) is Mode.ENFORCED
    with pytest.raises(StartupRefused):
        mode_for(settings.model_copy(update={"web_read_tokens": [], "web_admin_tokens": []}))


# ---------------------------------------------------------------------------------------------------
# Custom resources: structure only (no bundled schema)


def test_the_keda_scaled_object_scales_the_workers_on_the_groups_lag(monkeypatch):
    [scaled] = documents(SCALED_OBJECT)
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    base = Manifests(base_documents())
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "name": base.statefulset["metadata"]["name"]}
    config = overlay_config()
    settings = settings_for(monkeypatch, pod_environment(base, config))
    partitions = settings.topic_partitions
    low, high = spec["minReplicaCount"], spec["maxReplicaCount"]
    assert 1 <= low <= high <= partitions
    # Every count KEDA may choose leaves no worker without a partition.
    for workers in range(low, high + 1):
        assert every_worker_gets_a_partition(partitions, workers), f"{workers} workers: one idles"
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    assert all(isinstance(value, str) for value in metadata.values()), "KEDA's trigger metadata is strings"
    assert metadata["consumerGroup"] == settings.app_id
    assert metadata["topic"] == settings.topics.agent_events
    brokers = settings.broker_url.replace("kafka://", "").split(";")
    assert metadata["bootstrapServers"].split(",") == brokers
    assert int(metadata["lagThreshold"]) > 0
    assert metadata["offsetResetPolicy"] == "earliest"
    # Every step is a rebalance: one pod at a time, held back by stabilization windows, slower down than up.
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    for direction in ("scaleUp", "scaleDown"):
        policies = behavior[direction]["policies"]
        assert policies and all(p["type"] == "Pods" and p["value"] == 1 for p in policies), direction
        assert all(p["periodSeconds"] > settings.broker_session_timeout_seconds for p in policies), direction
        assert behavior[direction]["stabilizationWindowSeconds"] >= 2 * spec.get("pollingInterval", 30)
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] > behavior["scaleUp"]["stabilizationWindowSeconds"]


def test_the_service_monitor_scrapes_metrics_with_a_token():
    [monitor] = documents(SERVICE_MONITOR)
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor")
    base = Manifests(base_documents())
    service = base.one("Service", base.statefulset["spec"]["serviceName"])
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["type"] == "Bearer"
    assert set(endpoint["authorization"]["credentials"]) == {"name", "key"}
