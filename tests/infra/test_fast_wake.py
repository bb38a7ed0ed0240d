"""Fast wake-up of the model server (issue 18), on the rendered objects: the weights come only from the bucket,
the vLLM image from the project's own registry (image streaming), the GPU pod stays eligible for Autopilot's
fast-starting nodes, and the dashboard shows each cold-start stage with metrics and logs that exist."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pulumi_gcp as gcp
import pytest

from stack import monitoring, weights
from stack.gemma import server_args
from stack.mirror import docker_hub_path, mirrored
from stack.presets import DEFAULT_PRESET, PRESETS
from tests.infra import admission
from tests.infra.rendering import DOCKER_HUB_MIRROR, PROJECT, REGION, config_args, plan, run_render

REPOSITORY = "gcp:artifactregistry/repository:Repository"
REPOSITORY_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
SERVICE = "gcp:projects/service:Service"
CLUSTER = "gcp:container/cluster:Cluster"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
# huggingface_hub's constants.py: HF_HUB_OFFLINE = _is_true(HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE), and _is_true
# accepts these (upper-cased); vLLM and transformers read that same constant.
HF_TRUE = {"1", "ON", "YES", "TRUE"}


def template(p, kind, name):
    return p.manifest(kind, name)["spec"]["template"]


def arg(args, flag):
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]
    return value


def bucket_object(spec, container, path):
    """Where `path` inside `container` lives in Cloud Storage: (bucket, object prefix), through the FUSE volume
    mounted above it (`only-dir=D` mounts the bucket's folder D at the mount point)."""
    mounts = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert len(mounts) == 1, f"{container['name']} reads {path!r} from no mounted volume (a download?)"
    (mount,) = mounts
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["csi"]["driver"] == weights.FUSE_DRIVER, volume
    attributes = volume["csi"]["volumeAttributes"]
    options = dict(o.split("=", 1) for o in attributes["mountOptions"].split(",") if "=" in o)
    relative = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    return attributes["bucketName"], f"{options['only-dir']}/{relative}", mount, volume


# --- weights: the bucket, never Hugging Face ---------------------------------------------------------------------


def test_on_wake_the_model_server_reads_only_what_the_copy_job_wrote(default_plan):
    gemma = template(default_plan, "Deployment", "gemma")["spec"]
    (vllm,) = gemma["containers"]
    model = arg(vllm["args"], "--model")
    bucket, prefix, mount, volume = bucket_object(gemma, vllm, model)
    # Read-only, from the stack's weights bucket: the same folder the Job writes into.
    assert mount["readOnly"] is True and volume["csi"]["readOnly"] is True
    assert bucket == default_plan.one("gcp:storage/bucket:Bucket", "weights")["inputs"]["name"]
    job = template(default_plan, "Job", "weights-copy")["spec"]
    (copy,) = job["containers"]
    destination = copy["command"][copy["command"].index(PRESETS[DEFAULT_PRESET].model) + 1]
    assert bucket_object(job, copy, destination)[:2] == (bucket, prefix)
    # vLLM answers to the Hugging Face id the chat asks for, but loads nothing by that id.
    assert arg(vllm["args"], "--served-model-name") == PRESETS[DEFAULT_PRESET].model
    assert not [a for a in vllm["args"] if a.startswith(("--tokenizer=", "--download-dir=", "--hf-token"))]
    # The pod starts only on a complete copy: the init container waits for the Job's marker in that folder.
    (wait,) = gemma["initContainers"]
    assert f"{model}/{weights.MARKER}" in wait["command"][-1]


def test_the_model_server_has_no_way_to_reach_hugging_face(default_plan):
    gemma = template(default_plan, "Deployment", "gemma")["spec"]
    for container in [*gemma["initContainers"], *gemma["containers"]]:
        env = {e["name"]: e for e in container.get("env", [])}
        assert not env.keys() & {"HF_TOKEN", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"}
    (vllm,) = gemma["containers"]
    offline = [e["value"] for e in vllm["env"] if e["name"] == "HF_HUB_OFFLINE"]
    assert len(offline) == 1 and offline[0].upper() in HF_TRUE
    # No token file either (only the copy Job mounts it).
    assert not [v for v in gemma["volumes"] if "secret" in v]


class CountingHub(ThreadingHTTPServer):
    """Stands in for huggingface.co: counts every request and answers none usefully."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.paths: list[str] = []


class HubHandler(BaseHTTPRequestHandler):
    server: CountingHub

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET


DOWNLOAD = """
import sys
from huggingface_hub import hf_hub_download
try:
    hf_hub_download(sys.argv[1], "config.json")
except Exception as error:
    print(type(error).__name__)
"""


def fetch_config(environment: dict[str, str], hub: CountingHub, tmp_path) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
        **environment,
    }
    result = subprocess.run(
        [sys.executable, "-c", DOWNLOAD, PRESETS[DEFAULT_PRESET].model],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_rendered_environment_keeps_the_hugging_face_client_offline(default_plan, tmp_path):
    # The real client, the model server's environment as rendered (HF_* only), a local stand-in for the Hub.
    (vllm,) = template(default_plan, "Deployment", "gemma")["spec"]["containers"]
    rendered = {e["name"]: e["value"] for e in vllm["env"] if e["name"].startswith("HF_") and e["name"] != "HF_HOME"}
    hub = CountingHub()
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    try:
        # Control: without the rendered variables the client does go to the (stand-in) Hub.
        fetch_config({}, hub, tmp_path)
        assert hub.paths, "the stand-in Hub was never asked: the test would prove nothing"
        hub.paths.clear()
        failure = fetch_config(rendered, hub, tmp_path)
        assert failure  # it gave up locally
        assert hub.paths == []
    finally:
        hub.shutdown()
        hub.server_close()


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_serves_the_bucket_copy(name):
    args = server_args(PRESETS[name])
    assert arg(args, "--model") == weights.model_dir(PRESETS[name].model)
    assert arg(args, "--model").startswith(weights.MOUNT + "/")


# --- the vLLM image: the project's Artifact Registry, so image streaming applies ------------------------------


def test_vllm_is_pulled_from_the_projects_mirror_of_docker_hub_pinned_by_digest(default_plan):
    preset = PRESETS[DEFAULT_PRESET]
    expected = f"{DOCKER_HUB_MIRROR}/vllm/vllm-openai:v0.26.0@{preset.digest}"
    gemma = template(default_plan, "Deployment", "gemma")["spec"]
    job = template(default_plan, "Job", "weights-copy")["spec"]
    images = {c["image"] for c in [*gemma["initContainers"], *gemma["containers"], *job["containers"]]}
    assert images == {expected}
    repository = default_plan.one(REPOSITORY, "vllm-mirror")["inputs"]
    # A remote repository of Docker Hub, in the cluster's region (its host names the region).
    assert repository["mode"] == "REMOTE_REPOSITORY" and repository["format"] == "DOCKER"
    assert repository["remoteRepositoryConfig"]["dockerRepository"] == {"publicRepository": "DOCKER_HUB"}
    assert repository["location"] == REGION == default_plan.one(CLUSTER)["inputs"]["location"]
    assert expected.startswith(f"{REGION}-docker.pkg.dev/{PROJECT}/{repository['repositoryId']}/")
    # The nodes may read it, and nothing pulls before the repository and that right exist.
    reader = default_plan.one(REPOSITORY_MEMBER, "vllm-mirror-node-reader")["inputs"]
    nodes = default_plan.one("gcp:serviceaccount/account:Account")["inputs"]["accountId"]
    assert reader["role"] == "roles/artifactregistry.reader"
    assert reader["member"] == f"serviceAccount:{nodes}@{PROJECT}.iam.gserviceaccount.com"
    for kind, name in ((DEPLOYMENT, "gemma"), (JOB, "weights-copy")):
        assert default_plan.depends_on(kind, name, REPOSITORY, "vllm-mirror")
        assert default_plan.depends_on(kind, name, REPOSITORY_MEMBER, "vllm-mirror-node-reader")


def test_the_pinned_sdk_takes_the_remote_repository_as_written():
    # pulumi-gcp 10.2 (requirements.txt): the values the mirror uses are the documented ones.
    repository = inspect.getdoc(gcp.artifactregistry.RepositoryArgs.__init__) or ""
    assert "`REMOTE_REPOSITORY`" in repository
    docker = inspect.getdoc(gcp.artifactregistry.RepositoryRemoteRepositoryConfigDockerRepositoryArgs.__init__)
    assert "`DOCKER_HUB`" in (docker or "")


def test_image_streamings_requirements_are_in_the_stack(default_plan):
    # GKE "Use Image streaming": the Container File System API, and for nodes with their own service account
    # the Service Usage Consumer role in the image's project. Autopilot then streams eligible images by itself.
    cluster = default_plan.one(CLUSTER)["inputs"]
    assert cluster["enableAutopilot"] is True
    assert {s["inputs"]["service"] for s in default_plan.of_type(SERVICE)} >= {"containerfilesystem.googleapis.com"}
    assert default_plan.depends_on(CLUSTER, "cluster", SERVICE, "containerfilesystem")
    streaming = default_plan.one(PROJECT_MEMBER, "cluster-nodes-image-streaming")["inputs"]
    node_account = cluster["clusterAutoscaling"]["autoProvisioningDefaults"]["serviceAccount"]
    assert (streaming["role"], streaming["member"], streaming["project"]) == (
        "roles/serviceusage.serviceUsageConsumer",
        f"serviceAccount:{node_account}",
        PROJECT,
    )
    assert default_plan.depends_on(CLUSTER, "cluster", PROJECT_MEMBER, "cluster-nodes-image-streaming")


@pytest.mark.parametrize(
    ("image", "path"),
    [
        ("vllm/vllm-openai:v0.26.0@sha256:" + "a" * 64, "vllm/vllm-openai:v0.26.0@sha256:" + "a" * 64),
        ("docker.io/vllm/vllm-openai:v0.10.2", "vllm/vllm-openai:v0.10.2"),
        ("index.docker.io/vllm/vllm-openai", "vllm/vllm-openai"),
        ("ubuntu:24.04", "library/ubuntu:24.04"),  # official images live under library/
        ("us-docker.pkg.dev/p/r/vllm:1", None),
        ("ghcr.io/org/vllm:1", None),
        ("localhost:5000/vllm:1", None),
        ("registry.example.com:5000/vllm", None),
    ],
)
def test_only_docker_hub_images_go_through_the_mirror(image, path):
    assert docker_hub_path(image) == path
    expected = image if path is None else f"r-docker.pkg.dev/p/m/{path}"
    assert mirrored(image, "r", "p", "m") == expected


@pytest.mark.parametrize("name", PRESETS)
def test_the_mirror_keeps_each_presets_tag_and_digest(name):
    preset = PRESETS[name]
    ref = mirrored(preset.image_ref, REGION, PROJECT, "m")
    assert ref.endswith("/" + preset.image_ref)
    assert ("@sha256:" in ref) == bool(preset.digest)


def test_an_image_from_another_registry_is_pulled_from_there():
    own = "us-docker.pkg.dev/other-project/images/vllm-openai:v0.26.0"
    (container,) = template(plan({"vllmImage": own}), "Deployment", "gemma")["spec"]["containers"]
    assert container["image"] == own


# --- Autopilot's fast-starting nodes: nothing in the GPU pod rules them out ------------------------------------

# GKE "About quicker workload startup with fast-starting nodes" (page of 2026-04-10, read 2026-12-06): Autopilot
# picks them by itself, best effort, for G2 (NVIDIA L4) nodes on the Rapid and Regular channels from 1.31, with a
# pd-balanced boot disk of at most 500 GiB and no Local SSD; Spot VMs, placement policies, CMEK, multi-network and
# (before 1.33.0-gke.1304000) the DEFAULT GPU driver fall back to normal start-up. Node labels a pod selects
# those with on Autopilot:
INCOMPATIBLE_SELECTORS = {
    "cloud.google.com/gke-spot",
    "cloud.google.com/gke-ephemeral-storage-local-ssd",
    "cloud.google.com/gke-placement-group",
    "cloud.google.com/placement-policy-name",
}
FAST_START_BOOT_DISK_GIB = 500


def test_the_gpu_pod_stays_eligible_for_fast_starting_nodes(default_plan):
    cluster = default_plan.one(CLUSTER)["inputs"]
    assert cluster["enableAutopilot"] is True
    assert cluster["releaseChannel"]["channel"] in ("RAPID", "REGULAR")
    defaults = cluster["clusterAutoscaling"]["autoProvisioningDefaults"]
    assert "bootDiskKmsKey" not in defaults  # no CMEK on node boot disks
    pod = template(default_plan, "Deployment", "gemma")
    spec = pod["spec"]
    selector = spec["nodeSelector"]
    assert selector["cloud.google.com/gke-accelerator"] == "nvidia-l4"  # G2, the eligible GPU
    # LATEST qualifies on every version; DEFAULT only from 1.33.0-gke.1304000 (the cluster's version is not pinned).
    assert selector["cloud.google.com/gke-gpu-driver-version"] == "latest"
    assert "affinity" not in spec  # node labels are chosen by the nodeSelector alone
    assert not INCOMPATIBLE_SELECTORS & selector.keys()
    assert selector.get("cloud.google.com/gke-boot-disk", "pd-balanced") == "pd-balanced"
    # Autopilot backs the pod's ephemeral storage with the boot disk: the whole pod, FUSE sidecar included.
    total = admission.pod_total(admission.mutate_fuse(pod), "ephemeral-storage")
    assert 0 < total <= FAST_START_BOOT_DISK_GIB * 2**30


def test_spot_is_a_choice_that_gives_up_fast_starting_nodes():
    spot = template(plan({"gemmaSpot": "true"}), "Deployment", "gemma")["spec"]["nodeSelector"]
    assert INCOMPATIBLE_SELECTORS & spot.keys() == {"cloud.google.com/gke-spot"}


# --- the dashboard: each cold-start stage, from metrics and logs that exist ----------------------------------

# Cloud Monitoring "Kubernetes metrics" (checked 2026-12-06): kind and monitored resource of each system metric
# the cold-start tiles read. A monitored resource's labels are what PromQL filters on.
SYSTEM_METRICS = {
    "kubernetes.io/node/latencies/startup": ("GAUGE", "k8s_node", {"accelerator_family"}),
    "kubernetes.io/pod/latencies/pod_first_ready": ("GAUGE", "k8s_pod", set()),
    "kubernetes.io/gcsfusecsi/gcs_download_bytes_count": (
        "CUMULATIVE",
        "k8s_pod",
        {"read_type", "volume_name", "bucket_name", "pod_uid"},
    ),
}
RESOURCE_LABELS = {
    "k8s_node": {"project_id", "location", "cluster_name", "node_name"},
    "k8s_pod": {"project_id", "location", "cluster_name", "namespace_name", "pod_name"},
}


def test_promql_names_follow_cloud_monitorings_mapping():
    # The page's own example.
    assert (
        monitoring.promql_name("kubernetes.io/container/cpu/limit_cores") == "kubernetes_io:container_cpu_limit_cores"
    )


def selectors(query: str, metric: str) -> list[set[str]]:
    """The label names each use of `metric` in `query` filters on."""
    found = []
    for part in query.split(metric + "{")[1:]:
        inside = part.split("}", 1)[0]
        found.append({term.split("=")[0].rstrip("!~") for term in inside.split(",")})
    return found


@pytest.mark.parametrize("key", ["gpu_node_startup", "gemma_first_ready", "gemma_weights_read"])
def test_cold_start_queries_read_system_metrics_by_their_own_labels(key):
    query = monitoring.queries("c")[key]
    used = [(metric, monitoring.promql_name(metric)) for metric in SYSTEM_METRICS]
    ((metric, name),) = [(m, n) for m, n in used if n + "{" in query]
    kind, resource, labels = SYSTEM_METRICS[metric]
    for label_set in selectors(query, name):
        # cluster_name, not Managed Prometheus' `cluster`: a wrong name matches nothing and the tile stays empty.
        assert "cluster_name" in label_set
        assert label_set <= RESOURCE_LABELS[resource] | labels, label_set
    # rate() only over counters; a gauge of latencies is shown as it is.
    assert (f"rate({name}" in query) == (kind == "CUMULATIVE")


def test_the_gemma_pods_fuse_volume_exports_the_metrics_the_weights_tile_reads(default_plan):
    gemma = template(default_plan, "Deployment", "gemma")["spec"]
    (volume,) = [v for v in gemma["volumes"] if v.get("csi", {}).get("driver") == weights.FUSE_DRIVER]
    # GKE's FUSE volume attributes reference: "true" by default from 1.33.0-gke.2248000 on.
    assert volume["csi"]["volumeAttributes"].get("disableMetrics") == "false"


def test_the_cold_start_section_is_on_the_dashboard_with_gemma_only(default_plan, gemma_off_plan):
    def tiles(p):
        board = json.loads(p.one("gcp:monitoring/dashboard:Dashboard")["inputs"]["dashboardJson"])
        return board["mosaicLayout"]["tiles"]

    on = tiles(default_plan)
    titles = [t["widget"]["title"] for t in on]
    for stage in ("GPU node", "Gemma pod", "weights read", "Cold start stages"):
        assert any(stage in title for title in titles), stage
    (panel,) = [t["widget"]["logsPanel"] for t in on if "logsPanel" in t["widget"]]
    assert panel["filter"] == monitoring.cold_start_log_filter("gradio-chat-cluster")
    # Full width, below every chart, overlapping none.
    (logs,) = [t for t in on if "logsPanel" in t["widget"]]
    assert logs["width"] == 48 and all(t["yPos"] + t["height"] <= logs["yPos"] for t in on if t is not logs)
    assert not [t for t in tiles(gemma_off_plan) if "Cold start" in t["widget"]["title"]]


def test_the_cold_start_log_query_selects_this_stacks_gemma_pod_events_and_vllm_timings():
    query = monitoring.cold_start_log_filter("c")
    assert 'resource.labels.cluster_name="c"' in query and 'resource.labels.namespace_name="hybrid-chat"' in query
    assert 'resource.labels.pod_name:"gemma-"' in query
    # GKE writes Kubernetes events to the `events` log with the reason in jsonPayload (Google's GKE logging query
    # reference); container output of plain text lands in textPayload.
    assert 'log_id("events") jsonPayload.reason=(' in query
    assert 'resource.labels.container_name="vllm" textPayload:(' in query
    for reason in ("TriggeredScaleUp", "Scheduled", "Pulled", "Started"):
        assert f'"{reason}"' in query
    for line in monitoring.VLLM_STARTUP_LINES:
        assert f'"{line}"' in query


def test_vllm_arguments_that_name_another_source_are_refused():
    for extra in ('["--tokenizer=google/gemma-4-31b-it"]', '["--model=google/gemma-4-31b-it"]'):
        result = run_render(*config_args({"gcp:project": PROJECT, "gemmaVllmArgs": extra}, {}))
        assert result.returncode == 2, result.stderr
        assert "gemmaVllmArgs must not name where the model comes from" in result.stderr
