"""Observability: Managed Prometheus scrapes the chat and vLLM, a Cloud Monitoring dashboard shows how the system
is doing, and an optional alert mails someone when chat turns fail.

The cluster side (Managed Prometheus, DCGM GPU metrics) is switched on in cluster.py. Every query filters on
the stack's cluster, so two stacks in one project each see only their own numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from stack import kube

SCRAPE_INTERVAL = "30s"
CHAT = "chat"
GEMMA = "gemma"
# Failed turns (model errors and replies cut short) over all turns, per model.
ERROR_RATE_THRESHOLD = 0.05

# The model server's cold start, stage by stage (README, Cost). GKE system metrics, from Cloud Monitoring's
# "Kubernetes metrics" list (checked 2026-12-06): kind, unit, monitored resource, what it measures.
# GAUGE s, k8s_node: "from GCE instance's CreationTimestamp to K8s node ready first time"; accelerator_family.
NODE_STARTUP = "kubernetes.io/node/latencies/startup"
# GAUGE s, k8s_pod: "The Pod end-to-end startup latency (from Pod Created to Ready), including image pulls".
POD_FIRST_READY = "kubernetes.io/pod/latencies/pod_first_ready"
# CUMULATIVE By, k8s_pod: bytes the Cloud Storage FUSE sidecar downloaded (stack/gemma.py turns its metrics on).
FUSE_DOWNLOADED = "kubernetes.io/gcsfusecsi/gcs_download_bytes_count"
# Kubernetes events on the pod, by the component that records them: the cluster autoscaler asks for a node, the
# scheduler places the pod, the kubelet pulls ("Successfully pulled image … in 1m2s (1m3s including waiting)",
# kubelet pkg/kubelet/images/image_manager.go) and starts each container.
COLD_START_EVENTS = ("TriggeredScaleUp", "Scheduled", "Pulled", "Started")
# vLLM's own log lines with a duration: weights read (through FUSE), model on the GPUs, profiling + KV cache +
# CUDA graphs, and the API server up (vllm model_executor/model_loader, v1/worker/gpu_model_runner.py,
# v1/engine/core.py; uvicorn's last start-up line).
VLLM_STARTUP_LINES = (
    "Loading weights took",
    "Model loading took",
    "init engine (profile, create kv cache, warmup model) took",
    "Application startup complete",
)


@dataclass(frozen=True)
class MonitoringArgs:
    project: str
    stack: str
    cluster_name: str
    gemma_enabled: bool
    alert_email: str | None
    monitoring_api: pulumi.Resource
    cluster: pulumi.Resource
    provider: k8s.Provider
    namespace: pulumi.Resource


def pod_monitoring(name: str, app: str, port: str, path: str = "/metrics") -> dict[str, Any]:
    """A PodMonitoring (monitoring.googleapis.com/v1) scraping `app`'s pods on the named container port."""
    return {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        "metadata": {"name": name, "namespace": kube.NAMESPACE, "labels": kube.labels(name, "monitoring")},
        "spec": {
            "selector": {"matchLabels": kube.selector_labels(app)},
            "endpoints": [{"port": port, "path": path, "interval": SCRAPE_INTERVAL}],
        },
    }


def _from_gmp(name: str, app: str, port: int) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Lets Managed Prometheus' collectors (kube.GMP_NAMESPACE) reach `port` of `app`'s pods, nothing else."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(app)),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": kube.GMP_NAMESPACE}
                        )
                    )
                ],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)],
            )
        ],
    )


def promql_name(metric: str) -> str:
    """A Cloud Monitoring metric's PromQL name (Cloud Monitoring "Mapping Cloud Monitoring metrics to PromQL":
    the first `/` becomes `:`, every other character PromQL does not allow becomes `_`)."""
    domain, _, path = metric.partition("/")
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', domain)}:{re.sub(r'[^A-Za-z0-9_]', '_', path)}"


def cold_start_log_filter(cluster: str) -> str:
    """Logging query for the Gemma pod's cold-start stages: its events and vLLM's timed start-up lines. (Cloud
    Logging's query language: terms side by side are ANDed, `field = ("a" OR "b")` is either value, `:` is
    "has"; GKE writes Kubernetes events to the `events` log with the reason in `jsonPayload.reason`.)"""
    reasons = " OR ".join(f'"{reason}"' for reason in COLD_START_EVENTS)
    lines = " OR ".join(f'"{line}"' for line in VLLM_STARTUP_LINES)
    return (
        f'resource.labels.cluster_name="{cluster}" resource.labels.namespace_name="{kube.NAMESPACE}" '
        f'resource.labels.pod_name:"{GEMMA}-" '
        f'((resource.type="k8s_pod" log_id("events") jsonPayload.reason=({reasons})) OR '
        f'(resource.type="k8s_container" resource.labels.container_name="vllm" textPayload:({lines})))'
    )


