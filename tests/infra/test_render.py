"""`make plan`: the renderer reads Pulumi.yaml + Pulumi.dev.yaml and prints resources and manifests."""

import re

import yaml

from tests.infra.rendering import ROOT, run_render


def test_make_plan_target_runs_the_renderer():
    assert "$(BIN)/python -m stack.render" in (ROOT / "Makefile").read_text()


def test_renders_the_dev_stack_offline():
    result = run_render()
    assert result.returncode == 0, result.stderr
    header, _, documents = result.stdout.partition("\n---\n")
    assert "# 72 resources" in header
    # Optional: without it there is no token Secret, and the weights Job downloads anonymously.
    assert "hybrid-chat:hfToken is not set: the weights Job downloads without a token" in header
    assert "kubeconfig: [secret]" in header
    kinds = [d["kind"] for d in yaml.safe_load_all(documents)]
    assert kinds == [
        "Namespace",
        *["ServiceAccount"] * 3,
        "Secret",  # the key every chat replica signs with (CHAT_SECRET_KEY)
        "Job",
        *["Deployment"] * 2,
        *["Service"] * 2,
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        *["NetworkPolicy"] * 5,
        "Gateway",
        *["HTTPRoute"] * 2,
        "HealthCheckPolicy",
        "GCPBackendPolicy",
        *["PodMonitoring"] * 2,
        "TriggerAuthentication",
        "ScaledObject",
    ]
    assert "url: https://203-0-113-10.nip.io" in header
    assert "my-gcp-project" in documents  # the stack file's project, not a default


def test_unknown_stack_falls_back_to_pulumi_yaml_and_says_so():
    result = run_render("--stack", "nosuchstack", "--set", "gcp:project=p")
    assert result.returncode == 0, result.stderr
    assert "Pulumi.nosuchstack.yaml not found" in result.stdout


def test_make_plan_shows_todays_models_and_gkes_rules():
    """What issue 14 asks to see by eye in `make plan`, asserted on the same text."""
    result = run_render()
    assert result.returncode == 0, result.stderr
    _, _, documents = result.stdout.partition("\n---\n")
    manifests = list(yaml.safe_load_all(documents))
    assert "gemini-2." not in result.stdout  # retired in October 2026
    assert "gemini-3.8-flash" in documents
    gemma = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "gemma")
    (vllm,) = gemma["spec"]["template"]["spec"]["containers"]
    assert "--served-model-name=google/gemma-4-" in " ".join(vllm["args"])
    assert "/usr/local/nvidia/lib64" in {e["name"]: e.get("value") for e in vllm["env"]}["LD_LIBRARY_PATH"]
    # By digest (issue 20), from the stack's mirror of Docker Hub (issue 18, fast wake-up).
    mirror = r"[a-z0-9-]+-docker\.pkg\.dev/my-gcp-project/hybrid-chat-dockerhub-dev/"
    assert re.fullmatch(mirror + r"vllm/vllm-openai:v[\d.]+@sha256:[0-9a-f]{64}", vllm["image"])
    volumes = [
        v["name"]
        for m in manifests
        if "template" in m.get("spec", {})
        for v in m["spec"]["template"]["spec"].get("volumes", [])
    ]
    assert "gke-gcsfuse-tmp" not in volumes  # the FUSE webhook injects its own
    assert "kubernetes.io/metadata.name: gke-gmp-system" in documents
