"""Workload Identity: the chat's Kubernetes service account gets exactly the Google roles it needs, no keys."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stack import kube

# Vertex AI (Gemini) and Firestore, nothing else. No roles/iam.serviceAccountTokenCreator: with Workload
# Identity Federation the pod's own principal is granted these roles directly, so there is no Google service
# account to impersonate and nothing to mint tokens for (the codelab granted it project-wide).
CHAT_ROLES = ("roles/aiplatform.user", "roles/datastore.user")


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    project: str
    # The identity pool `PROJECT.svc.id.goog` exists only once the cluster does.
    cluster: pulumi.Resource


class WorkloadIdentity(pulumi.ComponentResource):
    principal: pulumi.Output[str]
    members: list[gcp.projects.IAMMember]

    def __init__(self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:WorkloadIdentity", name, {}, opts)
        # Looked up rather than configured: one less thing to get wrong.
        number = gcp.organizations.get_project_output(project_id=args.project).number
        self.principal = number.apply(lambda n: kube.workload_identity_principal(n, args.project))
        self.members = [
            gcp.projects.IAMMember(
                f"{name}-{role.split('/')[1].replace('.', '-')}",
                project=args.project,
                role=role,
                member=self.principal,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.cluster]),
            )
            for role in CHAT_ROLES
        ]
        self.register_outputs({"principal": self.principal})
