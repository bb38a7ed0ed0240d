"""Each setting is declared once, completely: its variable, a description, bounds for a number, its default from
`chatapp.defaults` where the stack shares it, and a row in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatapp import defaults
from chatapp.settings import Settings, SettingsError, load_settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
FIELDS = Settings.model_fields


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_field_names_its_variable_and_says_what_it_is(name):
    field = FIELDS[name]
    assert field.alias and re.fullmatch(r"[A-Z][A-Z0-9_]+", field.alias), f"{name} declares no variable"
    assert field.description, f"{field.alias} has no description"
    assert f"`{field.alias}`" in README, f"{field.alias} has no row in the README's configuration table"


@pytest.mark.parametrize("name", [n for n, f in FIELDS.items() if f.annotation in (int, float, int | None)])
def test_every_number_has_both_bounds_and_says_them_when_refused(name):
    variable = FIELDS[name].alias
    with pytest.raises(SettingsError, match=rf"^{variable} must be between \S+ and \S+, got -5$"):
        load_settings({variable: "-5"})


def test_the_defaults_the_stack_shares_come_from_one_module():
    chat = Settings()
    assert (chat.port, chat.metrics_port, chat.concurrency) == (
        defaults.CHAT_PORT,
        defaults.CHAT_METRICS_PORT,
        defaults.CHAT_CONCURRENCY,
    )
    assert chat.request_timeout_s == defaults.CHAT_REQUEST_TIMEOUT_S
    assert (chat.self_hosted_model, chat.gemini_model) == (defaults.SELF_HOSTED_MODEL, defaults.GEMINI_MODEL)
    assert (chat.gemini_location, chat.firestore_database) == (defaults.GEMINI_LOCATION, defaults.FIRESTORE_DATABASE)


def test_no_secret_is_shown_when_the_settings_are_printed():
    settings = load_settings({"CHAT_AUTH": "password", "CHAT_AUTH_USERS": "ada:s3cret", "CHAT_SECRET_KEY": "k" * 40})
    assert "s3cret" not in repr(settings) and "k" * 40 not in repr(settings)
