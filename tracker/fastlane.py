"""uvicorn's httptools protocol, with the pixel and the redirect answered inline.

Under uvicorn, every request costs a scope, a RequestResponseCycle with its asyncio.Event, an
asyncio task and two ASGI send round trips — profiled at well over half of a pixel request's
CPU time, against ~10 µs for the tracker's own work (HMAC, classification, buffer append).
This protocol answers `GET`/`HEAD` `/o/…` and `/c/…` straight from the parser callbacks with
`TrackerApp.hot` (the same function the ASGI app uses, so both give identical answers) and
writes the reply bytes at once. Every other request — the pages, /metrics, anything odd —
goes through uvicorn and Starlette unchanged. Pipelined requests stay in order: the inline
answer is only taken when no ASGI request of the connection is still running.
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tracker.app import Reply
from tracker.hits import Headers

HotPath = Callable[[str, str, Headers, "tuple[str, int] | None"], "Reply | None"]
_HOT_PREFIXES = (b"/o/", b"/c/")


class FastLaneProtocol(HttpToolsProtocol):
    """Set `hot` on a subclass (see `protocol_for`) before handing it to uvicorn."""

    hot: HotPath

    _reply: Reply | None = None
    _head_only = False
    _reading_paused_by_us = False

    def on_headers_complete(self) -> None:
        self._reply = None
        url = self.url
        if url.startswith(_HOT_PREFIXES) and (self.cycle is None or self.cycle.response_complete):
            method = self.parser.get_method()
            if method in (b"GET", b"HEAD") and not self.pipeline:
                path = url.partition(b"?")[0].decode("latin-1")
                reply = self.hot(method.decode("ascii"), path, self.headers, self.client)
                if reply is not None:
                    self._reply = reply
                    self._head_only = method == b"HEAD"
                    return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._reply is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        reply = self._reply
        if reply is None:
            return super().on_message_complete()
        self._reply = None
        keep_alive = self.parser.should_keep_alive()
        head = self._head(reply, keep_alive)
        self.transport.write(head if self._head_only else head + reply.body)
        self.server_state.total_requests += 1
        if self.flow.write_paused and not self._reading_paused_by_us:
            # a client pipelining requests without reading the answers: stop reading until it
            # catches up, or the write buffer would grow without bound
            self._reading_paused_by_us = True
            self.flow.pause_reading()
        if not keep_alive:
            self.transport.close()
        elif not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._reading_paused_by_us:
            self._reading_paused_by_us = False
            if self.cycle is None or self.cycle.response_complete:
                self.flow.resume_reading()

    def _head(self, reply: Reply, keep_alive: bool) -> bytes:
        """The status line and headers; cached for the fixed replies (GIF, 404) until uvicorn
        replaces its default headers (the Date, once a second)."""
        defaults = self.server_state.default_headers
        key = (id(reply), keep_alive)
        hit = _HEADS.get(key)
        if hit is not None and hit[0] is defaults and hit[1] is reply:
            return hit[2]
        head = reply.head(defaults, keep_alive)
        if reply.cacheable:
            if len(_HEADS) >= _HEADS_MAX:
                _HEADS.clear()
            _HEADS[key] = (defaults, reply, head)
        return head


_HEADS: dict[tuple[int, bool], tuple[object, Reply, bytes]] = {}
_HEADS_MAX = 40000


def protocol_for(hot: HotPath) -> type[FastLaneProtocol]:
    """A protocol class for uvicorn's `http=` option, answering hot paths with `hot`."""
    return type("TrackerProtocol", (FastLaneProtocol,), {"hot": staticmethod(hot)})
