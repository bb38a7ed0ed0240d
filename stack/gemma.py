"""Gemma on vLLM's OpenAI-compatible server: Secret, Deployment, ClusterIP Service, NetworkPolicy."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from stack import kube

NAME = "gemma"
TOKEN_SECRET = "hf-token"
# A GPU node on Autopilot can take minutes to days (quota, stock-outs). Pulumi would otherwise wait for the pod
# (Deployment) and for its endpoints (Service) and fail `pulumi up` after 10 minutes; the pod comes up on its own.
DONT_WAIT = {"pulumi.com/skipAwait": "true"}
# Gemma 3 12B: ~24 GB of bf16 weights, downloaded on every start, so the cache needs real disk.
MODEL_CACHE = "/data"
MODEL_CACHE_SIZE = "40Gi"


@dataclass(frozen=True)
class GemmaArgs:
    model: str
    gpus: int
    accelerator: str
    image: str
    hf_token: pulumi.Input[str]
    provider: k8s.Provider
    namespace: pulumi.Resource


def server_args(model: str, gpus: int) -> list[str]:
    return [
        f"--model={model}",
        "--host=0.0.0.0",
        f"--port={kube.GEMMA_PORT}",
        f"--tensor-parallel-size={gpus}",
        # Throughput, not the codelab's 4 sequences (the fifth user waited for a whole reply). 64 matches the
        # chat's CHAT_CONCURRENCY, so everything one chat replica lets through is batched, not queued; an 8K
        # window holds a long conversation while leaving most of the KV cache (the GPU memory the weights leave
        # free) for those 64 sequences instead of one 128K context. vLLM still queues if the cache runs out.
        "--max-model-len=8192",
        f"--max-num-seqs={kube.CHAT_CONCURRENCY}",
    ]


def _probe(period: int, failures: int) -> k8s.core.v1.ProbeArgs:
    # vLLM answers /health only once the model is loaded.
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/health", port="http"),
        period_seconds=period,
        timeout_seconds=5,
        failure_threshold=failures,
    )


def _container(args: GemmaArgs) -> k8s.core.v1.ContainerArgs:
    size = {
        "cpu": str(4 * args.gpus),
        "memory": f"{16 * args.gpus}Gi",
        "ephemeral-storage": "50Gi",
        "nvidia.com/gpu": str(args.gpus),
    }
    return k8s.core.v1.ContainerArgs(
        name="vllm",
        image=args.image,
        # The module, not the image's entrypoint, which has changed between vLLM releases.
        command=["python3", "-m", "vllm.entrypoints.openai.api_server"],
        args=server_args(args.model, args.gpus),
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=kube.GEMMA_PORT)],
        env=[
            k8s.core.v1.EnvVarArgs(
                name="HF_TOKEN",
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=TOKEN_SECRET, key="token")
                ),
            ),
            k8s.core.v1.EnvVarArgs(name="HF_HOME", value=f"{MODEL_CACHE}/huggingface"),
        ],
        resources=k8s.core.v1.ResourceRequirementsArgs(requests=size, limits=size),
        # Downloading and loading the weights takes many minutes: allow an hour before the kubelet gives up.
        startup_probe=_probe(period=10, failures=360),
        readiness_probe=_probe(period=5, failures=3),
        liveness_probe=_probe(period=15, failures=4),
        volume_mounts=[
            # Tensor-parallel workers exchange data through shared memory; the default 64 MiB /dev/shm is too small.
            k8s.core.v1.VolumeMountArgs(name="dshm", mount_path="/dev/shm"),
            k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path=MODEL_CACHE),
        ],
        security_context=k8s.core.v1.SecurityContextArgs(allow_privilege_escalation=False),
    )


class Gemma(pulumi.ComponentResource):
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: GemmaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Gemma", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        labels = kube.labels(NAME, "model-server")
        token = k8s.core.v1.Secret(
            TOKEN_SECRET,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=TOKEN_SECRET, namespace=kube.NAMESPACE, labels=labels),
            type="Opaque",
            string_data={"token": args.hf_token},
            opts=child,
        )
        self.deployment = k8s.apps.v1.Deployment(
            NAME,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAME, namespace=kube.NAMESPACE, labels=labels, annotations=DONT_WAIT
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                # A rolling update would need a second set of GPUs; stop the old pod first.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        node_selector={"cloud.google.com/gke-accelerator": args.accelerator},
                        # Service links would put GEMMA_* / other services' variables into vLLM's environment.
                        enable_service_links=False,
                        automount_service_account_token=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
                        ),
                        containers=[_container(args)],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="dshm",
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                    medium="Memory", size_limit=f"{2 * args.gpus}Gi"
                                ),
                            ),
                            k8s.core.v1.VolumeArgs(
                                name="model-cache",
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=MODEL_CACHE_SIZE),
                            ),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[token])),
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
