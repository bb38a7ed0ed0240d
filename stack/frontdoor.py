"""The private front door: HTTPS on a reserved IP through the GKE Gateway, Identity-Aware Proxy, access as code.

    browser ─► global external Application Load Balancer (GatewayClass gke-l7-global-external-managed)
               :80  HTTPRoute chat-redirect → 301 to https
               :443 Certificate Manager cert (certificate map) → IAP → HTTPRoute chat → Service chat (ClusterIP)

The Gateway controller creates the forwarding rules, proxies, URL map and backend service from these objects;
GCPBackendPolicy and HealthCheckPolicy set what the Gateway API cannot say (IAP, timeout, affinity, health
check). IAP access is granted with IAM at the project's "IAP-secured web app" level: the backend service is
named by the controller at run time, so no narrower resource can be named in advance.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from stack import kube

NAME = "chat"
GATEWAY_CLASS = "gke-l7-global-external-managed"
GATEWAY_API = "gateway.networking.k8s.io/v1"
GKE_POLICY_API = "networking.gke.io/v1"
IAP_ACCESSOR_ROLE = "roles/iap.httpsResourceAccessor"
OAUTH_SECRET = "iap-oauth-client"
# Without a domain of its own, the stack names the reserved IP through nip.io, a public wildcard DNS service
# (203-0-113-10.nip.io resolves to 203.0.113.10), so a managed certificate can still be issued. A convenience
# for trying it out: the name depends on a third party's DNS.
WILDCARD_DNS = "nip.io"
# Google's load balancer cuts a response at the backend service timeout (30 s by default), streams included.
# A reply streams for as long as the model writes: the chat allows a model CHAT_REQUEST_TIMEOUT of silence
# between chunks, and long answers take minutes. One hour lets any real reply arrive whole.
BACKEND_TIMEOUT_S = max(60 * 60, 2 * kube.CHAT_REQUEST_TIMEOUT_S)
# Gradio keeps each session's queue in one process: the load balancer's cookie keeps a browser on its pod.
AFFINITY_COOKIE_TTL_S = 24 * 60 * 60
# A stopping pod lets its open streams finish within its grace period (chatapp.drain): keep those connections.
DRAINING_TIMEOUT_S = kube.CHAT_GRACE_S


@dataclass(frozen=True)
class FrontDoorArgs:
    project: str
    prefix: str
    """Starts the names of the project-level resources (address, certificate, map): the cluster name."""
    iap: bool
    """False: `frontDoor: password`, HTTPS with the chat's own logins."""
    domain: str | None
    members: tuple[str, ...]
    """IAM members granted access through IAP; empty: the identity running `pulumi up`."""
    iap_client_id: str | None
    iap_client_secret: pulumi.Input[str] | None
    service: pulumi.Input[str]
    service_port: int
    provider: k8s.Provider
    namespace: pulumi.Resource
    apis: list[pulumi.Resource]


def wildcard_hostname(ip: str) -> str:
    """`203.0.113.10` → `203-0-113-10.nip.io`."""
    return f"{ip.replace('.', '-').replace(':', '-')}.{WILDCARD_DNS}"


def host_key(host: str) -> str:
    """A short, stable, name-safe key for a hostname (Certificate Manager names: lowercase, at most 63)."""
    return hashlib.sha256(host.encode()).hexdigest()[:10]


def deployer_member(email: str) -> str:
    """The IAM member for whoever runs `pulumi up`: a person, or a service account in CI."""
    if not email:
        raise ValueError(
            "could not look up who runs `pulumi up` (credentials without an email): grant access explicitly with "
            "`pulumi config set --path 'chatUsers[0]' user:you@example.com`"
        )
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    return f"{kind}:{email}"


