"""What a real project needs and mocks alone would not show: its own network and node identity, GPUs that start
and cost what they should, weights from the stack's bucket, rollouts on secret changes, two stacks side by side."""

import json

import pytest

from stack import gemma, kube, names, weights
from stack.config import minimum_gpus
from stack.mocks import FAKE_PROJECT_NUMBER
from stack.presets import DEFAULT_PRESET, PRESETS, VLLM_GEMMA4_DIGEST
from tests.infra.rendering import DOCKER_HUB_MIRROR, HF_TOKEN, PROJECT, REGION, config_args, plan, run_render

CHECKSUM = kube.CHECKSUM_ANNOTATION


def principal(account):
    return (
        f"principal://iam.googleapis.com/projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
        f"{PROJECT}.svc.id.goog/subject/ns/hybrid-chat/sa/{account}"
    )


def pod(p, kind, name):
    return p.manifest(kind, name)["spec"]["template"]


def annotation(p, kind, name):
    return pod(p, kind, name)["metadata"]["annotations"][CHECKSUM]


@pytest.fixture(scope="module")
def prod_plan():
    """A second stack in the same project, with its own cluster and database names (README: several stacks)."""
    return plan({"clusterName": "chat-prod", "firestoreDatabase": "chat-prod-db"}, stack="prod")


@pytest.fixture(scope="module")
def other_users_plan():
    return plan(secret={"chatAuthUsers": "alice:wonderland-secret"})


@pytest.fixture(scope="module")
def other_token_plan():
    return plan(secret={"hfToken": HF_TOKEN + "-rotated"})


# --- cluster: own network, own node identity ------------------------------------------------------------------


def test_cluster_runs_on_its_own_vpc_native_network(default_plan):
    network = default_plan.one("gcp:compute/network:Network")["inputs"]
    subnet = default_plan.one("gcp:compute/subnetwork:Subnetwork")["inputs"]
    cluster = default_plan.one("gcp:container/cluster:Cluster")["inputs"]
    assert network["name"] == "hybrid-chat-dev"
    assert network["autoCreateSubnetworks"] is False
    assert subnet["region"] == REGION and subnet["privateIpGoogleAccess"] is True
    ranges = {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]}
    assert set(ranges) == {"pods", "services"}
    assert cluster["network"] == "cluster-network-id" and cluster["subnetwork"] == "cluster-subnet-id"
    assert cluster["networkingMode"] == "VPC_NATIVE"
    assert cluster["ipAllocationPolicy"] == {
        "clusterSecondaryRangeName": "pods",
        "servicesSecondaryRangeName": "services",
    }
    assert "default" not in json.dumps(cluster)


def test_nodes_run_as_a_dedicated_account_with_the_minimal_role(default_plan):
    p = default_plan
    account = p.one("gcp:serviceaccount/account:Account")["inputs"]
    assert account["accountId"] == "hc-nodes-dev"
    email = f"hc-nodes-dev@{PROJECT}.iam.gserviceaccount.com"
    defaults = p.one("gcp:container/cluster:Cluster")["inputs"]["clusterAutoscaling"]["autoProvisioningDefaults"]
    assert defaults == {"serviceAccount": email, "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"]}
    role = p.one("gcp:projects/iAMMember:IAMMember", "cluster-nodes-role")["inputs"]
    assert (role["role"], role["member"]) == ("roles/container.defaultNodeServiceAccount", f"serviceAccount:{email}")
    for repository in ("chat-image", "vllm-mirror"):
        reader = p.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember", f"{repository}-node-reader")
        inputs = reader["inputs"]
        assert (inputs["role"], inputs["member"]) == ("roles/artifactregistry.reader", f"serviceAccount:{email}")
        repository_id = p.one("gcp:artifactregistry/repository:Repository", repository)["inputs"]["repositoryId"]
        assert inputs["repository"] == repository_id
    # Nodes come up with their role already granted, and each resource waits for its API.
    assert p.depends_on(
        "gcp:container/cluster:Cluster", "cluster", "gcp:projects/iAMMember:IAMMember", "cluster-nodes-role"
    )
    assert p.depends_on("gcp:serviceaccount/account:Account", "cluster-nodes", "gcp:projects/service:Service", "iam")
    # A project IAM member goes through the Resource Manager API, off in a fresh project until `up` enables it.
    assert p.depends_on(
        "gcp:projects/iAMMember:IAMMember", "cluster-nodes-role", "gcp:projects/service:Service", "cloudresourcemanager"
    )
    assert p.depends_on("gcp:compute/network:Network", "cluster-network", "gcp:projects/service:Service", "compute")


