import pytest

from chatapp.settings import Settings, SettingsError, load_settings


def test_defaults_match_the_design_contract():
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.store) == ("0.0.0.0", 7860, "sqlite")
    assert settings.self_hosted_url == "http://127.0.0.1:8000/v1"
    assert settings.firestore_database == "chat-app-db"
    assert settings.concurrency == 64
    assert settings.auth == "none"
    assert settings.auth_users == {}


def test_reads_every_variable():
    settings = load_settings(
        {
            "CHAT_PORT": "8080",
            "CHAT_STORE": "firestore",
            "SELF_HOSTED_URL": "http://gemma:8000/v1/",
            "CHAT_CONCURRENCY": "8",
            "CHAT_AUTH": "password",
            "CHAT_AUTH_USERS": "ada:s3cret, bob:pa:ss",
            "CHAT_LOG_CONTENT": "true",
        }
    )
    assert settings.port == 8080
    assert settings.store == "firestore"
    assert settings.self_hosted_url == "http://gemma:8000/v1"
    assert settings.concurrency == 8
    assert settings.auth_users == {"ada": "s3cret", "bob": "pa:ss"}
    assert settings.log_content is True


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CHAT_PORT": "http"}, "CHAT_PORT"),
        ({"CHAT_PORT": "70000"}, "CHAT_PORT"),
        ({"CHAT_STORE": "postgres"}, "CHAT_STORE"),
        ({"SELF_HOSTED_URL": "gemma:8000"}, "SELF_HOSTED_URL"),
        ({"SELF_HOSTED_URL": "http://gemma:8000"}, "SELF_HOSTED_URL"),
        ({"CHAT_CONCURRENCY": "0"}, "CHAT_CONCURRENCY"),
        ({"CHAT_AUTH": "password", "CHAT_AUTH_USERS": "ada"}, "CHAT_AUTH_USERS"),
        ({"CHAT_AUTH": "password", "CHAT_AUTH_USERS": "ada:1,ada:2"}, "CHAT_AUTH_USERS"),
        ({"CHAT_LOG_CONTENT": "maybe"}, "CHAT_LOG_CONTENT"),
        ({"GEMINI_MODEL": "  "}, "GEMINI_MODEL"),
        ({"GEMINI_LABEL": "Same", "SELF_HOSTED_LABEL": "Same"}, "GEMINI_LABEL"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        load_settings(env)
