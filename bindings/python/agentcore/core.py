"""The thin Pythonic layer: Core and the handles made from it."""
from __future__ import annotations

import json
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Union

from . import _ffi
from ._native import call, json_arg
from .errors import AgentcoreError, UserAbort, error_for

#: A request, options or config: a mapping (encoded with json.dumps), JSON
#: text (str or bytes) as it is, or None for "none".
JSONArg = Union[Mapping[str, Any], str, bytes, None]
#: A stream sink: receives every chunk (a "chat.completion.chunk" dict);
#: raising stops the call and the exception propagates.
StreamFn = Callable[[dict[str, Any]], Any]
#: A completion callback of an asynchronous call: (answer, None) on success,
#: (None, exception) on failure (an AgentcoreError, or what the stream sink
#: raised).
DoneFn = Callable[[Union[dict[str, Any], None], Union[BaseException, None]], Any]


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


class _Stop(Exception):
    """Raised inside a stream callback to end the call early."""


def _stream_cfunc(sink: StreamFn, errors: list[BaseException]) -> Any:
    """An ac_stream_fn calling sink(chunk); an exception is kept in errors
    and stops the call (non-zero return)."""

    def tramp(chunk_json: bytes | None, _userdata: int | None) -> int:
        try:
            sink(json.loads(chunk_json or b"null"))
            return 0
        except BaseException as e:  # noqa: BLE001 - propagated after the call
            errors.append(e)
            return 1

    return _ffi.ac_stream_fn(tramp)


class _Handle:
    """An object owning one C handle; close() is idempotent."""

    _what = "handle"
    _close_fn = ""

    def __init__(self, core: Core | None, handle: Any) -> None:
        self._core = core
        self._h = handle

    @property
    def closed(self) -> bool:
        return self._h is None

    def _handle(self) -> Any:
        if self._h is None:
            raise error_for(_ffi.AC_EINVAL, f"the {self._what} is closed")
        return self._h

    def __enter__(self) -> Any:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def close(self) -> None:
        raise NotImplementedError


class _Child(_Handle):
    """A handle made from a Core: keeps the Core alive, and is closed by
    Core.close() if still open."""

    def __init__(self, core: Core, handle: Any) -> None:
        super().__init__(core, handle)
        self._core: Core = core
        core._children.add(self)

    _close_order = 0  # Core.close() closes lower orders first

    def close(self) -> None:
        core = self._core
        with core._lock:
            if self._h is not None and core._h is not None:
                self._before_close()
            h, self._h = self._h, None
            if h is not None and core._h is not None:
                call(self._close_fn, h)
            core._children.discard(self)

    def _before_close(self) -> None:
        pass


class ChatStream(Iterator[dict[str, Any]]):
    """A streamed answer: iterate for the chunks (dicts); ``response`` is the
    assembled answer once the iteration has ended. The C call runs in a
    worker thread (the core is busy until then); leaving the loop early
    (``close()``, ``break`` in a ``with`` block) stops the call and joins the
    thread. An error of the call is raised by the iteration."""

    _DONE = object()

    def __init__(self, core: Core, fn: str, handle_of: Callable[[], Any], request: JSONArg) -> None:
        self.response: dict[str, Any] | None = None
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._finished = False
        req = json_arg(request)

        def sink(chunk: dict[str, Any]) -> None:
            if self._stop.is_set():
                raise _Stop()
            self._q.put(("chunk", chunk))

        def run() -> None:
            errors: list[BaseException] = []
            cb = _stream_cfunc(sink, errors)
            try:
                with core._lock:
                    out = call(fn, handle_of(), req, cb)
                self._q.put(("done", _loads(out)))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                if errors and not isinstance(errors[0], _Stop):
                    e = errors[0]
                self._q.put(("error", e))

        self._thread = threading.Thread(target=run, name="agentcore-stream", daemon=True)
        self._thread.start()

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._finished:
            raise StopIteration
        kind, value = self._q.get()
        if kind == "chunk":
            return value
        self._finished = True
        self._thread.join()
        if kind == "done":
            self.response = value
            raise StopIteration
        if isinstance(value, UserAbort) and self._stop.is_set():
            raise StopIteration
        raise value

    def close(self) -> None:
        """Stop the call if it still runs and wait for the worker thread."""
        self._stop.set()
        if not self._finished:
            while True:
                kind, value = self._q.get()
                if kind != "chunk":
                    break
            self._finished = True
            if kind == "done":
                self.response = value
        self._thread.join()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


