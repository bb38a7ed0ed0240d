"""The vLLM image from the project's own Artifact Registry: a remote repository of Docker Hub in the cluster's
region, so that a GPU node waking the model server streams the image instead of downloading it whole.

Checked 2026-12-06 against Google's pages:
- GKE "Use Image streaming to pull container images": Autopilot uses image streaming for eligible images by
  itself; eligible means stored in Artifact Registry, standard or remote repository; the Container File System
  API must be enabled (stack/apis.py); nodes running as a custom service account (ours, stack/cluster.py) need
  `roles/serviceusage.serviceUsageConsumer` in the project that hosts the image. Images with duplicate or empty
  layers are pulled whole instead (whether vLLM's are is not checked here).
- Artifact Registry "Remote repositories overview": the first pull of a version fetches it from Docker Hub and
  caches it; later pulls (every wake-up) are served from the cache, also while Docker Hub is down or limiting.
  pulumi-gcp 10.2 (requirements.txt): `Repository(mode="REMOTE_REPOSITORY", remote_repository_config=
  {docker_repository: {public_repository: "DOCKER_HUB"}})`.
The digest pin survives the detour: the mirror keeps Docker Hub's path and the reference keeps its digest, and a
client pulling `…@sha256:D` checks that the manifest it receives hashes to D (OCI distribution spec, "Pulling
manifests"), so through the mirror the pod gets exactly the pinned image or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stack import names

# Hosts that name Docker Hub in an image reference; a reference with no host is Docker Hub too.
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


def docker_hub_path(image: str) -> str | None:
    """`image`'s path on Docker Hub (`vllm/vllm-openai:v0.26.0@sha256:…`; official images under `library/`),
    or None when it names another registry (which the mirror cannot serve; the pod pulls it from there)."""
    host, _, rest = image.partition("/")
    # Docker's rule (distribution/reference, normalize.go splitDockerDomain): the first component is a registry
    # host when it has a dot or a port, or is localhost.
    if rest and ("." in host or ":" in host or host == "localhost"):
        if host not in DOCKER_HUB_HOSTS:
            return None
        image = rest
    return image if "/" in image else f"library/{image}"


def mirrored(image: str, region: str, project: str, repository: str) -> str:
    """What a pod pulls for `image`: the remote repository's copy of a Docker Hub image (tag and digest kept),
    anything else unchanged."""
    path = docker_hub_path(image)
    return image if path is None else f"{region}-docker.pkg.dev/{project}/{repository}/{path}"


@dataclass(frozen=True)
class MirrorArgs:
    project: str
    region: str
    stack: str
    registry_api: pulumi.Resource
    # The cluster's node service account (`serviceAccount:…`): the kubelet pulls with it.
    node_member: pulumi.Input[str]


class DockerHubMirror(pulumi.ComponentResource):
    repository: gcp.artifactregistry.Repository
    pullable: list[pulumi.Resource]
    """What a pod pulling through the mirror must wait for: the repository and the nodes' right to read it."""

    def __init__(self, name: str, args: MirrorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:DockerHubMirror", name, {}, opts)
        self._args = args
        self.repository_id = names.mirror_repository(args.stack)
        # Per stack, like the chat's repository: `destroy` deletes it and its cached images (nothing else needs
        # them; the next `up` fetches them again on first pull).
        self.repository = gcp.artifactregistry.Repository(
            name,
            project=args.project,
            location=args.region,
            repository_id=self.repository_id,
            format="DOCKER",
            mode="REMOTE_REPOSITORY",
            description=f"hybrid-chat: Docker Hub, cached beside the cluster ({args.stack})",
            remote_repository_config=gcp.artifactregistry.RepositoryRemoteRepositoryConfigArgs(
                description="Docker Hub",
                docker_repository=gcp.artifactregistry.RepositoryRemoteRepositoryConfigDockerRepositoryArgs(
                    public_repository="DOCKER_HUB"
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.registry_api]),
        )
        # On this repository only, like the chat's (stack/image.py).
        reader = gcp.artifactregistry.RepositoryIamMember(
            f"{name}-node-reader",
            project=args.project,
            location=args.region,
            repository=self.repository.repository_id,
            role="roles/artifactregistry.reader",
            member=args.node_member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.pullable = [self.repository, reader]
        self.register_outputs({"repository": self.repository.repository_id})

    def ref(self, image: str) -> str:
        """The reference a pod pulls for `image` (see `mirrored`). A plain string, known before `up`: the
        repository's name is ours, so the pod template and its checksum never wait on the cloud."""
        return mirrored(image, self._args.region, self._args.project, self.repository_id)
