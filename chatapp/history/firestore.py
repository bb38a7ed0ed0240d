"""Firestore history: `chat_sessions/{session_id}` plus a `messages` subcollection, one batched write per turn.

Why the send path looks the way it does:
- ONE commit, zero reads: the session upsert is a merge-set (owner/title/created_at only on turn 0), and
  `turns` is written as an absolute number, not Increment, so replaying a turn changes nothing.
- Message ids come from seq ("000042"), not auto ids, and a turn's two messages are *created*: a commit
  refused because a message is there already costs two reads, and then either the turn itself is there (a
  commit whose reply was lost, saved again: nothing more is written, nothing counted twice) or another turn is
  (a copy of the conversation that missed turns saved elsewhere): this one goes after the last (see Turn).
  Only Retry's turn, which `replaces` the one at its place, is set over it.
- Every call has a short deadline and a bounded retry, so a dead store fails in seconds, not minutes: the UI
  thread waits on save_turn.

- Usage accounting rides in the same commit: the owner's `chat_usage/{day}_{owner hash}` counter gets
  Increment(tokens) (a field transform, no read). A replayed turn is refused with its messages, so it is
  counted once; a Retry's replacing turn counts again (it is a second request to the model).

Search: Firestore has no full-text index, and keeping one in the session document (a word list) would make it
grow without bound. So a search reads the caller's own conversations, newest first, and matches them here
with the same rule as SQLite's FTS5 index (history.search): titles of the newest SEARCH_TITLES conversations,
messages of the newest SEARCH_CONTENTS. Older conversations are found by title only, or not at all past
SEARCH_TITLES; the README says so. Only the owner's documents are read (the query filters on `owner`).

list_sessions needs a composite index in real Firestore (the emulator does not): collection `chat_sessions`,
query scope COLLECTION, fields `owner` ASCENDING, `updated_at` DESCENDING.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import google.auth.exceptions
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from chatapp.history import search
from chatapp.history.base import (
    SearchHit,
    SessionNotFound,
    SessionSummary,
    StoredMessage,
    StoreError,
    Turn,
    TurnsChanged,
    Unanswered,
    Usage,
    check_turn,
    images_from,
    title_of,
    valid_session_id,
)
from chatapp.history.firestore_shared import FirestoreShared

log = logging.getLogger(__name__)

SESSIONS = "chat_sessions"
MESSAGES = "messages"
USAGE = "chat_usage"
DELETE_BATCH = 450  # Firestore allows 500 writes per batch; stay clear of it
PLACE_TRIES = 5  # saves racing for one place: each loser reads where the conversation ends and tries there
SEARCH_TITLES = 200  # conversations whose title a search reads (one query, ~200 small reads)
SEARCH_CONTENTS = 25  # conversations whose messages a search reads (one query each)

# Replaying is safe for every call we make: reads, writes that are idempotent, and a turn's commit, whose
# replay is refused and then recognised (save_turn).
_TRANSIENT = if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted)


def _retry(total_s: float) -> Retry:
    return Retry(predicate=_TRANSIENT, initial=0.2, maximum=1.0, multiplier=2.0, timeout=total_s)


def message_id(seq: int) -> str:
    """Zero-padded so the ids also sort by seq in the console."""
    return f"{seq:06d}"


def usage_id(owner: str, day: date) -> str:
    """The counter's document id: owner ids may hold any character (a '/' would be a path), so hash them."""
    return f"{day.isoformat()}_{hashlib.sha256(owner.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"


def _utc(moment: Any) -> datetime:
    # The client returns DatetimeWithNanoseconds; hand out plain UTC datetimes like the SQLite store.
    if not isinstance(moment, datetime):
        return datetime.fromtimestamp(0, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond, UTC
    )


