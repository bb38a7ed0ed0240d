"""Workload Identity: the chat's Kubernetes service account gets exactly the Google roles it needs, no keys."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stack import kube

# Vertex AI (Gemini) and Firestore, nothing else. No roles/iam.serviceAccountTokenCreator: with Workload
# Identity Federation the pod's own principal is granted these roles directly, so there is no Google service
# account to impersonate and nothing to mint tokens for (the codelab granted it project-wide).
VERTEX_ROLE = "roles/aiplatform.user"
FIRESTORE_ROLE = "roles/datastore.user"


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    project: str
    # The identity pool `PROJECT.svc.id.goog` exists only once the cluster does.
    cluster: pulumi.Resource
    # The project lookup goes through the Resource Manager API, which a fresh project has off until `up`
    # enables it: without this edge the lookup races the enabling and fails with service-account credentials.
    resource_manager_api: pulumi.Resource
    chat_account: str
    firestore_database: str


def database_condition(project: str, database: str) -> gcp.projects.IAMMemberConditionArgs:
    """Limits a Firestore role to one database: Firestore's IAM conditions see `resource.name` as
    `projects/P/databases/D` (and documents below it)."""
    resource = f"projects/{project}/databases/{database}"
    return gcp.projects.IAMMemberConditionArgs(
        title=f"only {database}"[:100],
        description="hybrid-chat: the chat's own Firestore database",
        expression=f'resource.name == "{resource}" || resource.name.startsWith("{resource}/")',
    )


class WorkloadIdentity(pulumi.ComponentResource):
    number: pulumi.Output[str]
    principal: pulumi.Output[str]
    members: list[gcp.projects.IAMMember]

    def __init__(self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:WorkloadIdentity", name, {}, opts)
        self._project = args.project
        # Looked up rather than configured: one less thing to get wrong.
        self.number = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(depends_on=[args.resource_manager_api])
        ).number
        self.principal = self.principal_of(args.chat_account)
        child = pulumi.ResourceOptions(parent=self, depends_on=[args.cluster])
        # Members, never bindings: each adds one principal to a role and removes only that on destroy, so
        # another stack's (differently named) principal keeps its access.
        self.members = [
            gcp.projects.IAMMember(
                f"{name}-aiplatform-user", project=args.project, role=VERTEX_ROLE, member=self.principal, opts=child
            ),
            gcp.projects.IAMMember(
                f"{name}-datastore-user",
                project=args.project,
                role=FIRESTORE_ROLE,
                member=self.principal,
                condition=database_condition(args.project, args.firestore_database),
                opts=child,
            ),
        ]
        self.register_outputs({"principal": self.principal})

    def principal_of(self, account: str) -> pulumi.Output[str]:
        """The IAM principal of one of our Kubernetes service accounts."""
        return self.number.apply(lambda n: kube.workload_identity_principal(n, self._project, account))