class Call:
    """An asynchronous call in flight (ac_call), valid until its done
    callback has run."""

    def __init__(self) -> None:
        self._h: Any = None
        self.done = False

    def cancel(self) -> None:
        """Cancel the call if it has not completed (ac_call_cancel); its done
        callback then gets Cancelled. Does nothing once it completed."""
        if not self.done and self._h is not None:
            call("ac_call_cancel", self._h)


class Core(_Handle):
    """An opened core (ac_core). ``config`` is the JSON configuration (a
    mapping or JSON text; None = defaults, see docs/config.md).

    A core and its handles are used by one thread at a time; this object
    serialises calls from several Python threads with a lock."""

    _what = "core"

    def __init__(self, config: JSONArg = None, *, uv_loop: int | None = None) -> None:
        super().__init__(None, None)
        self._lock = threading.RLock()
        self._children: weakref.WeakSet[_Child] = weakref.WeakSet()
        self._keep: dict[int, Any] = {}  # callbacks the library may still call
        self._log_cb: Any = None
        self._async_error: BaseException | None = None
        if uv_loop is None:
            self._h = call("ac_core_open", json_arg(config))
        else:
            self._h = call("ac_core_open_on_loop", json_arg(config), uv_loop)

    def close(self) -> None:
        """Close the handles made from this core that are still open, then
        the core. Closing twice does nothing."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            if self._h is None:
                return
            for child in sorted(self._children, key=lambda c: c._close_order):
                child.close()
            h, self._h = self._h, None
            call("ac_core_close", h)
            self._keep.clear()
            self._log_cb = None

    # -- configuration and logging -------------------------------------------
    def config(self) -> dict[str, Any]:
        """The effective configuration (ac_core_config)."""
        with self._lock:
            return _loads(call("ac_core_config", self._handle()))

    def set_log(self, fn: Callable[[int, str], Any] | None, level: int = _ffi.AC_LOG_INFO) -> None:
        """Send the library's log to fn(level, message) up to ``level``
        (AC_LOG_ERROR .. AC_LOG_DEBUG); None turns logging off."""
        cb = None
        if fn is not None:
            def tramp(lvl: int, message: bytes | None, _ud: int | None) -> None:
                try:
                    fn(lvl, (message or b"").decode("utf-8", "replace"))
                except Exception:  # noqa: BLE001 - a log sink must not fail the call
                    pass
            cb = _ffi.ac_log_fn(tramp)
        with self._lock:
            call("ac_core_set_log", self._handle(), level, cb)
            self._log_cb = cb

    # -- stateless calls --------------------------------------------------------
    def _chat(self, fn: str, handle: Any, request: JSONArg, stream: StreamFn | None) -> dict[str, Any]:
        errors: list[BaseException] = []
        cb = _stream_cfunc(stream, errors) if stream is not None else None
        try:
            with self._lock:
                out = call(fn, handle, json_arg(request), cb)
        except AgentcoreError:
            if errors:
                raise errors[0] from None
            raise
        return _loads(out)

    def chat(self, request: JSONArg, *, stream: StreamFn | None = None) -> dict[str, Any]:
        """One stateless chat request (ac_chat); the answer as a dict. With
        ``stream``, every chunk is passed to it as it arrives."""
        return self._chat("ac_chat", self._handle(), request, stream)

    def chat_stream(self, request: JSONArg) -> ChatStream:
        """Stream a stateless chat request: iterate for the chunks."""
        return ChatStream(self, "ac_chat", self._handle, request)

    def _start(self, fn: str, args: tuple[Any, ...], done: DoneFn | None,
               stream: StreamFn | None) -> Call:
        c = Call()
        key = id(c)

        def on_done(status: int, response: bytes | None, errmsg: bytes | None, _ud: int | None) -> None:
            c.done = True
            c._h = None
            try:
                if done is not None:
                    if status == _ffi.AC_OK:
                        done(_loads(response.decode("utf-8") if response else None), None)
                    else:
                        err: BaseException = error_for(status, (errmsg or b"").decode("utf-8", "replace"))
                        done(None, errors[0] if errors else err)
            except BaseException as e:  # noqa: BLE001 - raised again by run()
                if self._async_error is None:
                    self._async_error = e
            finally:
                self._keep.pop(key, None)

        errors: list[BaseException] = []
        scb = _stream_cfunc(stream, errors) if stream is not None else None
        dcb = _ffi.ac_done_fn(on_done)
        self._keep[key] = (scb, dcb, c)
        cargs = list(args)
        for p in _ffi.FUNCTIONS[fn].params[len(args):]:
            if p.kind == "callback":
                cargs.append(dcb if p.callback == "ac_done_fn" else scb)
        try:
            with self._lock:
                h = call(fn, *cargs)
        except BaseException:
            self._keep.pop(key, None)
            raise
        if not c.done:
            c._h = h
        return c

    def chat_async(self, request: JSONArg, done: DoneFn, *, stream: StreamFn | None = None) -> Call:
        """Start a chat without waiting (ac_chat_async): ``done(answer,
        error)`` runs once, inside run() on this core."""
        return self._start("ac_chat_async", (self._handle(), json_arg(request)), done, stream)

    def run(self) -> None:
        """Run the core's loop until no asynchronous call is in flight
        (ac_core_run). An exception raised by a done callback is raised
        again here, once the library has returned."""
        with self._lock:
            try:
                call("ac_core_run", self._handle())
            finally:
                err, self._async_error = self._async_error, None
                if err is not None:
                    raise err

    def embed(self, request: JSONArg) -> dict[str, Any]:
        """Embeddings (ac_embed): an OpenAI embeddings request, for example
        {"model": "...", "input": ["a", "b"]}; the OpenAI response."""
        with self._lock:
            return _loads(call("ac_embed", self._handle(), json_arg(request)))

    def embed_async(self, request: JSONArg, done: DoneFn) -> Call:
        """Start embed() without waiting (ac_embed_async)."""
        return self._start("ac_embed_async", (self._handle(), json_arg(request)), done, None)

    # -- accounting --------------------------------------------------------------
    def usage(self, query: JSONArg = None, **kw: Any) -> dict[str, Any]:
        """Aggregate the usage ledger (ac_core_usage); keywords form the
        query when ``query`` is not given."""
        with self._lock:
            return _loads(call("ac_core_usage", self._handle(), json_arg(query if query is not None else (kw or None))))

    def metrics(self) -> str:
        """The metrics in the Prometheus text format (ac_core_metrics)."""
        with self._lock:
            return call("ac_core_metrics", self._handle()) or ""

    # -- sessions ------------------------------------------------------------------
    def session(self, id: str | None = None, **opts: Any) -> Session:
        """Open a session (ac_session_open): a new one when ``id`` is None;
        keywords are the options (tenant, create, title, memory, ...)."""
        with self._lock:
            h = call("ac_session_open", self._handle(), id, json_arg(opts or None))
        return Session(self, h)

    def sessions(self, **query: Any) -> list[dict[str, Any]]:
        """A tenant's sessions, newest first (ac_sessions_list)."""
        with self._lock:
            return _loads(call("ac_sessions_list", self._handle(), json_arg(query or None)))

    def session_info(self, id: str, tenant: str | None = None) -> dict[str, Any]:
        """One session's metadata (ac_sessions_get)."""
        with self._lock:
            return _loads(call("ac_sessions_get", self._handle(), tenant, id))

    def export_session(self, id: str, tenant: str | None = None) -> dict[str, Any]:
        """A session's metadata and messages (ac_sessions_export)."""
        with self._lock:
            return _loads(call("ac_sessions_export", self._handle(), tenant, id))

    def update_session(self, id: str, patch: JSONArg = None, tenant: str | None = None, **kw: Any) -> None:
        """Change a session's title, tags or metadata (ac_sessions_update)."""
        with self._lock:
            call("ac_sessions_update", self._handle(), tenant, id, json_arg(patch if patch is not None else kw))

    def delete_session(self, id: str, tenant: str | None = None) -> None:
        """Delete a session and its messages (ac_sessions_delete)."""
        with self._lock:
            call("ac_sessions_delete", self._handle(), tenant, id)

    def prune_sessions(self, idle_seconds: int) -> int:
        """Delete sessions idle for longer than idle_seconds; how many
        (ac_sessions_prune)."""
        with self._lock:
            return int(call("ac_sessions_prune", self._handle(), idle_seconds))

    # -- other handles -----------------------------------------------------------
    def store(self, name: str, **opts: Any) -> Store:
        """Open (creating on first use) the knowledge store ``name``
        (ac_store_open); keywords are the options."""
        with self._lock:
            h = call("ac_store_open", self._handle(), name, json_arg(opts or None))
        return Store(self, h)

    def router(self, opts: JSONArg = None, **kw: Any) -> Router:
        """Open a router (ac_router_open); no options = the config's."""
        with self._lock:
            h = call("ac_router_open", self._handle(), json_arg(opts if opts is not None else (kw or None)))
        return Router(self, h)


