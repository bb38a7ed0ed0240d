"""Scale to zero under the mocks: KEDA scales the gemma Deployment 0 ↔ 1 on the chat's wake counter, read from
Managed Prometheus with the KEDA operator's own Workload Identity; `gemmaIdleMinutes=0` keeps Gemma always on.

The objects' schemas are checked in test_custom_resources.py (KEDA's published models)."""

import pytest

from stack import gemma_scaling
from stack.mocks import FAKE_PROJECT_NUMBER
from tests.infra.rendering import PROJECT, plan
from tests.infra.test_frontdoor import chat_env
from tests.infra.test_real_project import render_error

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
RELEASE = "kubernetes:helm.sh/v3:Release"
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
VIEWER = "gemma-scaling-monitoring-viewer"


@pytest.fixture(scope="module")
def always_on_plan():
    return plan({"gemmaIdleMinutes": "0"})


def scaled_object(p):
    return p.one(SCALED_OBJECT)["inputs"]


def test_the_model_server_scales_between_zero_and_one_on_the_wake_counter(default_plan):
    spec = scaled_object(default_plan)["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gemma"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 1)
    assert spec["pollingInterval"] == gemma_scaling.POLLING_S
    # The default idle time: 30 minutes, in the query's window, and kept up that long after a fresh `up`.
    assert spec["initialCooldownPeriod"] == 30 * 60
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert (
        meta["serverAddress"] == f"https://monitoring.googleapis.com/v1/projects/{PROJECT}/location/global/prometheus"
    )
    assert meta["query"] == (
        'sum(increase(chat_self_hosted_wanted_total{cluster="gradio-chat-cluster",namespace="hybrid-chat"}[30m]))'
    )
    assert meta["activationThreshold"] == "0"
    auth = default_plan.one(TRIGGER_AUTH)["inputs"]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["metadata"]["namespace"] == scaled_object(default_plan)["metadata"]["namespace"] == "hybrid-chat"
    # Workload Identity only: no secret, environment or other auth mode.
    assert auth["spec"] == {"podIdentity": {"provider": "gcp"}}


def test_the_query_counts_what_the_chat_exports():
    """The stack and the chat meet on the counter's name only (the stack never imports the chat)."""
    import prometheus_client

    import chatapp.metrics  # noqa: F401 (registers the chat's metrics)

    page = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert f"\n{gemma_scaling.WAKE_COUNTER} " in page


def test_the_idle_time_is_the_querys_window():
    p = plan({"gemmaIdleMinutes": "5"})
    spec = scaled_object(p)["spec"]
    assert spec["triggers"][0]["metadata"]["query"].endswith("[5m]))")
    assert spec["initialCooldownPeriod"] == 300


def test_the_deployment_leaves_replicas_to_the_autoscaler(default_plan, always_on_plan):
    assert "replicas" not in default_plan.manifest("Deployment", "gemma")["spec"]
    assert always_on_plan.manifest("Deployment", "gemma")["spec"]["replicas"] == 1


def test_zero_idle_minutes_means_always_on_without_keda(always_on_plan, gemma_off_plan):
    for p in (always_on_plan, gemma_off_plan):
        assert not p.of_type(SCALED_OBJECT) and not p.of_type(TRIGGER_AUTH) and not p.of_type(RELEASE)
        assert not [r for r in p.of_type(IAM_MEMBER) if r["name"] == VIEWER]


def test_keda_is_the_pinned_chart_in_its_own_namespace(default_plan):
    release = default_plan.one(RELEASE)["inputs"]
    assert release["chart"] == "keda"
    assert release["version"] == "2.20.2"
    assert release["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    # Per stack: the operator's principal holds a project role (test_real_project: two stacks share no grant).
    assert (release["namespace"], release["createNamespace"]) == ("keda-dev", True)


def test_keda_may_read_managed_prometheus_and_nothing_else(default_plan):
    member = default_plan.one(IAM_MEMBER, VIEWER)["inputs"]
    assert member["role"] == "roles/monitoring.viewer"
    assert member["project"] == PROJECT
    assert member["member"] == (
        f"principal://iam.googleapis.com/projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
        f"{PROJECT}.svc.id.goog/subject/ns/keda-dev/sa/keda-operator"
    )
    assert "condition" not in member


def test_order_cluster_before_iam_before_keda_before_its_objects(default_plan):
    p = default_plan
    # The Workload Identity pool exists only once the cluster does.
    assert p.depends_on(IAM_MEMBER, VIEWER, "gcp:container/cluster:Cluster", "cluster")
    assert p.depends_on(RELEASE, "keda", IAM_MEMBER, VIEWER)
    # KEDA's CRDs come with the chart; the target must exist before something scales it.
    for typ, name in ((SCALED_OBJECT, "gemma-scaling"), (TRIGGER_AUTH, "gemma-scaling-gcp")):
        assert p.depends_on(typ, name, RELEASE, "keda")
        assert p.depends_on(typ, name, "kubernetes:apps/v1:Deployment", "gemma")
    assert p.depends_on(SCALED_OBJECT, "gemma-scaling", TRIGGER_AUTH, "gemma-scaling-gcp")


def test_a_negative_idle_time_is_refused():
    assert "hybrid-chat:gemmaIdleMinutes must be 0 (always on) or more, got -5" in render_error(
        {"gemmaIdleMinutes": "-5"}
    )


def test_the_chat_says_gemma_wakes_on_demand_only_when_it_scales_to_zero(default_plan, always_on_plan, gemma_off_plan):
    # Otherwise a down Gemma would be shown asleep with "a message to it wakes it", and nothing would wake it.
    plans = (default_plan, always_on_plan, gemma_off_plan)
    assert [chat_env(p)["SELF_HOSTED_WAKES_ON_DEMAND"] for p in plans] == ["true", "false", "false"]
