"""Several chat replicas as a real deployment runs them: processes sharing one Firestore database (the
emulator) and one CHAT_SECRET_KEY, behind a switchable TCP proxy that plays the load balancer.

    replicas = start_replicas(env, workdir, emulator_host, count=2)
    replicas.proxy.url            what a browser or API client talks to
    replicas.route_to(1)          new connections go to replica 1 (the load balancer moved the person)
    replicas[0]                   a ChatProcess (.process for signals, .url to reach it directly)
    replicas.stop()               every replica (by pid) and the proxy
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from harness.chat_process import ChatProcess, start_chat
from harness.firestore_emulator import PROJECT
from harness.tcp_proxy import SwitchProxy


@dataclass
class Replicas:
    chats: list[ChatProcess]
    proxy: SwitchProxy
    database: str
    env: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, index: int) -> ChatProcess:
        return self.chats[index]

    def port_of(self, index: int) -> int:
        return int(self.chats[index].env["CHAT_PORT"])

    def route_to(self, index: int, cut: bool = False) -> None:
        """New connections go to replica `index`; `cut` also closes the open ones (their node is gone)."""
        self.proxy.switch(self.port_of(index))
        if cut:
            self.proxy.cut()

    def stop(self, grace_s: float = 5.0) -> None:
        self.proxy.close()
        for chat in self.chats:
            chat.stop(grace_s)


def start_replicas(env: dict[str, str], workdir: Path, emulator_host: str, count: int = 2) -> Replicas:
    """`count` chats on one fresh Firestore database, each with its own directory under `workdir`; the proxy
    starts out routing to replica 0."""
    database = f"replicas-{uuid.uuid4().hex[:12]}"
    shared = {
        **env,
        "CHAT_STORE": "firestore",
        "FIRESTORE_EMULATOR_HOST": emulator_host,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_DATABASE": database,
        # The stack gives every replica the same key (a Kubernetes Secret), so each can verify what another
        # signed; a key of its own per replica would sign every person out when they change replica.
        "CHAT_SECRET_KEY": env.get("CHAT_SECRET_KEY") or secrets.token_urlsafe(32),
    }
    chats: list[ChatProcess] = []
    try:
        for index in range(count):
            folder = workdir / f"replica-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            chats.append(start_chat(shared, folder))
    except Exception:
        for chat in chats:
            chat.stop(3)
        raise
    proxy = SwitchProxy(int(chats[0].env["CHAT_PORT"]))
    return Replicas(chats, proxy, database, shared)
