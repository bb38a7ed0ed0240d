"""Configuration: defaults in one place, and errors that name the key before anything is created."""

import json

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


def test_gemma_gpus_below_zero():
    message = render_error({"gcp:project": "p", "gemmaGpus": "-1"}, {"hfToken": HF_TOKEN})
    assert "hybrid-chat:gemmaGpus must be 1, 2, 4 or 8 (0: the preset's), got -1" in message


def test_the_hf_token_is_optional():
    result = run_render(*config_args({"gcp:project": "p"}, {}))
    assert result.returncode == 0, result.stderr
    assert "hybrid-chat:hfToken" not in result.stderr


def test_all_problems_reported_at_once():
    message = render_error({"gemmaGpus": "three", "chatReplicas": "0", "clusterName": "Bad_Name"}, {})
    for key in ("gcp:project", "gemmaGpus", "chatReplicas", "clusterName"):
        assert key in message


def test_an_unknown_model_names_the_presets_and_the_keys_for_an_id():
    message = render_error({"gcp:project": "p", "gemmaModel": "gemma5"}, {})
    assert "hybrid-chat:gemmaModel 'gemma5' is not a preset (gemma4-31b-qat, gemma4-12b-qat, gemma3-12b)" in message
    # A Hugging Face id needs its GPUs and vLLM arguments spelt out.
    message = render_error({"gcp:project": "p", "gemmaModel": "someone/model-7b", "gemmaGpus": "1"}, {})
    assert "gemmaVllmArgs" in message and "gemmaGpus" in message
    message = render_error({"gcp:project": "p", "gemmaVllmArgs": '["max-model-len=8"]'}, {})
    assert "hybrid-chat:gemmaVllmArgs must be a list of vLLM arguments" in message


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


def test_front_door_must_be_iap_or_password():
    message = render_error({"gcp:project": "p", "frontDoor": "http"}, {"hfToken": HF_TOKEN})
    assert "hybrid-chat:frontDoor must be iap (Google sign-in) or password" in message
    assert "no plain-HTTP option" in message


def test_bad_chat_users_name_the_entry():
    users = json.dumps(["user:ok@example.com", "alice@example.com", "group:", "domain:example.com"])
    message = render_error({"gcp:project": "p", "chatUsers": users}, {"hfToken": HF_TOKEN})
    assert "chatUsers entry 'alice@example.com' is not an IAM member" in message
    assert "chatUsers entry 'group:' is not an IAM member" in message
    assert "ok@example.com" not in message and "'domain:example.com'" not in message


def test_chat_users_must_be_a_list():
    message = render_error({"gcp:project": "p", "chatUsers": "user:a@example.com"}, {"hfToken": HF_TOKEN})
    assert "hybrid-chat:chatUsers must be a list" in message
    assert "--path 'chatUsers[0]'" in message


def test_client_id_without_secret_and_secret_without_id():
    message = render_error({"gcp:project": "p", "iapClientId": "x.apps.googleusercontent.com"}, {"hfToken": HF_TOKEN})
    assert "iapClientId and hybrid-chat:iapClientSecret go together" in message
    message = render_error({"gcp:project": "p"}, {"hfToken": HF_TOKEN, "iapClientSecret": "s"})
    assert "iapClientId and hybrid-chat:iapClientSecret go together" in message


def test_password_front_door_needs_logins():
    message = render_error({"gcp:project": "p", "frontDoor": "password"}, {"hfToken": HF_TOKEN})
    assert "frontDoor is password but hybrid-chat:chatAuthUsers is not set" in message


def test_domain_must_be_a_plain_dns_name():
    for bad in ("https://chat.example.com", "*.example.com", "chat_example.com", "localhost"):
        message = render_error({"gcp:project": "p", "domain": bad}, {"hfToken": HF_TOKEN})
        assert "hybrid-chat:domain" in message and "is not a DNS name" in message, bad


def test_chat_users_from_a_stack_file_reach_the_program(tmp_path):
    # `pulumi config set --path 'chatUsers[0]' …` writes a YAML list; the CLI hands it over as JSON.
    from stack.stackfiles import load_stack_settings

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.t.yaml").write_text("config:\n  hybrid-chat:chatUsers:\n    - user:a@example.com\n")
    settings = load_stack_settings("t", root=tmp_path)
    assert json.loads(settings.config["hybrid-chat:chatUsers"]) == ["user:a@example.com"]


def test_keys_of_the_other_front_door_are_reported_unused():
    plain = {"gcp:project": "p", "frontDoor": "password", "chatUsers": '["user:a@example.com"]'}
    result = run_render(*config_args(plain, {"hfToken": HF_TOKEN, "chatAuthUsers": "a:long-password"}))
    assert result.returncode == 0, result.stderr
    assert "hybrid-chat:chatUsers is ignored while hybrid-chat:frontDoor is password" in result.stderr
    result = run_render(*config_args({"gcp:project": "p"}, {"hfToken": HF_TOKEN, "chatAuthUsers": "a:pw"}))
    assert "hybrid-chat:chatAuthUsers is ignored while hybrid-chat:frontDoor is iap" in result.stderr


def test_daily_tokens_must_not_be_negative():
    message = render_error({"gcp:project": "p", "chatDailyTokens": "-5"}, {"hfToken": HF_TOKEN})
    assert "hybrid-chat:chatDailyTokens must be 0 (no limit) or more, got -5" in message
