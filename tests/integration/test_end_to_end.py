"""The cloud's shape on one machine: `python -m chatapp` with history in the Firestore emulator, the real
llama.cpp server in the self-hosted slot and a Vertex-shaped server behind the real google-genai SDK."""

import requests
from gradio_client import Client

from chatapp.history.firestore import FirestoreStore

SMOL = "SmolLM2 (llama.cpp)"
GEMINI = "Gemini (fake Vertex)"


def test_switching_models_mid_conversation_keeps_context_and_saves_every_turn_once(
    chat_server, llama_server, fake_vertex, firestore_database, monkeypatch
):
    project = "hybrid-chat-test"  # both Firestore and Vertex take the project from GOOGLE_CLOUD_PROJECT
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    chat = chat_server(
        CHAT_STORE="firestore",
        FIRESTORE_DATABASE=firestore_database,
        SELF_HOSTED_URL=llama_server.base_url,
        SELF_HOSTED_MODEL=llama_server.model,
        SELF_HOSTED_LABEL=SMOL,
        GEMINI_LABEL=GEMINI,
    )
    assert requests.get(f"{chat.url}/readyz", timeout=10).json()["status"] == "ok"
    client = Client(chat.url, verbose=False)

    first = client.predict("What is the capital of France?", SMOL, 0.1, 0.9, 48, "Answer briefly.", api_name="/chat")
    assert first.strip() and "⚠️" not in first
    second = client.predict("And of Italy?", GEMINI, 0.2, 0.9, 64, "Answer briefly.", api_name="/chat")
    # The fake Vertex server echoes how much context it received: turn 1 (2 messages) + this question.
    assert second == "You said: And of Italy? (3 messages in context)"
    sent = fake_vertex.generate_requests()[-1]["body"]
    assert sent["systemInstruction"]["parts"][0]["text"] == "Answer briefly."
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][1]["parts"][0]["text"] == first

    store = FirestoreStore(project, firestore_database)
    try:
        (session,) = store.list_sessions(f"browser:{client.cookies['hybrid-chat-browser']}")
        assert (session.turns, session.title) == (2, "What is the capital of France?")
        messages = store.load_messages(session.session_id, session.owner)
    finally:
        store.close()
    assert [(m.role, m.content, m.model) for m in messages] == [
        ("user", "What is the capital of France?", None),
        ("assistant", first, SMOL),
        ("user", "And of Italy?", None),
        ("assistant", second, GEMINI),
    ]
    client.close()