def _slug(member: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", member.lower()).strip("-")


def backend_policy_spec(args: FrontDoorArgs, service: str) -> dict:
    iap: dict = {"enabled": args.iap}
    if args.iap and args.iap_client_id:
        # A custom OAuth client (projects without an organization, outside users); otherwise IAP uses the
        # Google-managed client, which admits people of the project's organization. (The CRD's field comment
        # still says clientID is required when enabled; if a controller insists, IAP stays off and the chat,
        # with CHAT_AUTH=iap, refuses every request: closed, not open.)
        iap["clientID"] = args.iap_client_id
        iap["oauth2ClientSecret"] = {"name": OAUTH_SECRET}
    return {
        "targetRef": {"group": "", "kind": "Service", "name": service},
        "default": {
            "timeoutSec": BACKEND_TIMEOUT_S,
            "sessionAffinity": {"type": "GENERATED_COOKIE", "cookieTtlSec": AFFINITY_COOKIE_TTL_S},
            "connectionDraining": {"drainingTimeoutSec": DRAINING_TIMEOUT_S},
            "iap": iap,
        },
    }


class FrontDoor(pulumi.ComponentResource):
    address: gcp.compute.GlobalAddress
    host: pulumi.Output[str]
    url: pulumi.Output[str]
    ip: pulumi.Output[str]

    def __init__(self, name: str, args: FrontDoorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:FrontDoor", name, {}, opts)
        cloud = pulumi.ResourceOptions(parent=self, depends_on=args.apis)
        kube_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        labels = kube.labels(NAME, "front-door")

        def meta(object_name: str, annotations: dict | None = None) -> dict:
            found = {"name": object_name, "namespace": kube.NAMESPACE, "labels": labels}
            return {**found, "annotations": annotations} if annotations else found

        # Reserved, so the address (and the DNS record or nip.io name built on it) survives Gateway changes.
        self.address = gcp.compute.GlobalAddress(
            f"{name}-ip",
            project=args.project,
            name=f"{args.prefix}-chat",
            address_type="EXTERNAL",
            ip_version="IPV4",
            opts=cloud,
        )
        self.ip = self.address.address
        self.host = pulumi.Output.from_input(args.domain) if args.domain else self.ip.apply(wildcard_hostname)
        self.url = self.host.apply(lambda host: f"https://{host}")

        # Certificate Manager with load-balancer authorization: issued once the load balancer serves the name
        # (minutes to an hour). The certificate and its map entry are named after the hostname, so a new
        # hostname creates new ones before the old pair is deleted (an entry's certificate cannot go first).
        per_host = self.host.apply(lambda host: f"{args.prefix}-{host_key(host)}")
        certificate = gcp.certificatemanager.Certificate(
            f"{name}-cert",
            project=args.project,
            name=per_host,
            description="hybrid-chat front door (Google-managed)",
            managed=gcp.certificatemanager.CertificateManagedArgs(domains=[self.host]),
            opts=cloud,
        )
        certificate_map = gcp.certificatemanager.CertificateMap(
            f"{name}-certmap", project=args.project, name=f"{args.prefix}-chat", opts=cloud
        )
        entry = gcp.certificatemanager.CertificateMapEntry(
            f"{name}-certmap-entry",
            project=args.project,
            name=per_host,
            map=certificate_map.name,
            certificates=[certificate.id],
            hostname=self.host,
            opts=cloud,
        )

        gateway = k8s.apiextensions.CustomResource(
            NAME,
            api_version=GATEWAY_API,
            kind="Gateway",
            # The certificate map, not listeners' certificateRefs: GKE's way to use Certificate Manager.
            metadata=meta(NAME, {"networking.gke.io/certmap": certificate_map.name}),
            spec={
                "gatewayClassName": GATEWAY_CLASS,
                "addresses": [{"type": "NamedAddress", "value": self.address.name}],
                "listeners": [
                    {"name": "https", "protocol": "HTTPS", "port": 443},
                    # Only ever answers with a redirect (HTTPRoute chat-redirect): no plain-HTTP path to the chat.
                    {"name": "http", "protocol": "HTTP", "port": 80},
                ],
            },
            opts=pulumi.ResourceOptions.merge(kube_opts, pulumi.ResourceOptions(depends_on=[entry, self.address])),
        )
        gateway_ref = pulumi.ResourceOptions.merge(kube_opts, pulumi.ResourceOptions(depends_on=[gateway]))

        def route(route_name: str, listener: str, rule: dict) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                route_name,
                api_version=GATEWAY_API,
                kind="HTTPRoute",
                metadata=meta(route_name),
                spec={
                    "parentRefs": [{"name": NAME, "sectionName": listener}],
                    "hostnames": [self.host],
                    "rules": [rule],
                },
                opts=gateway_ref,
            )

        route(
            f"{NAME}-redirect",
            "http",
            {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]},
        )
        route(NAME, "https", {"backendRefs": [{"name": args.service, "port": args.service_port}]})

        # The load balancer's own health check, on the chat's liveness endpoint (no IAP header needed there), on
        # the serving port: with container-native load balancing that is the chat's container port. The CRD
        # forbids `port` unless portSpecification is USE_FIXED_PORT (tests/infra/admission.py).
        k8s.apiextensions.CustomResource(
            NAME,
            api_version=GKE_POLICY_API,
            kind="HealthCheckPolicy",
            metadata=meta(NAME),
            spec={
                "targetRef": {"group": "", "kind": "Service", "name": args.service},
                "default": {
                    "config": {
                        "type": "HTTP",
                        "httpHealthCheck": {"requestPath": "/healthz", "portSpecification": "USE_SERVING_PORT"},
                    }
                },
            },
            opts=kube_opts,
        )
        policy_needs: list[pulumi.Resource] = []
        if args.iap and args.iap_client_id and args.iap_client_secret is not None:
            policy_needs.append(
                k8s.core.v1.Secret(
                    OAUTH_SECRET,
                    metadata=meta(OAUTH_SECRET),
                    type="Opaque",
                    # The GKE Gateway controller reads the client secret from the key `key` (as in GKE's guide:
                    # `kubectl create secret generic NAME --from-literal=key=SECRET`).
                    string_data={"key": args.iap_client_secret},
                    opts=kube_opts,
                )
            )
        k8s.apiextensions.CustomResource(
            NAME,
            api_version=GKE_POLICY_API,
            kind="GCPBackendPolicy",
            metadata=meta(NAME),
            spec=pulumi.Output.from_input(args.service).apply(lambda service: backend_policy_spec(args, service)),
            opts=pulumi.ResourceOptions.merge(kube_opts, pulumi.ResourceOptions(depends_on=policy_needs)),
        )

        if args.iap:
            if args.members:
                members: list[pulumi.Input[str]] = list(args.members)
                keys = [_slug(m) for m in args.members]
            else:
                email = gcp.organizations.get_client_open_id_user_info_output().email
                members = [email.apply(deployer_member)]
                keys = ["deployer"]
            for key, member in zip(keys, members, strict=True):
                gcp.iap.WebIamMember(
                    f"{name}-access-{key}",
                    project=args.project,
                    role=IAP_ACCESSOR_ROLE,
                    member=member,
                    # The role covers every IAP-protected app of the project (the backend service is named by
                    # the Gateway controller, after `up`); the condition narrows it to this stack's hostname. It
                    # also makes each stack's grant its own: two stacks granting the same person never share
                    # one member, so one stack's destroy cannot revoke the other's access.
                    condition=gcp.iap.WebIamMemberConditionArgs(
                        title=per_host.apply(lambda prefix: f"{prefix}-only"),
                        description="Only this stack's chat hostname",
                        expression=self.host.apply(lambda host: f'request.host == "{host}"'),
                    ),
                    opts=cloud,
                )
        self.register_outputs({"url": self.url, "ip": self.ip})
