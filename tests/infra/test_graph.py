"""The whole program under mocks: which resources, under which component, wired to what."""

from collections import Counter

COMPONENTS = {
    "Apis",
    "Cluster",
    "Firestore",
    "WorkloadIdentity",
    "ChatImage",
    "DockerHubMirror",
    "Weights",
    "Media",
    "Gemma",
    "GemmaScaling",
    "Chat",
    "ChatScaling",
    "Monitoring",
    "FrontDoor",
}
EXPECTED = {
    "gcp:projects/service:Service": 12,
    "gcp:compute/network:Network": 1,
    "gcp:compute/subnetwork:Subnetwork": 1,
    "gcp:serviceaccount/account:Account": 1,
    "gcp:container/cluster:Cluster": 1,
    "pulumi:providers:kubernetes": 1,
    "gcp:firestore/database:Database": 1,
    "gcp:firestore/document:Document": 1,
    "gcp:firestore/index:Index": 1,
    "gcp:firestore/field:Field": 2,  # TTL on session_bindings and sign_in_failures
    # The chat's two roles, the node account's two (image streaming's), KEDA's monitoring.viewer.
    "gcp:projects/iAMMember:IAMMember": 5,
    "gcp:artifactregistry/repository:Repository": 2,  # the chat's images, the Docker Hub mirror
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 2,
    "gcp:storage/bucket:Bucket": 2,  # the model weights, the chat's images
    "gcp:storage/bucketIAMMember:BucketIAMMember": 3,
    "gcp:monitoring/dashboard:Dashboard": 1,
    "docker:index/image:Image": 1,
    "kubernetes:core/v1:Namespace": 1,
    "kubernetes:core/v1:ServiceAccount": 3,
    "kubernetes:core/v1:Secret": 2,  # the Hugging Face token, the chat's CHAT_SECRET_KEY
    "kubernetes:apps/v1:Deployment": 2,
    "kubernetes:batch/v1:Job": 1,
    "kubernetes:core/v1:Service": 2,
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": 5,  # chat, its metrics, gemma, its metrics, the weights Job
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 1,
    "kubernetes:policy/v1:PodDisruptionBudget": 1,
    "kubernetes:monitoring.googleapis.com/v1:PodMonitoring": 2,
    "random:index/randomPassword:RandomPassword": 2,  # the checksum key, the chat's secret key
    "gcp:compute/globalAddress:GlobalAddress": 1,
    "gcp:certificatemanager/certificate:Certificate": 1,
    "gcp:certificatemanager/certificateMap:CertificateMap": 1,
    "gcp:certificatemanager/certificateMapEntry:CertificateMapEntry": 1,
    "gcp:iap/webIamMember:WebIamMember": 1,
    "kubernetes:gateway.networking.k8s.io/v1:Gateway": 1,
    "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute": 2,
    "kubernetes:networking.gke.io/v1:HealthCheckPolicy": 1,
    "kubernetes:networking.gke.io/v1:GCPBackendPolicy": 1,
    "kubernetes:helm.sh/v3:Release": 1,  # KEDA
    "kubernetes:keda.sh/v1alpha1:ScaledObject": 1,
    "kubernetes:keda.sh/v1alpha1:TriggerAuthentication": 1,
}


def test_registers_every_resource_once(default_plan):
    assert Counter(r["type"] for r in default_plan.resources) == EXPECTED


def test_one_component_per_box_directly_under_the_stack(default_plan):
    types = {c["type"] for c in default_plan.components}
    assert types == {f"hybrid-chat:stack:{name}" for name in COMPONENTS}
    assert all(c["parent"].endswith("pulumi:pulumi:Stack::hybrid-chat-dev") for c in default_plan.components)


def test_every_resource_is_a_child_of_a_component(default_plan):
    for resource in default_plan.resources:
        parent_type = resource["parent"].split("::")[2].split("$")[-1]
        assert parent_type.startswith("hybrid-chat:stack:"), resource["name"]


def test_kubernetes_objects_go_through_the_clusters_provider(default_plan):
    provider = default_plan.urn("pulumi:providers:kubernetes", "cluster")
    kube = [r for r in default_plan.resources if r["type"].startswith("kubernetes:")]
    assert kube
    assert all(r["provider"].startswith(provider + "::") for r in kube)


def test_outputs(default_plan):
    outputs = default_plan.outputs
    assert set(outputs) == {
        *("url", "ip", "clusterName", "kubeconfig", "image", "firestoreDatabase", "dashboardUrl"),
        "doctorCommand",
    }
    # The chat's doctor runs in a chat pod with the pod's identity (chatapp/doctor.py).
    assert outputs["doctorCommand"] == "kubectl exec -n hybrid-chat deploy/chat -- python -m chatapp.doctor"
    assert default_plan.manifest("Deployment", "chat")["metadata"]["namespace"] == "hybrid-chat"
    assert outputs["url"] == "https://203-0-113-10.nip.io"
    assert outputs["ip"] == "203.0.113.10"
    assert outputs["clusterName"] == "gradio-chat-cluster"
    assert outputs["firestoreDatabase"] == "chat-app-db"
    assert "@sha256:" in outputs["image"]
    assert default_plan.data["secretOutputs"] == ["kubeconfig"]


def test_order_cluster_before_identity_before_chat(default_plan):
    p = default_plan
    for role in ("aiplatform-user", "datastore-user"):
        member = f"chat-identity-{role}"
        assert p.depends_on("gcp:projects/iAMMember:IAMMember", member, "gcp:container/cluster:Cluster", "cluster")
        assert p.depends_on("kubernetes:apps/v1:Deployment", "chat", "gcp:projects/iAMMember:IAMMember", member)
    assert p.depends_on(
        "kubernetes:apps/v1:Deployment", "chat", "gcp:firestore/document:Document", "firestore-initialize"
    )
    assert p.depends_on("kubernetes:apps/v1:Deployment", "chat", "docker:index/image:Image", "chat-image")


def test_order_database_before_index_before_chat(default_plan):
    p = default_plan
    index = ("gcp:firestore/index:Index", "firestore-sessions-by-owner")
    assert p.depends_on(*index, "gcp:firestore/database:Database", "firestore")
    # Without this edge the first pods could start while the session list query is still rejected.
    assert p.depends_on("kubernetes:apps/v1:Deployment", "chat", *index)


def test_resources_wait_for_their_api(default_plan):
    p = default_plan
    api = "gcp:projects/service:Service"
    assert p.depends_on("gcp:container/cluster:Cluster", "cluster", api, "container")
    assert p.depends_on("gcp:firestore/database:Database", "firestore", api, "firestore")
    assert p.depends_on("gcp:artifactregistry/repository:Repository", "chat-image", api, "artifactregistry")
