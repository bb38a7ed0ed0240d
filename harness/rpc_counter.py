"""Count the RPCs a Firestore client sends, by method name.

Every call the high-level client makes (document get, query stream, batch commit, transactions, listen...) goes
through one method of the GAPIC client `client._firestore_api`; wrapping all of them (the RPC list comes from
the transport, so nothing is missed) catches an accidental read as surely as a write.
"""

from __future__ import annotations

import collections
import functools
from typing import Any

from google.cloud.firestore_v1.services.firestore.transports.base import FirestoreTransport

RPCS = [n for n, v in vars(FirestoreTransport).items() if isinstance(v, property) and n not in {"host", "kind"}]
READS = {"get_document", "list_documents", "batch_get_documents", "run_query", "run_aggregation_query", "listen"}


class RpcCounter:
    def __init__(self, client: Any) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.succeeded: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, Any]] = []
        api = client._firestore_api
        for name in RPCS:
            setattr(api, name, self._wrap(name, getattr(api, name)))

    def _wrap(self, name: str, method: Any) -> Any:
        @functools.wraps(method)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            self.requests.append((name, kwargs.get("request", args[0] if args else None)))
            result = method(*args, **kwargs)
            self.succeeded[name] += 1
            return result

        return counted

    def reset(self) -> None:
        self.calls.clear()
        self.succeeded.clear()
        self.requests.clear()

    @property
    def reads(self) -> int:
        return sum(n for name, n in self.calls.items() if name in READS)
