"""`python -m chatapp`: validate the configuration, then serve."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from types import FrameType

import uvicorn

from chatapp.drain import CONNECTIONS_S, CUT_SAVE_S, Drain
from chatapp.settings import SettingsError, load_settings

log = logging.getLogger("chatapp")


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM first drains (chatapp.drain): uvicorn's own shutdown, which closes the listening
    socket and then cancels whatever still streams, starts only once no reply is in flight."""

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.drain.begin():  # a second signal: uvicorn's own handling
            super().handle_exit(sig, frame)
            return
        log.warning("signal %s: draining, replies in flight have %.0f s", sig, self.drain.reply_budget_s)

        def then_exit() -> None:
            if not self.drain.wait_idle(self.drain.reply_budget_s + CUT_SAVE_S):
                log.warning("replies still in flight after the shutdown budget: exiting anyway")
            super(DrainingServer, self).handle_exit(sig, frame)

        threading.Thread(target=then_exit, name="drain", daemon=True).start()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"hybrid-chat: configuration error: {exc}", file=sys.stderr)
        return 2
    from chatapp.server import create_app  # after validation: a bad variable fails fast, before heavy imports

    app = create_app(settings)
    from chatapp import metrics

    metrics.watch_unsaved(app.state.unsaved_turns)
    try:
        metrics.serve(settings.host, settings.metrics_port)
    except OSError as exc:
        print(f"hybrid-chat: CHAT_METRICS_PORT {settings.metrics_port}: {exc}", file=sys.stderr)
        return 2
    print(f"hybrid-chat: serving on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        # Only once no reply streams (DrainingServer): what is left open is idle pages' event streams.
        timeout_graceful_shutdown=int(CONNECTIONS_S),
        # Forwarded headers are trusted only with CHAT_TRUSTED_PROXY, by chatapp.web: uvicorn's own handling
        # would trust any local peer's X-Forwarded-For and let it pick its address for the sign-in limits.
        proxy_headers=False,
    )
    # What start-up built (modules, the app, its pages) lives as long as the process; out of the collector's way,
    # a full collection walks only what serving made since, not ~200k objects with the event loop stopped.
    gc.freeze()
    DrainingServer(config, app.state.drain).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
