"""The stack's own Cloud Storage buckets (model weights, chat images): one shape for both."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp


def stack_bucket(
    name: str, *, project: str, bucket_name: str, region: str, storage_api: pulumi.Resource, parent: pulumi.Resource
) -> gcp.storage.Bucket:
    """A private bucket beside the cluster that `pulumi destroy` deletes with everything in it."""
    return gcp.storage.Bucket(
        name,
        project=project,
        name=bucket_name,
        # Beside the GPUs and the chat: no cross-region transfer charges, the best throughput.
        location=region,
        storage_class="STANDARD",
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        force_destroy=True,
        # What the stack deletes is not worth keeping (and paying for) seven more days.
        soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(retention_duration_seconds=0),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[storage_api]),
    )
