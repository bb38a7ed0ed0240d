"""Names, ports, limits and labels shared by the Kubernetes objects (and by the IAM principal that must match them)."""

from __future__ import annotations

NAMESPACE = "hybrid-chat"
CHAT_SERVICE_ACCOUNT = "chat"
CHAT_PORT = 7860
# Generations one chat replica runs at once (CHAT_CONCURRENCY); vLLM's --max-num-seqs batches as many.
CHAT_CONCURRENCY = 64
# Seconds the chat waits on a model (CHAT_REQUEST_TIMEOUT); the load balancer's backend timeout must exceed it.
CHAT_REQUEST_TIMEOUT_S = 120
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


def workload_identity_principal(project_number: str, project: str) -> str:
    """The IAM principal GKE Workload Identity Federation gives the chat's Kubernetes service account."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/"
        f"{project}.svc.id.goog/subject/ns/{NAMESPACE}/sa/{CHAT_SERVICE_ACCOUNT}"
    )