class FirestoreStore(FirestoreShared):
    def __init__(
        self,
        project: str | None,
        database: str,
        *,
        write_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        client: firestore.Client | None = None,
    ) -> None:
        self._where = f"Firestore database {database!r}" + (f" in project {project!r}" if project else "")
        self._write_timeout_s = write_timeout_s
        self._read_timeout_s = read_timeout_s
        with self._errors("connecting"):
            self.client = client or firestore.Client(project=project, database=database)
        self._sessions = self.client.collection(SESSIONS)
        self._usage = self.client.collection(USAGE)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn google.api_core / google.auth failures into StoreError with a sentence a person can act on."""
        try:
            yield
        except StoreError:
            raise
        except gexc.RetryError as exc:
            cause = exc.cause.message if isinstance(exc.cause, gexc.GoogleAPICallError) else exc.cause
            raise StoreError(f"{self._where} did not answer while {action} (gave up after retrying: {cause})") from exc
        except gexc.DeadlineExceeded as exc:
            raise StoreError(f"{self._where} timed out while {action}") from exc
        except gexc.ServiceUnavailable as exc:
            raise StoreError(f"{self._where} is unreachable while {action}: {exc.message}") from exc
        except (gexc.PermissionDenied, gexc.Unauthenticated) as exc:
            raise StoreError(
                f"{self._where} refused access while {action} (the service account needs roles/datastore.user):"
                f" {exc.message}"
            ) from exc
        except gexc.NotFound as exc:
            raise StoreError(f"{self._where} was not found while {action}: {exc.message}", transient=False) from exc
        except gexc.FailedPrecondition as exc:  # e.g. a missing composite index; the message holds its link
            raise StoreError(f"{self._where} cannot run {action}: {exc.message}", transient=False) from exc
        except gexc.InvalidArgument as exc:
            raise StoreError(f"{self._where} rejected {action}: {exc.message}", transient=False) from exc
        except gexc.GoogleAPICallError as exc:
            raise StoreError(f"{self._where} failed while {action}: {exc.message}") from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            raise StoreError(f"{self._where}: no usable Google credentials while {action}: {exc}") from exc

    def _read_opts(self) -> dict[str, Any]:
        # A long conversation may take a while to stream (read timeout), but an unreachable store is given up
        # on as quickly as on the send path (retry budget).
        return {"retry": _retry(self._write_timeout_s), "timeout": self._read_timeout_s}

    def save_turn(self, turn: Turn) -> None:
        check_turn(turn)
        with self._errors("saving a turn"):
            # Retry replaces the last stored turn only (one more read, for Retry alone): from a copy that missed
            # turns, its place holds another.
            if turn.replaces and turn.index != self._stored_turns(turn.session_id) - 1:
                turn = dataclasses.replace(turn, replaces=False)
            for _ in range(PLACE_TRIES):
                try:
                    self._commit(turn)
                    return
                except gexc.AlreadyExists:  # another turn is at this place, or this very one (see Turn)
                    place = self._free_place(turn)
                    if place is None:
                        return
                    log.warning(
                        "turn %s#%d: another turn is there; saving it as turn %d", turn.session_id, turn.index, place
                    )
                    turn = dataclasses.replace(turn, index=place)
        raise StoreError(f"{self._where}: no free place for a turn after {PLACE_TRIES} tries (saves racing for it)")

    def _free_place(self, turn: Turn) -> int | None:
        """After a conflict: None if the turn itself is stored at its place (a commit whose answer was lost,
        replayed), else the place after the conversation's last turn. Two small reads, on conflicts only."""
        messages = self._sessions.document(turn.session_id).collection(MESSAGES)
        t = self._write_timeout_s
        there = messages.document(message_id(2 * turn.index + 1)).get(retry=_retry(t), timeout=t)
        stored = (there.to_dict() or {}) if there.exists else {}
        if stored.get("content") == turn.assistant and _utc(stored.get("created_at")) == _utc(turn.created_at):
            return None
        return max(turn.index, self._stored_turns(turn.session_id))

    def _stored_turns(self, session_id: str) -> int:
        """How many turns the conversation has stored (the place after its last): one read of one message id."""
        messages = self._sessions.document(session_id).collection(MESSAGES)
        last = messages.order_by("seq", direction=firestore.Query.DESCENDING).limit(1).select(["seq"])
        t = self._write_timeout_s
        seqs = [snap.get("seq") for snap in last.stream(retry=_retry(t), timeout=t)]
        return seqs[0] // 2 + 1 if seqs and isinstance(seqs[0], int) else 0

    def _commit(self, turn: Turn) -> None:
        """The turn in one commit: its two messages created (set, when it `replaces` the turn there), the
        session's head merged, the owner's counter for the day incremented."""
        session = self._sessions.document(turn.session_id)
        head: dict[str, Any] = {"updated_at": turn.created_at, "turns": turn.index + 1}
        if turn.index == 0:
            head |= {"owner": turn.owner, "title": turn.title, "created_at": turn.created_at}
        batch = self.client.batch()
        batch.set(session, head, merge=True)
        for seq, role, content, model, images in (
            (2 * turn.index, "user", turn.user, None, turn.user_images),
            (2 * turn.index + 1, "assistant", turn.assistant, turn.model, ()),
        ):
            doc: dict[str, Any] = {"role": role, "content": content, "model": model, "created_at": turn.created_at}
            doc["seq"] = seq
            if images:  # references only (~80 bytes each); the bytes are in the media store
                doc["images"] = [i.as_dict() for i in images]
            if role == "assistant" and turn.usage is not None:
                doc["usage"] = turn.usage.as_dict()
            message = session.collection(MESSAGES).document(message_id(seq))
            if turn.replaces:
                batch.set(message, doc)
            else:
                batch.create(message, doc)  # refused (AlreadyExists) if any turn is there: nothing is written
        if turn.usage is not None and turn.usage.total > 0:
            counter = {
                "owner": turn.owner,
                "day": turn.day.isoformat(),
                "tokens": firestore.Increment(turn.usage.total),
                "updated_at": turn.created_at,
            }
            batch.set(self._usage.document(usage_id(turn.owner, turn.day)), counter, merge=True)
        t = self._write_timeout_s
        batch.commit(retry=_retry(t), timeout=t)

    def _owned(self, session_id: str, owner: str, action: str) -> firestore.DocumentReference:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        ref = self._sessions.document(session_id)
        with self._errors(action):
            t = self._write_timeout_s
            snap = ref.get(field_paths=["owner"], retry=_retry(t), timeout=t)
        # The infrastructure's placeholder `chat_sessions/initialize` has no owner, so it never matches.
        if not snap.exists or not owner or (snap.to_dict() or {}).get("owner") != owner:
            raise SessionNotFound()
        return ref

    def load_messages(self, session_id: str, owner: str) -> list[StoredMessage]:
        ref = self._owned(session_id, owner, "loading a conversation")
        query = ref.collection(MESSAGES).order_by("seq")
        with self._errors("loading a conversation"):
            docs = [snap.to_dict() or {} for snap in query.stream(**self._read_opts())]
        return [
            StoredMessage(
                d.get("role", ""),
                d.get("content", ""),
                d.get("model"),
                _utc(d.get("created_at")),
                d["seq"],
                Usage.from_dict(d.get("usage")),
                images_from(d.get("images")),
            )
            for d in docs
            if isinstance(d.get("seq"), int)
        ]

    def tokens_used(self, owner: str, day: date) -> int:
        if not owner:
            return 0
        with self._errors("reading today's usage"):
            snap = self._usage.document(usage_id(owner, day)).get(field_paths=["owner", "tokens"], **self._read_opts())
        data = (snap.to_dict() or {}) if snap.exists else {}
        tokens = data.get("tokens")
        # The owner field guards against a hash collision, however unlikely.
        return tokens if data.get("owner") == owner and isinstance(tokens, int) else 0

    def list_sessions(self, owner: str, limit: int = 50) -> list[SessionSummary]:
        if not owner:
            return []
        query = (
            self._sessions.where(filter=FieldFilter("owner", "==", owner))
            .order_by("updated_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        with self._errors("listing conversations"):
            snaps = list(query.stream(**self._read_opts()))
        out = []
        for snap in snaps:
            d = snap.to_dict() or {}
            updated = _utc(d.get("updated_at"))
            created = _utc(d["created_at"]) if "created_at" in d else updated
            out.append(SessionSummary(snap.id, owner, _title(d), created, updated, int(d.get("turns", 0))))
        return out

    def delete_session(self, session_id: str, owner: str) -> None:
        self._delete(self._owned(session_id, owner, "deleting a conversation"))

    def _delete(self, ref: firestore.DocumentReference) -> None:
        """Delete a conversation whose owner was checked: its messages, then its document."""
        messages = ref.collection(MESSAGES).select([]).limit(DELETE_BATCH)  # ids only
        opts = self._read_opts()
        with self._errors("deleting a conversation"):
            # Messages first, session doc last: if this stops halfway the conversation is still listed and
            # deleting it again finishes the job (the other order would orphan unreachable messages).
            while True:
                snaps = list(messages.stream(**opts))
                if not snaps:
                    break
                batch = self.client.batch()
                for snap in snaps:
                    batch.delete(snap.reference)
                batch.commit(**opts)
            ref.delete(**opts)

    def truncate(self, session_id: str, owner: str, turns: int, shown: int | None = None) -> None:
        ref = self._owned(session_id, owner, "undoing a turn")
        if shown is not None:
            with self._errors("undoing a turn"):
                stored = self._stored_turns(session_id)
            if stored > shown:
                raise TurnsChanged(shown, stored)
        if turns <= 0:
            self._delete(ref)  # an empty conversation is not worth listing
            return
        later = ref.collection(MESSAGES).where(filter=FieldFilter("seq", ">=", 2 * turns)).select([])
        opts = self._read_opts()
        with self._errors("undoing a turn"):
            # Undo removes the newest turn or two: one read of their ids and one commit, not a batch loop.
            batch = self.client.batch()
            for snap in later.stream(**opts):
                batch.delete(snap.reference)
            # A failed message recorded before the undone turn would otherwise come back as current.
            batch.set(ref, {"turns": turns, "unanswered": firestore.DELETE_FIELD}, merge=True)
            batch.commit(**opts)

    # -- managing conversations ---------------------------------------------------------------------------

    def _session(self, session_id: str, owner: str, action: str) -> tuple[firestore.DocumentReference, dict]:
        if not valid_session_id(session_id):
            raise SessionNotFound()
        ref = self._sessions.document(session_id)
        with self._errors(action):
            t = self._write_timeout_s
            snap = ref.get(retry=_retry(t), timeout=t)
        d = (snap.to_dict() or {}) if snap.exists else {}
        if not snap.exists or not owner or d.get("owner") != owner:
            raise SessionNotFound()
        return ref, d

    def describe_session(self, session_id: str, owner: str) -> SessionSummary:
        _, d = self._session(session_id, owner, "reading a conversation")
        return _summary(session_id, owner, d, _unanswered(d.get("unanswered")))

    def rename_session(self, session_id: str, owner: str, title: str) -> None:
        ref = self._owned(session_id, owner, "renaming a conversation")
        with self._errors("renaming a conversation"):
            t = self._write_timeout_s
            # A field of its own: turn 0's merge (rewritten by a retry) sets `title` and must not undo this.
            ref.update({"custom_title": title_of(title)}, retry=_retry(t), timeout=t)

    def search_sessions(self, owner: str, query: str, limit: int = 20) -> list[SearchHit]:
        words = search.terms(query)
        if not words or not owner:
            return []
        recent = (
            self._sessions.where(filter=FieldFilter("owner", "==", owner))
            .order_by("updated_at", direction=firestore.Query.DESCENDING)
            .limit(SEARCH_TITLES)
        )
        hits: list[SearchHit] = []
        with self._errors("searching conversations"):
            snaps = list(recent.stream(**self._read_opts()))
            for position, snap in enumerate(snaps):
                d = snap.to_dict() or {}
                summary = _summary(snap.id, owner, d)
                if search.matches(words, summary.title):
                    hits.append(SearchHit(summary, ""))
                elif position < SEARCH_CONTENTS:
                    messages = snap.reference.collection(MESSAGES).order_by("seq", direction=firestore.Query.DESCENDING)
                    for message in messages.stream(**self._read_opts()):
                        text = (message.to_dict() or {}).get("content", "")
                        if isinstance(text, str) and search.matches(words, text):
                            hits.append(SearchHit(summary, search.excerpt(words, text)))
                            break
                if len(hits) >= limit:
                    break
        return hits

    def save_unanswered(self, session_id: str, owner: str, unanswered: Unanswered) -> None:
        if not valid_session_id(session_id) or not owner:
            raise SessionNotFound()
        ref = self._sessions.document(session_id)
        record = {
            "text": unanswered.text,
            "error": unanswered.error,
            "after_turns": unanswered.after_turns,
            "created_at": unanswered.created_at,
        }
        with self._errors("keeping a failed message"):
            t = self._write_timeout_s
            # Not the send path (a reply already failed), so a read first is affordable: it refuses writing
            # into a conversation of someone else, and tells whether the session document must be created.
            snap = ref.get(field_paths=["owner"], retry=_retry(t), timeout=t)
            head: dict[str, Any] = {"unanswered": record, "updated_at": unanswered.created_at}
            if snap.exists:
                if (snap.to_dict() or {}).get("owner") != owner:
                    raise SessionNotFound()
            else:
                head |= {
                    "owner": owner,
                    "title": title_of(unanswered.text),
                    "created_at": unanswered.created_at,
                    "turns": 0,
                }
            ref.set(head, merge=True, retry=_retry(t), timeout=t)

    def clear_unanswered(self, session_id: str, owner: str) -> None:
        ref, d = self._session(session_id, owner, "forgetting a failed message")
        if int(d.get("turns", 0)) == 0:  # it held only that message: nothing is left worth listing
            self.delete_session(session_id, owner)
            return
        with self._errors("forgetting a failed message"):
            t = self._write_timeout_s
            ref.update({"unanswered": firestore.DELETE_FIELD}, retry=_retry(t), timeout=t)

    def ping(self) -> None:
        # One small document read proves the database exists and answers; the placeholder may or may not exist.
        with self._errors("checking the store"):
            self._sessions.document("initialize").get(field_paths=["owner"], retry=_retry(3.0), timeout=3.0)

    def close(self) -> None:
        self.client.close()


def _title(d: dict[str, Any]) -> str:
    return str(d.get("custom_title") or d.get("title", ""))


def _summary(session_id: str, owner: str, d: dict[str, Any], unanswered: Unanswered | None = None) -> SessionSummary:
    updated = _utc(d.get("updated_at"))
    created = _utc(d["created_at"]) if "created_at" in d else updated
    return SessionSummary(session_id, owner, _title(d), created, updated, int(d.get("turns", 0)), unanswered)


def _unanswered(d: Any) -> Unanswered | None:
    if not isinstance(d, dict):
        return None
    try:
        return Unanswered(str(d["text"]), str(d["error"]), int(d["after_turns"]), _utc(d.get("created_at")))
    except (KeyError, TypeError, ValueError):
        return None  # a damaged record must not make the conversation unreadable
