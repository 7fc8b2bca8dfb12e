"""Loading libagentcore and calling its functions through the generated
declarations in ``_ffi`` (one generic caller, driven by the header's
parameter tags)."""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import threading
from typing import Any

from . import _ffi
from .errors import check

_SONAME = "libagentcore.so.0"

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_missing: frozenset[str] = frozenset()


def find_library() -> str:
    """Where libagentcore is: $AGENTCORE_LIBRARY, then pkg-config's libdir,
    then the loader's search path."""
    env = os.environ.get("AGENTCORE_LIBRARY")
    if env:
        return env
    if shutil.which("pkg-config"):
        try:
            libdir = subprocess.run(
                ["pkg-config", "--variable=libdir", "agentcore"],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            libdir = ""
        for name in (_SONAME, "libagentcore.so"):
            path = os.path.join(libdir, name) if libdir else ""
            if path and os.path.exists(path):
                return path
    return ctypes.util.find_library("agentcore") or _SONAME


def lib() -> ctypes.CDLL:
    """The loaded library, with argtypes/restype set (loaded on first use)."""
    global _lib, _missing
    if _lib is None:
        with _lock:
            if _lib is None:
                loaded = ctypes.CDLL(find_library())
                _missing = frozenset(_ffi.declare(loaded))
                _lib = loaded
    return _lib


def errmsg() -> str:
    """This thread's message of the last failure (ac_errmsg)."""
    raw = lib().ac_errmsg()  # not through call(): nothing may run before it
    return raw.decode("utf-8", "replace") if raw else ""


def free(address: int | None) -> None:
    """Release memory the library returned (ac_free)."""
    if address:
        call("ac_free", address)


def take_string(address: int | None) -> str | None:
    """Decode a string the library returned to us, then release it."""
    if not address:
        return None
    try:
        return ctypes.string_at(address).decode("utf-8")
    finally:
        free(address)


def cstr(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return value.encode("utf-8")


def json_arg(value: Any) -> bytes | None:
    """A request/options argument: None stays NULL, str/bytes are JSON text
    as they are, anything else is encoded with json.dumps."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def call(name: str, *args: Any) -> Any:
    """Call the C function ``name`` with its input parameters (userdata
    parameters are passed as NULL and left out of ``args``: Python closures
    carry their state). Strings are encoded, out-parameters supplied and
    returned (strings decoded and released with ac_free), and a failed status
    raises the matching AgentcoreError.

    Returns None, one value, or a tuple: the function's own value (when it
    is not a status) followed by the out-parameters in order."""
    f = _ffi.FUNCTIONS[name]
    cfn = getattr(lib(), name, None)
    if cfn is None or name in _missing:
        from .errors import Unsupported

        raise Unsupported(_ffi.AC_EUNSUPPORTED, f"{name} is not exported by the loaded library")
    cargs: list[Any] = []
    outs: list[tuple[_ffi.Param, Any]] = []
    it = iter(args)
    for i, p in enumerate(f.params):
        if p.kind.startswith("out_"):
            assert p.holder is not None
            holder = p.holder()
            outs.append((p, holder))
            cargs.append(ctypes.byref(holder))
        elif p.kind == "userdata":
            cargs.append(None)
        else:
            try:
                v = next(it)
            except StopIteration:
                raise TypeError(f"{name}: missing argument '{p.name}'") from None
            if p.kind == "str":
                v = cstr(v)
            elif p.kind == "callback" and v is None:
                v = f.argtypes[i]()  # type: ignore[operator]  # a NULL function pointer
            cargs.append(v)
    rest = list(it)
    if rest:
        raise TypeError(f"{name}: too many arguments")
    rv = cfn(*cargs)
    if f.returns == "status" and rv < _ffi.AC_OK:
        try:
            check(rv)  # reads ac_errmsg() before anything else runs
        finally:
            for p, holder in outs:
                if p.kind == "out_str" and p.free:
                    free(holder.value)
    results: list[Any] = []
    if f.returns == "str":
        results.append(rv.decode("utf-8") if rv is not None else None)
    elif f.returns == "str_free":
        results.append(take_string(rv))
    elif f.returns in ("value", "handle"):
        results.append(rv)
    for p, holder in outs:
        if p.kind == "out_str":
            if p.free:
                results.append(take_string(holder.value))
            else:
                results.append(ctypes.string_at(holder.value).decode("utf-8") if holder.value else None)
        elif p.kind in ("out_handle", "out_ptr"):
            results.append(holder if holder.value else None)
        else:
            results.append(holder.value)
    if not results:
        return None
    return results[0] if len(results) == 1 else tuple(results)
