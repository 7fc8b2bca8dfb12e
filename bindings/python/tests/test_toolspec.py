"""Specs derived from Python signatures (no library needed)."""
from __future__ import annotations

from typing import Literal, Optional

from agentcore.toolspec import spec_of


def test_spec_from_type_hints_and_defaults() -> None:
    def search(query: str, k: int = 5, mode: Literal["bm25", "vector"] = "bm25",
               tags: Optional[list[str]] = None, weight: float | None = None) -> str:
        """Search the notes.

        Longer text that is not part of the description."""
        return ""

    spec = spec_of(search)
    f = spec["function"]
    assert spec["type"] == "function"
    assert f["name"] == "search"
    assert f["description"] == "Search the notes."
    assert f["parameters"] == {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "k": {"type": "integer"},
            "mode": {"enum": ["bm25", "vector"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "weight": {"type": "number"},
        },
        "required": ["query"],
    }


def test_spec_without_hints_accepts_anything() -> None:
    def anything(a, b=1):  # type: ignore[no-untyped-def]
        return a

    f = spec_of(anything, name="x", description="d")["function"]
    assert f == {"name": "x", "description": "d",
                 "parameters": {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a"]}}
