"""The generator's reading of the header grammar, on small headers."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

GEN = Path(__file__).resolve().parents[1] / "gen.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("acgen", GEN)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["acgen"] = mod
    spec.loader.exec_module(mod)
    return mod


gen = load()

BASE = """
#define AC_OK 0
#define AC_EINVAL (-1) /* invalid */
#define AC_X_NUMBER (AC_OK * 100 + 3)
#define AC_NAME "n"
typedef struct ac_core ac_core;
/* A sink. */
typedef int (*ac_stream_fn)(const char *chunk_json,
                            void *userdata);
"""


def parse(extra: str) -> object:
    return gen.parse_header(BASE + extra)


def test_constants_are_evaluated() -> None:
    h = parse("")
    values = {c.name: c.value for c in h.consts}
    assert values == {"AC_OK": 0, "AC_EINVAL": -1, "AC_X_NUMBER": 3, "AC_NAME": "n"}
    assert [c.name for c in h.status_codes] == ["AC_OK", "AC_EINVAL"]


def test_out_free_handle_and_callback_tags_are_read() -> None:
    h = parse("""
/** Open.
 * @param cfg (in, nullable) config
 * @param out (out, handle) the core
 * @return AC_OK or AC_EINVAL
 */
AC_API int ac_open(const char *cfg, ac_core **out);
/** Chat.
 * @param core (in) the core
 * @param cb (in, nullable, callback) sink
 * @param userdata (in, nullable, userdata) for cb
 * @param answer (out, free) the answer; release with ac_free()
 * @param n (out, nullable) a count
 * @return AC_OK
 */
AC_API int ac_go(ac_core *core, ac_stream_fn cb, void *userdata, char **answer, long long *n);
/** Like ac_open.
 * @param out (out, handle) the core
 * @return as ac_open()
 */
AC_API int ac_again(ac_core **out);
/** A number.
 * @return the number.
 */
AC_API int ac_number(void);
""")
    f = {x.name: x for x in h.functions}
    assert [(p.name, p.kind, p.nullable) for p in f["ac_open"].params] == [
        ("cfg", "str", True), ("out", "out_handle", False)]
    go = f["ac_go"]
    assert [p.kind for p in go.params] == ["handle", "callback", "userdata", "out_str", "out_scalar"]
    assert go.params[1].callback == "ac_stream_fn" and go.params[1].userdata == "userdata"
    assert go.params[3].free
    assert f["ac_again"].ret_kind == "status"
    assert f["ac_number"].ret_kind == "value"


@pytest.mark.parametrize("decl, message", [
    ("/** x\n * @param out (free) s\n * @return AC_OK\n */\nAC_API int ac_a(char **out);",
     "'free' needs 'out'"),
    ("/** x\n * @param out s\n * @return AC_OK\n */\nAC_API int ac_a(char **out);",
     "must be tagged (out"),
    ("/** x\n * @param s (in, borrowed) s\n * @return AC_OK\n */\nAC_API int ac_a(const char *s);",
     "unknown tag(s) borrowed"),
    ("/** x\n * @return AC_OK\n */\nAC_API int ac_a(const char *s,\n    int n);",
     "one declaration per line"),
    ("/** x\n * @param cb (in, callback) c\n * @return AC_OK\n */\nAC_API int ac_a(ac_stream_fn cb);",
     "no later parameter tagged userdata"),
    ("/** x\n * @param t (in) t\n * @return AC_OK\n */\nAC_API int ac_a(const char *s);",
     "@param names not in the declaration: t"),
    ("AC_API int ac_a(void);", "no documentation comment"),
    ("typedef void (*ac_bad_fn)(void *userdata, int n);", "userdata"),
    ("typedef struct { int a; } ac_s;", "unsupported typedef"),
])
def test_grammar_errors_name_the_declaration(decl: str, message: str) -> None:
    with pytest.raises(gen.GrammarError) as e:
        parse(decl)
    assert message in str(e.value)
    assert "agentcore.h:" in str(e.value)


def test_callback_out_string_is_written_with_a_malloced_copy() -> None:
    h = parse("""
typedef int (*ac_tool_fn)(const char *args_json, char **result, void *userdata);
""")
    go = gen.gen_go_export(h)
    assert "func acgoAcToolFn(argsJSON *C.char, result **C.char, userdata unsafe.Pointer) (rc C.int)" in go
    assert "*result = C.CString(resultGo)" in go
    assert re.search(r"\ttool\s+func\(argsJSON string\) \(result string, rc int\)", gen.gen_go(h))
    py = gen.gen_python(h)
    assert ("ac_tool_fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, "
            "ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)") in py


def test_the_real_header_parses_without_warnings() -> None:
    h = gen.parse_header(gen.HEADER.read_text(encoding="utf-8"))
    assert h.functions and not h.warnings


def test_committed_files_are_current_and_every_function_is_bound() -> None:
    assert gen.main(["--check"]) == 0
