from chatapp.conversation import Message, alternate, build_prompt, content_text, from_gradio


def test_gradio_6_list_of_parts_content_is_flattened():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": "Hi!", "metadata": None},
        {"role": "user", "content": {"type": "file", "file": {"path": "/tmp/x.png"}}},
        {"role": "system", "content": "ignored"},
    ]
    assert from_gradio(history) == [Message("user", "Hello there"), Message("assistant", "Hi!")]
    assert content_text(None) == ""


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
