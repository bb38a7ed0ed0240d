"""GKE's webhooks and admission rules (tests/infra/admission.py) applied to every pod template and custom resource
the real program renders, each rule with a planted error that it must catch."""

from __future__ import annotations

import copy

import pytest

from stack.presets import DEFAULT_PRESET, PRESETS
from tests.infra import admission
from tests.infra.rendering import plan

PLANS = ("default_plan", "gemma_off_plan", "scaled_plan", "password_plan")


@pytest.fixture(scope="module")
def manifests(request) -> list[dict]:
    return [m for which in PLANS for m in request.getfixturevalue(which).data["manifests"]]


def template(manifests, name):
    return copy.deepcopy(dict(admission.pod_templates(manifests))[name])


@pytest.mark.parametrize("which", PLANS)
def test_every_rendered_pod_is_admitted(which, request):
    found = list(admission.pod_templates(request.getfixturevalue(which).data["manifests"]))
    assert found
    for name, pod in found:
        assert admission.admit_pod(pod) == [], name


@pytest.mark.parametrize("preset", [name for name in PRESETS if name != DEFAULT_PRESET])
def test_every_other_presets_pods_are_admitted(preset):
    manifests = plan({"gemmaModel": preset}).data["manifests"]
    for name, pod in admission.pod_templates(manifests):
        assert admission.admit_pod(pod) == [], name


@pytest.mark.parametrize("which", PLANS)
def test_managed_prometheus_reaches_every_scraped_port(which, request):
    manifests = request.getfixturevalue(which).data["manifests"]
    assert [m for m in manifests if m["kind"] == "PodMonitoring"]
    assert admission.scrape_errors(manifests) == []


def test_every_custom_resource_passes_the_current_crds_cel_rules(manifests):
    policies = [m for m in manifests if m["kind"] == "HealthCheckPolicy"]
    assert policies
    for policy in policies:
        assert admission.health_check_errors(policy) == []


# --- the FUSE webhook -------------------------------------------------------------------------------------------


def test_the_webhook_injects_its_sidecar_and_volumes(manifests):
    job = admission.mutate_fuse(template(manifests, "Job/weights-copy"))
    names = [v["name"] for v in job["spec"]["volumes"]]
    # The pod's own buffer replaces the webhook's; tmp and cache come from the webhook.
    assert names.count("gke-gcsfuse-buffer") == 1 and "gke-gcsfuse-tmp" in names and "gke-gcsfuse-cache" in names
    sidecar = job["spec"]["initContainers"][0]
    assert sidecar["name"] == "gke-gcsfuse-sidecar" and sidecar["restartPolicy"] == "Always"


def test_a_pod_that_declares_gke_gcsfuse_tmp_is_rejected(manifests):
    # The seed's Job did this: two volumes of one name after the webhook, so the pod never ran.
    job = template(manifests, "Job/weights-copy")
    job["spec"]["volumes"].append({"name": "gke-gcsfuse-tmp", "emptyDir": {"sizeLimit": "12Gi"}})
    assert "spec.volumes: duplicate name 'gke-gcsfuse-tmp'" in admission.admit_pod(job)


def test_a_mount_of_a_missing_volume_is_rejected(manifests):
    gemma = template(manifests, "Deployment/gemma")
    gemma["spec"]["containers"][0]["volumeMounts"].append({"name": "nowhere", "mountPath": "/x"})
    assert any("'nowhere' names no volume" in e for e in admission.admit_pod(gemma))


@pytest.mark.parametrize("name", ["Job/weights-copy", "Deployment/gemma"])
def test_a_fuse_sidecar_left_at_its_default_memory_is_refused(manifests, name):
    pod = template(manifests, name)
    annotations = pod["metadata"]["annotations"]
    for key in [k for k in annotations if k.startswith("gke-gcsfuse/memory")]:
        del annotations[key]
    assert any("FUSE sidecar memory 256Mi" in e for e in admission.admit_pod(pod))


# --- Autopilot's per-class bounds -------------------------------------------------------------------------------


def test_a_general_purpose_pod_over_10_gib_of_ephemeral_storage_is_rejected(manifests):
    job = template(manifests, "Job/weights-copy")
    for bound in ("requests", "limits"):
        job["spec"]["containers"][0]["resources"][bound]["ephemeral-storage"] = "14Gi"  # the seed's value
    assert any("ephemeral storage > 10" in e for e in admission.admit_pod(job))


def test_the_fuse_sidecar_counts_in_the_pods_ephemeral_storage(manifests):
    job = template(manifests, "Job/weights-copy")
    job["metadata"]["annotations"]["gke-gcsfuse/ephemeral-storage-limit"] = "5Gi"  # 7Gi + 5Gi > 10Gi
    assert any("12 GiB ephemeral storage" in e for e in admission.admit_pod(job))


def test_an_l4_pod_over_autopilots_cpu_or_memory_is_rejected(manifests):
    gemma = template(manifests, "Deployment/gemma")
    for bound in ("requests", "limits"):
        gemma["spec"]["containers"][0]["resources"][bound].update({"cpu": "22", "memory": "80Gi"})
    errors = admission.admit_pod(gemma)  # + the sidecar's 2 vCPU and 4Gi: over 23 and 83 for 2 L4s
    assert any("vCPU > 23 for 2 L4" in e for e in errors) and any("memory > 83 for 2 L4" in e for e in errors)


# --- the driver path, the collectors' namespace, HealthCheckPolicy ------------------------------------------------


def test_vllm_without_the_driver_path_is_refused(manifests):
    gemma = template(manifests, "Deployment/gemma")
    container = gemma["spec"]["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != "LD_LIBRARY_PATH"]
    assert any("LD_LIBRARY_PATH lacks /usr/local/nvidia/lib64" in e for e in admission.admit_pod(gemma))


def test_a_policy_admitting_the_self_deployed_namespace_drops_the_scrapes(default_plan):
    manifests = copy.deepcopy(default_plan.data["manifests"])
    for m in manifests:
        if m["kind"] == "NetworkPolicy" and m["metadata"]["name"].endswith("-metrics-from-gmp"):
            m["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] = {
                "kubernetes.io/metadata.name": "gmp-system"  # the seed's value
            }
    errors = admission.scrape_errors(manifests)
    assert "PodMonitoring/chat: port 9090 closed to gke-gmp-system" in errors
    assert "PodMonitoring/gemma: port 8000 closed to gke-gmp-system" in errors


def test_a_health_check_port_without_fixed_port_specification_is_refused(default_plan):
    policy = copy.deepcopy(default_plan.manifest("HealthCheckPolicy", "chat"))
    check = policy["spec"]["default"]["config"]["httpHealthCheck"]
    del check["portSpecification"]
    check["port"] = 7860  # the seed's policy
    errors = admission.health_check_errors(policy)
    assert any("port and portName must be unset for USE_SERVING_PORT" in e for e in errors), errors
    check["portSpecification"] = "USE_FIXED_PORT"
    assert admission.health_check_errors(policy) == []
    check["portSpecification"] = "USE_NAMED_PORT"
    assert any("USE_NAMED_PORT needs portName" in e for e in admission.health_check_errors(policy))
