"""Names of project-wide (and world-wide) things, scoped to the Pulumi stack.

Two stacks in one project must never share a repository, bucket, network, service account or IAM member: one
stack's `destroy` would delete or revoke what the other still uses. Kubernetes service accounts are scoped too,
because Workload Identity names a pod's principal by namespace and account only, the same in every cluster of
the project.
"""

from __future__ import annotations

import hashlib
import re


def slug(stack: str) -> str:
    """The stack name as lowercase letters, digits and hyphens, with a short hash when that lost anything
    (so `Dev` and `dev`, or `a.b` and `a-b`, stay apart)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", stack.lower()).strip("-") or "stack"
    return cleaned if cleaned == stack else f"{cleaned}-{_digest(stack)}"


def scoped(base: str, stack: str, max_length: int = 63) -> str:
    """`base-<stack>`, cut to `max_length` with a hash of the whole so a long stack name stays unique."""
    name = f"{base}-{slug(stack)}"
    if len(name) <= max_length:
        return name
    digest = _digest(name)
    return f"{name[: max_length - len(digest) - 1].rstrip('-')}-{digest}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def repository(stack: str) -> str:
    """Artifact Registry repository id (per project and region)."""
    return scoped("hybrid-chat", stack)


def mirror_repository(stack: str) -> str:
    """Artifact Registry remote repository of Docker Hub (per project and region)."""
    return scoped("hybrid-chat-dockerhub", stack)


def network(stack: str) -> str:
    """VPC network and subnet name (per project)."""
    return scoped("hybrid-chat", stack)


def node_account(stack: str) -> str:
    """Google service account id of the cluster's nodes: 6-30 characters."""
    return scoped("hc-nodes", stack, max_length=30)


def weights_bucket(project: str, stack: str) -> str:
    """Cloud Storage bucket names are global: the project id (globally unique) keeps ours apart."""
    return scoped(f"{project}-weights", stack)


def media_bucket(project: str, stack: str) -> str:
    """The chat's image bucket (global names, like the weights bucket)."""
    return scoped(f"{project}-media", stack)


def kubernetes_account(component: str, stack: str) -> str:
    """A Kubernetes service account whose Workload Identity principal holds Google roles."""
    return scoped(component, stack)


def keda_namespace(stack: str) -> str:
    """Where KEDA runs: its operator's principal (namespace + account) holds a project role, so it is per stack."""
    return scoped("keda", stack)
