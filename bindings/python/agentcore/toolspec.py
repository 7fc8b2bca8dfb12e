"""A minimal JSON-Schema tool spec from a Python function's signature.

Only what the signature says: parameter names, their annotations mapped to
JSON-Schema types, required = parameters without a default, the first
paragraph of the docstring as the description. The library checks the
model's arguments against the schema; this module never does.
"""
from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union

_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def schema_of(annotation: Any) -> dict[str, Any]:
    """The JSON-Schema of a type annotation ({} when it says nothing)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [m.value for m in annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is Union or origin is types.UnionType:
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            return schema_of(non_null[0])
        return {"anyOf": [schema_of(a) for a in args]}
    if annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset, Sequence):
        items = [a for a in args if a is not Ellipsis]
        out: dict[str, Any] = {"type": "array"}
        if len(items) == 1:
            out["items"] = schema_of(items[0])
        return out
    if annotation is dict or origin in (dict, Mapping):
        out = {"type": "object"}
        if len(args) == 2:
            out["additionalProperties"] = schema_of(args[1])
        return out
    return {}


def spec_of(fn: Callable[..., Any], name: str | None = None,
            description: str | None = None) -> dict[str, Any]:
    """An OpenAI-style function tool spec for ``fn``:
    {"type": "function", "function": {"name", "description", "parameters"}}."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: use them raw
        hints = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        props[p.name] = schema_of(hints.get(p.name, p.annotation))
        if p.default is p.empty:
            required.append(p.name)
    params: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    doc = description if description is not None else (inspect.getdoc(fn) or "").split("\n\n")[0]
    func: dict[str, Any] = {"name": name or fn.__name__, "parameters": params}
    if doc:
        func["description"] = " ".join(doc.split())
    return {"type": "function", "function": func}
