"""Settings of Auto and of the daily limit."""

import pytest

from chatapp.settings import SettingsError, load_settings


def test_daily_limit_is_off_unless_set():
    assert load_settings({}).daily_tokens is None
    assert load_settings({"CHAT_DAILY_TOKENS": ""}).daily_tokens is None
    assert load_settings({"CHAT_DAILY_TOKENS": " 200000 "}).daily_tokens == 200_000


@pytest.mark.parametrize("value", ["0", "-5", "lots", "1.5", "1000000000001"])
def test_a_bad_daily_limit_names_the_variable(value):
    with pytest.raises(SettingsError, match=r"^CHAT_DAILY_TOKENS must be"):
        load_settings({"CHAT_DAILY_TOKENS": value})


def test_auto_label_comes_from_settings_and_must_be_distinct():
    assert load_settings({"AUTO_LABEL": "Auto"}).auto_label == "Auto"
    for other in ("SELF_HOSTED_LABEL", "GEMINI_LABEL"):
        with pytest.raises(SettingsError, match="AUTO_LABEL"):
            load_settings({"AUTO_LABEL": "Same", other: "Same"})