class Session(_Child):
    """A conversation with memory (ac_session)."""

    _what = "session"
    _close_fn = "ac_session_close"
    _close_order = 0  # before the stores attached to it

    def __init__(self, core: Core, handle: Any) -> None:
        super().__init__(core, handle)
        self._stores: dict[int, Store] = {}  # attached: kept open while attached

    def _before_close(self) -> None:
        for store in self._stores.values():
            store._sessions.discard(self)
        self._stores.clear()

    def attach_store(self, store: Store) -> None:
        """Search ``store`` on every turn and put what fits into the prompt
        (ac_session_attach_store). The store stays referenced while attached."""
        with self._core._lock:
            call("ac_session_attach_store", self._handle(), store._handle())
            self._stores[id(store)] = store
            store._sessions.add(self)

    def detach_store(self, store: Store) -> None:
        """Stop searching ``store`` (ac_session_detach_store)."""
        with self._core._lock:
            call("ac_session_detach_store", self._handle(), store._handle())
            self._stores.pop(id(store), None)
            store._sessions.discard(self)

    @property
    def id(self) -> str:
        """The session's id (ac_session_id)."""
        with self._core._lock:
            return call("ac_session_id", self._handle())

    def chat(self, request: JSONArg, *, stream: StreamFn | None = None) -> dict[str, Any]:
        """One turn (ac_session_chat): ``request`` holds only the new
        message(s); history, knowledge and tools are added by the library."""
        return self._core._chat("ac_session_chat", self._handle(), request, stream)

    def chat_stream(self, request: JSONArg) -> ChatStream:
        """Stream one turn: iterate for the chunks."""
        return ChatStream(self._core, "ac_session_chat", self._handle, request)

    def chat_async(self, request: JSONArg, done: DoneFn, *, stream: StreamFn | None = None) -> Call:
        """Start a turn without waiting (ac_session_chat_async)."""
        return self._core._start("ac_session_chat_async", (self._handle(), json_arg(request)), done, stream)

    def messages(self, **opts: Any) -> list[dict[str, Any]]:
        """The stored messages, oldest first (ac_session_messages); options
        ``after`` and ``limit``."""
        with self._core._lock:
            return _loads(call("ac_session_messages", self._handle(), json_arg(opts or None)))

    def fork(self, at_seq: int = 0) -> Session:
        """A new session with this one's messages up to ``at_seq`` (0 = all),
        ac_session_fork."""
        with self._core._lock:
            h = call("ac_session_fork", self._handle(), at_seq)
        return Session(self._core, h)


