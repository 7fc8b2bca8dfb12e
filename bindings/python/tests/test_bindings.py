"""The Python binding against the real library and the fake upstream."""
from __future__ import annotations

import gc
import json
import threading
from typing import Any

import pytest

import agentcore
from agentcore import _ffi
from conftest import Fake, content, user

HAS_TOOLS = "ac_session_attach_tools" in _ffi.FUNCTIONS
HAS_STORES = "ac_store_search" in _ffi.FUNCTIONS


# -- stateless calls ---------------------------------------------------------------

def test_chat_returns_the_upstream_answer_as_a_dict(core: agentcore.Core) -> None:
    answer = core.chat(user("hello"))
    assert content(answer) == "fake reply to: hello"
    assert answer["object"] == "chat.completion"
    assert "agentcore" in answer


def test_chat_accepts_json_text(core: agentcore.Core) -> None:
    assert content(core.chat(json.dumps(user("as text")))) == "fake reply to: as text"


def test_chat_with_stream_callback_gets_chunks_and_the_whole_answer(core: agentcore.Core) -> None:
    chunks: list[dict[str, Any]] = []
    answer = core.chat(user("stream me please"), stream=chunks.append)
    assert len(chunks) > 2
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    assert text == "fake reply to: stream me please" == content(answer)


def test_exception_in_stream_callback_stops_the_call_and_propagates(core: agentcore.Core) -> None:
    class Enough(Exception):
        pass

    def sink(chunk: dict[str, Any]) -> None:
        raise Enough()

    with pytest.raises(Enough):
        core.chat(user("stop at once"), stream=sink)
    assert content(core.chat(user("still usable"))) == "fake reply to: still usable"


def test_chat_stream_yields_chunks_and_keeps_the_response(core: agentcore.Core) -> None:
    stream = core.chat_stream(user("a streamed answer"))
    chunks = list(stream)
    assert len(chunks) > 2
    assert stream.response is not None
    assert content(stream.response) == "fake reply to: a streamed answer"


def test_chat_stream_closed_early_stops_and_joins_the_worker(core: agentcore.Core) -> None:
    before = threading.active_count()
    with core.chat_stream(user("a long answer that streams in many small pieces")) as stream:
        first = next(stream)
        assert first["object"] == "chat.completion.chunk"
    assert threading.active_count() == before
    assert content(core.chat(user("after"))) == "fake reply to: after"


def test_chat_stream_raises_the_calls_error(core: agentcore.Core) -> None:
    with pytest.raises(agentcore.NotFound):
        list(core.chat_stream({"model": "nope", **user("x")}))


def test_chat_async_completes_inside_run(core: agentcore.Core) -> None:
    got: list[Any] = []
    call = core.chat_async(user("later"), lambda answer, err: got.append((answer, err)))
    assert got == []
    core.run()
    assert call.done
    assert len(got) == 1 and got[0][1] is None
    assert content(got[0][0]) == "fake reply to: later"


def test_chat_async_failure_reaches_done_as_an_exception(core: agentcore.Core) -> None:
    got: list[Any] = []
    core.chat_async(user("boom"), lambda answer, err: got.append((answer, err)))
    core.run()
    assert got[0][0] is not None  # sanity: the fake answers
    got.clear()
    core.chat_async({"model": "fake/x", **user("[[fake:{\"status\":400}]]")},
                    lambda answer, err: got.append((answer, err)))
    core.run()
    assert got[0][0] is None and isinstance(got[0][1], agentcore.AgentcoreError)


def test_embed_is_deterministic(core: agentcore.Core) -> None:
    a = core.embed({"model": "m", "input": ["alpha", "beta"]})
    b = core.embed({"model": "m", "input": ["alpha"]})
    assert len(a["data"]) == 2
    assert len(a["data"][0]["embedding"]) == 8
    assert a["data"][0]["embedding"] == b["data"][0]["embedding"]


# -- sessions -------------------------------------------------------------------------

def test_session_turn_two_sends_turn_one_upstream(core: agentcore.Core, fake: Fake) -> None:
    with core.session() as s:
        assert content(s.chat(user("my name is Ada"))) == "fake reply to: my name is Ada"
        assert content(s.chat(user("what is my name?"))) == "fake reply to: what is my name?"
        sent = fake.last_request()["body"]["messages"]
        texts = [m.get("content") for m in sent]
        assert "my name is Ada" in texts
        assert "fake reply to: my name is Ada" in texts
        assert texts[-1] == "what is my name?"
        stored = s.messages()
        assert [m["message"]["role"] for m in stored] == ["user", "assistant", "user", "assistant"]


