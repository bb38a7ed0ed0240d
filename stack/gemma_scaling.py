"""Gemma sleeps while nobody wants it: KEDA scales the model server's Deployment 1 → 0 after `gemmaIdleMinutes`
without a turn that wanted it, and 0 → 1 on the next such turn.

KEDA, not the HorizontalPodAutoscaler: a plain HPA scales to zero only on GKE >= 1.37 and would still need a
metrics adapter to read Managed Prometheus; KEDA's Prometheus scaler queries Managed Prometheus itself (README,
"Scale to zero"). The wake signal is the chat's counter of turns that wanted the self-hosted model
(chatapp/metrics.py): it exists while the model server is at zero, which the server's own metrics do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from stack import kube, names

# Checked 2026-12-06: the chart's newest release (KEDA 2.20.2, tested upstream on Kubernetes 1.33 to 1.35).
KEDA_CHART = "keda"
KEDA_VERSION = "2.20.2"
KEDA_REPO = "https://kedacore.github.io/charts"
# The chart's operator account. Google's "Scale to zero using KEDA" installs into namespace `keda`; ours is per
# stack (names.keda_namespace), because the principal that holds the role names only namespace and account, the
# same in every cluster of the project: a second stack's `destroy` would otherwise revoke this one's grant.
KEDA_OPERATOR = "keda-operator"
# Reading Managed Prometheus' query API; nothing else.
MONITORING_VIEWER = "roles/monitoring.viewer"
KEDA_API = "keda.sh/v1alpha1"
# The chat's counter (chatapp/metrics.py SELF_HOSTED_WANTED); the stack and the chat meet on this name only.
WAKE_COUNTER = "chat_self_hosted_wanted_total"
# Seconds between KEDA's queries: adds up to this much to a wake-up that already takes minutes (README, Cost).
POLLING_S = 15
# Seconds KEDA waits after the query last reported demand. The idle window is in the query itself (it survives a
# restart of KEDA's operator); this only covers a scrape that arrives late.
COOLDOWN_S = 60


def server_address(project: str) -> str:
    """Managed Prometheus' PromQL API for the whole project (keda-docs, scalers/prometheus.md)."""
    return f"https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"


def wake_query(cluster_name: str, idle_minutes: int) -> str:
    """Turns that wanted the self-hosted model within the idle window, in this cluster's chat namespace.

    One series (`sum`): the scaler needs exactly one, and an empty result counts as 0. The cluster label keeps
    another stack's chat in the same project from waking this stack's GPU."""
    selector = f'{{cluster="{cluster_name}",namespace="{kube.NAMESPACE}"}}'
    return f"sum(increase({WAKE_COUNTER}{selector}[{idle_minutes}m]))"


@dataclass(frozen=True)
class GemmaScalingArgs:
    project: str
    stack: str
    cluster_name: str
    idle_minutes: int
    deployment: pulumi.Resource
    # The Workload Identity pool exists only after the cluster, so the IAM member waits for it.
    cluster: pulumi.Resource
    project_number: pulumi.Input[str]
    provider: k8s.Provider
    namespace: pulumi.Resource


class GemmaScaling(pulumi.ComponentResource):
    def __init__(self, name: str, args: GemmaScalingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:GemmaScaling", name, {}, opts)
        namespace = names.keda_namespace(args.stack)
        principal = pulumi.Output.from_input(args.project_number).apply(
            lambda n: kube.workload_identity_principal(n, args.project, KEDA_OPERATOR, namespace)
        )
        viewer = gcp.projects.IAMMember(
            f"{name}-monitoring-viewer",
            project=args.project,
            role=MONITORING_VIEWER,
            member=principal,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.cluster]),
        )
        keda = k8s.helm.v3.Release(
            KEDA_CHART,
            chart=KEDA_CHART,
            version=KEDA_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KEDA_REPO),
            namespace=namespace,
            create_namespace=True,
            # The operator's principal is granted its role directly (Workload Identity Federation): no Google
            # service account to annotate, so the chart's own `podIdentity.gcp` values stay off.
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[viewer]),
        )
        # The CRDs come with the chart; the gemma Deployment must exist before something scales it.
        child = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=[keda, args.namespace, args.deployment]
        )
        labels = kube.labels("gemma", "model-server")
        auth = k8s.apiextensions.CustomResource(
            f"{name}-gcp",
            api_version=KEDA_API,
            kind="TriggerAuthentication",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-gcp", namespace=kube.NAMESPACE, labels=labels),
            # The operator's own Workload Identity, no secret anywhere (the scaler's only auth mode for GCP).
            spec={"podIdentity": {"provider": "gcp"}},
            opts=child,
        )
        idle_s = args.idle_minutes * 60
        k8s.apiextensions.CustomResource(
            name,
            api_version=KEDA_API,
            kind="ScaledObject",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=kube.NAMESPACE, labels=labels),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gemma"},
                "minReplicaCount": 0,
                # One GPU pod is the model server (its size is gemmaGpus); more would double the GPU bill.
                "maxReplicaCount": 1,
                "pollingInterval": POLLING_S,
                "cooldownPeriod": COOLDOWN_S,
                # A fresh stack keeps its model up for one idle window, for whoever just deployed it.
                "initialCooldownPeriod": idle_s,
                "triggers": [
                    {
                        "type": "prometheus",
                        "metadata": {
                            "serverAddress": server_address(args.project),
                            "query": wake_query(args.cluster_name, args.idle_minutes),
                            # Awake while any turn wanted it within the window (activation: value > threshold).
                            "activationThreshold": "0",
                            # 1 → N is moot at maxReplicaCount 1, but the scaler requires a target.
                            "threshold": "1",
                        },
                        "authenticationRef": {"name": f"{name}-gcp"},
                    }
                ],
            },
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[auth])),
        )
        self.register_outputs({})
