"""The chat's image bucket: images people attach are stored here, outside the Firestore documents.

One bucket per stack, beside the cluster, private (uniform access, public access prevented), emptied and
deleted by `destroy` with everything else. Only the chat's Workload Identity principal gets object access,
on this bucket alone; deleted images are gone at once (no soft-delete copy of someone's picture).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stack import names
from stack.buckets import stack_bucket

# Create, read, list and delete objects; nothing on the bucket itself (its IAM, its settings).
OBJECT_ROLE = "roles/storage.objectUser"


@dataclass(frozen=True)
class MediaArgs:
    project: str
    region: str
    stack: str
    # The chat's Workload Identity principal (it exists once the cluster's identity pool does).
    principal: pulumi.Input[str]
    storage_api: pulumi.Resource
    cluster: pulumi.Resource


class Media(pulumi.ComponentResource):
    bucket: gcp.storage.Bucket
    member: gcp.storage.BucketIAMMember

    def __init__(self, name: str, args: MediaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Media", name, {}, opts)
        self.bucket = stack_bucket(
            name,
            project=args.project,
            bucket_name=names.media_bucket(args.project, args.stack),
            region=args.region,
            storage_api=args.storage_api,
            parent=self,
        )
        self.member = gcp.storage.BucketIAMMember(
            f"{name}-chat",
            bucket=self.bucket.name,
            role=OBJECT_ROLE,
            member=args.principal,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.cluster]),
        )
        self.register_outputs({"bucket": self.bucket.name})
