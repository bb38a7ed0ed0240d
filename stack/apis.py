"""The Google APIs the program uses, enabled once and kept enabled on destroy."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

SERVICES = (
    "cloudresourcemanager.googleapis.com",  # project lookup and project IAM bindings
    "compute.googleapis.com",  # the front door's address and load balancer, the cluster's nodes
    "container.googleapis.com",
    "artifactregistry.googleapis.com",
    "firestore.googleapis.com",
    "aiplatform.googleapis.com",  # Gemini through Vertex AI
    "certificatemanager.googleapis.com",  # the front door's Google-managed certificate
    "iap.googleapis.com",  # Identity-Aware Proxy in front of the chat
    "iam.googleapis.com",  # the nodes' service account
    "storage.googleapis.com",  # the model weights bucket, the chat's image bucket
    "monitoring.googleapis.com",  # Managed Prometheus, the dashboard and the alert
    # Image streaming (GKE's "Use Image streaming" page: required): GPU nodes start vLLM before its image is
    # all there (stack/mirror.py).
    "containerfilesystem.googleapis.com",
)


@dataclass(frozen=True)
class ApisArgs:
    project: str


class Apis(pulumi.ComponentResource):
    services: dict[str, gcp.projects.Service]

    def __init__(self, name: str, args: ApisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Apis", name, {}, opts)
        # disable_on_destroy=False: other things in the project may use these APIs, and re-enabling is slow.
        self.services = {
            service: gcp.projects.Service(
                service.split(".")[0],
                project=args.project,
                service=service,
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for service in SERVICES
        }
        self.register_outputs({})

    def get(self, short: str) -> gcp.projects.Service:
        return self.services[f"{short}.googleapis.com"]
