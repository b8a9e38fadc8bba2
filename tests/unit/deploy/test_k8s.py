"""deploy/k8s: every manifest validates against the Kubernetes schemas and the stack is wired."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cloud.core.settings import Settings

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
KUBERNETES_VERSION = "1.30"
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SCALED = {"mallpulse-api", "mallpulse-ingest", "mallpulse-worker"}

Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    """The non-empty YAML documents of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def resources(folder: Path) -> list[Doc]:
    """Every resource of the manifests under a folder."""
    return [d for p in MANIFESTS if p.is_relative_to(folder) for d in documents(p)]


def of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    """Resources of one kind by name."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(workload: Doc) -> list[Doc]:
    """The containers of a Deployment, StatefulSet or Job."""
    result: list[Doc] = workload["spec"]["template"]["spec"]["containers"]
    return result


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    """The resources of the base."""
    return resources(BASE)


@pytest.fixture(scope="module")
def deployments(base: list[Doc]) -> dict[str, Doc]:
    """The base's Deployments and StatefulSets (ingest) by name."""
    return {**of_kind(base, "Deployment"), **of_kind(base, "StatefulSet")}


def test_there_are_manifests_to_check() -> None:
    assert len(MANIFESTS) >= 8 and len(OVERLAYS) >= 1


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    docs = documents(path)
    assert docs, f"{path} holds no resource"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']}: {where}: {exc}")


def test_the_validator_rejects_broken_manifests(deployments: dict[str, Doc]) -> None:
    broken = copy.deepcopy(deployments["mallpulse-api"])
    containers(broken)[0]["livenessProbe"]["httpGett"] = {"path": "/healthz", "port": 8000}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(deployments["mallpulse-api"])
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_kustomizations_list_every_manifest_of_their_folder(path: Path) -> None:
    kustomization = yaml.safe_load(path.read_text())
    listed = kustomization.get("resources", []) + kustomization.get("components", [])
    for entry in listed:
        assert (path.parent / entry).exists(), f"{path}: {entry} does not exist"
    local = {p.name for p in path.parent.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert local <= set(listed), f"{path}: not listed: {local - set(listed)}"


def test_autoscalers_target_api_ingest_and_workers(
    base: list[Doc], deployments: dict[str, Doc]
) -> None:
    hpas = of_kind(base, "HorizontalPodAutoscaler").values()
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas}
    assert targets == SCALED
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["name"] in deployments
        assert ref["kind"] == deployments[ref["name"]]["kind"]
        assert ref["apiVersion"] == deployments[ref["name"]]["apiVersion"]
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["metrics"], f"{ref['name']}: autoscaler without a metric"


