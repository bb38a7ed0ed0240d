"""Gemma on vLLM's OpenAI-compatible server: Deployment, ClusterIP Service, NetworkPolicy.

The weights come from the stack's bucket (stack/weights.py) through Cloud Storage FUSE, read-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from stack import kube, pod_security, weights
from stack.presets import VLLM_ENV, Preset

NAME = "gemma"
# A GPU node on Autopilot can take minutes to days (quota, stock-outs). Pulumi would otherwise wait for the pod
# (Deployment) and for its endpoints (Service) and fail `pulumi up` after 10 minutes; the pod comes up on its own.
DONT_WAIT = {"pulumi.com/skipAwait": "true"}
# vLLM >= 0.10 is built for CUDA >= 12.8; Autopilot's default driver is older, and vLLM then fails at start with
# an unsupported-driver error. `latest` is what Google's own Gemma manifests select, and it keeps the pod eligible
# for Autopilot's fast-starting G2 nodes on any GKE version (DEFAULT only from 1.33.0-gke.1304000; README, Cost).
DRIVER_SELECTOR = {"cloud.google.com/gke-gpu-driver-version": "latest"}
# Spot VMs never come from fast-starting capacity (GKE's fast-starting nodes page): a slower wake-up for the price.
SPOT_SELECTOR = {"cloud.google.com/gke-spot": "true"}
# Autopilot's largest CPU and memory request for a pod with that many L4s (the g2 machine of that size, less
# what the node keeps for itself). Our requests must stay below, leaving room for the FUSE sidecar.
L4_MAXIMUM = {1: (31, 115), 2: (23, 83), 4: (47, 179), 8: (95, 371)}
# Per GPU: a core for each tensor-parallel worker plus tokenization and the HTTP server; memory to hold a
# GPU's share of the weights while loading them. 2 L4s: 8 vCPU and 32 GiB, well inside 23 and 83.
CPU_PER_GPU = 4
MEMORY_GIB_PER_GPU = 16
# The FUSE file cache holds the whole model (parallel downloads need it); sized from the model, else this.
DEFAULT_CACHE_GIB = 64
# The FUSE sidecar streams the whole model through the file cache at start: its 256Mi default memory gets it
# OOM-killed there (gcs-fuse-csi-driver#314). Counted in the pod's total, within Autopilot's L4 bounds.
FUSE_SIDECAR = {
    "gke-gcsfuse/cpu-limit": "2",
    "gke-gcsfuse/cpu-request": "2",
    "gke-gcsfuse/memory-limit": "4Gi",
    "gke-gcsfuse/memory-request": "4Gi",
    "gke-gcsfuse/ephemeral-storage-limit": "1Gi",
    "gke-gcsfuse/ephemeral-storage-request": "1Gi",
}
# Mount options for serving: parallel downloads into the file cache (whole files, also for vLLM's range reads);
# never cache "file not found", so the wait for the copy's marker sees it as soon as it is written.
READ_OPTIONS = (
    "implicit-dirs,file-cache:enable-parallel-downloads:true,file-cache:cache-file-for-range-read:true,"
    "metadata-cache:negative-ttl-secs:0"
)


@dataclass(frozen=True)
class GemmaArgs:
    preset: Preset
    # What the pod pulls: the preset's image, through the project's Docker Hub mirror (stack/mirror.py).
    image: str
    spot: bool
    bucket: pulumi.Input[str]
    # The Kubernetes service account whose principal may read the bucket, and what grants that.
    service_account: str
    readable: list[pulumi.Resource]
    checksum_key: pulumi.Input[str]
    provider: k8s.Provider
    namespace: pulumi.Resource
    # True when an autoscaler owns the replica count (stack/gemma_scaling.py): the Deployment then leaves
    # `replicas` out, or every `pulumi up` would set it back and wake the GPU (pulumi/pulumi#13321).
    autoscaled: bool = False
    # What must exist before the pod pulls `image` (the mirror and the nodes' right to read it).
    pullable: list[pulumi.Resource] = field(default_factory=list)


def resources(gpus: int, accelerator: str, weights_gb: float) -> dict[str, str]:
    """The vLLM container's requests (= limits) for `gpus` GPUs, within Autopilot's bounds for L4s (the FUSE
    sidecar's share, FUSE_SIDECAR, left free)."""
    cpu, memory = CPU_PER_GPU * gpus, MEMORY_GIB_PER_GPU * gpus
    if accelerator == "nvidia-l4":
        max_cpu, max_memory = L4_MAXIMUM[gpus]
        cpu, memory = min(cpu, max_cpu - 3), min(memory, max_memory - 8)
    return {
        "cpu": str(cpu),
        "memory": f"{memory}Gi",
        # The FUSE file cache volume counts against the pod's ephemeral storage; 10 GiB more for logs and /tmp.
        "ephemeral-storage": f"{cache_gib(weights_gb) + 10}Gi",
        "nvidia.com/gpu": str(gpus),
    }


def cache_gib(weights_gb: float) -> int:
    """FUSE file cache size: the model's weights plus a fifth for tokenizer files and rounding."""
    return max(8, math.ceil(weights_gb * 1.2)) if weights_gb else DEFAULT_CACHE_GIB


def server_args(preset: Preset) -> list[str]:
    return [
        # The copy in the bucket; the chat still asks for the Hugging Face id, which vLLM answers to.
        f"--model={weights.model_dir(preset.model)}",
        f"--served-model-name={preset.model}",
        "--host=0.0.0.0",
        f"--port={kube.GEMMA_PORT}",
        # Throughput, not the codelab's 4 sequences (the fifth user waited for a whole reply). 64 matches the
        # chat's CHAT_CONCURRENCY, so everything one chat replica lets through is batched, not queued; vLLM
        # still queues if the KV cache runs out.
        f"--max-num-seqs={kube.CHAT_CONCURRENCY}",
        # Tensor parallel, context window, images per prompt, quantization, reasoning: stack/presets.py.
        *preset.vllm_args(),
    ]


def _probe(period: int, failures: int) -> k8s.core.v1.ProbeArgs:
    # vLLM answers /health only once the model is loaded.
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/health", port="http"),
        period_seconds=period,
        timeout_seconds=5,
        failure_threshold=failures,
    )