def test_project_lookup_runs_after_the_resource_manager_api_is_enabled(default_plan):
    (lookup,) = [i for i in default_plan.data["invokes"] if i["token"] == "gcp:organizations/getProject:getProject"]
    assert "cloudresourcemanager" in lookup["after"]


def test_destroy_finishes_when_the_cluster_is_already_gone(default_plan):
    provider = default_plan.one("pulumi:providers:kubernetes")["inputs"]
    assert provider["deleteUnreachable"] == "true"


# --- GPUs ---------------------------------------------------------------------------------------------------


def test_default_asks_for_two_l4s_with_the_driver_selector(default_plan):
    spec = pod(default_plan, "Deployment", "gemma")["spec"]
    (container,) = spec["containers"]
    assert spec["nodeSelector"]["cloud.google.com/gke-gpu-driver-version"] == "latest"
    assert "cloud.google.com/gke-spot" not in spec["nodeSelector"]
    assert container["resources"]["limits"] == container["resources"]["requests"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "--tensor-parallel-size=2" in container["args"]


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_pod_size_stays_inside_autopilots_l4_bounds(gpus):
    size = gemma.resources(gpus, "nvidia-l4", 24.0)
    max_cpu, max_memory = gemma.L4_MAXIMUM[gpus]
    sidecar_cpu = int(gemma.FUSE_SIDECAR["gke-gcsfuse/cpu-request"])
    sidecar_memory = int(gemma.FUSE_SIDECAR["gke-gcsfuse/memory-request"].removesuffix("Gi"))
    assert 0 < int(size["cpu"]) + sidecar_cpu < max_cpu
    assert 0 < int(size["memory"].removesuffix("Gi")) + sidecar_memory < max_memory
    assert size["nvidia.com/gpu"] == str(gpus)
    # The FUSE file cache (the whole model) fits in the pod's ephemeral storage.
    assert int(size["ephemeral-storage"].removesuffix("Gi")) > gemma.cache_gib(24.0) + 2


def test_spot_capacity_on_request():
    spec = pod(plan({"gemmaSpot": "true"}), "Deployment", "gemma")["spec"]
    assert spec["nodeSelector"]["cloud.google.com/gke-spot"] == "true"


def test_gpus_needed_by_model_size():
    assert minimum_gpus("google/gemma-3-12b-it", "nvidia-l4") == 2
    assert minimum_gpus("google/gemma-3-27b-it", "nvidia-l4") == 4
    assert minimum_gpus("google/gemma-3-4b-it", "nvidia-l4") == 1
    assert minimum_gpus("google/gemma-3-27b-it", "nvidia-h100-80gb") == 1
    assert minimum_gpus("some/model-without-size", "nvidia-l4") is None
    assert minimum_gpus("google/gemma-3-12b-it", "some-new-gpu") is None


def render_error(plain, secret=None):
    result = run_render(*config_args({"gcp:project": "p", **plain}, {"hfToken": HF_TOKEN, **(secret or {})}))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


def test_gpu_counts_that_never_schedule_or_do_not_fit_are_refused():
    assert "hybrid-chat:gemmaGpus must be 1, 2, 4 or 8 (0: the preset's), got 16" in render_error({"gemmaGpus": "16"})
    assert "hybrid-chat:gemmaGpus must be 1, 2, 4 or 8 (0: the preset's), got 3" in render_error({"gemmaGpus": "3"})
    message = render_error({"gemmaGpus": "1"})
    assert f"hybrid-chat:gemmaGpus is 1, but the preset {DEFAULT_PRESET} needs at least 2" in message
    args = '["--max-model-len=8192"]'
    message = render_error({"gemmaGpus": "2", "gemmaModel": "google/gemma-3-27b-it", "gemmaVllmArgs": args})
    assert "needs at least 4 nvidia-l4 GPUs: run `pulumi config set gemmaGpus 4`" in message


def test_one_gpu_preset():
    small = plan({"gemmaModel": "gemma4-12b-qat"})
    (container,) = pod(small, "Deployment", "gemma")["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--tensor-parallel-size=1" in container["args"]
    assert "--served-model-name=google/gemma-4-12b-it-qat-w4a16-ct" in container["args"]


def test_a_hugging_face_id_with_explicit_gpus_and_arguments():
    custom = plan(
        {"gemmaModel": "google/gemma-4-e4b-it", "gemmaGpus": "1", "gemmaVllmArgs": '["--max-model-len=8192"]'}
    )
    (container,) = pod(custom, "Deployment", "gemma")["spec"]["containers"]
    # The default image, pinned, through the project's mirror of Docker Hub.
    assert container["image"] == f"{DOCKER_HUB_MIRROR}/vllm/vllm-openai:v0.26.0@" + VLLM_GEMMA4_DIGEST
    assert "--served-model-name=google/gemma-4-e4b-it" in container["args"]
    assert "--max-model-len=8192" in container["args"] and "--tensor-parallel-size=1" in container["args"]
    # A preset's model id is that preset (a stack that set the id before presets keeps its arguments).
    seed = plan({"gemmaModel": "google/gemma-3-12b-it"})
    (container,) = pod(seed, "Deployment", "gemma")["spec"]["containers"]
    assert container["image"] == f"{DOCKER_HUB_MIRROR}/{PRESETS['gemma3-12b'].image}"
    assert "--max-model-len=8192" in container["args"]


def test_other_new_keys_are_validated():
    assert "hybrid-chat:chatMaxReplicas (2) must be at least hybrid-chat:chatReplicas (3)" in render_error(
        {"chatReplicas": "3", "chatMaxReplicas": "2"}
    )
    assert "hybrid-chat:alertEmail 'not-an-address' is not one email address" in render_error(
        {"alertEmail": "not-an-address"}
    )
    assert "hybrid-chat:gemmaSpot must be true or false, got 'maybe'" in render_error({"gemmaSpot": "maybe"})


# --- weights in the stack's bucket ------------------------------------------------------------------------------


def test_per_stack_bucket_deleted_on_destroy(default_plan):
    bucket = default_plan.one("gcp:storage/bucket:Bucket", "weights")["inputs"]
    assert bucket["name"] == f"{PROJECT}-weights-dev"
    assert bucket["location"] == REGION
    assert bucket["forceDestroy"] is True
    assert bucket["uniformBucketLevelAccess"] is True
    assert bucket["publicAccessPrevention"] == "enforced"
    assert bucket["softDeletePolicy"] == {"retentionDurationSeconds": 0}


def test_bucket_roles_on_the_bucket_only(default_plan):
    p = default_plan
    members = p.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    roles = {m["inputs"]["role"]: m["inputs"] for m in members if m["name"].startswith("weights-")}
    assert roles["roles/storage.objectUser"]["member"] == principal("weights-writer-dev")
    assert roles["roles/storage.objectViewer"]["member"] == principal("gemma-dev")
    assert {r["bucket"] for r in roles.values()} == {f"{PROJECT}-weights-dev"}
    project_roles = {m["inputs"]["role"] for m in p.of_type("gcp:projects/iAMMember:IAMMember")}
    assert not any("storage" in role for role in project_roles)
    for name in ("weights-writer", "weights-reader"):
        assert p.depends_on(
            "gcp:storage/bucketIAMMember:BucketIAMMember", name, "gcp:container/cluster:Cluster", "cluster"
        )


def test_copy_job_is_the_only_holder_of_the_token(default_plan):
    job = default_plan.manifest("Job", "weights-copy")
    template = job["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    assert template["spec"]["serviceAccountName"] == "weights-writer-dev"
    assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    # A file, not an environment variable (tests/infra/test_pod_security.py has the details).
    assert "HF_TOKEN" not in {e["name"] for e in container["env"]}
    (token,) = [v for v in template["spec"]["volumes"] if v["name"] == "hf-token"]
    assert token["secret"]["secretName"] == "hf-token"
    assert container["command"][:2] == ["python3", "-c"]
    model = PRESETS[DEFAULT_PRESET].model
    assert container["command"][3:] == [model, f"/weights/{model}", ".complete", "hybrid-chat:hfToken"]
    (volume,) = [v for v in template["spec"]["volumes"] if "csi" in v]
    assert volume["csi"]["driver"] == "gcsfuse.csi.storage.gke.io"
    assert volume["csi"]["readOnly"] is False
    assert volume["csi"]["volumeAttributes"]["bucketName"] == f"{PROJECT}-weights-dev"
    # Nothing else reads the token Secret.
    users = [m for m in default_plan.data["manifests"] if references_secret(m, "hf-token")]
    assert [(m["kind"], m["metadata"]["name"]) for m in users] == [("Job", "weights-copy")]


def references_secret(value, name):
    if isinstance(value, dict):
        if value.get("secretKeyRef", {}).get("name") == name or value.get("secretName") == name:
            return True
        return any(references_secret(v, name) for v in value.values())
    if isinstance(value, list):
        return any(references_secret(v, name) for v in value)
    return False


def test_copy_script_is_valid_python_and_keeps_to_safetensors():
    compile(weights.COPY_SCRIPT, "copy", "exec")
    assert '.endswith(".safetensors")' in weights.COPY_SCRIPT
    assert '".bin"' in weights.COPY_SCRIPT  # pickled weights are never copied


def test_model_server_reads_the_bucket_and_waits_for_the_copy(default_plan):
    p = default_plan
    template = pod(p, "Deployment", "gemma")
    spec = template["spec"]
    assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
    assert spec["serviceAccountName"] == "gemma-dev" and spec["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in spec["volumes"]}
    csi = volumes["weights"]["csi"]
    assert csi["readOnly"] is True
    assert csi["volumeAttributes"]["bucketName"] == f"{PROJECT}-weights-dev"
    options = csi["volumeAttributes"]["mountOptions"].split(",")
    assert "only-dir=models" in options and "file-cache:enable-parallel-downloads:true" in options
    assert "metadata-cache:negative-ttl-secs:0" in options  # the wait sees the marker as soon as it exists
    cache = int(csi["volumeAttributes"]["fileCacheCapacity"].removesuffix("Gi"))
    assert cache >= PRESETS[DEFAULT_PRESET].weights_gb  # the whole model
    assert int(volumes["gke-gcsfuse-cache"]["emptyDir"]["sizeLimit"].removesuffix("Gi")) > cache
    (wait,) = spec["initContainers"]
    assert f"/weights/{PRESETS[DEFAULT_PRESET].model}/.complete" in wait["command"][-1]
    assert {"name": "weights", "mountPath": "/weights", "readOnly": True} in wait["volumeMounts"]
    assert p.depends_on(
        "kubernetes:apps/v1:Deployment", "gemma", "gcp:storage/bucketIAMMember:BucketIAMMember", "weights-reader"
    )


def test_gemma_off_has_no_bucket_job_or_token(gemma_off_plan):
    types = {r["type"] for r in gemma_off_plan.resources}
    buckets = [r["name"] for r in gemma_off_plan.of_type("gcp:storage/bucket:Bucket")]
    assert buckets == ["media"]  # the chat's images only
    assert "kubernetes:batch/v1:Job" not in types


# --- rollouts on changes --------------------------------------------------------------------------------------


def test_changing_logins_restarts_only_the_chat(default_plan, other_users_plan):
    assert annotation(default_plan, "Deployment", "chat") != annotation(other_users_plan, "Deployment", "chat")
    assert annotation(default_plan, "Deployment", "gemma") == annotation(other_users_plan, "Deployment", "gemma")
    assert annotation(default_plan, "Job", "weights-copy") == annotation(other_users_plan, "Job", "weights-copy")


def test_changing_the_token_reruns_only_the_copy(default_plan, other_token_plan):
    assert annotation(default_plan, "Job", "weights-copy") != annotation(other_token_plan, "Job", "weights-copy")
    assert annotation(default_plan, "Deployment", "chat") == annotation(other_token_plan, "Deployment", "chat")
    assert annotation(default_plan, "Deployment", "gemma") == annotation(other_token_plan, "Deployment", "gemma")


def test_same_config_same_checksums(default_plan):
    again = plan()
    for kind, name in (("Deployment", "chat"), ("Deployment", "gemma"), ("Job", "weights-copy")):
        assert annotation(default_plan, kind, name) == annotation(again, kind, name)


def test_checksum_is_keyed_so_it_cannot_be_tested_against_guesses(other_users_plan):
    import hashlib

    value = annotation(other_users_plan, "Deployment", "chat")
    assert len(value) == 64
    for guess in ("alice:wonderland-secret", '["alice:wonderland-secret"]'):
        assert hashlib.sha256(guess.encode()).hexdigest() != value
    assert kube.checksum("key-a", ["x"]) != kube.checksum("key-b", ["x"])


# --- several stacks per project -------------------------------------------------------------------------------


def project_wide_names(p):
    """Every name that must be unique in the project (or the world), and every IAM grant."""
    found = set()
    for r in p.resources:
        inputs, typ = r["inputs"], r["type"]
        if typ == "gcp:artifactregistry/repository:Repository":
            found.add(("repository", inputs["repositoryId"]))
        elif typ in ("gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork"):
            found.add((typ, inputs["name"]))
        elif typ == "gcp:serviceaccount/account:Account":
            found.add(("account", inputs["accountId"]))
        elif typ == "gcp:storage/bucket:Bucket":
            found.add(("bucket", inputs["name"]))
        elif typ in ("gcp:container/cluster:Cluster", "gcp:firestore/database:Database"):
            found.add((typ, inputs["name"]))
        elif "IAMMember" in typ or "IamMember" in typ:
            found.add(("grant", inputs["role"], inputs["member"], json.dumps(inputs.get("condition"))))
        elif typ == "kubernetes:core/v1:ServiceAccount":
            found.add(("workload identity", inputs["metadata"]["name"]))
    return found


def test_two_stacks_in_one_project_share_no_name_or_grant(default_plan, prod_plan):
    dev, prod = project_wide_names(default_plan), project_wide_names(prod_plan)
    # Members only: a binding or policy would own the whole role and revoke the other stack's grants.
    assert not [r["type"] for r in default_plan.resources if "IAMBinding" in r["type"] or "IAMPolicy" in r["type"]]
    assert len(dev) >= 15 and len(prod) == len(dev)
    assert dev.isdisjoint(prod)
    assert ("repository", "hybrid-chat-prod") in prod
    assert ("account", "hc-nodes-prod") in prod
    assert ("bucket", f"{PROJECT}-weights-prod") in prod


def test_scoped_names_stay_valid_and_distinct():
    assert names.slug("dev") == "dev"
    assert names.slug("Dev") != names.slug("dev")
    assert names.slug("a.b") != names.slug("a-b")
    long = "a-very-long-stack-name-for-testing-limits"
    account = names.node_account(long)
    assert len(account) <= 30 and account != names.node_account(long + "2")
    bucket = names.weights_bucket("my-project-with-a-long-id-123", long * 2)
    assert len(bucket) <= 63 and bucket.startswith("my-project-with-a-long-id-123-weights-")


def test_firestore_grant_is_limited_to_the_stacks_database(default_plan):
    grant = default_plan.one("gcp:projects/iAMMember:IAMMember", "chat-identity-datastore-user")["inputs"]
    expression = grant["condition"]["expression"]
    assert 'resource.name == "projects/test-project/databases/chat-app-db"' in expression
    assert 'resource.name.startsWith("projects/test-project/databases/chat-app-db/")' in expression
    vertex = default_plan.one("gcp:projects/iAMMember:IAMMember", "chat-identity-aiplatform-user")["inputs"]
    assert "condition" not in vertex


# --- resilience -----------------------------------------------------------------------------------------------


def test_autoscaler_and_disruption_budget(default_plan, scaled_plan):
    deployment = default_plan.manifest("Deployment", "chat")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    hpa = default_plan.manifest("HorizontalPodAutoscaler", "chat")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    scaled = scaled_plan.manifest("HorizontalPodAutoscaler", "chat")["spec"]
    assert (scaled["minReplicas"], scaled["maxReplicas"]) == (3, 4)
    # Scale-in waits out 10 minutes of lower load (Kubernetes' default is 5): a removed pod ends its streams and
    # its browsers reconnect, so a brief lull must not cost a pod. Scale-out keeps Kubernetes' immediate default.
    for spec in (hpa, scaled):
        assert spec["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}
    pdb = default_plan.manifest("PodDisruptionBudget", "chat")["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}


def test_chat_start_up_allows_for_iam_propagation(default_plan):
    (container,) = pod(default_plan, "Deployment", "chat")["spec"]["containers"]
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 600


def test_readme_lists_every_key_with_its_default():
    from stack.config import DEFAULTS
    from tests.infra.rendering import ROOT

    rows = {
        line.split("|")[1].strip(): line for line in (ROOT / "README.md").read_text().splitlines() if line[:3] == "| `"
    }
    for key, default in DEFAULTS.items():
        if isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        else:
            shown = "empty" if default == "" else f"`{default}`"
        assert shown in rows[f"`{key}`"].split("|")[2], key
    assert "`9090`" in rows["`CHAT_METRICS_PORT`"]
