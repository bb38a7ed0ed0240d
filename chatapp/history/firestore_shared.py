"""Firestore's side of `history.shared.SharedState` (the layout is in that module's text).

- A reservation reads the owner's day counter (`chat_usage/…`, the document each turn increments: its count
  and the live holds) and adds its hold only if `admit` says so, with a write conditional on the document
  being unchanged since that read (its update time); if anything wrote meanwhile (another replica's hold, a
  turn's Increment) it reads again. So two replicas reserving at once cannot both pass the limit. Two round
  trips, no lock: a Firestore transaction does the same with three and, on the emulator, lock waits of
  seconds under contention. Releasing is one write (the hold's field deleted).
- A session binding is one `create` (fails if the document exists) and, only then, one read of the holder.
- Failed sign-ins: one read of the two keys' documents per attempt; a failure is counted the same way as a
  reservation (the read, then one batch conditional on both documents being unchanged).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore

from chatapp.history.shared import BINDING_DAYS, BINDINGS, SIGN_IN_FAILURES, Admission, Hold, admit, key_id

TIMEOUT_S = 3.0  # each call of these runs on a request's path: a slow store is given up on quickly
ATTEMPTS = 8  # a reservation's read-then-conditional-write, tried again while others write the same counter
_RETRY = Retry(predicate=if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded), timeout=TIMEOUT_S)


class _Store(Protocol):
    client: firestore.Client
    _usage: firestore.CollectionReference

    def _errors(self, action: str) -> AbstractContextManager[None]: ...


def _usage_id(owner: str, day: date) -> str:
    from chatapp.history.firestore import usage_id  # the one definition of the counter's id

    return usage_id(owner, day)


class FirestoreShared:
    """Mixed into FirestoreStore, whose client, usage collection and error translation it uses."""

    def reserve_tokens(self: _Store, owner: str, day: date, hold: Hold, limit: int, now: float) -> Admission:
        ref = self._usage.document(_usage_id(owner, day))
        with self._errors("reserving tokens"):
            for _ in range(ATTEMPTS):
                snap = ref.get(field_paths=["owner", "tokens", "holds"], retry=_RETRY, timeout=TIMEOUT_S)
                data = (snap.to_dict() or {}) if snap.exists else {}
                tokens = data.get("tokens")
                used = tokens if data.get("owner") == owner and isinstance(tokens, int) else 0
                holds = data.get("holds") if isinstance(data.get("holds"), dict) else {}
                live = {k: v for k, v in holds.items() if isinstance(v, dict) and float(v.get("until", 0)) > now}
                held = sum(int(v.get("tokens", 0)) for v in live.values())
                if not admit(used, held, limit):
                    return Admission(False, used, held)
                mine = {"tokens": hold.tokens, "until": hold.until}
                try:
                    if snap.exists:  # only if nobody wrote since the read (a turn's Increment, another hold)
                        # Expired holds (a replica that died mid-reply) go in the same write.
                        changes: dict[str, Any] = {f"holds.{k}": firestore.DELETE_FIELD for k in holds if k not in live}
                        changes[f"holds.{hold.hold_id}"] = mine
                        unchanged = self.client.write_option(last_update_time=snap.update_time)
                        ref.update(changes, option=unchanged, timeout=TIMEOUT_S)
                    else:
                        ref.create(
                            {"owner": owner, "day": day.isoformat(), "holds": {hold.hold_id: mine}}, timeout=TIMEOUT_S
                        )
                except (gexc.FailedPrecondition, gexc.Conflict):
                    continue  # written meanwhile: read again
                return Admission(True, used, held)
            raise gexc.Aborted(f"the usage counter kept changing during {ATTEMPTS} attempts")

    def release_tokens(self: _Store, owner: str, day: date, hold_id: str) -> None:
        ref = self._usage.document(_usage_id(owner, day))
        with self._errors("releasing reserved tokens"):
            ref.set({"holds": {hold_id: firestore.DELETE_FIELD}}, merge=True, timeout=TIMEOUT_S)

    def bind_session(self: _Store, key: str, caller: str, now: float) -> str:
        ref = self.client.collection(BINDINGS).document(key_id(key))
        created = datetime.fromtimestamp(now, UTC)
        with self._errors("binding a session"):
            try:
                doc = {"owner": caller, "created_at": created, "expires_at": created + timedelta(days=BINDING_DAYS)}
                ref.create(doc, timeout=TIMEOUT_S)
                return caller
            except gexc.Conflict:  # AlreadyExists: someone holds it (maybe this caller, on another replica)
                snap = ref.get(field_paths=["owner"], timeout=TIMEOUT_S)
        owner = (snap.to_dict() or {}).get("owner") if snap.exists else None
        if not isinstance(owner, str):  # deleted in between (TTL): try again once
            return FirestoreShared.bind_session(self, key, caller, now)  # type: ignore[arg-type]
        return owner

    def sign_in_failures(self: _Store, keys: list[str]) -> dict[str, list[float]]:
        refs = [self.client.collection(SIGN_IN_FAILURES).document(key_id(key)) for key in keys]
        with self._errors("reading failed sign-ins"):
            snaps = {snap.id: snap for snap in self.client.get_all(refs, field_paths=["times"], timeout=TIMEOUT_S)}
        return {key: _times(snaps.get(ref.id)) for key, ref in zip(keys, refs, strict=True)}

    def add_sign_in_failure(self: _Store, keys: list[str], at: float, keep: int, window_s: float) -> None:
        refs = [self.client.collection(SIGN_IN_FAILURES).document(key_id(key)) for key in keys]
        expires = datetime.fromtimestamp(at + window_s, UTC)
        with self._errors("counting a failed sign-in"):
            for _ in range(ATTEMPTS):  # like a reservation: read, then write only if nothing changed meanwhile
                snaps = {s.id: s for s in self.client.get_all(refs, retry=_RETRY, timeout=TIMEOUT_S)}
                batch = self.client.batch()
                for ref in refs:
                    snap = snaps.get(ref.id)
                    times = [t for t in _times(snap) if at - t < window_s]
                    doc = {"times": [*times[-(keep - 1) :], at] if keep > 1 else [at], "expires_at": expires}
                    if snap is not None and snap.exists:
                        batch.update(ref, doc, option=self.client.write_option(last_update_time=snap.update_time))
                    else:
                        batch.create(ref, doc)
                try:
                    batch.commit(timeout=TIMEOUT_S)
                except (gexc.FailedPrecondition, gexc.Conflict):
                    continue
                return
            raise gexc.Aborted(f"failed sign-ins kept changing during {ATTEMPTS} attempts")


def _times(snap: Any) -> list[float]:
    times = (snap.to_dict() or {}).get("times") if snap is not None and snap.exists else None
    return [float(t) for t in times if isinstance(t, int | float)] if isinstance(times, list) else []
