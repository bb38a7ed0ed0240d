"""Observability in the stack: what Managed Prometheus scrapes, who may reach the metrics ports, the dashboard's
queries (against the metric names the chat really exports) and the optional alert."""

import copy
import json
import re
from pathlib import Path

import jsonschema
import prometheus_client
import pytest

from chatapp import metrics
from stack import kube
from stack.monitoring import dashboard_url, queries
from tests.infra.rendering import PROJECT, plan

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "podmonitoring.monitoring.googleapis.com_v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
# vLLM 0.10.2's Prometheus names the dashboard reads (its /metrics on the API port).
VLLM_METRICS = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"}


@pytest.fixture(scope="module")
def alert_plan():
    return plan({"alertEmail": "oncall@example.com"})


def pod_monitorings(p):
    return {m["metadata"]["name"]: m for m in p.data["manifests"] if m["kind"] == "PodMonitoring"}


@pytest.mark.parametrize("which", ["default_plan", "gemma_off_plan", "scaled_plan"])
def test_pod_monitorings_are_valid(which, request):
    found = pod_monitorings(request.getfixturevalue(which))
    assert found
    for manifest in found.values():
        VALIDATOR.validate(manifest)


def test_the_schema_is_strict(default_plan):
    good = pod_monitorings(default_plan)["chat"]
    broken = [copy.deepcopy(good) for _ in range(4)]
    broken[0]["spec"]["endpoints"][0]["intervall"] = "30s"  # a typo
    broken[1]["spec"]["endpoints"][0]["interval"] = "30 seconds"
    broken[2]["spec"]["endpoints"] = []
    broken[3]["spec"]["targetLabels"] = {"metadata": ["namespace"]}  # ClusterPodMonitoring only
    for manifest in broken:
        assert list(VALIDATOR.iter_errors(manifest)), manifest["spec"]


