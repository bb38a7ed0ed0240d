"""Server-sent events from raw bytes: the part of the OpenAI stream format that is not JSON.

Bytes are decoded incrementally because a multi-byte UTF-8 character may be split across two network
reads; decoding each read on its own would turn it into two replacement characters.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator


def sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield the `data` payload of each event (multi-line data joined by newlines), in order.

    Comments (`: keep-alive`) and other fields (`event:`, `id:`, `retry:`) are ignored as the SSE spec says.
    A final event without its blank line is still delivered: whether the stream was complete is the
    caller's call ([DONE], finish_reason), not the parser's.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    data: list[str] = []
    for chunk in chunks:
        buffer += decoder.decode(chunk)
        *lines, buffer = buffer.split("\n")
        for line in lines:
            line = line.removesuffix("\r")
            if not line:
                if data:
                    yield "\n".join(data)
                    data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
    buffer += decoder.decode(b"", final=True)
    if buffer.startswith("data:"):
        data.append(buffer[5:].removeprefix(" ").removesuffix("\r"))
    if data:
        yield "\n".join(data)
