"""FastAPI app: `/healthz`, `/readyz`, and the Gradio chat mounted at `/`."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from chatapp import api_stream, gradio_compat, metrics
from chatapp.browser_id import BrowserIds, load_key
from chatapp.cancels import OneCancelAtATime
from chatapp.chat import ChatService
from chatapp.conversations import Conversations
from chatapp.drain import Drain
from chatapp.history import open_store
from chatapp.history.base import ChatStore, StoreError
from chatapp.history.pending import RetryingStore
from chatapp.history.shared import shared_state
from chatapp.iap import IapVerifier
from chatapp.images import MAX_IMAGE_BYTES, sniff
from chatapp.login_limits import LoginLimiter
from chatapp.media import MediaError, MediaNotFound, MediaStore, open_media
from chatapp.models import build_models
from chatapp.session_owners import SessionOwners
from chatapp.settings import Settings
from chatapp.sign_ins import share_sign_ins, signed_in_user
from chatapp.status import ModelStatus
from chatapp.ui import ChatUI
from chatapp.uploads import UploadRegistry, own_folder
from chatapp.usage import DailyUsage
from chatapp.web import Guard

log = logging.getLogger(__name__)


def _set_concurrency(demo: gr.Blocks, concurrency: int) -> None:
    # Gradio runs 1 generation per event at a time by default, and sync handlers in a 40-thread pool;
    # `launch()` would set both, but a mounted app must do it by hand (the same attributes launch sets).
    demo.queue(default_concurrency_limit=concurrency, max_size=concurrency * 16)
    gradio_compat.skip_monitoring_summary(demo)
    threads = max(40, concurrency + 16)  # head-room for the non-generating events (load, resume, timers)
    gradio_compat.set_thread_count(demo, threads)


def _caller_from_guard(request: Request) -> str | None:
    return request.scope.get("state", {}).get("caller")


def _signed_in_user(app: FastAPI) -> Callable[[Request], Awaitable[str | None]]:
    """Gradio's password sign-in keeps its sessions in the mounted app's token map, keyed by a cookie."""

    async def user(request: Request) -> str | None:
        gradio_app = gradio_compat.gradio_app(app)
        return await signed_in_user(gradio_app, request.cookies) if gradio_app is not None else None

    return user


def _key_file(settings: Settings) -> Path:
    """Where a laptop keeps its browser-id key when CHAT_SECRET_KEY is unset: beside its SQLite history, or in
    the user's cache folder when the history is elsewhere (so a restarted chat still knows its browsers)."""
    if settings.store == "sqlite":
        return Path(settings.sqlite_path + ".key")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache, "hybrid-chat", "browser-id.key")


