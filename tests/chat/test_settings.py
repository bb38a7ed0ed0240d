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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SELF_HOSTED_URL": "gemma:8000/v1/"},
            "SELF_HOSTED_URL must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got 'gemma:8000/v1'",
        ),
        (
            {"SELF_HOSTED_URL": "https://gemma:8000/"},
            "SELF_HOSTED_URL must end in /v1 (the OpenAI-compatible API root), got 'https://gemma:8000'",
        ),
        (
            {"CHAT_IAP_CERTS_URL": "ftp://keys/"},
            "CHAT_IAP_CERTS_URL must be an http(s) URL such as 'https://www.gstatic.com/iap/verify/public_key', "
            "got 'ftp://keys/'",
        ),
    ],
)
def test_a_bad_url_is_refused_with_an_example_of_a_good_one(env, message):
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    assert str(refused.value) == message


def test_only_the_model_servers_url_loses_its_trailing_slash():
    settings = load_settings({"SELF_HOSTED_URL": "http://gemma/v1//", "CHAT_IAP_CERTS_URL": "https://keys/jwk/"})
    assert (settings.self_hosted_url, settings.iap_certs_url) == ("http://gemma/v1", "https://keys/jwk/")


@pytest.mark.parametrize(
    ("variable", "low", "high", "below", "above"),
    [
        ("CHAT_PORT", "1", "65535", "0", "65536"),
        ("CHAT_CONCURRENCY", "1", "1024", "0", "1025"),
        ("CHAT_CONTEXT_CHARS", "1000", "10000000", "999", "10000001"),
        ("CHAT_REQUEST_TIMEOUT", "1", "3600", "0.99", "3600.5"),
    ],
)
def test_numeric_settings_accept_their_range_and_refuse_beyond_it(variable, low, high, below, above):
    for value in (low, high):
        load_settings({variable: value})
    for value in (below, above):
        with pytest.raises(SettingsError, match=f"^{variable} must be between"):
            load_settings({variable: value})


def test_model_defaults_are_current_and_gemini_is_called_in_its_own_location():
    settings = load_settings({})
    assert settings.gemini_model == "gemini-3.8-flash"  # gemini-2.5-flash was retired in October 2026
    assert settings.self_hosted_model == "google/gemma-4-31b-it-qat-w4a16-ct"  # the stack's default preset
    assert settings.gemini_location == "global"
    # The cluster's region is not where Gemini 3.x is served: only GOOGLE_CLOUD_LOCATION moves it.
    assert load_settings({"GOOGLE_CLOUD_LOCATION": "us"}).gemini_location == "us"
    assert load_settings({"GOOGLE_CLOUD_LOCATION": "europe-west4"}).gemini_location == "europe-west4"


@pytest.mark.parametrize("location", ["us central1", "https://aiplatform.googleapis.com", "us-central1/x"])
def test_a_bad_gemini_location_names_the_variable_and_the_pulumi_key(location):
    with pytest.raises(SettingsError, match=r"^GOOGLE_CLOUD_LOCATION.*geminiLocation"):
        load_settings({"GOOGLE_CLOUD_LOCATION": location})


@pytest.mark.parametrize(
    ("env", "self_hosted", "gemini"),
    [
        ({}, "Gemma 4 31B QAT (self-hosted)", "Gemini 3.8 Flash"),
        (
            {"SELF_HOSTED_MODEL": "google/gemma-4-26b-a4b-it", "GEMINI_MODEL": "gemini-3.5-flash-lite"},
            "Gemma 4 26B A4B (self-hosted)",
            "Gemini 3.5 Flash Lite",
        ),
        ({"SELF_HOSTED_MODEL": "google/gemma-4-12b-it"}, "Gemma 4 12B (self-hosted)", "Gemini 3.8 Flash"),
        ({"SELF_HOSTED_MODEL": "smollm2-135m-instruct"}, "Smollm2 135M (self-hosted)", "Gemini 3.8 Flash"),
        ({"GEMINI_MODEL": "gemini-4.0-pro", "GEMINI_LABEL": "Our"}, "Gemma 4 31B QAT (self-hosted)", "Our"),
    ],
)
def test_labels_follow_the_model_ids_unless_set(env, self_hosted, gemini):
    settings = load_settings(env)
    assert (settings.self_hosted_label, settings.gemini_label) == (self_hosted, gemini)


def test_a_changed_model_id_never_shows_the_default_models_name():
    settings = load_settings({"GEMINI_MODEL": "gemini-3.5-flash", "SELF_HOSTED_MODEL": "google/gemma-3-12b-it"})
    assert "3.8" not in settings.gemini_label and "Gemma 4" not in settings.self_hosted_label
    assert settings.self_hosted_label == "Gemma 3 12B (self-hosted)"


@pytest.mark.parametrize("variable", ["GEMINI_LABEL", "SELF_HOSTED_LABEL"])
def test_an_empty_label_is_refused_by_name(variable):
    with pytest.raises(SettingsError, match=f"^{variable} is set but empty"):
        load_settings({variable: " "})