def test_session_chat_stream_is_stored_like_a_turn(core: agentcore.Core) -> None:
    with core.session() as s:
        stream = s.chat_stream(user("streamed turn"))
        assert len(list(stream)) > 2
        assert stream.response is not None and content(stream.response) == "fake reply to: streamed turn"
        assert len(s.messages()) == 2


def test_session_reopened_by_id_keeps_its_history(core: agentcore.Core, fake: Fake) -> None:
    with core.session(title="t") as s:
        sid = s.id
        s.chat(user("remember this"))
    with core.session(sid) as again:
        assert again.id == sid
        again.chat(user("and now?"))
    texts = [m.get("content") for m in fake.last_request()["body"]["messages"]]
    assert "remember this" in texts


def test_session_fork_copies_messages(core: agentcore.Core) -> None:
    with core.session() as s:
        s.chat(user("one"))
        with s.fork() as f:
            assert f.id != s.id
            assert len(f.messages()) == 2


def test_sessions_list_get_update_delete(core: agentcore.Core) -> None:
    with core.session(title="first") as s:
        sid = s.id
        s.chat(user("hi"))
    assert sid in [x["id"] for x in core.sessions()]
    core.update_session(sid, {"title": "renamed"})
    assert core.session_info(sid)["title"] == "renamed"
    assert len(core.export_session(sid)["history"]) == 2
    core.delete_session(sid)
    with pytest.raises(agentcore.NotFound):
        core.session_info(sid)


def test_unknown_session_raises_not_found(core: agentcore.Core) -> None:
    with pytest.raises(agentcore.NotFound):
        core.session("sess_does_not_exist")


# -- errors ---------------------------------------------------------------------------

def test_bad_config_raises_invalid_argument_naming_the_path(fake: Fake) -> None:
    cfg = fake.config()
    cfg["providers"]["fake"]["bse_url"] = "x"
    with pytest.raises(agentcore.InvalidArgument) as e:
        agentcore.Core(cfg)
    assert e.value.code == agentcore.AC_EINVAL
    assert "providers.fake" in e.value.message
    assert "bse_url" in e.value.message


def test_unknown_model_raises_not_found_with_the_message(core: agentcore.Core) -> None:
    with pytest.raises(agentcore.NotFound) as e:
        core.chat({"model": "no-such-model", **user("x")})
    assert e.value.code == agentcore.AC_ENOTFOUND
    assert "no-such-model" in str(e.value)


def test_errors_are_read_on_the_failing_thread(fake: Fake) -> None:
    results: list[str] = []

    def worker() -> None:
        try:
            agentcore.Core({"providers": 5})
        except agentcore.InvalidArgument as e:
            results.append(e.message)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert results and "providers" in results[0]


def test_every_status_code_has_its_exception_class() -> None:
    from agentcore.errors import ERRORS

    for code, name in _ffi.STATUS_NAMES.items():
        if code == _ffi.AC_OK:
            continue
        cls = ERRORS[code]
        assert issubclass(cls, agentcore.AgentcoreError)
        assert cls.code == code
        assert agentcore.strerror(code) == name
    assert len(set(ERRORS.values())) == len(ERRORS)


# -- lifetimes ------------------------------------------------------------------------

def test_close_is_idempotent_and_closed_handles_refuse_calls(fake: Fake) -> None:
    core = agentcore.Core(fake.config())
    s = core.session()
    s.close()
    s.close()
    with pytest.raises(agentcore.InvalidArgument):
        s.chat(user("x"))
    core.close()
    core.close()
    with pytest.raises(agentcore.InvalidArgument):
        core.chat(user("x"))


def test_closing_the_core_first_closes_its_children(fake: Fake) -> None:
    core = agentcore.Core(fake.config())
    s = core.session()
    r = core.router()
    core.close()
    assert s.closed and r.closed
    s.close()
    del s, r
    gc.collect()


def test_children_keep_the_core_alive(fake: Fake) -> None:
    s = agentcore.Core(fake.config()).session()
    gc.collect()
    assert content(s.chat(user("core still open"))) == "fake reply to: core still open"
    s.close()


def test_log_callback_receives_messages(fake: Fake) -> None:
    lines: list[tuple[int, str]] = []
    with agentcore.Core(fake.config()) as core:
        core.set_log(lambda level, msg: lines.append((level, msg)), agentcore.AC_LOG_DEBUG)
        core.chat(user("log me"))
        core.set_log(None)
    assert all(isinstance(m, str) for _, m in lines)


