"""Google Cloud resources: APIs, cluster, Firestore, Workload Identity, registry and image."""

import json

from stack.mocks import FAKE_ACCESS_TOKEN, FAKE_PROJECT_NUMBER
from tests.infra.rendering import PROJECT, REGION, fingerprint


def test_apis_enabled_and_kept_on_destroy(default_plan):
    services = default_plan.of_type("gcp:projects/service:Service")
    assert {s["inputs"]["service"] for s in services} == {
        f"{api}.googleapis.com"
        for api in (
            "container",
            "firestore",
            "aiplatform",
            "artifactregistry",
            "compute",
            "cloudresourcemanager",
            "certificatemanager",
            "iap",
            "iam",
            "storage",
            "monitoring",
            "containerfilesystem",  # image streaming (stack/mirror.py)
        )
    }
    assert all(s["inputs"]["disableOnDestroy"] is False and s["inputs"]["project"] == PROJECT for s in services)


def test_autopilot_cluster_that_destroy_can_delete(default_plan):
    cluster = default_plan.one("gcp:container/cluster:Cluster")["inputs"]
    assert cluster["enableAutopilot"] is True
    assert cluster["deletionProtection"] is False
    assert cluster["releaseChannel"] == {"channel": "REGULAR"}
    assert cluster["gatewayApiConfig"] == {"channel": "CHANNEL_STANDARD"}  # the front door's Gateway API
    assert cluster["name"] == "gradio-chat-cluster"
    assert cluster["location"] == REGION
    assert cluster["project"] == PROJECT


def test_kubernetes_provider_uses_the_gke_auth_plugin(default_plan):
    # The provider's kubeconfig is a secret; its shape is checked on the function that writes it.
    from stack.cluster import kubeconfig

    config = json.loads(kubeconfig("c", "203.0.113.1", "Q0E="))
    assert config["clusters"][0]["cluster"]["server"] == "https://203.0.113.1"
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["command"] == "gke-gcloud-auth-plugin"
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    provider = default_plan.one("pulumi:providers:kubernetes")["inputs"]
    assert set(provider["kubeconfig"]) == {"secret-sha256"}


def test_firestore_native_deleted_on_destroy(default_plan):
    database = default_plan.one("gcp:firestore/database:Database")["inputs"]
    assert database["name"] == "chat-app-db"
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["locationId"] == "nam5"
    assert database["deletionPolicy"] == "DELETE"
    assert database["deleteProtectionState"] == "DELETE_PROTECTION_DISABLED"


def test_placeholder_session_document(default_plan):
    document = default_plan.one("gcp:firestore/document:Document")["inputs"]
    assert (document["database"], document["collection"], document["documentId"]) == (
        "chat-app-db",
        "chat_sessions",
        "initialize",
    )
    assert "owner" not in json.loads(document["fields"])


def test_session_list_composite_index(default_plan):
    index = default_plan.one("gcp:firestore/index:Index")["inputs"]
    assert index["project"] == PROJECT
    assert index["database"] == "chat-app-db"
    assert index["collection"] == "chat_sessions"
    assert index["queryScope"] == "COLLECTION"
    assert index["fields"] == [
        {"fieldPath": "owner", "order": "ASCENDING"},
        {"fieldPath": "updated_at", "order": "DESCENDING"},
    ]
    assert index["skipWait"] is False


def test_collections_that_expire_have_a_ttl_policy_on_the_field_the_chat_writes(default_plan):
    from chatapp.history.shared import BINDINGS, SIGN_IN_FAILURES

    fields = default_plan.of_type("gcp:firestore/field:Field")
    assert sorted(f["inputs"]["collection"] for f in fields) == sorted([BINDINGS, SIGN_IN_FAILURES])
    for field in fields:
        inputs = field["inputs"]
        assert (inputs["project"], inputs["database"], inputs["field"]) == (PROJECT, "chat-app-db", "expires_at")
        assert inputs["ttlConfig"] == {} and inputs["indexConfig"] == {}, inputs


def test_workload_identity_grants_exactly_two_roles_to_the_chat_principal(default_plan):
    members = [m for m in default_plan.of_type("gcp:projects/iAMMember:IAMMember") if "chat-identity" in m["name"]]
    assert sorted(m["inputs"]["role"] for m in members) == ["roles/aiplatform.user", "roles/datastore.user"]
    principal = (
        f"principal://iam.googleapis.com/projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
        f"{PROJECT}.svc.id.goog/subject/ns/hybrid-chat/sa/chat-dev"
    )
    assert {m["inputs"]["member"] for m in members} == {principal}
    assert all(m["inputs"]["project"] == PROJECT for m in members)
    account = default_plan.manifest("ServiceAccount", "chat-dev")["metadata"]
    assert principal.endswith(f"/ns/{account['namespace']}/sa/{account['name']}")


def test_no_token_creator_anywhere(default_plan):
    assert "serviceAccountTokenCreator" not in default_plan.raw


def test_registry_and_image_pushed_with_an_access_token(default_plan):
    repository = default_plan.one("gcp:artifactregistry/repository:Repository", "chat-image")["inputs"]
    assert repository["format"] == "DOCKER"
    assert repository["location"] == REGION
    image = default_plan.one("docker:index/image:Image")["inputs"]
    assert image["imageName"].startswith(f"{REGION}-docker.pkg.dev/{PROJECT}/{repository['repositoryId']}/chat")
    assert image["build"]["platform"] == "linux/amd64"
    assert image["build"]["context"] == "."
    assert image["build"]["dockerfile"] == "Dockerfile"
    # The password makes the whole block secret; its hash proves server, user and token without printing them.
    assert image["registry"] == fingerprint(
        {"server": f"{REGION}-docker.pkg.dev", "username": "oauth2accesstoken", "password": FAKE_ACCESS_TOKEN}
    )


def test_chat_runs_the_pushed_digest(default_plan):
    container = default_plan.manifest("Deployment", "chat")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == default_plan.outputs["image"]
    assert container["image"].startswith(f"{REGION}-docker.pkg.dev/{PROJECT}/") and "@sha256:" in container["image"]


def test_prebuilt_image_skips_registry_and_build(scaled_plan):
    assert not scaled_plan.of_type("docker:index/image:Image")
    # The chat's repository; the vLLM mirror (stack/mirror.py) stays.
    assert not [
        r for r in scaled_plan.of_type("gcp:artifactregistry/repository:Repository") if r["name"] == "chat-image"
    ]
    container = scaled_plan.manifest("Deployment", "chat")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.com/chat@sha256:" + "1" * 64 == scaled_plan.outputs["image"]
