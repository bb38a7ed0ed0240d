import pytest

from chatapp.conversation import Message, alternate, build_prompt


def test_alternate_joins_repeated_roles_and_drops_leading_assistant():
    messages = [
        Message("assistant", "greeting"),
        Message("user", "a"),
        Message("user", "b"),
        Message("assistant", "c"),
        Message("assistant", "d"),
        Message("user", "  "),
    ]
    assert alternate(messages) == [Message("user", "a\n\nb"), Message("assistant", "c\n\nd")]


def test_prompt_has_one_leading_system_message_and_strict_alternation():
    history = [Message("user", "1"), Message("assistant", "2"), Message("user", "3 (no reply)")]
    prompt = build_prompt(history, "4", system_prompt="Be brief.")
    assert [m.role for m in prompt] == ["system", "user", "assistant", "user"]
    assert prompt[-1].content == "3 (no reply)\n\n4"


def test_trimming_drops_oldest_pairs_but_never_system_or_newest():
    history = []
    for i in range(10):
        history += [Message("user", f"q{i} " + "x" * 100), Message("assistant", f"a{i} " + "y" * 100)]
    prompt = build_prompt(history, "newest", system_prompt="S" * 50, budget_chars=500)
    assert prompt[0] == Message("system", "S" * 50)
    assert prompt[-1] == Message("user", "newest")
    assert sum(len(m.content) for m in prompt) <= 500
    roles = [m.role for m in prompt[1:]]
    assert roles == ["user", "assistant"] * ((len(roles) - 1) // 2) + ["user"]
    assert prompt[1].content.startswith("q8")  # the most recent turns survive


def test_oversized_newest_message_is_still_sent_alone():
    prompt = build_prompt([Message("user", "old"), Message("assistant", "reply")], "z" * 1000, "sys", 100)
    assert prompt == [Message("system", "sys"), Message("user", "z" * 1000)]


def _is_valid_prompt(prompt, system_prompt, newest):
    """Gemma's template: an optional leading system message, then strictly alternating turns from a user."""
    body = prompt[1:] if system_prompt else prompt
    if system_prompt:
        assert prompt[0] == Message("system", system_prompt), "the system prompt was dropped"
    assert body[-1].role == "user" and body[-1].content.endswith(newest), "the newest message was dropped"
    assert [m.role for m in body] == ["user", "assistant"] * (len(body) // 2) + ["user"], [m.role for m in body]


def _size(messages):
    return sum(len(m.content) for m in messages)


@pytest.mark.parametrize("system_prompt", ["", "Be brief."])
@pytest.mark.parametrize("odd", [False, True], ids=["ends-with-reply", "ends-with-unanswered-message"])
def test_trimming_keeps_the_newest_turns_that_fit_whatever_their_sizes(system_prompt, odd):
    """Messages of very different sizes and odd message counts, every budget from nothing to everything: the
    prompt always starts with a user turn, keeps the system prompt and the newest message, fits the budget
    when it can, and keeps as many of the most recent whole turns as fit."""
    sizes = [3, 40, 7, 120, 1, 55, 90, 2, 13, 64, 31, 8]
    history = [Message("user" if i % 2 == 0 else "assistant", f"m{i}:" + "x" * size) for i, size in enumerate(sizes)]
    if odd:
        history.append(Message("user", "unanswered"))  # its reply failed: joined with the newest message
    newest = "newest?"
    turns = alternate([*history, Message("user", newest)])
    full = [*([Message("system", system_prompt)] if system_prompt else []), *turns]

    for budget in range(0, _size(full) + 2):
        prompt = build_prompt(history, newest, system_prompt, budget_chars=budget)
        _is_valid_prompt(prompt, system_prompt, newest)
        kept = prompt[1:] if system_prompt else prompt
        assert kept == turns[len(turns) - len(kept) :], "not a suffix of the conversation"
        if len(kept) > 1:
            assert _size(prompt) <= budget, f"budget {budget}: {_size(prompt)} characters"
        if len(kept) < len(turns):  # one more whole turn would not have fitted
            one_more = turns[len(turns) - len(kept) - 2 :]
            assert _size(prompt) + _size(one_more[:2]) > budget, f"budget {budget}: dropped more than needed"


def test_a_history_that_starts_with_a_reply_never_yields_a_prompt_starting_with_one():
    history = [Message("assistant", "Welcome! " * 20), Message("user", "q" * 30), Message("assistant", "a" * 5)]
    for budget in range(0, 300):
        prompt = build_prompt(history, "next", budget_chars=budget)
        assert prompt[0].role == "user" and prompt[-1] == Message("user", "next")