def queries(cluster: str) -> dict[str, str]:
    """The dashboard's PromQL, every series limited to this stack's cluster and namespace."""
    where = f'cluster="{cluster}",namespace="{kube.NAMESPACE}"'
    # GKE system metrics carry their monitored resource's labels, not Managed Prometheus' `cluster`/`namespace`.
    gemma_pod = f'cluster_name="{cluster}",namespace_name="{kube.NAMESPACE}",pod_name=~"{GEMMA}-.*"'

    def quantile(q: float, metric: str) -> str:
        return f"histogram_quantile({q}, sum by (model, le) (rate({metric}_bucket{{{where}}}[5m])))"

    turns = f"sum by (model) (rate(chat_turns_total{{{where}}}[5m]))"
    failed = f'sum by (model) (rate(chat_turns_total{{{where},outcome=~"error|cut"}}[5m]))'
    return {
        "ttft_p50": quantile(0.5, "chat_time_to_first_token_seconds"),
        "ttft_p95": quantile(0.95, "chat_time_to_first_token_seconds"),
        "tokens_per_second": f'sum by (model) (rate(chat_tokens_total{{{where},direction="out"}}[5m]))',
        "vllm_running": f"sum(vllm:num_requests_running{{{where}}})",
        "vllm_waiting": f"sum(vllm:num_requests_waiting{{{where}}})",
        "vllm_kv_cache": f"max(vllm:kv_cache_usage_perc{{{where}}})",
        # DCGM's exporter runs in a system namespace: filter on the cluster only.
        "gpu_utilisation": f'avg by (gpu) (DCGM_FI_DEV_GPU_UTIL{{cluster="{cluster}"}})',
        "error_rate": f"({failed}) / clamp_min({turns}, 1e-9)",
        "unsaved_turns": f"sum(chat_unsaved_turns{{{where}}})",
        "dropped_turns": f"sum(increase(chat_turns_dropped_total{{{where}}}[1h]))",
        # Wake-ups are rare (a few a day): the median over a day of what the chat measured (chatapp.models.waking).
        "wake_median": (
            f"histogram_quantile(0.5, sum by (le) (increase(chat_self_hosted_wake_seconds_bucket{{{where}}}[1d])))"
        ),
        "streams_in_flight": f"sum by (model) (chat_streams_in_flight{{{where}}})",
        "gpu_node_startup": (
            f'max by (node_name) ({promql_name(NODE_STARTUP)}{{cluster_name="{cluster}",accelerator_family="gpu"}})'
        ),
        "gemma_first_ready": f"max by (pod_name) ({promql_name(POD_FIRST_READY)}{{{gemma_pod}}})",
        "gemma_weights_read": f"sum by (pod_name) (rate({promql_name(FUSE_DOWNLOADED)}{{{gemma_pod}}}[1m]))",
    }


def _chart(title: str, *series: tuple[str | None, str]) -> dict[str, Any]:
    """An XY chart of PromQL `series`, each `(legend, query)`. A None legend keeps the console's default, which
    lists the series' labels (e.g. the model), so per-model series stay apart."""
    return {
        "title": title,
        "xyChart": {
            "chartOptions": {"mode": "COLOR"},
            "dataSets": [
                {
                    "plotType": "LINE",
                    "targetAxis": "Y1",
                    "timeSeriesQuery": {"prometheusQuery": query},
                    **({"legendTemplate": legend} if legend else {}),
                }
                for legend, query in series
            ],
        },
    }


