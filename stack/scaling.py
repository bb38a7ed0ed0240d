"""How many chat pods run: a HorizontalPodAutoscaler between chatReplicas and chatMaxReplicas, and a
PodDisruptionBudget so node upgrades and Autopilot's bin-packing never take them all down at once."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from stack import kube

# Gradio renders and streams every token on the CPU: past ~70% of the pod's core, first tokens slow down.
TARGET_CPU_PERCENT = 70


@dataclass(frozen=True)
class ChatScalingArgs:
    name: str
    min_replicas: int
    max_replicas: int
    deployment: pulumi.Resource
    provider: k8s.Provider


class ChatScaling(pulumi.ComponentResource):
    def __init__(self, name: str, args: ChatScalingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:ChatScaling", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.deployment])
        labels = kube.labels(args.name, "web")
        metadata = k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=kube.NAMESPACE, labels=labels)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            args.name,
            metadata=metadata,
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=args.name
                ),
                min_replicas=args.min_replicas,
                max_replicas=args.max_replicas,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="Utilization", average_utilization=TARGET_CPU_PERCENT
                            ),
                        ),
                    )
                ],
                # Scale in slowly: a removed pod ends its streams (up to 45 s grace) and its browsers reconnect.
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(stabilization_window_seconds=600)
                ),
            ),
            opts=child,
        )
        # One pod at a time may be evicted voluntarily. With a single replica that still allows the eviction
        # (minAvailable 1 would block node upgrades until GKE's one-hour limit forces them anyway).
        k8s.policy.v1.PodDisruptionBudget(
            args.name,
            metadata=metadata,
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(args.name)),
            ),
            opts=child,
        )
        self.register_outputs({})
