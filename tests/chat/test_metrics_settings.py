"""CHAT_METRICS_PORT: the separate Prometheus port, validated like every other variable."""

import pytest

from chatapp.settings import SettingsError, load_settings


def test_default_port_and_zero_turns_it_off():
    assert load_settings({}).metrics_port == 9090
    assert load_settings({"CHAT_METRICS_PORT": "0"}).metrics_port == 0
    assert load_settings({"CHAT_METRICS_PORT": " 9191 "}).metrics_port == 9191


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHAT_METRICS_PORT": "70000"}, "CHAT_METRICS_PORT must be between 0 and 65535, got 70000"),
        ({"CHAT_METRICS_PORT": "metrics"}, "CHAT_METRICS_PORT must be a whole number, got 'metrics'"),
        ({"CHAT_METRICS_PORT": "8080", "CHAT_PORT": "8080"}, "CHAT_METRICS_PORT must differ from CHAT_PORT (8080)"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    assert message in str(error.value)
