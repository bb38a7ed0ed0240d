"""The chat: its Kubernetes service account, browser-state and optional login Secrets, Deployment and LoadBalancer."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from stack import kube

NAME = "chat"
AUTH_SECRET = "chat-auth"
BROWSER_SECRET = "chat-browser"
# Alphanumeric only, so no quoting surprises wherever the value travels; 64 of 62 symbols is still ~380 bits.
BROWSER_SECRET_LENGTH = 64
# Matches CHAT_CONCURRENCY in the chat and vLLM's --max-num-seqs (see gemma.py).
CONCURRENCY = 64


@dataclass(frozen=True)
class ChatArgs:
    project: str
    region: str
    image: pulumi.Input[str]
    replicas: int
    firestore_database: pulumi.Input[str]
    gemma_model: str
    gemini_model: str
    auth_users: pulumi.Input[str] | None
    provider: k8s.Provider
    namespace: pulumi.Resource
    # Created before the pods, so their first /readyz already finds Firestore reachable.
    depends_on: list[pulumi.Resource]
    # Stack-scoped: its Workload Identity principal holds the chat's roles (stack/names.py).
    service_account: str
    # Keys the pod template's checksum annotation (kube.checksum_annotation).
    checksum_key: pulumi.Input[str]


def display_name(model_id: str) -> str:
    """`google/gemma-3-12b-it` → `Gemma 3 12B`, `gemini-2.5-flash` → `Gemini 2.5 Flash`."""
    words = [w for w in model_id.split("/")[-1].split("-") if w != "it"]
    return " ".join(w.upper() if w[:-1].isdigit() and w.endswith("b") else w.capitalize() for w in words)


def environment(args: ChatArgs) -> list[k8s.core.v1.EnvVarArgs]:
    """The chat's environment contract (DESIGN.md), pointing at Gemma's Service, Firestore and Vertex AI."""
    plain: dict[str, pulumi.Input[str]] = {
        "CHAT_STORE": "firestore",
        "FIRESTORE_DATABASE": args.firestore_database,
        "GOOGLE_CLOUD_PROJECT": args.project,
        # Set even with Gemma off: the slot then reports the model unreachable, and turning Gemma on later
        # needs no chat rollout.
        "SELF_HOSTED_URL": kube.GEMMA_URL,
        "SELF_HOSTED_MODEL": args.gemma_model,
        "SELF_HOSTED_LABEL": f"{display_name(args.gemma_model)} (self-hosted)",
        "GEMINI_MODEL": args.gemini_model,
        "GEMINI_LABEL": f"{display_name(args.gemini_model)} (Vertex AI)",
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_CLOUD_LOCATION": args.region,
        "CHAT_CONCURRENCY": str(CONCURRENCY),
        "CHAT_METRICS_PORT": str(kube.CHAT_METRICS_PORT),
        # The root filesystem is read-only: anything that caches under $HOME lands in the /tmp emptyDir.
        "HOME": "/tmp",
    }
    env = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in plain.items()]
    # Encrypts the anonymous owner id Gradio keeps in the browser: one value for every replica and every rollout.
    env.append(_from_secret("CHAT_BROWSER_SECRET", BROWSER_SECRET, "secret"))
    if args.auth_users is not None:
        env.append(_from_secret("CHAT_AUTH_USERS", AUTH_SECRET, "users"))
    return env


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
        # replica out of the LoadBalancer would turn a history outage into a chat outage.
        # Ten minutes: on a first `up` the new IAM grants can take several minutes to reach Firestore.
        startup_probe=_probe("/readyz", period=2, failures=300),
        readiness_probe=_probe("/healthz", period=10, failures=3),
        liveness_probe=_probe("/healthz", period=20, failures=3),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        ),
    )
    return k8s.core.v1.PodTemplateSpecArgs(
        # Changing the logins restarts the pods: they read the Secret only at start.
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels=labels, annotations=kube.checksum_annotation(args.checksum_key, args.auth_users)
        ),
        spec=k8s.core.v1.PodSpecArgs(
            service_account_name=args.service_account,
            enable_service_links=False,
            # On SIGTERM the chat lets open streams finish (up to 15 s), then makes a last attempt (up to
            # 10 s) to save turns still queued; the 30 s default would leave no margin.
            termination_grace_period_seconds=45,
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=10001,  # the Dockerfile's user
                run_as_group=10001,
                fs_group=10001,
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            containers=[container],
            volumes=[
                k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="512Mi"))
            ],
        ),
    )


class Chat(pulumi.ComponentResource):
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ChatArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Chat", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        labels = kube.labels(NAME, "web")

        def meta(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=kube.NAMESPACE, labels=labels)

        # Its name is the one in the Workload Identity principal that holds the Vertex AI and Firestore roles.
        account = k8s.core.v1.ServiceAccount(args.service_account, metadata=meta(args.service_account), opts=child)
        # Generated once and kept in the (encrypted) stack state, so every `up` passes the same value: a new one
        # would make every anonymous user's stored owner id unreadable and their conversation list vanish. It
        # changes only if this resource is replaced (e.g. a different length) or the stack is destroyed.
        browser_secret = random.RandomPassword(
            f"{name}-browser-secret",
            length=BROWSER_SECRET_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        needs: list[pulumi.Resource] = [account, *args.depends_on]
        needs.append(
            k8s.core.v1.Secret(
                BROWSER_SECRET,
                metadata=meta(BROWSER_SECRET),
                type="Opaque",
                # `result` is a secret output of the provider, so it stays encrypted in state and masked in diffs.
                string_data={"secret": browser_secret.result},
                opts=child,
            )
        )
        if args.auth_users is not None:
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
        several = args.replicas > 1
        self.service = k8s.core.v1.Service(
            NAME,
            metadata=meta(NAME),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                selector=kube.selector_labels(NAME),
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=80, target_port="http")],
                # Gradio keeps queue state per process: with several replicas a browser must stay on one. Local
                # keeps the browser's address (not a node's) as the affinity key.
                session_affinity="ClientIP" if several else "None",
                external_traffic_policy="Local" if several else "Cluster",
            ),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.deployment])),
        )
        self.url = self.service.status.apply(lambda s: f"http://{s.load_balancer.ingress[0].ip}")
        self.register_outputs({"url": self.url})