class Store(_Child):
    """A knowledge store (ac_store). Closing it first detaches it from the
    sessions it is attached to."""

    _what = "store"
    _close_fn = "ac_store_close"
    _close_order = 2

    def __init__(self, core: Core, handle: Any) -> None:
        super().__init__(core, handle)
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()

    def _before_close(self) -> None:
        for session in list(self._sessions):
            if not session.closed:
                session.detach_store(self)

    def add(self, doc: JSONArg = None, **fields: Any) -> str:
        """Add a document (ac_store_add): a dict such as {"text": ...,
        "title": ..., "metadata": {...}} or the same as keywords; its id."""
        with self._core._lock:
            return call("ac_store_add", self._handle(), json_arg(doc if doc is not None else fields))

    def update(self, id: str, doc: JSONArg = None, **fields: Any) -> None:
        """Replace a document's content and/or fields (ac_store_update)."""
        with self._core._lock:
            call("ac_store_update", self._handle(), id, json_arg(doc if doc is not None else fields))

    def delete(self, id: str) -> None:
        """Delete a document (ac_store_delete)."""
        with self._core._lock:
            call("ac_store_delete", self._handle(), id)

    def delete_where(self, filter: JSONArg) -> int:
        """Delete the documents matching a filter; how many
        (ac_store_delete_where)."""
        with self._core._lock:
            return int(call("ac_store_delete_where", self._handle(), json_arg(filter)))

    def list(self, **opts: Any) -> dict[str, Any]:
        """List documents, oldest first (ac_store_list): limit, offset,
        filter."""
        with self._core._lock:
            return _loads(call("ac_store_list", self._handle(), json_arg(opts or None)))

    def count(self) -> int:
        """The number of documents (ac_store_count)."""
        with self._core._lock:
            return int(call("ac_store_count", self._handle()))

    def search(self, query: str, **opts: Any) -> dict[str, Any]:
        """Search (ac_store_search): options k, mode, filter, ...; the answer
        with its "results", best first."""
        with self._core._lock:
            return _loads(call("ac_store_search", self._handle(), query, json_arg(opts or None)))


