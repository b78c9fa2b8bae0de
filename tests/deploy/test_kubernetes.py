"""deploy/kubernetes, checked offline (no cluster here): every manifest valid against the Kubernetes API schemas
(kubernetes-validate ships them), the KEDA scaler reading the queue the workers really consume, workers only on GPU
nodes with one GPU each, web and workers sharing no volume, settings that the app accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from common.queue import QUEUE
from common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.32.0"


def kustomization() -> dict:
    return yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())


def documents() -> list[dict]:
    docs = []
    for name in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((KUSTOMIZE / name).read_text()) if d]
    return docs


def by_kind(kind: str, name: str) -> dict:
    found = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod(name: str) -> dict:
    return by_kind("Deployment", name)["spec"]["template"]["spec"]


@pytest.mark.parametrize("doc", [d for d in documents() if "k8s.io" not in d["apiVersion"] and
                                 not d["apiVersion"].startswith("keda.sh")], ids=lambda d: d["kind"] + "/" +
                         d["metadata"]["name"])
def test_manifest_is_valid_kubernetes(doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on an unknown or mistyped field


def test_keda_scales_workers_by_the_shared_queue() -> None:
    scaled = by_kind("ScaledObject", "worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker" and by_kind("Deployment", "worker")
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == QUEUE
    host, port = trigger["metadata"]["address"].split(":")
    service = by_kind("Service", "redis")
    assert host.split(".")[:2] == ["redis", kustomization()["namespace"]]
    assert int(port) == service["spec"]["ports"][0]["port"]
    redis_url = by_kind("ConfigMap", "smolvlm2-config")["data"]["REDIS_URL"]
    assert redis_url == f"redis://redis:{port}/{trigger['metadata']['databaseIndex']}"


def test_workers_run_on_gpu_nodes_with_one_gpu_each() -> None:
    spec = pod("worker")
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "MODEL_DEVICE", "value": "cuda"} in container["env"]
    s = Settings(_env_file=None)
    assert spec["terminationGracePeriodSeconds"] > s.job_hard_time_limit  # a running job may finish
    assert "nvidia.com/gpu" not in str(pod("web")) and "nodeSelector" not in pod("web")


def test_web_and_workers_share_only_redis_and_the_store() -> None:
    config = by_kind("ConfigMap", "smolvlm2-config")["data"]
    assert config["MEDIA_STORE"] == "s3"
    shared_claims = set()
    for name in ("web", "worker"):
        spec = pod(name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        assert not claims & shared_claims, f"{name} shares a volume claim"
        shared_claims |= claims
        (container,) = spec["containers"]
        assert {"configMapRef": {"name": "smolvlm2-config"}} in container["envFrom"]
        secret_mount = next(m for m in container["volumeMounts"] if m["name"] == "s3-keys")
        secret_volume = next(v for v in spec["volumes"] if v["name"] == "s3-keys")
        assert secret_volume["secret"]["secretName"] == "smolvlm2-s3"
        for var in ("AWS_ACCESS_KEY_ID_FILE", "AWS_SECRET_ACCESS_KEY_FILE"):
            assert Path(config[var]).parent == Path(secret_mount["mountPath"])


def test_config_map_is_valid_settings() -> None:
    data = by_kind("ConfigMap", "smolvlm2-config")["data"]
    known = set(Settings.model_fields) | {"aws_region"}
    assert not {k.lower() for k in data} - known, "unknown setting in the ConfigMap"
    s = Settings(_env_file=None, **{k.lower(): v for k, v in data.items() if k.lower() in Settings.model_fields})
    assert s.media_store == "s3" and s.s3_endpoint_url and s.worker_cache_mb > 0


def test_kubectl_kustomize_renders_it() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl не установлен: рендер kustomize не проверен (манифесты проверены выше по одному)")
    out = subprocess.run([kubectl, "kustomize", str(KUSTOMIZE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(rendered) == len(documents())
    assert {d["metadata"].get("namespace") for d in rendered} == {kustomization()["namespace"]}
    images = {c["image"] for d in rendered if d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"redis:7-alpine", "registry.example/smolvlm2-web:1", "registry.example/smolvlm2-worker:1"}
    for doc in rendered:
        if "k8s.io" not in doc["apiVersion"] and not doc["apiVersion"].startswith("keda.sh"):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
