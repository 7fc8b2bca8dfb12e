"""Python binding of libagentcore: an AI agent engine (memory, retrieval,
model routing, tools) behind one chat-completions call.

    import agentcore
    with agentcore.Core(config) as core:
        with core.session() as s:
            answer = s.chat({"messages": [{"role": "user", "content": "hi"}]})

The declarations in ``agentcore._ffi`` are generated from include/agentcore.h;
this package is a thin layer over them.
"""
from __future__ import annotations

from ._ffi import *  # noqa: F401,F403 - the AC_* constants
from ._native import find_library
from .core import (
    Call,
    ChatStream,
    Core,
    DoneFn,
    JSONArg,
    Router,
    Session,
    Store,
    StreamFn,
    strerror,
    version,
    version_number,
)
from .errors import (
    AgentcoreError,
    AuthError,
    BudgetExhausted,
    Busy,
    Cancelled,
    ContextOverflow,
    InvalidArgument,
    IOError_,
    NoMemory,
    NotFound,
    ProviderError,
    RateLimited,
    StorageError,
    Timeout,
    ToolFailed,
    Unsupported,
    UserAbort,
)

__version__ = "0.1.0"