def _wait_for_weights(args: GemmaArgs) -> k8s.core.v1.ContainerArgs:
    """Holds the pod until the copy Job has written its marker: vLLM would otherwise start on a half-copied
    model. Runs after the FUSE sidecar (a native sidecar, started first), so the bucket is mounted."""
    marker = f"{weights.model_dir(args.preset.model)}/{weights.MARKER}"
    return k8s.core.v1.ContainerArgs(
        name="wait-for-weights",
        # The server's own image: already on the node (or streaming) when the pod starts, no second pull.
        image=args.image,
        command=[
            "sh",
            "-c",
            f'until [ -f "{marker}" ]; do echo "waiting for the weights copy ({marker})"; sleep 15; done',
        ],
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="weights", mount_path=weights.MOUNT, read_only=True)],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"cpu": "100m", "memory": "128Mi"}
        ),
        # Its securityContext is pod_security.restricted's (the Deployment wraps it).
    )


def _container(args: GemmaArgs) -> k8s.core.v1.ContainerArgs:
    preset = args.preset
    size = resources(preset.gpus, preset.accelerator, preset.weights_gb)
    return k8s.core.v1.ContainerArgs(
        name="vllm",
        image=args.image,
        # The module, not the image's entrypoint, which has changed between vLLM releases.
        command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
        args=server_args(preset),
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=kube.GEMMA_PORT)],
        env=[
            # Everything is local: never ask Hugging Face for anything (no token here at all). HF_HOME and the
            # other caches are pod_security.VLLM_CACHE_ENV's (the Deployment wraps this container).
            k8s.core.v1.EnvVarArgs(name="HF_HUB_OFFLINE", value="1"),
            # Where GKE mounts the GPU driver (stack/presets.py).
            *(k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in VLLM_ENV.items()),
        ],
        resources=k8s.core.v1.ResourceRequirementsArgs(requests=size, limits=size),
        # Loading ~24 GB through FUSE takes minutes (README: cold starts); allow 30 before the kubelet gives up.
        startup_probe=_probe(period=10, failures=180),
        readiness_probe=_probe(period=5, failures=3),
        liveness_probe=_probe(period=15, failures=4),
        volume_mounts=[
            # Tensor-parallel workers exchange data through shared memory; the default 64 MiB /dev/shm is too small.
            k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm"),
            k8s.core.v1.VolumeMountArgs(name="weights", mount_path=weights.MOUNT, read_only=True),
        ],
        # Its securityContext is pod_security.restricted's (through vllm_container).
    )


