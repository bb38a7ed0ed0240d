"""GKE Autopilot cluster, the Kubernetes provider that talks to it, and the namespace our workloads live in."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from stack import kube


@dataclass(frozen=True)
class ClusterArgs:
    project: str
    region: str
    name: str
    container_api: pulumi.Resource


def kubeconfig(name: str, endpoint: str, ca_certificate: str) -> str:
    """A kubeconfig that authenticates through `gke-gcloud-auth-plugin`, so it holds no credential itself."""
    context = f"gke_{name}"
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": ca_certificate},
                }
            ],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "users": [
                {
                    "name": context,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "gke-gcloud-auth-plugin",
                            "installHint": "Install gke-gcloud-auth-plugin: "
                            "gcloud components install gke-gcloud-auth-plugin",
                            "provideClusterInfo": True,
                        }
                    },
                }
            ],
        }
    )


class Cluster(pulumi.ComponentResource):
    cluster: gcp.container.Cluster
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Cluster", name, {}, opts)
        self.cluster = gcp.container.Cluster(
            name,
            name=args.name,
            project=args.project,
            location=args.region,
            enable_autopilot=True,
            # Defaults to true, which makes `pulumi destroy` fail on the cluster.
            deletion_protection=False,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            # The front door's Gateway, HTTPRoutes and GKE policies (on by default on Autopilot; said, not assumed).
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(channel="CHANNEL_STANDARD"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.container_api]),
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name, self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate
            ).apply(lambda parts: kubeconfig(parts[0], parts[1], parts[2] or ""))
        )
        self.provider = k8s.Provider(name, kubeconfig=self.kubeconfig, opts=pulumi.ResourceOptions(parent=self))
        # One namespace for everything we run: the Workload Identity principal names it, and it goes on destroy.
        self.namespace = k8s.core.v1.Namespace(
            kube.NAMESPACE,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=kube.NAMESPACE, labels={"app.kubernetes.io/part-of": kube.PART_OF}
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        self.register_outputs({"clusterName": self.cluster.name})
