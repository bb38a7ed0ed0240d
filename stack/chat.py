"""The chat: its Kubernetes service account, optional login Secret, Deployment, ClusterIP Service and NetworkPolicy.

Reached only through the front door (frontdoor.py): the Service is internal and the NetworkPolicy admits
connections from Google's load balancers alone, so nothing in the cluster or the VPC can skip IAP.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from stack import kube, pod_security

NAME = "chat"
AUTH_SECRET = "chat-auth"
# CHAT_SECRET_KEY, the same for every replica: browser ids, and the sign-in cookie's name, that each can check.
KEY_SECRET = "chat-secret-key"
SERVICE_PORT = 80
# Where Google's external Application Load Balancers and their health checks connect from (the proxies sit
# in front of IAP, so these are the only peers the chat may accept). IPv6 ranges too, so a dual-stack cluster
# keeps working; on an IPv4-only cluster they match nothing.
GOOGLE_LOAD_BALANCER_RANGES = ("35.191.0.0/16", "130.211.0.0/22", "2600:2d00:1:b029::/64", "2600:2d00:1:1::/64")


@dataclass(frozen=True)
class ChatArgs:
    project: str
    region: str
    image: pulumi.Input[str]
    replicas: int
    firestore_database: pulumi.Input[str]
    gemma_model: str
    gemini_model: str
    gemini_location: str
    """Where Vertex AI serves Gemini (`global`, `us`, `eu` or a region), independent of the cluster's region."""
    auth: str
    """`iap` (identity from IAP's signed header) or `password` (CHAT_AUTH_USERS logins)."""
    auth_users: pulumi.Input[str] | None
    iap_audience: pulumi.Input[str] | None
    """`/projects/NUMBER/global/backendServices/`: the prefix of the audience IAP signs for our backends."""
    provider: k8s.Provider
    namespace: pulumi.Resource
    # Created before the pods, so their first /readyz already finds Firestore reachable.
    depends_on: list[pulumi.Resource]
    # Stack-scoped: its Workload Identity principal holds the chat's roles (stack/names.py).
    service_account: str
    # Keys the pod template's checksum annotation (kube.checksum_annotation).
    checksum_key: pulumi.Input[str]
    # Where attached images are kept (stack/media.py); None keeps them in the pod (tests only).
    media_bucket: pulumi.Input[str] | None = None
    # Per person per UTC day; None: no limit.
    daily_tokens: int | None = None
    # Gemma is deployed and scales to zero (gemmaIdleMinutes > 0): a turn for it wakes it. Otherwise the chat
    # reports a down Gemma as unreachable, not as asleep with a wake-up that never comes.
    gemma_wakes_on_demand: bool = True


def display_name(model_id: str) -> str:
    """`google/gemma-3-12b-it` → `Gemma 3 12B`, `gemini-3.8-flash` → `Gemini 3.8 Flash`,
    `google/gemma-4-31b-it-qat-w4a16-ct` → `Gemma 4 31B QAT` (the checkpoint format after `it` says nothing)."""
    words = model_id.split("/")[-1].split("-")
    if "it" in words:
        words, tail = words[: words.index("it")], words[words.index("it") + 1 :]
        words += ["QAT"] if "qat" in tail else []
    return " ".join(
        w.upper() if w[:-1].isdigit() and w.endswith("b") else w if w.isupper() else w.capitalize() for w in words
    )


def environment(args: ChatArgs) -> list[k8s.core.v1.EnvVarArgs]:
    """The chat's environment (`chatapp/settings.py` reads and validates it), pointing at Gemma's Service,
    Firestore and Vertex AI, with sign-in handled as the front door dictates."""
    plain: dict[str, pulumi.Input[str]] = {
        "CHAT_STORE": "firestore",
        "FIRESTORE_DATABASE": args.firestore_database,
        "GOOGLE_CLOUD_PROJECT": args.project,
        # Set even with Gemma off: the slot then reports the model unreachable, and turning Gemma on later
        # needs no chat rollout.
        "SELF_HOSTED_URL": kube.GEMMA_URL,
        "SELF_HOSTED_MODEL": args.gemma_model,
        "SELF_HOSTED_LABEL": f"{display_name(args.gemma_model)} (self-hosted)",
        "SELF_HOSTED_WAKES_ON_DEMAND": "true" if args.gemma_wakes_on_demand else "false",
        "GEMINI_MODEL": args.gemini_model,
        "GEMINI_LABEL": f"{display_name(args.gemini_model)} (Vertex AI)",
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        # google-genai's own variable: Gemini 3.x answers at `global` (and the multi-regions), not in us-central1.
        "GOOGLE_CLOUD_LOCATION": args.gemini_location,
        "CHAT_CONCURRENCY": str(kube.CHAT_CONCURRENCY),
        "CHAT_REQUEST_TIMEOUT": str(kube.CHAT_REQUEST_TIMEOUT_S),
        "CHAT_AUTH": args.auth,
        # Every request arrives through Google's load balancer, which appends the browser's address to
        # X-Forwarded-For; the NetworkPolicy guarantees no one else can connect.
        "CHAT_TRUSTED_PROXY": "true",
        "CHAT_METRICS_PORT": str(kube.CHAT_METRICS_PORT),
        # The root filesystem is read-only: anything that caches under $HOME lands in the /tmp emptyDir.
        "HOME": "/tmp",
    }
    if args.auth == "iap" and args.iap_audience is not None:
        plain["CHAT_IAP_AUDIENCE"] = args.iap_audience
    if args.media_bucket is not None:
        plain["CHAT_MEDIA_BUCKET"] = args.media_bucket
    if args.daily_tokens is not None:
        plain["CHAT_DAILY_TOKENS"] = str(args.daily_tokens)
    env = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in plain.items()]
    if args.auth == "password" and args.auth_users is not None:
        env.append(_from_secret("CHAT_AUTH_USERS", AUTH_SECRET, "users"))
    env.append(_from_secret("CHAT_SECRET_KEY", KEY_SECRET, "key"))
    return env