def node_selector(args: GemmaArgs) -> dict[str, str]:
    return {
        "cloud.google.com/gke-accelerator": args.preset.accelerator,
        **DRIVER_SELECTOR,
        **(SPOT_SELECTOR if args.spot else {}),
    }


class Gemma(pulumi.ComponentResource):
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: GemmaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Gemma", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        labels = kube.labels(NAME, "model-server")
        # Its principal alone may read the bucket; no token is mounted (the FUSE driver gets its own).
        account = k8s.core.v1.ServiceAccount(
            args.service_account,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.service_account, namespace=kube.NAMESPACE, labels=labels),
            automount_service_account_token=False,
            opts=child,
        )
        preset = args.preset
        pod_annotations = kube.checksum_annotation(
            args.checksum_key, preset.model, " ".join(server_args(preset))
        ).apply(lambda checksum: {**weights.FUSE_ANNOTATION, **FUSE_SIDECAR, **checksum})
        cache = f"{cache_gib(preset.weights_gb) + 2}Gi"
        cache_capacity = f"{cache_gib(preset.weights_gb)}Gi"
        self.deployment = k8s.apps.v1.Deployment(
            NAME,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAME, namespace=kube.NAMESPACE, labels=labels, annotations=DONT_WAIT
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # Left out when autoscaled: the API server's default (1) on create, the autoscaler's after.
                replicas=None if args.autoscaled else 1,
                # A rolling update would need a second set of GPUs; stop the old pod first.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=pod_annotations),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=args.service_account,
                        node_selector=node_selector(args),
                        # Service links would put GEMMA_* / other services' variables into vLLM's environment.
                        enable_service_links=False,
                        automount_service_account_token=False,
                        # Non-root, read-only root filesystem, caches on emptyDirs (stack/pod_security.py).
                        security_context=pod_security.pod_context(pod_security.MODEL_UID),
                        init_containers=[pod_security.restricted(_wait_for_weights(args))],
                        containers=[pod_security.vllm_container(_container(args))],
                        volumes=[
                            *pod_security.VLLM_VOLUMES,
                            k8s.core.v1.VolumeArgs(
                                name="dshm",
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                    medium="Memory", size_limit=f"{2 * preset.gpus}Gi"
                                ),
                            ),
                            # An explicit capacity below the volume's size: with none ("-1") gcsfuse fills the
                            # volume and then fails writes instead of evicting.
                            weights.bucket_volume(
                                "weights",
                                args.bucket,
                                True,
                                READ_OPTIONS,
                                fileCacheCapacity=cache_capacity,
                                # The dashboard's "weights read" tile (stack/monitoring.py). Off by default
                                # since GKE 1.33.0-gke.2248000 (GKE's Cloud Storage FUSE CSI driver volume
                                # attributes reference, checked 2026-12-06).
                                disableMetrics="false",
                            ),
                            # The FUSE sidecar's file cache: a volume of this name replaces its 5 GiB default,
                            # which could not hold the model and would refetch it on every read.
                            k8s.core.v1.VolumeArgs(
                                name="gke-gcsfuse-cache",
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=cache),
                            ),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[account, *args.readable, *args.pullable])
            ),
        )
        self.service = k8s.core.v1.Service(
            kube.GEMMA_SERVICE,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=kube.GEMMA_SERVICE, namespace=kube.NAMESPACE, labels=labels, annotations=DONT_WAIT
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=kube.selector_labels(NAME),
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=kube.GEMMA_PORT, target_port="http")],
            ),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{NAME}-from-chat",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{NAME}-from-chat", namespace=kube.NAMESPACE, labels=labels),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                policy_types=["Ingress"],
                # Only the chat pods may talk to the model: the server has no authentication of its own.
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels("chat"))
                            )
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=kube.GEMMA_PORT)],
                    )
                ],
            ),
            opts=child,
        )
        self.register_outputs({"service": self.service.metadata.name})
