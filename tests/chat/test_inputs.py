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