def create_app(settings: Settings, store: ChatStore | None = None, media: MediaStore | None = None) -> FastAPI:
    """Build the whole service; `store` and `media` may be given by tests that already hold them."""
    # Every read and write goes through the retrying wrapper, so a reload shows turns still waiting to be saved.
    history = RetryingStore(
        store or open_store(settings), on_saved=metrics.count_late_save, on_dropped=metrics.count_dropped_turn
    )
    media = media or open_media(settings)
    uploads = UploadRegistry()
    models = build_models(settings)
    status = ModelStatus(models)
    shared = shared_state(history.store)  # what every replica must agree on (chatapp.history.shared)
    usage = DailyUsage(history.tokens_used, settings.daily_tokens, shared=shared)
    drain = Drain(settings.shutdown_budget_s)  # begun on SIGTERM by chatapp.__main__
    service = ChatService(
        models,
        history,
        settings.context_chars,
        settings.log_content,
        usage=usage,
        load_image=lambda owner, conversation_id, image: media.get(owner, conversation_id, image.id),
        drain=drain,
    )
    # From here on only `conversations` holds the store: the service saves turns through the TurnSaver it was
    # given, the daily count reads `tokens_used`, and the probes below ask for health alone.
    conversations = Conversations(service, history, media=media)
    demo = ChatUI(conversations, status, uploads).build()
    _set_concurrency(demo, settings.concurrency)
    gradio_compat.skip_matplotlib_probe()
    gradio_compat.wrap_upload(own_folder)  # a failed or cut-off upload leaves nothing on disk
    gradio_compat.forget_abandoned_events()  # a client that hung up mid-reply can call again in its session
    gradio_compat.forget_call_sessions()  # what a `/call` request leaves in Gradio goes once it is read

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        status.start()
        yield
        status.stop()
        # Give turns that could not be saved a last chance before the process goes.
        await run_in_threadpool(history.close, 10.0)  # logs every turn it could not save

    app = FastAPI(
        title="hybrid-chat",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        max_body_size=None,  # the Guard caps bodies: 2 MiB, more for the upload route only
    )
    app.state.unsaved_turns = history.pending_count  # for the metrics (chatapp.__main__)
    app.state.status = status
    app.state.drain = drain

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(store: bool = True) -> JSONResponse:
        """503 from SIGTERM on, so the load balancer drains this replica; `?store=false` (the readiness probe)
        skips the store: a history outage must not take every replica out of the load balancer."""
        if drain.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not store:
            return JSONResponse({"status": "ok"})
        try:
            history.ping()
        except StoreError as exc:
            return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "unsaved_turns": history.pending_count()})

    @app.get("/media/{conversation_id}/{image_id}", include_in_schema=False)
    def image(conversation_id: str, image_id: str, request: Request) -> Response:
        """An image of one of the caller's conversations, from the chat itself (the page's CSP allows no other
        image source); anyone else's is answered as missing."""
        owner = _caller_from_guard(request)
        if owner is None:
            return PlainTextResponse("Unauthorized: sign in first.\n", status_code=401)
        try:
            data = conversations.image(owner, conversation_id, image_id)
        except MediaNotFound:
            return PlainTextResponse("No such image.\n", status_code=404)
        except MediaError as exc:
            log.warning("could not serve an image: %s", exc)
            return PlainTextResponse("The image store is unavailable; try again.\n", status_code=503)
        mime = sniff(data)  # checked when it was attached; checked again rather than trusting a stored type
        if mime is None:
            return PlainTextResponse("No such image.\n", status_code=404)
        # Not kept by the browser: after a delete or a sign-out the image must be gone from this device too.
        headers = {"Cache-Control": "no-store", "Content-Disposition": "inline"}
        return Response(data, media_type=mime, headers=headers)

    # The light streaming route for API clients (beside Gradio's queue), before Gradio's mount at / takes all paths.
    app.add_route(api_stream.ROUTE, api_stream.ApiChat(conversations, settings.concurrency), methods=["POST"])

    # No cross-origin access at all: with Starlette's CORS middleware on the parent app, Gradio's own (which echoes
    # a foreign Origin with credentials allowed) steps aside.
    app.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)
    app.add_middleware(OneCancelAtATime)  # inside the Guard: only callers it let through get here
    app.add_middleware(
        Guard,
        mode=settings.auth,
        trusted_proxy=settings.trusted_proxy,
        iap=IapVerifier(settings.iap_audience, settings.iap_certs_url) if settings.iap_audience else None,
        password_user=_signed_in_user(app) if settings.auth == "password" else None,
        browser_ids=BrowserIds(load_key(settings.secret_key, _key_file(settings))) if settings.auth == "none" else None,
        uploads=uploads,
        logins=LoginLimiter(shared=shared),  # failed sign-ins and session hashes: the same on every replica
        sessions=SessionOwners(shared=shared),
    )
    password = settings.auth == "password"
    mounted = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        # Password sign-in is Gradio's own login page; the other modes hand Gradio the caller the Guard derived
        # from the request (a verified IAP identity, or this browser's id).
        auth=list(settings.auth_users.items()) if password else None,
        auth_message="Sign in to chat." if password else None,
        auth_dependency=None if password else _caller_from_guard,
        max_file_size=MAX_IMAGE_BYTES,
        ssr_mode=False,
        footer_links=["api"],
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        server_name=settings.host,
        server_port=settings.port,
    )
    if password:  # sign-ins any replica can check (chatapp.sign_ins)
        firestore = getattr(history.store, "client", None) if settings.store == "firestore" else None
        share_sign_ins(gradio_compat.gradio_app(mounted), settings.secret_key, firestore)
    return mounted
