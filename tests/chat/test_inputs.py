import pytest

from chatapp.inputs import MAX_MESSAGE_CHARS, InputError, clean_message, clean_params, clean_system_prompt


def test_control_characters_and_lone_surrogates_are_cleaned():
    assert clean_message("a\x00b\x07c\td\ne") == "abc\td\ne"
    assert clean_message("bad \ud800 half") == "bad \ufffd half"
    assert clean_message("\ud83d\ude00") == "😀"  # a pair split by a JSON decoder is joined again
    assert clean_message("مرحبا 👋🏽") == "مرحبا 👋🏽"


@pytest.mark.parametrize("value", ["", "   \n\t", None, "\x00\x01"])
def test_empty_messages_are_refused(value):
    with pytest.raises(InputError, match="empty"):
        clean_message(value)


def test_oversized_and_wrong_typed_messages_are_refused():
    with pytest.raises(InputError, match="limit is 100,000"):
        clean_message("x" * (MAX_MESSAGE_CHARS + 1))
    with pytest.raises(InputError, match="must be text"):
        clean_message(42)
    with pytest.raises(InputError, match="system prompt"):
        clean_system_prompt("s" * 100_000)


def test_params_accept_numeric_strings_and_refuse_nonsense():
    params = clean_params("0.5", 1, "256")
    assert (params.temperature, params.top_p, params.max_tokens) == (0.5, 1.0, 256)
    for bad in [
        ("hot", 0.9, 10),
        (float("nan"), 0.9, 10),
        (3, 0.9, 10),
        (0.5, 0, 10),
        (0.5, 0.9, 0),
        (0.5, 0.9, 10.5),
        (True, 0.9, 10),
        (0.5, 0.9, None),
    ]:
        with pytest.raises(InputError):
            clean_params(*bad)


# The documented ranges (README, UI sliders), pinned here as numbers so a changed bound fails a test.
PARAMS = ("Temperature", "Top-p", "Max tokens")
DEFAULTS = {"Temperature": 0.7, "Top-p": 0.95, "Max tokens": 256}
RANGES = {
    "Temperature": (0.0, 2.0, -0.01, 2.01),
    "Top-p": (0.01, 1.0, 0.009, 1.001),
    "Max tokens": (1, 8192, 0, 8193),
}


def _params(name, value):
    return clean_params(*({**DEFAULTS, name: value}[p] for p in PARAMS))


@pytest.mark.parametrize("name", PARAMS)
def test_every_generation_parameter_accepts_its_range_and_refuses_beyond_it(name):
    low, high, below, above = RANGES[name]
    attribute = {"Temperature": "temperature", "Top-p": "top_p", "Max tokens": "max_tokens"}[name]
    assert getattr(_params(name, low), attribute) == low
    assert getattr(_params(name, high), attribute) == high
    assert getattr(_params(name, str(high)), attribute) == high  # API callers may send strings
    for bad in (below, above, -above, float("inf"), float("-inf")):
        with pytest.raises(InputError, match=f"^{name} must be between {low} and {high}, got "):
            _params(name, bad)


@pytest.mark.parametrize(
    ("clean", "what", "limit"),
    [(clean_message, "message", 100_000), (clean_system_prompt, "system prompt", 20_000)],
)
def test_text_lengths_up_to_the_limit_are_kept_and_beyond_refused(clean, what, limit):
    assert clean("é" * limit) == "é" * limit  # the limit counts characters, not bytes
    with pytest.raises(InputError, match=f"The {what} is {limit + 1:,} characters long; the limit is {limit:,}"):
        clean("é" * (limit + 1))
