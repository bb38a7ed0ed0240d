"""What GKE does to a manifest that Pulumi's mocks never do: its webhooks' mutations and its admission rules.

Each rule returns the problems it finds (empty: admitted) and names its source. Sources, read 2026-12-06:
- FUSE: GoogleCloudPlatform/gcs-fuse-csi-driver @ 5fcdc04 (2026-08-21), pkg/webhook/mutatingwebhook.go
  (`pod.Spec.Volumes = append(GetSidecarContainerVolumeSpec(pod.Spec.Volumes...), pod.Spec.Volumes...)`),
  pkg/webhook/sidecar_spec.go (GetSidecarContainerVolumeSpec, the sidecar's mounts), pkg/util/util.go
  (`gke-gcsfuse-tmp`), pkg/webhook/config.go (defaults 250m CPU, 256Mi memory, 5Gi ephemeral storage).
- Autopilot: https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests
  ("Minimum and maximum resource requests": general-purpose pods at most 10 GiB of ephemeral storage; the L4
  rows per GPU count, as stack/gemma.py's L4_MAXIMUM). A request above a maximum is rejected.
- HealthCheckPolicy: GoogleCloudPlatform/gke-gateway-api @ fc40d60 (2026-04-29),
  config/crd/networking.gke.io_healthcheckpolicies.yaml, x-kubernetes-validations on every `*HealthCheck`
  (added 2026-04-23 in 2f7b936; the v1.4.0 CRD our schema check vendors through @kubernetes-models/gke has none).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

Manifest = dict[str, Any]

FUSE_ANNOTATION = "gke-gcsfuse/volumes"
FUSE_SIDECAR = "gke-gcsfuse-sidecar"
# sidecar_spec.go: always injected; the other two only when the pod does not declare them.
FUSE_TMP = "gke-gcsfuse-tmp"
FUSE_OWN = ("gke-gcsfuse-buffer", "gke-gcsfuse-cache")
FUSE_MOUNTS = {FUSE_TMP: "/gcsfuse-tmp", "gke-gcsfuse-buffer": "/gcsfuse-buffer", "gke-gcsfuse-cache": "/gcsfuse-cache"}
# config.go's defaults, overridden per pod by `gke-gcsfuse/<resource>-{limit,request}` annotations.
FUSE_DEFAULTS = {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "5Gi"}
# gcs-fuse-csi-driver#314: at 256Mi the sidecar is OOM-killed while streaming tens of GB.
FUSE_MIN_MEMORY_GIB = 1.0
# Autopilot resource requests page, general-purpose compute class.
GENERAL_PURPOSE_EPHEMERAL_GIB = 10.0
# Same page, NVIDIA L4 rows: GPUs → (max vCPU, max memory GiB) per pod.
L4_MAXIMUM = {1: (31, 115), 2: (23, 83), 4: (47, 179), 8: (95, 371)}
ACCELERATOR = "cloud.google.com/gke-accelerator"
NVIDIA_LIBRARIES = "/usr/local/nvidia/lib64"
MANAGED_COLLECTORS = "gke-gmp-system"
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (bytes, or cores)."""
    text = str(value)
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _UNITS[suffix]
    return float(text)


