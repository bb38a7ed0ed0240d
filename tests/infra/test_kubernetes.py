"""Kubernetes objects: Gemma and the chat as the issue specifies, each core object valid against the OpenAPI schema
(the Gateway API and GKE custom resources are checked against their CRD schemas in test_custom_resources.py)."""

import kubernetes_validate
import pytest

from chatapp import drain
from stack import kube
from stack.chat import display_name
from stack.gemma import server_args
from stack.mocks import FAKE_PROJECT_NUMBER
from stack.presets import DEFAULT_PRESET, PRESETS
from tests.infra.rendering import DOCKER_HUB_MIRROR, HF_TOKEN, PROJECT, fingerprint

# GKE's REGULAR channel runs about 1.33; the newest schema catches fields that have since been removed.
KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())


def pod(plan, name):
    return plan.manifest("Deployment", name)["spec"]["template"]["spec"]


def env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("which", ["default_plan", "gemma_off_plan", "scaled_plan", "password_plan"])
def test_every_manifest_is_valid(which, version, request):
    manifests = request.getfixturevalue(which).core_manifests()
    assert manifests
    for manifest in manifests:
        if manifest["apiVersion"].startswith("monitoring.googleapis.com/"):
            continue  # custom resources: validated against their own schema in test_monitoring.py
        kubernetes_validate.validate(manifest, version, strict=True)


def test_gemma_runs_the_default_preset_on_the_pinned_openai_server(default_plan):
    (container,) = pod(default_plan, "gemma")["containers"]
    # Gemma 4 needs >= 0.19; 0.27.x fails to start it. Pulled by digest, so the tag cannot move under it, from
    # the project's mirror of Docker Hub (stack/mirror.py).
    assert container["image"] == f"{DOCKER_HUB_MIRROR}/vllm/vllm-openai:v0.26.0@" + PRESETS[DEFAULT_PRESET].digest
    assert container["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    args = container["args"]
    # The copy in the bucket, served under the Hugging Face id the chat asks for.
    assert "--model=/weights/google/gemma-4-31b-it-qat-w4a16-ct" in args
    assert "--served-model-name=google/gemma-4-31b-it-qat-w4a16-ct" in args
    assert "--tensor-parallel-size=2" in args
    assert int(next(a for a in args if a.startswith("--max-model-len=")).split("=")[1]) >= 16384
    assert "--max-num-seqs=64" in args
    assert '--limit-mm-per-prompt={"image": 5}' in args
    assert "--quantization=compressed-tensors" in args
    assert "--reasoning-parser=gemma4" in args
    assert env(container)["LD_LIBRARY_PATH"].split(":")[0] == "/usr/local/nvidia/lib64"


def test_the_seeds_gemma_3_stays_a_preset():
    plan_args = server_args(PRESETS["gemma3-12b"])
    assert "--served-model-name=google/gemma-3-12b-it" in plan_args
    assert "--max-model-len=8192" in plan_args
    assert not [a for a in plan_args if a.startswith(("--reasoning-parser", "--quantization"))]
    assert PRESETS["gemma3-12b"].image == "vllm/vllm-openai:v0.10.2"


def test_gemma_gpus_follow_config(scaled_plan):
    (container,) = pod(scaled_plan, "gemma")["containers"]
    assert "--tensor-parallel-size=2" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_gemma_pod_gets_gpus_shm_token_and_probes(default_plan):
    spec = pod(default_plan, "gemma")
    (container,) = spec["containers"]
    assert spec["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-gpu-driver-version": "latest",
    }
    assert spec["enableServiceLinks"] is False
    for bound in ("requests", "limits"):
        assert container["resources"][bound]["nvidia.com/gpu"] == "2"
    volumes = {v["name"]: v for v in spec["volumes"]}
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
    # The weights come from the bucket: the model server never sees the Hugging Face token.
    assert "HF_TOKEN" not in env(container)
    assert env(container)["HF_HUB_OFFLINE"] == "1"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30 * 60  # a long download is fine
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_gemma_never_blocks_pulumi_up(default_plan):
    for kind in ("Deployment", "Service"):
        annotations = default_plan.manifest(kind, "gemma")["metadata"]["annotations"]
        assert annotations["pulumi.com/skipAwait"] == "true"
    assert default_plan.manifest("Deployment", "gemma")["spec"]["strategy"] == {"type": "Recreate"}


def test_hf_token_secret_holds_the_token(default_plan):
    secret = default_plan.one("kubernetes:core/v1:Secret", "hf-token")["inputs"]
    assert secret["stringData"] == fingerprint({"token": HF_TOKEN})


def test_gemma_service_is_internal_and_not_named_vllm(default_plan):
    service = default_plan.manifest("Service", kube.GEMMA_SERVICE)
    assert service["metadata"]["name"] != "vllm"
    assert service["spec"]["type"] == "ClusterIP"
    assert (
        service["spec"]["selector"] == default_plan.manifest("Deployment", "gemma")["spec"]["selector"]["matchLabels"]
    )
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]


