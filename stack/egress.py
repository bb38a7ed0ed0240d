"""A NetworkPolicy for pods that only fetch from public HTTPS services (the weights Job: Hugging Face and Cloud
Storage): no ingress at all; egress to DNS, the node's metadata server (Workload Identity) and port 443 of
public addresses, never a pod, node or VPC host.

Why not "only huggingface.co and storage.googleapis.com": a NetworkPolicy matches addresses and ports, not
names, and both services answer from shared front ends (Google's for Cloud Storage, a CDN for the Hub's
files) whose addresses change and serve everyone else too. Name-based rules exist on GKE as
FQDNNetworkPolicy (networking.gke.io), but only with GKE Enterprise enabled (billed per vCPU), Dataplane V2
and GKE 1.26.4+; this stack does not assume Enterprise.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from stack import kube

# Where a GKE pod's resolver is: Cloud DNS answers on the node's metadata address (Autopilot's provider),
# NodeLocal DNSCache on 169.254.20.10, kube-dns in kube-system (Standard clusters' default). Policies are
# enforced after the Service address is translated, so kube-dns is matched as pods.
DNS_ADDRESSES = ("169.254.169.254/32", "169.254.20.10/32")
# The GKE metadata server hands out Workload Identity tokens (the Cloud Storage FUSE sidecar needs them): on
# Dataplane V2 (Autopilot) at 169.254.169.254 ports 80/8080, on the older dataplane at 169.254.169.252:987/988.
METADATA = (("169.254.169.254/32", (80, 8080)), ("169.254.169.252/32", (987, 988)))
# Not the internet: RFC 1918, shared (carrier-grade NAT) and link-local addresses, which cover the cluster's
# pod, Service and node ranges and the VPC; IPv6 unique-local and link-local likewise.
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
PRIVATE_V6 = ("fc00::/7", "fe80::/10")


def _ports(protocols: tuple[str, ...], *numbers: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(protocol=p, port=n) for n in numbers for p in protocols]


def _block(cidr: str, excepts: tuple[str, ...] = ()) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr, except_=list(excepts) or None)
    )


def egress_rules() -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
    kube_dns = k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": "kube-system"}),
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
    )
    rule = k8s.networking.v1.NetworkPolicyEgressRuleArgs
    return [
        rule(to=[*map(_block, DNS_ADDRESSES), kube_dns], ports=_ports(("UDP", "TCP"), 53)),
        *(rule(to=[_block(cidr)], ports=_ports(("TCP",), *ports)) for cidr, ports in METADATA),
        rule(
            to=[_block("0.0.0.0/0", PRIVATE_V4), _block("::/0", PRIVATE_V6)],
            ports=_ports(("TCP",), 443),
        ),
    ]


def public_https_only(
    name: str, selector: dict[str, str], labels: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    """The policy above for the pods matching `selector`."""
    return k8s.networking.v1.NetworkPolicy(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=kube.NAMESPACE, labels=labels),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            # Both types with no ingress rule: nothing may connect to these pods.
            policy_types=["Ingress", "Egress"],
            egress=egress_rules(),
        ),
        opts=opts,
    )
