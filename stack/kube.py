"""Names, ports, limits and labels shared by the Kubernetes objects (and by the IAM principal that must match them)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pulumi

from chatapp import defaults

NAMESPACE = "hybrid-chat"
CHAT_SERVICE_ACCOUNT = "chat"
# Separate from CHAT_PORT: Managed Prometheus scrapes it inside the cluster; the front door never routes to it.
CHAT_METRICS_PORT = defaults.CHAT_METRICS_PORT
# The NetworkPolicy peer for Managed Prometheus' collectors (namespaces carry this label since Kubernetes 1.21).
# GKE's managed collection runs them in `gke-gmp-system`; `gmp-system` belongs to the self-deployed operator.
GMP_NAMESPACE = "gke-gmp-system"
# On a pod template: changes whenever a Secret or setting the pod reads at start changes, so the pods restart.
CHECKSUM_ANNOTATION = "hybrid-chat/config-checksum"
CHAT_PORT = defaults.CHAT_PORT
# Generations one chat replica runs at once (CHAT_CONCURRENCY); vLLM's --max-num-seqs batches as many.
CHAT_CONCURRENCY = defaults.CHAT_CONCURRENCY
# terminationGracePeriodSeconds of the chat, and the load balancer's connection draining: the chat's own shutdown
# budget (chatapp/drain.py GRACE_S: replies 20 s + saving cut replies 5 s + connections 3 s + retry queue 10 s +
# margin 5 s); the stack imports only chatapp.defaults, and tests/infra/test_kubernetes.py keeps the two equal.
CHAT_GRACE_S = 43
# Seconds the chat waits on a model (CHAT_REQUEST_TIMEOUT); the load balancer's backend timeout must exceed it.
CHAT_REQUEST_TIMEOUT_S = defaults.CHAT_REQUEST_TIMEOUT_S
# Not `vllm`: a Service of that name injects VLLM_PORT=tcp://… into pods, which vLLM reads as its own setting.
GEMMA_SERVICE = "gemma"
GEMMA_PORT = 8000
GEMMA_URL = f"http://{GEMMA_SERVICE}.{NAMESPACE}.svc.cluster.local:{GEMMA_PORT}/v1"
PART_OF = "hybrid-chat"


def selector_labels(name: str) -> dict[str, str]:
    """The immutable subset used in Deployment selectors and Service/NetworkPolicy matches."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def labels(name: str, component: str) -> dict[str, str]:
    """Kubernetes' recommended `app.kubernetes.io/*` labels."""
    return {
        **selector_labels(name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def workload_identity_principal(
    project_number: str, project: str, account: str = CHAT_SERVICE_ACCOUNT, namespace: str = NAMESPACE
) -> str:
    """The IAM principal GKE Workload Identity Federation gives a Kubernetes service account (of our namespace
    unless told otherwise).

    The same in every cluster of the project: the account name must be unique per stack (stack/names.py)."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
        f"{project}.svc.id.goog/subject/ns/{namespace}/sa/{account}"
    )


def checksum(key: str, values: list[str]) -> str:
    """HMAC-SHA256 of `values`. Keyed, because they include passwords and tokens: anyone who may read a
    Deployment could otherwise test guesses against a plain hash of `alice:password`."""
    return hmac.new(key.encode(), json.dumps(values).encode(), hashlib.sha256).hexdigest()


def checksum_annotation(key: pulumi.Input[str], *values: pulumi.Input[str | None]) -> pulumi.Output[dict[str, str]]:
    """The pod template annotation for `values` (None counts as empty). Not secret: it reveals nothing without
    the key, and a plain value shows in `pulumi preview` that a rollout is coming."""
    digest = pulumi.Output.all(key, *values).apply(lambda v: checksum(v[0], [x or "" for x in v[1:]]))
    return pulumi.Output.unsecret(digest).apply(lambda d: {CHECKSUM_ANNOTATION: d})