def dashboard(stack: str, cluster: str, gemma: bool = True) -> dict[str, Any]:
    """Cloud Monitoring dashboard JSON (mosaic layout, two tiles per row; with Gemma, its cold start below)."""
    q = queries(cluster)
    charts = [
        _chart("Time to first token p50 (s), per model", (None, q["ttft_p50"])),
        _chart("Time to first token p95 (s), per model", (None, q["ttft_p95"])),
        _chart("Tokens per second (out), per model", (None, q["tokens_per_second"])),
        _chart("vLLM requests", ("running", q["vllm_running"]), ("waiting", q["vllm_waiting"])),
        _chart("vLLM KV-cache use (0-1)", ("KV cache", q["vllm_kv_cache"])),
        _chart("GPU utilisation (%), per GPU", (None, q["gpu_utilisation"])),
        _chart("Failed turns (share), per model", (None, q["error_rate"])),
        _chart(
            "Turns waiting to be saved",
            ("unsaved", q["unsaved_turns"]),
            ("dropped for good, last hour", q["dropped_turns"]),
        ),
        _chart("Replies streaming now, per model", (None, q["streams_in_flight"])),
    ]
    if gemma:
        # A wake-up from zero, stage by stage: node, then pod to Ready (image, weights, engine), the weights'
        # read rate, and the events and vLLM lines that time each stage.
        charts += [
            _chart("Cold start: GPU node, VM created to Ready (s)", (None, q["gpu_node_startup"])),
            _chart("Cold start: Gemma pod, created to Ready, image pull included (s)", (None, q["gemma_first_ready"])),
            _chart("Cold start: weights read from the bucket (bytes/s)", (None, q["gemma_weights_read"])),
            _chart("Wake-up as the chat waited for it, median over a day (s)", ("median", q["wake_median"])),
        ]
    width, height = 24, 16  # the mosaic is 48 columns wide
    tiles = [
        {"xPos": (i % 2) * width, "yPos": (i // 2) * height, "width": width, "height": height, "widget": chart}
        for i, chart in enumerate(charts)
    ]
    if gemma:
        stages = {
            "title": "Cold start stages: scale-up, scheduling, image pull (its time in the message), containers "
            "started, vLLM's weights and engine timings",
            "logsPanel": {"filter": cold_start_log_filter(cluster)},
        }
        below = ((len(charts) + 1) // 2) * height
        tiles.append({"xPos": 0, "yPos": below, "width": 2 * width, "height": height, "widget": stages})
    return {"displayName": f"hybrid-chat ({stack})", "mosaicLayout": {"columns": 48, "tiles": tiles}}


def dashboard_url(project: str, dashboard_id: str) -> str:
    """The console link; the resource id is `projects/NUMBER/dashboards/ID`."""
    short_id = dashboard_id.rsplit("/", 1)[-1]
    return f"https://console.cloud.google.com/monitoring/dashboards/builder/{short_id}?project={project}"


class Monitoring(pulumi.ComponentResource):
    dashboard: gcp.monitoring.Dashboard
    url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hybrid-chat:stack:Monitoring", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.namespace])
        scraped = [(CHAT, "metrics", kube.CHAT_METRICS_PORT, "/metrics")]
        if args.gemma_enabled:
            # vLLM serves /metrics on its API port. The policy admits the collectors to that whole port (the
            # API included): they are Google's own pods in a system namespace no workload of ours can join.
            scraped.append((GEMMA, "http", kube.GEMMA_PORT, "/metrics"))
        for app, port_name, port, path in scraped:
            manifest = pod_monitoring(app, app, port_name, path)
            # The PodMonitoring CRD comes with Managed Prometheus, i.e. with the cluster.
            k8s.apiextensions.CustomResource(
                f"{app}-pod-monitoring",
                api_version=manifest["apiVersion"],
                kind=manifest["kind"],
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[args.cluster])),
            )
            policy = f"{app}-metrics-from-gmp"
            k8s.networking.v1.NetworkPolicy(
                policy,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=policy, namespace=kube.NAMESPACE, labels=kube.labels(app, "monitoring")
                ),
                spec=_from_gmp(policy, app, port),
                opts=child,
            )

        own = pulumi.ResourceOptions(parent=self, depends_on=[args.monitoring_api])
        self.dashboard = gcp.monitoring.Dashboard(
            name,
            project=args.project,
            dashboard_json=json.dumps(dashboard(args.stack, args.cluster_name, args.gemma_enabled)),
            opts=own,
        )
        self.url = self.dashboard.id.apply(lambda id_: dashboard_url(args.project, id_))
        if args.alert_email:
            channel = gcp.monitoring.NotificationChannel(
                f"{name}-email",
                project=args.project,
                display_name=f"hybrid-chat ({args.stack}) alerts",
                type="email",
                labels={"email_address": args.alert_email},
                opts=own,
            )
            gcp.monitoring.AlertPolicy(
                f"{name}-error-rate",
                project=args.project,
                display_name=f"hybrid-chat ({args.stack}): chat turns failing",
                combiner="OR",
                conditions=[
                    gcp.monitoring.AlertPolicyConditionArgs(
                        display_name=f"more than {ERROR_RATE_THRESHOLD:.0%} of turns failed over 5 minutes",
                        condition_prometheus_query_language=gcp.monitoring.AlertPolicyConditionConditionPrometheusQueryLanguageArgs(
                            query=f"{queries(args.cluster_name)['error_rate']} > {ERROR_RATE_THRESHOLD}",
                            duration="300s",
                            evaluation_interval="60s",
                        ),
                    )
                ],
                notification_channels=[channel.name],
                documentation=gcp.monitoring.AlertPolicyDocumentationArgs(
                    content="Chat turns are failing (model errors or replies cut short). See the hybrid-chat "
                    "dashboard, then `kubectl logs -n hybrid-chat deploy/chat` and `deploy/gemma`.",
                    mime_type="text/markdown",
                ),
                opts=own,
            )
        self.register_outputs({"dashboardUrl": self.url})