def test_beat_is_one_replica_replaced_not_rolled(deployments: dict[str, Doc]) -> None:
    beat = deployments["mallpulse-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert containers(beat)[0]["command"][:4] == ["celery", "-A", "cloud.workers.app", "beat"]


def test_each_deployment_runs_its_command(deployments: dict[str, Doc]) -> None:
    commands = {name: containers(d)[0]["command"] for name, d in deployments.items()}
    assert commands["mallpulse-api"] == ["mallpulse", "cloud", "api"]
    assert commands["mallpulse-ingest"][:3] == ["mallpulse", "cloud", "ingest"]
    assert commands["mallpulse-worker"][:4] == ["celery", "-A", "cloud.workers.app", "worker"]


def test_ingest_replicas_keep_their_mqtt_client_id_across_restarts(
    deployments: dict[str, Doc],
) -> None:
    ingest = deployments["mallpulse-ingest"]
    assert ingest["kind"] == "StatefulSet", "stable pod names give stable MQTT client ids"
    container = containers(ingest)[0]
    command = container["command"]
    assert command[command.index("--instance") + 1] == "$(POD_NAME)"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert ingest["spec"]["replicas"] >= 2


def test_ingest_autoscaler_never_removes_replicas(base: list[Doc]) -> None:
    """A shared-subscription member that leaves without unsubscribing strands its queue."""
    hpa = of_kind(base, "HorizontalPodAutoscaler")["mallpulse-ingest"]
    assert hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"


def test_the_migration_job_runs_migrate(base: list[Doc]) -> None:
    (job,) = of_kind(base, "Job").values()
    assert containers(job)[0]["command"] == ["mallpulse", "cloud", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert job["spec"]["backoffLimit"] >= 1


def test_api_probes_use_healthz_and_readyz(deployments: dict[str, Doc]) -> None:
    api = containers(deployments["mallpulse-api"])[0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports[api["readinessProbe"]["httpGet"]["port"]] == 8000


def test_every_long_running_container_has_probes(base: list[Doc]) -> None:
    for name, workload in {**of_kind(base, "Deployment"), **of_kind(base, "StatefulSet")}.items():
        for container in containers(workload):
            assert "livenessProbe" in container, f"{name}/{container['name']}: no liveness"
            if name in {"mallpulse-api", "mallpulse-ingest"}:
                assert "readinessProbe" in container, f"{name}: serves traffic, needs readiness"


def all_workloads() -> list[Doc]:
    """Deployments, StatefulSets and Jobs of every manifest."""
    kinds = {"Deployment", "StatefulSet", "Job"}
    return [d for p in MANIFESTS for d in documents(p) if d["kind"] in kinds]


@pytest.mark.parametrize("workload", all_workloads(), ids=lambda d: d["metadata"]["name"])
def test_workloads_are_bounded_non_root_and_read_only(workload: Doc) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod.get("automountServiceAccountToken") is False or pod["serviceAccountName"]
    for container in pod["containers"]:
        resources_ = container["resources"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources_[bound]), f"{container['name']}: {bound}"
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]


def test_the_service_account_mounts_no_token(base: list[Doc]) -> None:
    (account,) = of_kind(base, "ServiceAccount").values()
    assert account["automountServiceAccountToken"] is False


def test_disruption_budgets_and_services_select_real_pods() -> None:
    docs = resources(K8S)
    pod_labels = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in docs
        if w["kind"] in {"Deployment", "StatefulSet"}
    ]
    for doc in docs:
        if doc["kind"] == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]["matchLabels"]
        elif doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
        else:
            continue
        matches = [labels for labels in pod_labels if selector.items() <= labels.items()]
        assert matches, f"{doc['kind']}/{doc['metadata']['name']} selects no pod"
    assert set(of_kind(docs, "PodDisruptionBudget")) >= SCALED


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and `In` expressions) selects these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    return all(
        e["operator"] == "In" and labels.get(e["key"]) in e["values"]
        for e in selector.get("matchExpressions", [])
    )


def test_network_policies_open_only_the_api_and_grpc_ports(base: list[Doc]) -> None:
    pods = [
        w["spec"]["template"]["metadata"]["labels"]
        for w in base
        if w["kind"] in {"Deployment", "StatefulSet", "Job"}
    ]
    open_ports: dict[str, set[int]] = {}
    for policy in of_kind(base, "NetworkPolicy").values():
        chosen = [p for p in pods if selects(policy["spec"]["podSelector"], p)]
        assert chosen, f"{policy['metadata']['name']} selects no pod"
        ports = {q["port"] for rule in policy["spec"].get("ingress", []) for q in rule["ports"]}
        for labels in chosen:
            open_ports.setdefault(labels["app.kubernetes.io/component"], set()).update(ports)
    assert open_ports == {
        "api": {8000},
        "ingest": {50051, 9102},  # gRPC, and /metrics for Prometheus (from `monitoring` only)
        "worker": {9103},  # /metrics for Prometheus (from `monitoring` only)
        "beat": set(),
        "migrate": set(),
    }


def test_config_map_holds_real_settings_and_no_secrets(base: list[Doc]) -> None:
    config = of_kind(base, "ConfigMap")["mallpulse-config"]["data"]
    fields = set(Settings.model_fields)
    for key in config:
        assert key.startswith("MALLPULSE_") and key[10:].lower() in fields, key
        assert not re.search(r"PASSWORD|SECRET|DATABASE_URL|REDIS_URL", key), f"{key} is secret"
    assert config["MALLPULSE_MQTT_SHARE_GROUP"]


