"""The chat's autoscaler and disruption budget (stack/scaling.py) as the cluster would get them: ChatScaling
rendered in this process under the stack's recording mocks (stack.render), so each rendered object is what a
change to the component shows. The plan tests (test_real_project.py) read the same objects from a subprocess."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest

from stack import kube
from stack.render import Rendering, render
from tests.infra.test_kubernetes import KUBERNETES_VERSIONS

# The smallest program around the component: a provider, the Deployment it scales, and ChatScaling itself.
PROGRAM = """
import pulumi
import pulumi_kubernetes as k8s

from stack import kube
from stack.scaling import ChatScaling, ChatScalingArgs

provider = k8s.Provider("cluster", kubeconfig="{}")
labels = kube.selector_labels("chat")
deployment = k8s.apps.v1.Deployment(
    "chat",
    metadata={"name": "chat", "namespace": kube.NAMESPACE},
    spec={
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "chat", "image": "chat"}]}},
    },
    opts=pulumi.ResourceOptions(provider=provider),
)
# Options of its own, as any component takes them (program.py gives none): they must reach the component.
on_cluster = pulumi.ResourceOptions(provider=provider)
namespace = k8s.core.v1.Namespace("namespace", metadata={"name": kube.NAMESPACE}, opts=on_cluster)
scaling = ChatScalingArgs("chat", 2, 7, deployment, provider)
ChatScaling("chat-scaling", scaling, pulumi.ResourceOptions(depends_on=[namespace]))
outputs = {}
"""
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
# Kubernetes' own scale-down stabilization window when a HorizontalPodAutoscaler sets none.
KUBERNETES_DEFAULT_WINDOW_S = 300
STACK = "urn:pulumi:dev::hybrid-chat::pulumi:pulumi:Stack"


@pytest.fixture
def rendering(tmp_path: Path) -> Rendering:
    """Rendered again for every test (0.1 s after the first): mutmut credits the component's code only to the tests
    that run it, so a rendering shared by a module would leave all but the first test out of its mutants' runs."""
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    return render({}, [], program=program)


def manifest(rendering: Rendering, kind: str) -> dict:
    [found] = [m for m in rendering.manifests() if m["kind"] == kind]
    return found


def test_scale_in_waits_out_ten_minutes_of_lower_load_and_scale_out_keeps_the_immediate_default(rendering):
    behavior = manifest(rendering, "HorizontalPodAutoscaler")["spec"]["behavior"]
    # A removed pod ends its streams and its browsers reconnect: a lull shorter than 10 minutes must not cost one.
    assert behavior == {"scaleDown": {"stabilizationWindowSeconds": 600}}
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] > KUBERNETES_DEFAULT_WINDOW_S


def test_the_autoscaler_scales_the_chat_deployment_on_cpu_between_its_bounds(rendering):
    hpa = manifest(rendering, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 7)
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    assert spec["metrics"] == [cpu]


def test_one_chat_pod_at_a_time_may_be_evicted(rendering):
    pdb = manifest(rendering, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": kube.selector_labels("chat")}}
    deployment = manifest(rendering, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()  # it covers the chat's pods


@pytest.mark.parametrize("kind", ["HorizontalPodAutoscaler", "PodDisruptionBudget"])
def test_both_objects_are_named_for_the_chat_in_its_namespace_and_valid(rendering, kind):
    found = manifest(rendering, kind)
    assert found["metadata"] == {"name": "chat", "namespace": kube.NAMESPACE, "labels": kube.labels("chat", "web")}
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(found, version, strict=True)


@pytest.mark.parametrize("typ", [HPA, PDB])
def test_both_are_the_components_children_on_the_cluster_after_the_deployment(rendering, typ):
    by_type = {(r.type, r.name): r for r in rendering.registrations}
    child = by_type[(typ, "chat")]
    assert child.parent.endswith("hybrid-chat:stack:ChatScaling::chat-scaling")
    assert child.provider == f"{STACK}$pulumi:providers:kubernetes::cluster::cluster-id"  # not the default one
    assert f"{STACK}$kubernetes:apps/v1:Deployment::chat" in child.dependencies


def test_the_components_own_options_reach_it(rendering):
    [component] = [r for r in rendering.registrations if r.type == "hybrid-chat:stack:ChatScaling"]
    assert component.name == "chat-scaling"
    assert component.dependencies == (f"{STACK}$kubernetes:core/v1:Namespace::namespace",)
