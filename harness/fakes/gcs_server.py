"""A fake Cloud Storage server speaking the JSON API that google-cloud-storage uses, for the media store.

The client talks to it when `STORAGE_EMULATOR_HOST=http://127.0.0.1:<port>` is set (it then sends no
credentials). Implemented, as the JSON API documents them: multipart upload
(`POST /upload/storage/v1/b/{bucket}/o?uploadType=multipart`, a multipart/related body: JSON metadata, then the
bytes; `ifGenerationMatch=0` answered 412 when the object exists), media download
(`GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`), delete (`DELETE /storage/v1/b/{bucket}/o/{object}`,
204) and list with a prefix (`GET /storage/v1/b/{bucket}/o?prefix=`). Unknown buckets and objects get the API's
404 error body. Objects live in memory: `.objects[(bucket, name)] = (content_type, data)`.
"""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from harness.fakes.sse_http import FakeServer, SSEHandler


class FakeGcsServer(FakeServer):
    MODES = ("normal", "error_503")

    def __init__(self, buckets: tuple[str, ...] = ("media-bucket",), *, port: int = 0, mode: str = "normal") -> None:
        super().__init__(_handler_for(self), port=port, mode=mode)
        self.buckets = set(buckets)
        self.objects: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.generation = 0
        self._objects_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _pick(self) -> str:
        return self._queued_mode() or self.mode


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": [{"message": message, "domain": "global"}]}}


def _resource(bucket: str, name: str, content_type: str, data: bytes, generation: int) -> dict[str, Any]:
    return {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "name": name,
        "bucket": bucket,
        "generation": str(generation),
        "contentType": content_type,
        "size": str(len(data)),
    }


def _handler_for(server: FakeGcsServer) -> type[SSEHandler]:
    class Handler(SSEHandler):
        def _route(self) -> tuple[list[str], dict[str, list[str]]]:
            parts = urlsplit(self.path)
            return [unquote(p) for p in parts.path.split("/") if p], parse_qs(parts.query)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _refused(self, bucket: str) -> bool:
            if server._pick() == "error_503":
                self.send_json(503, _error(503, "Service Unavailable"))
                return True
            if bucket not in server.buckets:
                self.send_json(404, _error(404, "The specified bucket does not exist."))
                return True
            return False

        def do_POST(self) -> None:
            path, query = self._route()
            body = self._body()
            server._record(self.path, None, dict(self.headers))
            # upload/storage/v1/b/{bucket}/o
            if path[:4] != ["upload", "storage", "v1", "b"] or len(path) != 6 or path[5] != "o":
                self.send_json(404, _error(404, "Not Found"))
                return
            bucket = path[4]
            if self._refused(bucket):
                return
            if query.get("uploadType") != ["multipart"]:
                self.send_json(400, _error(400, "the fake takes multipart uploads only"))
                return
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + self.headers.get("Content-Type", "").encode() + b"\r\n\r\n" + body
            )
            meta_part, media_part = list(message.iter_parts())
            meta = json.loads(meta_part.get_payload(decode=True))
            data = media_part.get_payload(decode=True)
            name = meta["name"]
            content_type = meta.get("contentType") or media_part.get_content_type()
            with server._objects_lock:
                if query.get("ifGenerationMatch") == ["0"] and (bucket, name) in server.objects:
                    self.send_json(412, _error(412, "At least one of the pre-conditions you specified did not hold."))
                    return
                server.generation += 1
                server.objects[(bucket, name)] = (content_type, data)
                resource = _resource(bucket, name, content_type, data, server.generation)
            self.send_json(200, resource)

        def do_GET(self) -> None:
            path, query = self._route()
            server._record(self.path, None, dict(self.headers))
            if path[:4] == ["download", "storage", "v1", "b"] and len(path) >= 7 and path[5] == "o":
                bucket, name = path[4], "/".join(path[6:])
                if self._refused(bucket):
                    return
                found = server.objects.get((bucket, name))
                if found is None:
                    self.send_json(404, _error(404, f"No such object: {bucket}/{name}"))
                    return
                content_type, data = found
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif path[:3] == ["storage", "v1", "b"] and len(path) == 5 and path[4] == "o":
                bucket = path[3]
                if self._refused(bucket):
                    return
                prefix = query.get("prefix", [""])[0]
                items = [
                    _resource(b, n, t, d, 1)
                    for (b, n), (t, d) in sorted(server.objects.items())
                    if b == bucket and n.startswith(prefix)
                ]
                self.send_json(
                    200, {"kind": "storage#objects", "items": items} if items else {"kind": "storage#objects"}
                )
            else:
                self.send_json(404, _error(404, "Not Found"))

        def do_DELETE(self) -> None:
            path, _ = self._route()
            server._record(self.path, None, dict(self.headers))
            if path[:3] != ["storage", "v1", "b"] or len(path) < 6 or path[4] != "o":
                self.send_json(404, _error(404, "Not Found"))
                return
            bucket, name = path[3], "/".join(path[5:])
            if self._refused(bucket):
                return
            with server._objects_lock:
                if server.objects.pop((bucket, name), None) is None:
                    self.send_json(404, _error(404, f"No such object: {bucket}/{name}"))
                    return
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