def pod_templates(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """`(kind/name, pod template)` of every workload that has one (Deployment, Job, StatefulSet, …)."""
    for m in manifests:
        template = m.get("spec", {}).get("template")
        if isinstance(template, dict) and "spec" in template:
            yield f"{m['kind']}/{m['metadata']['name']}", template


def _annotations(template: Manifest) -> dict[str, str]:
    return template.get("metadata", {}).get("annotations") or {}


def fuse_sidecar_resources(template: Manifest) -> dict[str, str]:
    """The sidecar's limits (= requests on Autopilot) after the pod's annotations."""
    annotations = _annotations(template)
    return {r: annotations.get(f"gke-gcsfuse/{r}-limit", default) for r, default in FUSE_DEFAULTS.items()}


def mutate_fuse(template: Manifest) -> Manifest:
    """The Cloud Storage FUSE webhook's mutation of a pod with `gke-gcsfuse/volumes: "true"`: the sidecar as a
    native sidecar (an init container that keeps running) and its volumes, placed before the pod's own."""
    if _annotations(template).get(FUSE_ANNOTATION) != "true":
        return template
    pod = copy.deepcopy(template)
    spec = pod["spec"]
    declared = [v["name"] for v in spec.get("volumes", [])]
    injected = [FUSE_TMP, *(name for name in FUSE_OWN if name not in declared)]
    spec["volumes"] = [{"name": name, "emptyDir": {}} for name in injected] + spec.get("volumes", [])
    size = fuse_sidecar_resources(template)
    sidecar = {
        "name": FUSE_SIDECAR,
        "restartPolicy": "Always",
        "volumeMounts": [{"name": name, "mountPath": path} for name, path in FUSE_MOUNTS.items()],
        "resources": {"requests": dict(size), "limits": dict(size)},
    }
    spec["initContainers"] = [sidecar, *spec.get("initContainers", [])]
    return pod


def volume_errors(template: Manifest) -> list[str]:
    """The API server's pod validation: unique volume names, and every mount names a volume."""
    spec = template["spec"]
    names = [v["name"] for v in spec.get("volumes", [])]
    errors = [f"spec.volumes: duplicate name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in names:
                errors.append(f"container {container['name']}: volumeMount {mount['name']!r} names no volume")
    return errors


def fuse_sidecar_errors(template: Manifest) -> list[str]:
    """A FUSE pod streams model weights (tens of GB): its sidecar must be given memory explicitly."""
    if _annotations(template).get(FUSE_ANNOTATION) != "true":
        return []
    memory = fuse_sidecar_resources(template)["memory"]
    if quantity(memory) < FUSE_MIN_MEMORY_GIB * 2**30:
        return [f"FUSE sidecar memory {memory} (gke-gcsfuse/memory-limit): OOM-killed streaming tens of GB"]
    return []


def pod_total(template: Manifest, resource: str) -> float:
    """What the scheduler and Autopilot count: regular containers plus native sidecars, or the largest regular
    init container if that is more."""
    spec = template["spec"]

    def limit(container: Manifest) -> float:
        resources = container.get("resources", {})
        value = resources.get("limits", {}).get(resource, resources.get("requests", {}).get(resource, 0))
        return quantity(value)

    inits = spec.get("initContainers", [])
    sidecars = sum(limit(c) for c in inits if c.get("restartPolicy") == "Always")
    regular_init = max((limit(c) for c in inits if c.get("restartPolicy") != "Always"), default=0.0)
    return max(sum(limit(c) for c in spec.get("containers", [])) + sidecars, regular_init + sidecars)


def autopilot_errors(template: Manifest) -> list[str]:
    """Autopilot's per-class maxima, on the pod after the webhooks (the FUSE sidecar counts)."""
    spec = template["spec"]
    accelerator = (spec.get("nodeSelector") or {}).get(ACCELERATOR)
    if accelerator == "nvidia-l4":
        gpus = int(pod_total(template, "nvidia.com/gpu"))
        if gpus not in L4_MAXIMUM:
            return [f"{gpus} L4 GPUs: Autopilot offers 1, 2, 4 or 8"]
        max_cpu, max_memory = L4_MAXIMUM[gpus]
        cpu, memory = pod_total(template, "cpu"), pod_total(template, "memory") / 2**30
        errors = []
        if cpu > max_cpu:
            errors.append(f"{cpu:g} vCPU > {max_cpu} for {gpus} L4")
        if memory > max_memory:
            errors.append(f"{memory:g} GiB memory > {max_memory} for {gpus} L4")
        return errors
    if accelerator is None:
        ephemeral = pod_total(template, "ephemeral-storage") / 2**30
        if ephemeral > GENERAL_PURPOSE_EPHEMERAL_GIB:
            return [f"{ephemeral:g} GiB ephemeral storage > {GENERAL_PURPOSE_EPHEMERAL_GIB:g} (general purpose)"]
    return []


def driver_path_errors(template: Manifest) -> list[str]:
    """vLLM images >= 0.9 find GKE's driver only through LD_LIBRARY_PATH (vllm#18859, #23935; Google's
    kubernetes-engine-samples ai-ml/llm-serving-gemma/vllm/vllm-3-12b-it.yaml sets it)."""
    errors = []
    for container in template["spec"].get("containers", []):
        # The server itself (its module on the command line); the weights Job only borrows the image for Python.
        if not any("vllm" in part for part in container.get("command", [])):
            continue
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        if NVIDIA_LIBRARIES not in env.get("LD_LIBRARY_PATH", "").split(":"):
            errors.append(f"container {container['name']}: LD_LIBRARY_PATH lacks {NVIDIA_LIBRARIES}")
    return errors


def admit_pod(template: Manifest) -> list[str]:
    """Every pod rule, in the order GKE applies them: mutate, then validate."""
    mutated = mutate_fuse(template)
    return [
        *volume_errors(mutated),
        *fuse_sidecar_errors(template),
        *autopilot_errors(mutated),
        *driver_path_errors(mutated),
    ]


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def scrape_errors(manifests: list[Manifest]) -> list[str]:
    """Managed Prometheus' collectors run in `gke-gmp-system` (GKE managed collection; `gmp-system` is the
    self-deployed operator's): every PodMonitoring whose pods some NetworkPolicy isolates for ingress must be
    admitted from that namespace on the scraped port."""
    pods = [
        (labels, template) for _, template in pod_templates(manifests) if (labels := template["metadata"]["labels"])
    ]
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy" and "Ingress" in m["spec"].get("policyTypes", [])]
    errors = []
    for monitor in (m for m in manifests if m["kind"] == "PodMonitoring"):
        for labels, template in pods:
            if not _selects(monitor["spec"]["selector"], labels):
                continue
            ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            isolating = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
            for endpoint in monitor["spec"]["endpoints"]:
                port = ports.get(endpoint["port"], endpoint["port"])
                if isolating and not any(_admits_collectors(p, port) for p in isolating):
                    errors.append(
                        f"PodMonitoring/{monitor['metadata']['name']}: port {port} closed to {MANAGED_COLLECTORS}"
                    )
    return errors


def _admits_collectors(policy: Manifest, port: int) -> bool:
    for rule in policy["spec"].get("ingress", []):
        ports = [p.get("port") for p in rule.get("ports", [])]
        from_collectors = any(
            (peer.get("namespaceSelector") or {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            == MANAGED_COLLECTORS
            and "podSelector" not in peer
            for peer in rule.get("from", [])
        )
        if from_collectors and (not ports or port in ports):
            return True
    return False


def health_check_errors(policy: Manifest) -> list[str]:
    """The CEL rules of the current HealthCheckPolicy CRD, on each protocol's health check:

        self.portSpecification == 'USE_FIXED_PORT' ? has(self.port) && !has(self.portName) : true
        self.portSpecification == 'USE_NAMED_PORT' ? !has(self.port) && has(self.portName) : true
        self.portSpecification == 'USE_SERVING_PORT' || !has(self.portSpecification)
            ? !has(self.port) && !has(self.portName) : true

    The API server evaluates a rule that reads an unset field (`self.portSpecification`) to an error, and an
    error rejects the object: the first two rules refuse a check without portSpecification, so it is required.
    """
    if policy["kind"] != "HealthCheckPolicy":
        return []
    config = policy["spec"].get("default", {}).get("config", {})
    errors = []
    for key, check in config.items():
        if not key.endswith("HealthCheck"):
            continue
        spec, port, name = check.get("portSpecification"), "port" in check, "portName" in check
        where = f"HealthCheckPolicy/{policy['metadata']['name']} {key}"
        if spec is None:
            errors.append(f"{where}: no such key: portSpecification (the CEL rules read it)")
        if spec == "USE_FIXED_PORT" and not (port and not name):
            errors.append(f"{where}: USE_FIXED_PORT needs port and no portName")
        if spec == "USE_NAMED_PORT" and not (name and not port):
            errors.append(f"{where}: USE_NAMED_PORT needs portName and no port")
        if spec in (None, "USE_SERVING_PORT") and (port or name):
            errors.append(f"{where}: port and portName must be unset for USE_SERVING_PORT (the default)")
    return errors
