"""`python -m chatapp`: validate the configuration, then serve."""

from __future__ import annotations

import logging
import sys

import uvicorn

from chatapp.settings import SettingsError, load_settings


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

    metrics.watch_unsaved(app.state.history.pending_count)
    try:
        metrics.serve(settings.host, settings.metrics_port)
    except OSError as exc:
        print(f"hybrid-chat: CHAT_METRICS_PORT {settings.metrics_port}: {exc}", file=sys.stderr)
        return 2
    print(f"hybrid-chat: serving on http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=15,
        # Forwarded headers are trusted only with CHAT_TRUSTED_PROXY, by chatapp.web: uvicorn's own handling
        # would trust any local peer's X-Forwarded-For and let it pick its address for the sign-in limits.
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