class Router(_Child):
    """A model router (ac_router)."""

    _what = "router"
    _close_fn = "ac_router_close"
    _close_order = 1

    def route(self, request: JSONArg) -> dict[str, Any]:
        """Decide without calling anything (ac_router_route)."""
        with self._core._lock:
            return _loads(call("ac_router_route", self._handle(), json_arg(request)))

    def chat(self, request: JSONArg, *, stream: StreamFn | None = None) -> dict[str, Any]:
        """Route and send a chat request (ac_router_chat)."""
        return self._core._chat("ac_router_chat", self._handle(), request, stream)

    def chat_stream(self, request: JSONArg) -> ChatStream:
        """Stream a routed chat: iterate for the chunks."""
        return ChatStream(self._core, "ac_router_chat", self._handle, request)

    def chat_async(self, request: JSONArg, done: DoneFn, *, stream: StreamFn | None = None) -> Call:
        """Start a routed chat without waiting (ac_router_chat_async)."""
        return self._core._start("ac_router_chat_async", (self._handle(), json_arg(request)), done, stream)

    def last_error(self) -> dict[str, Any]:
        """The error body of the most recent failed call (ac_router_last_error)."""
        with self._core._lock:
            return _loads(call("ac_router_last_error", self._handle()))

    def health(self) -> dict[str, Any]:
        """Every model's health (ac_router_health)."""
        with self._core._lock:
            return _loads(call("ac_router_health", self._handle()))


def version() -> str:
    """The library's run-time version (ac_version)."""
    return call("ac_version")


def version_number() -> int:
    """The run-time version as MAJOR*10000 + MINOR*100 + PATCH."""
    return int(call("ac_version_number"))


def strerror(code: int) -> str:
    """The name of a status code (ac_strerror)."""
    return call("ac_strerror", code)


__all__ = ["Call", "ChatStream", "Core", "Router", "Session", "Store", "version",
           "version_number", "strerror", "JSONArg", "StreamFn", "DoneFn"]
