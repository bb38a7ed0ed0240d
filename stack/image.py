"""The chat image: an Artifact Registry repository and the image built from the root Dockerfile, or a given one."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_gcp as gcp

from stack import names


@dataclass(frozen=True)
class ChatImageArgs:
    project: str
    region: str
    registry_api: pulumi.Resource
    stack: str
    # The cluster's node service account (`serviceAccount:…`): it pulls the image, so it may read the repository.
    node_member: pulumi.Input[str]
    # A prebuilt image (ideally `…@sha256:…`): skips the registry and the build.
    prebuilt: str | None = None


class ChatImage(pulumi.ComponentResource):
    ref: pulumi.Output[str]
    """What the Deployment runs: `REPO@sha256:…`, so every new build rolls the pods and nothing else does."""

    def __init__(self, name: str, args: ChatImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:ChatImage", name, {}, opts)
        if args.prebuilt:
            self.ref = pulumi.Output.from_input(args.prebuilt)
            self.register_outputs({"ref": self.ref})
            return
        repository = gcp.artifactregistry.Repository(
            name,
            project=args.project,
            location=args.region,
            # Per stack: two stacks in one project would otherwise share (and one destroy delete) the repository.
            repository_id=names.repository(args.stack),
            format="DOCKER",
            description=f"hybrid-chat images ({args.stack})",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.registry_api]),
        )
        # On this repository only, not project-wide.
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-node-reader",
            project=args.project,
            location=args.region,
            repository=repository.repository_id,
            role="roles/artifactregistry.reader",
            member=args.node_member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        server = f"{args.region}-docker.pkg.dev"
        # The caller's own short-lived OAuth token: no key file, no `gcloud auth configure-docker` step.
        token = gcp.organizations.get_client_config_output().access_token
        image = docker.Image(
            name,
            image_name=repository.repository_id.apply(lambda repo: f"{server}/{args.project}/{repo}/chat:latest"),
            # Pulumi runs the program from the project directory, which is the repository root.
            build=docker.DockerBuildArgs(context=".", dockerfile="Dockerfile", platform="linux/amd64"),
            registry=docker.RegistryArgs(
                server=server, username="oauth2accesstoken", password=pulumi.Output.secret(token)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ref = image.repo_digest
        self.register_outputs({"ref": self.ref})
