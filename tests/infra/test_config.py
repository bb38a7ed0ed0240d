"""Configuration: defaults in one place, and errors that name the key before anything is created."""

import yaml

from stack.config import DEFAULTS
from tests.infra.rendering import HF_TOKEN, ROOT, config_args, run_render


def render_error(plain, secret):
    result = run_render(*config_args(plain, secret))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    return result.stderr


def test_missing_project():
    assert "gcp:project is not set" in render_error({}, {"hfToken": HF_TOKEN})


def test_gemma_gpus_below_one():
    message = render_error({"gcp:project": "p", "gemmaGpus": "0"}, {"hfToken": HF_TOKEN})
    assert "hybrid-chat:gemmaGpus must be 1, 2, 4 or 8, got 0" in message


def test_missing_hf_token_while_gemma_is_on():
    message = render_error({"gcp:project": "p"}, {})
    assert "hybrid-chat:hfToken is not set" in message
    assert "pulumi config set --secret hfToken" in message


def test_all_problems_reported_at_once():
    message = render_error({"gemmaGpus": "three", "chatReplicas": "0", "clusterName": "Bad_Name"}, {})
    for key in ("gcp:project", "gemmaGpus", "chatReplicas", "clusterName", "hfToken"):
        assert key in message


def test_pulumi_yaml_declares_every_key_with_type_default_and_description():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "hybrid-chat"
    assert project["runtime"] == {
        "name": "python",
        "options": {"toolchain": "pip", "virtualenv": "venv"},
    }
    declared = project["config"]
    assert declared["gcp:region"] == {"value": "us-central1"}
    for key, default in DEFAULTS.items():
        assert declared[key]["default"] == default, key
        assert declared[key]["type"] == {bool: "boolean", int: "integer", str: "string"}[type(default)], key
        assert declared[key]["description"], key
    assert set(declared) == {"gcp:region", *DEFAULTS}


def test_example_stack_has_no_secrets():
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    assert stack["config"]["gcp:project"]
    assert not any(isinstance(v, dict) for v in stack["config"].values())
    assert "hfToken" not in str(stack)
