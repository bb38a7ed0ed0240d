"""`make plan`: the renderer reads Pulumi.yaml + Pulumi.dev.yaml and prints resources and manifests."""

import yaml

from tests.infra.rendering import ROOT, run_render


def test_make_plan_target_runs_the_renderer():
    assert "$(BIN)/python -m stack.render" in (ROOT / "Makefile").read_text()


def test_renders_the_dev_stack_offline():
    result = run_render()
    assert result.returncode == 0, result.stderr
    header, _, documents = result.stdout.partition("\n---\n")
    assert "# 61 resources" in header
    assert "hybrid-chat:hfToken is not set: rendered with a placeholder" in header
    assert "kubeconfig: [secret]" in header
    kinds = [d["kind"] for d in yaml.safe_load_all(documents)]
    assert kinds == [
        "Namespace",
        *["ServiceAccount"] * 3,
        "Secret",
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
    ]
    assert "url: https://203-0-113-10.nip.io" in header
    assert "my-gcp-project" in documents  # the stack file's project, not a default


def test_unknown_stack_falls_back_to_pulumi_yaml_and_says_so():
    result = run_render("--stack", "nosuchstack", "--set", "gcp:project=p")
    assert result.returncode == 0, result.stderr
    assert "Pulumi.nosuchstack.yaml not found" in result.stdout