def test_config_map_plus_the_documented_secret_is_valid_settings(base: list[Doc]) -> None:
    config = of_kind(base, "ConfigMap")["mallpulse-config"]["data"]
    secret = {  # the keys docs/operations.md tells operators to put into mallpulse-secrets
        "MALLPULSE_DATABASE_URL": "postgresql://mallpulse:pw@db:5432/mallpulse",
        "MALLPULSE_REDIS_URL": "redis://:pw@redis:6379/0",
        "MALLPULSE_CELERY_BROKER_URL": "redis://:pw@redis:6379/1",
        "MALLPULSE_MQTT_PASSWORD": "pw",
        "MALLPULSE_JWT_SECRET": "6419141c349984bebf288ebe8004b997d45210a7f05ca398",
    }
    guide = (REPO / "docs" / "operations.md").read_text()
    assert all(f"--from-literal={key}=" in guide for key in secret)
    env = {**config, **secret}
    settings = Settings(**{k.removeprefix("MALLPULSE_").lower(): v for k, v in env.items()})
    assert settings.grpc_bind == "0.0.0.0:50051" and settings.api_host == "0.0.0.0"
    assert settings.mqtt_ca_file == "/etc/mallpulse/mqtt/ca.crt"


def test_mqtt_clients_mount_the_ca_where_the_settings_point(
    base: list[Doc], deployments: dict[str, Doc]
) -> None:
    ca_file = Path(of_kind(base, "ConfigMap")["mallpulse-config"]["data"]["MALLPULSE_MQTT_CA_FILE"])
    for name in ("mallpulse-api", "mallpulse-ingest", "mallpulse-worker"):
        pod = deployments[name]["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        volume = {v["name"]: v for v in pod["volumes"]}[mounts[str(ca_file.parent)]]
        assert volume["secret"]["secretName"] == "mallpulse-mqtt-ca", name


def test_cloud_pods_read_the_config_map_and_the_secret(base: list[Doc]) -> None:
    kinds = ("Deployment", "StatefulSet", "Job")
    for workload in (w for kind in kinds for w in of_kind(base, kind).values()):
        env_from = containers(workload)[0]["envFrom"]
        refs = {(k, v["name"]) for item in env_from for k, v in item.items()}
        assert refs == {
            ("configMapRef", "mallpulse-config"),
            ("secretRef", "mallpulse-secrets"),
        }, workload["metadata"]["name"]


def pointer_exists(doc: Any, pointer: str) -> bool:
    """Whether a JSON pointer (RFC 6901) resolves inside a document."""
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_patches_hit_existing_resources_and_fields(overlay: Path) -> None:
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    available = resources(K8S / "base") + resources(K8S / "components")
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        hits = [
            d
            for d in available
            if d["kind"] == target["kind"] and re.fullmatch(target["name"], d["metadata"]["name"])
        ]
        assert hits, f"{overlay.name}: patch target {target} matches nothing"
        for operation in yaml.safe_load(patch["patch"]):
            if operation["op"] in {"replace", "remove", "test"}:
                for doc in hits:
                    assert pointer_exists(doc, operation["path"]), (target, operation["path"])
    for image in kustomization.get("images", []):
        used = {c["image"].rsplit(":", 1)[0] for w in all_workloads() for c in containers(w)}
        assert image["name"] in used, f"{overlay.name}: image {image['name']} is not used"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_rendered_overlay_is_valid(overlay: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: rendering overlays needs its built-in kustomize")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    assert {"Namespace", "Deployment", "Job", "HorizontalPodAutoscaler"} <= {
        d["kind"] for d in docs
    }
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "mallpulse", doc["metadata"]["name"]


def test_in_cluster_broker_mounts_every_path_of_the_broker_config() -> None:
    conf = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
    assert conf.is_file(), f"broker config missing: {conf}"
    broker = of_kind(resources(K8S / "components"), "StatefulSet")["mosquitto"]
    container = containers(broker)[0]
    assert container["command"] == ["mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"]
    targets = [m["mountPath"] for m in container["volumeMounts"]]
    keys = {"password_file", "acl_file", "certfile", "keyfile", "cafile", "persistence_location"}
    for line in conf.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key in keys:
            path = value.strip()
            covered = [t for t in targets if path == t or path.startswith(t.rstrip("/") + "/")]
            assert covered, f"{conf.name} needs {path}, which no volume provides"
    assert "/etc/mosquitto/mosquitto.conf" in targets