def ingress_rules() -> list[k8s.networking.v1.NetworkPolicyIngressRuleArgs]:
    """Who may connect to the chat pods, one rule per port (a rule for another port goes in this list)."""
    return [
        k8s.networking.v1.NetworkPolicyIngressRuleArgs(
            from_=[
                k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr))
                for cidr in GOOGLE_LOAD_BALANCER_RANGES
            ],
            ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=kube.CHAT_PORT)],
        ),
    ]


def _from_secret(variable: str, secret: str, key: str) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(
        name=variable,
        value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)),
    )


def _probe(path: str, period: int, failures: int) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
        period_seconds=period,
        timeout_seconds=3,
        failure_threshold=failures,
    )


def _pod(args: ChatArgs, labels: dict[str, str]) -> k8s.core.v1.PodTemplateSpecArgs:
    # Gradio renders pages and streams every token as an event: a full core, and memory for many sessions.
    size = {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"}
    container = k8s.core.v1.ContainerArgs(
        name=NAME,
        image=args.image,
        ports=[
            k8s.core.v1.ContainerPortArgs(name="http", container_port=kube.CHAT_PORT),
            k8s.core.v1.ContainerPortArgs(name="metrics", container_port=kube.CHAT_METRICS_PORT),
        ],
        env=environment(args),
        resources=k8s.core.v1.ResourceRequirementsArgs(requests=size, limits=size),
        # /readyz checks the store. As the startup probe it stops a rollout whose pods cannot reach Firestore
        # (wrong database, missing IAM binding) from replacing working ones. It is not the readiness probe:
        # during a Firestore outage the chat keeps answering and queues turns for retry, whereas taking every
        # replica out of the load balancer would turn a history outage into a chat outage.
        # Ten minutes: on a first `up` the new IAM grants can take several minutes to reach Firestore.
        startup_probe=_probe("/readyz", period=2, failures=300),
        # Readiness fails from SIGTERM on (chatapp.drain), so the load balancer stops sending new connections
        # within one period while the replies in flight finish; the store is not checked (see above).
        readiness_probe=_probe("/readyz?store=false", period=2, failures=1),
        liveness_probe=_probe("/healthz", period=20, failures=3),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
        security_context=pod_security.container_context(),
    )
    return k8s.core.v1.PodTemplateSpecArgs(
        # Changing the logins restarts the pods: they read the Secret only at start.
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels=labels, annotations=kube.checksum_annotation(args.checksum_key, args.auth_users)
        ),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=args.service_account,
            # Firestore, Vertex AI and Cloud Storage go through Workload Identity; the chat never calls the
            # Kubernetes API, so no token is mounted.
            automount_service_account_token=False,
            enable_service_links=False,
            # On SIGTERM the chat lets replies finish or cuts and saves them, closes its connections and makes
            # a last attempt to save turns still queued: chatapp.drain adds up the time that takes.
            termination_grace_period_seconds=kube.CHAT_GRACE_S,
            security_context=pod_security.pod_context(pod_security.CHAT_UID, fs_group=True),
            containers=[container],
            volumes=[
                k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="512Mi"))
            ],
        ),
    )


class Chat(pulumi.ComponentResource):
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: ChatArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Chat", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        labels = kube.labels(NAME, "web")

        def meta(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=kube.NAMESPACE, labels=labels)

        # Its name is the one in the Workload Identity principal that holds the Vertex AI and Firestore roles.
        account = k8s.core.v1.ServiceAccount(args.service_account, metadata=meta(args.service_account), opts=child)
        needs: list[pulumi.Resource] = [account, *args.depends_on]
        # Kept in the (encrypted) state: a new key on every `up` would sign everyone out.
        key = random.RandomPassword(
            f"{NAME}-secret-key", length=48, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        needs.append(
            k8s.core.v1.Secret(
                KEY_SECRET, metadata=meta(KEY_SECRET), type="Opaque", string_data={"key": key.result}, opts=child
            )
        )
        if args.auth == "password" and args.auth_users is not None:
            needs.append(
                k8s.core.v1.Secret(
                    AUTH_SECRET,
                    metadata=meta(AUTH_SECRET),
                    type="Opaque",
                    string_data={"users": args.auth_users},
                    opts=child,
                )
            )
        self.deployment = k8s.apps.v1.Deployment(
            NAME,
            metadata=meta(NAME),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                # No `replicas`: the HorizontalPodAutoscaler owns the count (stack/scaling.py); setting it here
                # would scale the chat back to the minimum on every `up`.
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                template=_pod(args, labels),
            ),
            opts=pulumi.ResourceOptions.merge(
                child,
                # The startup probe allows 10 minutes; Pulumi's default wait for a Deployment is 10 minutes too.
                pulumi.ResourceOptions(
                    depends_on=needs, custom_timeouts=pulumi.CustomTimeouts(create="20m", update="20m")
                ),
            ),
        )
        # Internal only: the Gateway's load balancer reaches the pods directly (container-native, through
        # network endpoint groups) and keeps each browser on one pod with a cookie (see frontdoor.py).
        self.service = k8s.core.v1.Service(
            NAME,
            metadata=meta(NAME),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=kube.selector_labels(NAME),
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=SERVICE_PORT, target_port="http")],
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.deployment])),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{NAME}-from-load-balancer",
            metadata=meta(f"{NAME}-from-load-balancer"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                policy_types=["Ingress"],
                ingress=ingress_rules(),
            ),
            opts=child,
        )
        self.register_outputs({"service": self.service.metadata.name})