# -- router, usage --------------------------------------------------------------------

def test_router_routes_and_chats(core: agentcore.Core) -> None:
    with core.router() as r:
        decision = r.route(user("where to?"))
        assert isinstance(decision, dict)
        assert content(r.chat(user("routed"))) == "fake reply to: routed"
        assert isinstance(r.health(), dict)


def test_usage_and_metrics_account_the_calls(core: agentcore.Core) -> None:
    core.chat(user("count me"))
    assert isinstance(core.usage(), dict)
    assert isinstance(core.metrics(), str)


# -- stores and tools -----------------------------------------------------------------

@pytest.mark.skipif(not HAS_STORES, reason="ac_store_* not in include/agentcore.h yet")
def test_store_search_finds_the_added_document(core: agentcore.Core) -> None:
    with core.store("kb") as kb:
        a = kb.add(text="The capital of France is Paris.", title="france")
        kb.add({"text": "Bananas are yellow and rich in potassium.", "title": "fruit"})
        assert kb.count() == 2
        found = kb.search("capital of France", k=1)
        assert found["results"][0]["document_id"] == a
        assert "Paris" in found["results"][0]["text"]
        kb.delete(a)
        assert kb.count() == 1


@pytest.mark.skipif(not HAS_TOOLS, reason="ac_session_attach_tools / ac_tools_* not in include/agentcore.h yet")
def test_python_tool_is_called_by_the_model(core: agentcore.Core, fake: Fake) -> None:
    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    tools = core.tools()  # type: ignore[attr-defined]
    tools.add(add)
    with core.session() as s:
        s.attach_tools(tools)  # type: ignore[attr-defined]
        directive = '[[fake:{"tool_calls":[{"name":"add","arguments":{"a":1,"b":2}}]}]]'
        answer = s.chat(user(f"add please {directive}"))
    assert calls == [(1, 2)]
    assert answer["choices"][0]["message"]["content"]
    sent = fake.last_request()["body"]["messages"]
    assert any(m.get("role") == "tool" and "3" in str(m.get("content")) for m in sent)


def test_exception_in_done_callback_is_raised_by_run(core: agentcore.Core) -> None:
    class Oops(Exception):
        pass

    def done(answer: Any, err: Any) -> None:
        raise Oops()

    core.chat_async(user("later"), done)
    with pytest.raises(Oops):
        core.run()
    assert content(core.chat(user("usable"))) == "fake reply to: usable"


def test_session_chat_async_streams_and_completes(core: agentcore.Core) -> None:
    chunks: list[dict[str, Any]] = []
    got: list[Any] = []
    with core.session() as s:
        s.chat_async(user("async turn"), lambda a, e: got.append((a, e)), stream=chunks.append)
        core.run()
        assert got[0][1] is None and content(got[0][0]) == "fake reply to: async turn"
        assert len(chunks) > 2
        assert len(s.messages()) == 2


def test_installed_package_is_typed() -> None:
    from pathlib import Path

    assert (Path(agentcore.__file__).parent / "py.typed").exists()


@pytest.mark.skipif("ac_session_attach_store" not in _ffi.FUNCTIONS, reason="ac_session_attach_store not in the header")
def test_attached_store_puts_the_document_into_the_prompt(core: agentcore.Core, fake: Fake) -> None:
    with core.store("facts") as kb, core.session() as s:
        doc = kb.add(text="The secret code word is pineapple.", title="code")
        kb.add(text="Elephants are the largest land animals.", title="animals")
        s.attach_store(kb)
        answer = s.chat(user("What is the secret code word?"))
        sent = json.dumps(fake.last_request()["body"]["messages"])
        assert "pineapple" in sent
        citations = answer["agentcore"].get("citations") or []
        assert doc in [c.get("document_id") for c in citations]
        s.detach_store(kb)
        s.chat(user("And the animals?"))
        system = [m for m in fake.last_request()["body"]["messages"] if m.get("role") == "system"]
        assert "Elephants" not in json.dumps(system)
        with pytest.raises(agentcore.NotFound):
            s.detach_store(kb)


def test_closing_an_attached_store_detaches_it_first(core: agentcore.Core) -> None:
    kb = core.store("facts2")
    kb.add(text="Closing order matters.")
    with core.session() as s:
        s.attach_store(kb)
        kb.close()
        assert content(s.chat(user("still fine?"))) == "fake reply to: still fine?"
