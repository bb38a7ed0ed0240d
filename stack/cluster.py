"""GKE Autopilot cluster, the Kubernetes provider that talks to it, and the namespace our workloads live in."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s
import pulumi_random as random

from stack import kube, names

# The subnet's ranges: nodes, then the secondary ranges a VPC-native cluster takes pod and Service IPs from.
# Private (RFC 1918) and big enough for Autopilot's per-node pod ranges; the VPC is ours alone, so no overlap.
NODE_RANGE = "10.0.0.0/20"
POD_RANGE = ("pods", "10.4.0.0/14")
SERVICE_RANGE = ("services", "10.8.0.0/20")
# What Autopilot nodes need and nothing more: write logs and metrics, read images (the chat's repository
# grants its own reader role; see image.py). Organizations created since 2024 leave the Compute Engine default
# service account without roles, so nodes that used it could not even pull the chat image.
NODE_ROLE = "roles/container.defaultNodeServiceAccount"
# Image streaming with a node service account of our own (GKE "Use Image streaming to pull container images",
# requirements, checked 2026-12-06): this role in the project that hosts the images (the chat's and the vLLM
# mirror's, stack/mirror.py); the page lists it among image streaming's requirements.
IMAGE_STREAMING_ROLE = "roles/serviceusage.serviceUsageConsumer"
# GPU metrics (DCGM) on top of what Autopilot collects by default: a list replaces the defaults, so they are
# repeated (system components, and the kube-state-metrics packages Autopilot turns on since 1.27.4; JobSet on new
# clusters since 1.32.1), checked 2026-12-06 against GKE's "Collect and view kube state metrics" page.
MONITORING_COMPONENTS = [
    *("SYSTEM_COMPONENTS", "STORAGE", "HPA", "POD", "DAEMONSET", "DEPLOYMENT", "STATEFULSET", "JOBSET"),
    "DCGM",
]


@dataclass(frozen=True)
class ClusterArgs:
    project: str
    region: str
    name: str
    container_api: pulumi.Resource
    compute_api: pulumi.Resource
    iam_api: pulumi.Resource
    # Project IAM members go through the Resource Manager API, off in a fresh project until `up` enables it.
    resource_manager_api: pulumi.Resource
    # The Container File System API: image streaming needs it on before nodes pull.
    image_streaming_api: pulumi.Resource
    stack: str


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
    node_account: gcp.serviceaccount.Account
    network: gcp.compute.Network
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider
    namespace: k8s.core.v1.Namespace
    checksum_key: pulumi.Output[str]
    """Keys the pod templates' checksum annotations (kube.checksum_annotation)."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Cluster", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Our own network: many organizations' projects have no `default` network (or forbid using it).
        self.network = gcp.compute.Network(
            f"{name}-network",
            project=args.project,
            name=names.network(args.stack),
            auto_create_subnetworks=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.compute_api]),
        )
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            project=args.project,
            region=args.region,
            name=names.network(args.stack),
            network=self.network.id,
            ip_cidr_range=NODE_RANGE,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(range_name=r[0], ip_cidr_range=r[1])
                for r in (POD_RANGE, SERVICE_RANGE)
            ],
            # Nodes reach Google APIs (Artifact Registry, Cloud Storage, Vertex AI) without public addresses.
            private_ip_google_access=True,
            opts=child,
        )
        self.node_account = gcp.serviceaccount.Account(
            f"{name}-nodes",
            project=args.project,
            account_id=names.node_account(args.stack),
            display_name=f"hybrid-chat nodes ({args.stack})",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.iam_api]),
        )
        node_role = gcp.projects.IAMMember(
            f"{name}-nodes-role",
            project=args.project,
            role=NODE_ROLE,
            member=self.node_account.member,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.resource_manager_api]),
        )
        streaming_role = gcp.projects.IAMMember(
            f"{name}-nodes-image-streaming",
            project=args.project,
            role=IMAGE_STREAMING_ROLE,
            member=self.node_account.member,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.resource_manager_api]),
        )
        self.cluster = gcp.container.Cluster(
            name,
            name=args.name,
            project=args.project,
            location=args.region,
            enable_autopilot=True,
            # Defaults to true, which makes `pulumi destroy` fail on the cluster.
            deletion_protection=False,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel="REGULAR"),
            network=self.network.id,
            subnetwork=subnet.id,
            # VPC-native (alias IPs) from the subnet's named ranges: what Autopilot and the Gateway need.
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=POD_RANGE[0], services_secondary_range_name=SERVICE_RANGE[0]
            ),
            # Autopilot's node identity: every node it creates runs as this account.
            cluster_autoscaling=gcp.container.ClusterClusterAutoscalingArgs(
                auto_provisioning_defaults=gcp.container.ClusterClusterAutoscalingAutoProvisioningDefaultsArgs(
                    service_account=self.node_account.email,
                    oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                )
            ),
            monitoring_config=gcp.container.ClusterMonitoringConfigArgs(
                enable_components=MONITORING_COMPONENTS,
                managed_prometheus=gcp.container.ClusterMonitoringConfigManagedPrometheusArgs(enabled=True),
            ),
            # The front door's Gateway, HTTPRoutes and GKE policies (on by default on Autopilot; said, not assumed).
            gateway_api_config=gcp.container.ClusterGatewayApiConfigArgs(channel="CHANNEL_STANDARD"),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.container_api, args.image_streaming_api, node_role, streaming_role]
            ),
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name, self.cluster.endpoint, self.cluster.master_auth.cluster_ca_certificate
            ).apply(lambda parts: kubeconfig(parts[0], parts[1], parts[2] or ""))
        )
        self.provider = k8s.Provider(
            name,
            kubeconfig=self.kubeconfig,
            # When the cluster is already gone, `destroy` drops its objects from the state instead of failing.
            delete_unreachable=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # One namespace for everything we run: the Workload Identity principal names it, and it goes on destroy.
        self.namespace = k8s.core.v1.Namespace(
            kube.NAMESPACE,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=kube.NAMESPACE, labels={"app.kubernetes.io/part-of": kube.PART_OF}
            ),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        # Kept in the (encrypted) state: it never changes by itself, so neither do the checksums.
        self.checksum_key = random.RandomPassword(
            f"{name}-checksum-key", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        ).result
        self.register_outputs({"clusterName": self.cluster.name})
