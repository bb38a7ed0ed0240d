"""Optional sign-in (CHAT_AUTH_USERS): strangers get nothing, and conversations belong to the user name."""

import pytest
import requests
from gradio_client import Client
from gradio_client.exceptions import AppError

from chatapp.history.sqlite import SqliteStore

LABEL = "Fake model"


def test_signed_in_users_own_their_conversations_across_clients(chat_server, fake_openai, tmp_path):
    chat = chat_server(
        CHAT_AUTH="password",
        CHAT_AUTH_USERS="ada:correct horse,bob:battery staple",
        SELF_HOSTED_URL=fake_openai.base_url,
        SELF_HOSTED_MODEL=fake_openai.model,
        SELF_HOSTED_LABEL=LABEL,
    )
    # Health checks stay open for the load balancer and kubelet; the chat itself does not.
    assert requests.get(f"{chat.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{chat.url}/config", timeout=5).status_code == 401
    bad = requests.post(f"{chat.url}/login", data={"username": "ada", "password": "wrong"}, timeout=5)
    assert bad.status_code == 400

    ada = Client(chat.url, auth=("ada", "correct horse"), verbose=False)
    assert ada.predict("hello from ada", LABEL, 0.7, 0.95, 64, "", api_name="/chat") == "You said: hello from ada"
    store = SqliteStore(chat.env["CHAT_SQLITE_PATH"])
    try:
        (session,) = store.list_sessions("user:ada")
        assert session.title == "hello from ada"
        assert store.list_sessions("user:bob") == []
        # A second client of the same user (another device) may reopen it; another user may not.
        again = Client(chat.url, auth=("ada", "correct horse"), verbose=False)
        history = again.predict(session.session_id, api_name="/resume")
        assert [m["content"] for m in history] == ["hello from ada", "You said: hello from ada"]
        bob = Client(chat.url, auth=("bob", "battery staple"), verbose=False)
        with pytest.raises(AppError, match="No such conversation"):
            bob.predict(session.session_id, api_name="/resume")
    finally:
        store.close()