def test_only_chat_pods_reach_gemma(default_plan):
    policy = default_plan.manifest("NetworkPolicy", "gemma-from-chat")["spec"]
    gemma = default_plan.manifest("Deployment", "gemma")["spec"]
    chat = default_plan.manifest("Deployment", "chat")["spec"]
    assert policy["podSelector"]["matchLabels"] == gemma["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": chat["selector"]["matchLabels"]}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_chat_environment_contract(default_plan):
    (container,) = pod(default_plan, "chat")["containers"]
    assert env(container) == {
        "CHAT_STORE": "firestore",
        "FIRESTORE_DATABASE": "chat-app-db",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "SELF_HOSTED_URL": "http://gemma.hybrid-chat.svc.cluster.local:8000/v1",
        "SELF_HOSTED_MODEL": "google/gemma-4-31b-it-qat-w4a16-ct",
        "SELF_HOSTED_LABEL": "Gemma 4 31B QAT (self-hosted)",
        "SELF_HOSTED_WAKES_ON_DEMAND": "true",  # Gemma scales to zero by default (gemmaIdleMinutes=30)
        "GEMINI_MODEL": "gemini-3.8-flash",
        "GEMINI_LABEL": "Gemini 3.8 Flash (Vertex AI)",
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        # Not the cluster's region (REGION): Gemini 3.x is served from `global`.
        "GOOGLE_CLOUD_LOCATION": "global",
        "CHAT_CONCURRENCY": "64",
        "CHAT_REQUEST_TIMEOUT": "120",
        "CHAT_AUTH": "iap",
        "CHAT_IAP_AUDIENCE": f"/projects/{FAKE_PROJECT_NUMBER}/global/backendServices/",
        "CHAT_TRUSTED_PROXY": "true",
        "CHAT_METRICS_PORT": "9090",
        "CHAT_MEDIA_BUCKET": f"{PROJECT}-media-dev",
        "HOME": "/tmp",
        "CHAT_SECRET_KEY": {"secretKeyRef": {"name": "chat-secret-key", "key": "key"}},
    }


def test_chat_pod_is_sized_probed_and_locked_down(default_plan):
    spec = pod(default_plan, "chat")
    (container,) = spec["containers"]
    assert spec["serviceAccountName"] == "chat-dev"
    assert container["resources"]["requests"]["cpu"] == "1"
    assert container["resources"]["requests"]["memory"] == "2Gi"
    assert container["ports"] == [
        {"name": "http", "containerPort": 7860},
        {"name": "metrics", "containerPort": 9090},
    ]
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"  # the store must answer before traffic
    # Draining fails it at once on SIGTERM; a store outage must not go dark (the store is not checked).
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz?store=false"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["terminationGracePeriodSeconds"] == drain.GRACE_S  # SIGKILL only after the whole drain
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["automountServiceAccountToken"] is False  # it never calls the Kubernetes API
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"])


def test_recommended_labels(default_plan):
    for manifest in default_plan.data["manifests"]:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "hybrid-chat", manifest["kind"]
        if manifest["kind"] != "Namespace":
            assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(labels)
            assert manifest["metadata"]["namespace"] == "hybrid-chat"


def test_chat_service_is_internal(default_plan, scaled_plan):
    for plan in (default_plan, scaled_plan):
        service = plan.manifest("Service", "chat")["spec"]
        assert service["type"] == "ClusterIP"
        assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
        # Affinity is the load balancer's (a cookie, see test_frontdoor); the Service adds none.
        assert "sessionAffinity" not in service
    # The autoscaler owns the replica count; chatReplicas is its minimum.
    assert "replicas" not in scaled_plan.manifest("Deployment", "chat")["spec"]
    assert scaled_plan.manifest("HorizontalPodAutoscaler", "chat")["spec"]["minReplicas"] == 3


def test_chat_auth_users_flow_from_secret_config(default_plan, password_plan):
    assert "CHAT_AUTH_USERS" not in env(pod(default_plan, "chat")["containers"][0])
    secret = password_plan.one("kubernetes:core/v1:Secret", "chat-auth")["inputs"]
    assert secret["stringData"] == fingerprint({"users": "alice:wonderland-secret"})
    assert password_plan.depends_on("kubernetes:apps/v1:Deployment", "chat", "kubernetes:core/v1:Secret", "chat-auth")
    chat_env = env(pod(password_plan, "chat")["containers"][0])
    assert chat_env["CHAT_AUTH_USERS"] == {"secretKeyRef": {"name": "chat-auth", "key": "users"}}
    # One key for every replica, so a sign-in or browser id one signed is valid on the others.
    assert chat_env["CHAT_SECRET_KEY"] == {"secretKeyRef": {"name": "chat-secret-key", "key": "key"}}
    assert password_plan.depends_on(
        "kubernetes:apps/v1:Deployment", "chat", "kubernetes:core/v1:Secret", "chat-secret-key"
    )


def test_gemma_off_stack(gemma_off_plan):
    assert not [r for r in gemma_off_plan.resources if r["name"] in ("gemma", "hf-token", "gemma-from-chat")]
    assert not any("nvidia.com/gpu" in str(m) for m in gemma_off_plan.data["manifests"])
    # The chat still knows where Gemma would be: its self-hosted slot reports unreachable until it is on.
    chat_env = env(pod(gemma_off_plan, "chat")["containers"][0])
    assert chat_env["SELF_HOSTED_URL"] == kube.GEMMA_URL
    assert gemma_off_plan.outputs["url"] == "https://203-0-113-10.nip.io"


def test_display_names():
    assert display_name("google/gemma-3-12b-it") == "Gemma 3 12B"
    assert display_name("gemini-3.8-flash") == "Gemini 3.8 Flash"
    assert display_name("google/gemma-4-31b-it-qat-w4a16-ct") == "Gemma 4 31B QAT"
    assert display_name("google/gemma-4-12b-it") == "Gemma 4 12B"
