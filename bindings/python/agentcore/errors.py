"""Exceptions: one class per AC_E* status code, all AgentcoreError.

The code-to-class mapping lives here and only here (``error_for`` and
``check``); every failing call reaches it.
"""
from __future__ import annotations

from . import _ffi


class AgentcoreError(Exception):
    """A failure reported by libagentcore.

    ``code`` is the AC_E* status, ``message`` the library's message for it
    (``ac_errmsg()`` read right after the failing call, on the same thread).
    """

    code: int = 0

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        name = _ffi.STATUS_NAMES.get(code, f"AC_E? ({code})")
        super().__init__(f"{name}: {message}" if message else name)


class InvalidArgument(AgentcoreError, ValueError):
    """AC_EINVAL: invalid argument, config or request."""


class NoMemory(AgentcoreError, MemoryError):
    """AC_ENOMEM: out of memory."""


class NotFound(AgentcoreError, LookupError):
    """AC_ENOTFOUND: no such session, document, model, tool ..."""


class IOError_(AgentcoreError, OSError):
    """AC_EIO: I/O error (file or network transport)."""


class StorageError(AgentcoreError):
    """AC_ESTORAGE: the database failed or is corrupt."""


class ProviderError(AgentcoreError):
    """AC_EPROVIDER: the model provider failed."""


class AuthError(AgentcoreError, PermissionError):
    """AC_EAUTH: authentication or permission refused."""


class Timeout(AgentcoreError, TimeoutError):
    """AC_ETIMEOUT: a deadline passed."""


class RateLimited(AgentcoreError):
    """AC_ERATELIMIT: rate limited (by a provider or a local limit)."""


class ContextOverflow(AgentcoreError):
    """AC_ECONTEXT: the request does not fit the model's context window."""


class BudgetExhausted(AgentcoreError):
    """AC_EBUDGET: a spending or token budget is exhausted."""


class ToolFailed(AgentcoreError):
    """AC_ETOOL: a tool failed fatally (or the tool loop hit its limits)."""


class Cancelled(AgentcoreError):
    """AC_ECANCELLED: the operation was cancelled."""


class Busy(AgentcoreError):
    """AC_EBUSY: the object is in use."""


class Unsupported(AgentcoreError, NotImplementedError):
    """AC_EUNSUPPORTED: not supported by this build or provider."""


class UserAbort(AgentcoreError):
    """AC_EUSER: a host callback asked to stop."""


_BY_NAME: dict[str, type[AgentcoreError]] = {
    "AC_EINVAL": InvalidArgument,
    "AC_ENOMEM": NoMemory,
    "AC_ENOTFOUND": NotFound,
    "AC_EIO": IOError_,
    "AC_ESTORAGE": StorageError,
    "AC_EPROVIDER": ProviderError,
    "AC_EAUTH": AuthError,
    "AC_ETIMEOUT": Timeout,
    "AC_ERATELIMIT": RateLimited,
    "AC_ECONTEXT": ContextOverflow,
    "AC_EBUDGET": BudgetExhausted,
    "AC_ETOOL": ToolFailed,
    "AC_ECANCELLED": Cancelled,
    "AC_EBUSY": Busy,
    "AC_EUNSUPPORTED": Unsupported,
    "AC_EUSER": UserAbort,
}

#: Exception class by status code.
ERRORS: dict[int, type[AgentcoreError]] = {
    code: _BY_NAME[name] for code, name in _ffi.STATUS_NAMES.items() if name in _BY_NAME
}

for _code, _cls in ERRORS.items():
    _cls.code = _code
del _code, _cls


def error_for(code: int, message: str) -> AgentcoreError:
    """The exception for a (negative) status code and its message."""
    return ERRORS.get(code, AgentcoreError)(code, message)


def check(rc: int) -> None:
    """Raise the exception for a failed call's status, with this thread's
    ``ac_errmsg()``; call it right after the C call, on the same thread."""
    if rc >= _ffi.AC_OK:
        return
    from ._native import errmsg

    raise error_for(rc, errmsg())