def container_ports(p, deployment):
    (container,) = p.manifest("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return {port["name"]: port["containerPort"] for port in container["ports"]}


def test_chat_and_vllm_are_scraped_on_their_metrics_ports(default_plan):
    found = pod_monitorings(default_plan)
    assert set(found) == {"chat", "gemma"}
    for name, port_number in (("chat", kube.CHAT_METRICS_PORT), ("gemma", kube.GEMMA_PORT)):
        spec = found[name]["spec"]
        selector = default_plan.manifest("Deployment", name)["spec"]["selector"]
        assert spec["selector"] == selector
        (endpoint,) = spec["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert container_ports(default_plan, name)[endpoint["port"]] == port_number


def test_gemma_off_scrapes_only_the_chat(gemma_off_plan):
    assert set(pod_monitorings(gemma_off_plan)) == {"chat"}
    assert not [m for m in gemma_off_plan.data["manifests"] if m["metadata"]["name"] == "gemma-metrics-from-gmp"]


def test_only_managed_prometheus_reaches_the_metrics_port(default_plan):
    for name, port in (("chat", kube.CHAT_METRICS_PORT), ("gemma", kube.GEMMA_PORT)):
        policy = default_plan.manifest("NetworkPolicy", f"{name}-metrics-from-gmp")["spec"]
        assert policy["podSelector"] == default_plan.manifest("Deployment", name)["spec"]["selector"]
        assert policy["policyTypes"] == ["Ingress"]
        (rule,) = policy["ingress"]
        # Managed collection's collectors run in gke-gmp-system (gmp-system is the self-deployed operator's).
        assert rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gke-gmp-system"}}}
        ]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
    # The chat's public port is not opened to anyone by these policies.
    assert "7860" not in json.dumps(default_plan.manifest("NetworkPolicy", "chat-metrics-from-gmp"))


def test_cluster_runs_managed_prometheus_and_gpu_metrics(default_plan):
    monitoring = default_plan.one("gcp:container/cluster:Cluster")["inputs"]["monitoringConfig"]
    assert monitoring["managedPrometheus"] == {"enabled": True}
    # A list replaces Autopilot's defaults: they are kept, and DCGM added.
    assert set(monitoring["enableComponents"]) == {
        *("SYSTEM_COMPONENTS", "STORAGE", "HPA", "POD", "DAEMONSET", "DEPLOYMENT", "STATEFULSET", "JOBSET"),
        "DCGM",
    }


def exported_metric_names():
    """What the chat's /metrics would list, samples included (e.g. `_bucket`, `_total`)."""
    return {sample.name for family in prometheus_client.REGISTRY.collect() for sample in family.samples} | {
        family.name for family in prometheus_client.REGISTRY.collect()
    }


def test_dashboard_queries_name_metrics_that_exist(default_plan):
    metrics.record_turn("probe", "ok", 1.0, 0.5, 10, 20)  # so every labelled series has a sample
    metrics.STREAMS_IN_FLIGHT.labels("probe").inc(0)
    exported = exported_metric_names()
    for key, query in queries("c").items():
        names = {word for word in query.replace("(", " ").replace("{", " ").split() if word.startswith("chat_")}
        for name in names:
            assert name in exported, (key, name)
    vllm = {w.split("{")[0] for q in queries("c").values() for w in q.replace("(", " ").split() if "vllm:" in w}
    assert vllm == VLLM_METRICS


def test_dashboard_shows_what_the_issue_asks_for_in_this_stack_only(default_plan):
    board = json.loads(default_plan.one("gcp:monitoring/dashboard:Dashboard")["inputs"]["dashboardJson"])
    assert board["displayName"] == "hybrid-chat (dev)"
    tiles = board["mosaicLayout"]["tiles"]
    titles = [t["widget"]["title"] for t in tiles]
    wanted_titles = ("Time to first token", "Tokens per second", "vLLM requests", "KV-cache", "GPU", "Failed turns")
    for wanted in (*wanted_titles, "Wake-up as the chat waited"):
        assert any(wanted in title for title in titles), wanted
    charts = [t["widget"]["xyChart"] for t in tiles if "xyChart" in t["widget"]]
    all_queries = [ds["timeSeriesQuery"]["prometheusQuery"] for chart in charts for ds in chart["dataSets"]]
    assert any("histogram_quantile(0.95" in q for q in all_queries)
    assert any("histogram_quantile(0.5" in q for q in all_queries)
    assert any("chat_turns_dropped_total" in q for q in all_queries)  # a broken "will retry" promise shows
    # Managed Prometheus series carry `cluster`, GKE system metrics their resource's `cluster_name`.
    assert all(re.search(r'cluster(_name)?="gradio-chat-cluster"', q) for q in all_queries)
    # Tiles do not overlap on the 48-column mosaic.
    cells = {(t["xPos"], t["yPos"]) for t in tiles}
    assert len(cells) == len(tiles) and all(t["xPos"] + t["width"] <= 48 for t in tiles)


def test_dashboard_url_output(default_plan):
    assert default_plan.outputs["dashboardUrl"] == (
        f"https://console.cloud.google.com/monitoring/dashboards/builder/monitoring-id?project={PROJECT}"
    )
    assert dashboard_url("p", "projects/123/dashboards/abc-def").endswith("/builder/abc-def?project=p")


def test_no_alert_unless_an_email_is_given(default_plan, alert_plan):
    assert not default_plan.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    channel = alert_plan.one("gcp:monitoring/notificationChannel:NotificationChannel")["inputs"]
    assert channel["type"] == "email" and channel["labels"] == {"email_address": "oncall@example.com"}
    policy = alert_plan.one("gcp:monitoring/alertPolicy:AlertPolicy")["inputs"]
    (condition,) = policy["conditions"]
    query = condition["conditionPrometheusQueryLanguage"]["query"]
    assert query.startswith(queries("gradio-chat-cluster")["error_rate"]) and query.endswith("> 0.05")
    assert condition["conditionPrometheusQueryLanguage"]["duration"] == "300s"
    assert alert_plan.depends_on(
        "gcp:monitoring/alertPolicy:AlertPolicy",
        "monitoring-error-rate",
        "gcp:monitoring/notificationChannel:NotificationChannel",
        "monitoring-email",
    )
