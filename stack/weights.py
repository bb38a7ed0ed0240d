"""Model weights cached in Cloud Storage: a per-stack bucket and a one-shot Job that copies the model into it.

Without it every start of the model server (restart, node upgrade, Spot preemption) downloaded the model from
Hugging Face: minutes each time, and no Gemma at all while Hugging Face was slow or rate-limiting. Now only
this Job talks to Hugging Face (it alone holds the token, when one is set) and vLLM reads the bucket through
Cloud Storage FUSE, as Google's own L4 manifests do (the seed's vLLM 0.10.2 cannot stream `gs://` itself).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from stack import egress, kube, names, pod_security
from stack.buckets import stack_bucket

JOB = "weights-copy"
TOKEN_SECRET = "hf-token"
# Inside the bucket: one folder per model id, so changing gemmaModel copies the new one beside the old.
PREFIX = "models"
# Written last, listing every file and its size: a model folder without it is incomplete, never served.
MARKER = ".complete"
FUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
# Asks GKE's webhook to add the Cloud Storage FUSE sidecar to the pod.
FUSE_ANNOTATION = {"gke-gcsfuse/volumes": "true"}
# Mount point in every pod that uses the bucket.
MOUNT = "/weights"
# Where the FUSE sidecar stages writes (a file before its upload: its temp dir lives in this volume, per
# gcs-fuse-csi-driver pkg/sidecar_mounter/sidecar_mounter.go createBufferTempDir). Of its volumes only this and
# `gke-gcsfuse-cache` may be declared by the pod (they replace the webhook's defaults); `gke-gcsfuse-tmp` is
# always injected, so declaring it too makes two volumes of one name and the pod is rejected
# (gcs-fuse-csi-driver pkg/webhook/sidecar_spec.go, GetSidecarContainerVolumeSpec). The largest safetensors
# shard of the presets is ~5 GB.
FUSE_BUFFER_VOLUME = "gke-gcsfuse-buffer"
FUSE_BUFFER_SIZE = "6Gi"
# The sidecar streams every byte of the model: its 256Mi default memory gets it OOM-killed
# (gcs-fuse-csi-driver#314). Its requests count in the pod's total: with the copy container's 7Gi, 8Gi of
# ephemeral storage, inside Autopilot's 10 GiB for a general-purpose pod.
FUSE_SIDECAR = {
    "gke-gcsfuse/cpu-limit": "500m",
    "gke-gcsfuse/cpu-request": "500m",
    "gke-gcsfuse/memory-limit": "2Gi",
    "gke-gcsfuse/memory-request": "2Gi",
    "gke-gcsfuse/ephemeral-storage-limit": "1Gi",
    "gke-gcsfuse/ephemeral-storage-request": "1Gi",
}
# The key the Job's log names when a model turns out to be gated.
TOKEN_KEY = "hybrid-chat:hfToken"

# Streams each file from Hugging Face straight into the bucket (no local copy), skipping files already there
# with the right size, so a retried Job resumes. Only safetensors weights: never pickles (*.bin, *.pth), never
# the duplicate `original/` checkpoints or GGUF conversions. The token is huggingface_hub's own (HF_TOKEN, or
# the file HF_TOKEN_PATH names), optional: a 401 or 403 stops with the config key that fixes it.
COPY_SCRIPT = """
import json, os, sys
import huggingface_hub as hub, requests

repo, dest, token_key = sys.argv[1], sys.argv[2], sys.argv[4]
marker = os.path.join(dest, sys.argv[3])
if os.path.exists(marker):
    print(f"{repo}: already in the bucket"); sys.exit(0)
token = hub.get_token()

def refused(status):
    said = "was refused" if token else "needs a token"
    sys.exit(f"{repo} {said} (HTTP {status}): the model is gated or private. Accept its licence on "
             f"huggingface.co with your account, then `pulumi config set --secret {token_key} hf_...` "
             "(a token of that account) and `pulumi up`")

def status_of(error):
    return getattr(getattr(error, "response", None), "status_code", None)

try:
    files = hub.list_repo_files(repo, token=token)
except Exception as error:
    if status_of(error) in (401, 403):
        refused(status_of(error))
    raise
weights = [f for f in files if f.endswith(".safetensors")]
if not weights:
    sys.exit(f"{repo} has no safetensors weights")
wanted = [f for f in files if not f.startswith("original/") and not f.endswith((".gguf", ".bin", ".pth", ".pt"))
          and not f.startswith(".")]
headers = {"Authorization": f"Bearer {token}"} if token else {}
sizes = {}
for name in wanted:
    url = hub.hf_hub_url(repo, name)
    try:
        size = hub.get_hf_file_metadata(url, token=token).size
    except Exception as error:
        if status_of(error) in (401, 403):
            refused(status_of(error))
        raise
    target = os.path.join(dest, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if size is not None and os.path.exists(target) and os.path.getsize(target) == size:
        print(f"{name}: already copied"); sizes[name] = size; continue
    with requests.get(url, headers=headers, stream=True, timeout=60) as response:
        if response.status_code in (401, 403):
            refused(response.status_code)
        response.raise_for_status()
        with open(target, "wb") as out:
            for chunk in response.iter_content(chunk_size=16 << 20):
                out.write(chunk)
    copied = os.path.getsize(target)
    if size is not None and copied != size:
        sys.exit(f"{name}: copied {copied} bytes, expected {size}")
    print(f"{name}: {copied} bytes copied", flush=True)
    sizes[name] = copied
with open(marker, "w") as out:
    json.dump(sizes, out)
print(f"{repo}: {sum(sizes.values())} bytes in {len(sizes)} files")
"""


@dataclass(frozen=True)
class WeightsArgs:
    project: str
    region: str
    stack: str
    model: str
    # The vLLM image: it already carries huggingface_hub and requests, and the GPU node pulls it anyway.
    image: str
    hf_token: pulumi.Input[str] | None
    """None: anonymous downloads (enough for ungated models)."""
    checksum_key: pulumi.Input[str]
    # Turns a Kubernetes service account name into its Workload Identity principal (after the project lookup).
    principal_of: Callable[[str], pulumi.Output[str]]
    storage_api: pulumi.Resource
    cluster: pulumi.Resource
    provider: k8s.Provider
    namespace: pulumi.Resource
    # What must exist before the pod pulls `image` (the mirror and the nodes' right to read it).
    pullable: list[pulumi.Resource] = field(default_factory=list)


def model_dir(model: str) -> str:
    """Where `model` appears in the pods: the volumes mount only PREFIX, so `PREFIX/<model>` in the bucket."""
    return posixpath.join(MOUNT, model)


def bucket_volume(
    name: str, bucket: pulumi.Input[str], read_only: bool, mount_options: str, **attributes: str
) -> k8s.core.v1.VolumeArgs:
    """A Cloud Storage FUSE CSI ephemeral volume of `bucket`, mounted only below PREFIX."""
    return k8s.core.v1.VolumeArgs(
        name=name,
        csi=k8s.core.v1.CSIVolumeSourceArgs(
            driver=FUSE_DRIVER,
            read_only=read_only,
            volume_attributes={
                "bucketName": bucket,
                "mountOptions": f"only-dir={PREFIX},{mount_options}",
                **attributes,
            },
        ),
    )


class Weights(pulumi.ComponentResource):
    bucket: gcp.storage.Bucket
    job: k8s.batch.v1.Job
    reader_account: str
    """The Kubernetes service account allowed to read the bucket (the model server's)."""
    readable: list[pulumi.Resource]
    """What a reader must wait for: its bucket role."""

    def __init__(self, name: str, args: WeightsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Weights", name, {}, opts)
        # `destroy` deletes the bucket with the weights in it; they can always be copied again.
        self.bucket = stack_bucket(
            name,
            project=args.project,
            bucket_name=names.weights_bucket(args.project, args.stack),
            region=args.region,
            storage_api=args.storage_api,
            parent=self,
        )
        writer_account = names.kubernetes_account("weights-writer", args.stack)
        self.reader_account = names.kubernetes_account(kube.GEMMA_SERVICE, args.stack)
        # Roles on this bucket only; the principals exist once the cluster (its identity pool) does.
        bucket_child = pulumi.ResourceOptions(parent=self, depends_on=[args.cluster])
        writer_role = gcp.storage.BucketIAMMember(
            f"{name}-writer",
            bucket=self.bucket.name,
            role="roles/storage.objectUser",
            member=args.principal_of(writer_account),
            opts=bucket_child,
        )
        reader_role = gcp.storage.BucketIAMMember(
            f"{name}-reader",
            bucket=self.bucket.name,
            role="roles/storage.objectViewer",
            member=args.principal_of(self.reader_account),
            opts=bucket_child,
        )
        self.readable = [reader_role]

        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        labels = kube.labels(JOB, "weights")

        def meta(object_name: str, annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=kube.NAMESPACE, labels=labels, annotations=annotations
            )

        writer = k8s.core.v1.ServiceAccount(
            writer_account, metadata=meta(writer_account), automount_service_account_token=False, opts=child
        )
        uid = pod_security.MODEL_UID
        egress.public_https_only(JOB, kube.selector_labels(JOB), labels, child)
        needs: list[pulumi.Resource] = [writer, writer_role, *args.pullable]
        # The token as a file (stack/pod_security.py), when there is one: public models need none.
        token_volumes: list[k8s.core.v1.VolumeArgs] = []
        token_mounts: list[k8s.core.v1.VolumeMountArgs] = []
        token_env: list[k8s.core.v1.EnvVarArgs] = []
        if args.hf_token is not None:
            needs.append(
                k8s.core.v1.Secret(
                    TOKEN_SECRET,
                    metadata=meta(TOKEN_SECRET),
                    type="Opaque",
                    string_data={"token": args.hf_token},
                    opts=child,
                )
            )
            volume, mount, path = pod_security.hf_token_file(TOKEN_SECRET, "token")
            token_volumes, token_mounts, token_env = [volume], [mount], [path]
        pod_annotations = pulumi.Output.all(
            kube.checksum_annotation(args.checksum_key, args.hf_token, args.model)
        ).apply(lambda parts: {**FUSE_ANNOTATION, **FUSE_SIDECAR, **parts[0]})
        # Ephemeral storage covers the buffer and /tmp volumes: the kubelet counts them against the pod's limits.
        size = {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "7Gi"}
        self.job = k8s.batch.v1.Job(
            JOB,
            # Not awaited: the copy takes minutes to tens of minutes, and the model server waits for it anyway.
            metadata=meta(JOB, {"pulumi.com/skipAwait": "true"}),
            spec=k8s.batch.v1.JobSpecArgs(
                # Hugging Face hiccups, and a bucket role still propagating on a first `up` (up to ~7 minutes):
                # retries back off to 6 minutes apart, and each resumes where the last one stopped.
                backoff_limit=10,
                active_deadline_seconds=4 * 3600,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=pod_annotations),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=writer_account,
                        # It never calls the Kubernetes API; Workload Identity and the FUSE driver need no token.
                        automount_service_account_token=False,
                        restart_policy="Never",
                        enable_service_links=False,
                        security_context=pod_security.pod_context(uid, fs_group=True),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="copy",
                                image=args.image,
                                command=[
                                    *("python3", "-c", COPY_SCRIPT),
                                    *(args.model, model_dir(args.model), MARKER, TOKEN_KEY),
                                ],
                                env=[
                                    *token_env,
                                    k8s.core.v1.EnvVarArgs(name="HF_HOME", value="/tmp/huggingface"),
                                    k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(requests=size, limits=size),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(name="weights", mount_path=MOUNT),
                                    k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                                    *token_mounts,
                                ],
                                security_context=pod_security.container_context(),
                            )
                        ],
                        volumes=[
                            # uid/gid: the files the copy writes belong to the container's user.
                            bucket_volume("weights", self.bucket.name, False, f"uid={uid},gid={uid}"),
                            k8s.core.v1.VolumeArgs(
                                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="512Mi")
                            ),
                            k8s.core.v1.VolumeArgs(
                                name=FUSE_BUFFER_VOLUME,
                                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=FUSE_BUFFER_SIZE),
                            ),
                            *token_volumes,
                        ],
                    ),
                ),
            ),
            # Replaced (not patched: a Job's template is immutable) when the model or token changes.
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(depends_on=needs, delete_before_replace=True),
            ),
        )
        self.register_outputs({"bucket": self.bucket.name})
