"""Property tests of the metadata parser (hypothesis; derandomized, so CI runs are stable).

1. Any lines after a '# conda execute' header, and any bytes as a file: a Spec or UsageError,
   never another exception.
2. Every spec the parser accepts renders back to a block (in several styles) that parses to
   the same spec.
3. The same text read from a file and given with -c gives the same spec or error message.

More than 10,000 examples in all; the counts are printed (pytest -s) as FIGURE lines.
"""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import conda_execute as ce

SETTINGS = {"deadline": None, "derandomize": True, "database": None,
            "suppress_health_check": list(HealthCheck)}
HEADER = "# conda execute"
SPECIAL = "#-[]{}'\":,\\ \t&*!|>%@`\x00\x01\x1b\x7f\r\x85\u2028\ufeff"
TEXT = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters()), max_size=30)
WORDS = ["env", "channels", "run_with", "python", ">=3", "-", "- ", "[", "]", "'", '"', ":",
         ": ", "#", " ", ",", "numpy 1.*", "conda-forge", "{", "}", "\\", "\\x", "\\u00e9"]
LINE = st.one_of(
    st.sampled_from(["# env: [python]", "# env:", "#  - python >=3", "# run_with: [python]",
                     "# channels: [conda-forge]", "#   # comment", "", "# /// script"]),
    TEXT.map(lambda t: "#" + t),
    st.lists(st.sampled_from(WORDS), max_size=8).map(lambda ws: "#" + "".join(ws)),
    TEXT,
)


def figure(text):
    print(f"\nFIGURE {text}")


def parse(lines, filename="fuzz.py"):
    return ce.read_spec(iter(enumerate(lines, 1)), "fuzz.py", filename)


def outcome(lines, filename="fuzz.py"):
    """('ok', env, channels, run_with) or ('error', message, line); anything else raises."""
    try:
        spec = parse(lines, filename)
    except ce.UsageError as e:
        assert e.code == ce.EXIT_USAGE and e.message and "\n" not in str(e).split(":", 1)[0]
        return ("error", e.message, e.line)
    assert isinstance(spec, ce.Spec)
    assert spec.env and all(isinstance(s, str) and s for s in spec.env)
    assert not any(s.startswith("-") for s in spec.env + spec.channels)
    assert spec.run_with and not spec.run_with[0].startswith("-")
    return ("ok", spec.env, spec.channels, spec.run_with)


def test_any_lines_give_a_spec_or_a_usage_error():
    seen = {"ok": 0, "error": 0}

    @settings(max_examples=4000, **SETTINGS)
    @given(st.lists(LINE, max_size=12), st.sampled_from(["fuzz.py", "fuzz", "fuzz.R"]))
    def check(lines, filename):
        seen[outcome([HEADER, *lines], filename)[0]] += 1

    check()
    figure(f"fuzz any_lines examples={sum(seen.values())} accepted={seen['ok']} "
           f"rejected={seen['error']}")
    assert sum(seen.values()) >= 2000


def test_any_bytes_give_a_spec_or_a_usage_error():
    seen = {"ok": 0, "error": 0}
    head = st.sampled_from([b"", b"# conda execute\n", b"# conda execute\n# env: [python]\n",
                            b"# /// script\n", b"\xef\xbb\xbf# conda execute\n"])

    @settings(max_examples=2500, **SETTINGS)
    @given(head, st.binary(max_size=200))
    def check(prefix, data):
        try:
            spec = ce.read_spec(ce.iter_lines(io.BytesIO(prefix + data), "f"), "f", "f.py")
        except ce.UsageError:
            seen["error"] += 1
        else:
            assert isinstance(spec, ce.Spec)
            seen["ok"] += 1

    check()
    figure(f"fuzz any_bytes examples={sum(seen.values())} accepted={seen['ok']}")
    assert sum(seen.values()) >= 1000


# ---------------------------------------------------------------- rendering accepted specs

ITEM = st.text(alphabet=st.one_of(st.sampled_from("#-[]'\":, \\=<>*.!|{}&`%@"),
                                  st.characters(min_codepoint=32)), min_size=1, max_size=20)


def dq(item):
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sq(item):
    return "'" + item.replace("'", "''") + "'"


def render(spec, style):
    """A block for SPEC: 'flow' lists of double-quoted items, or 'block' lists single-quoted."""
    lines = [HEADER]
    for key, items in (("env", spec[1]), ("channels", spec[2]), ("run_with", spec[3])):
        if not items:
            continue
        if style == "flow":
            lines.append(f"# {key}: [{', '.join(dq(i) for i in items)}]")
        else:
            lines.append(f"# {key}:")
            lines += [f"#   - {sq(i)}  # item" for i in items]
    return lines


def raw_block(env, channels, run_with, quote):
    lines = [HEADER, "# env:"] + [f"#  - {quote(i)}" for i in env]
    if channels:
        lines.append(f"# channels: [{', '.join(quote(c) for c in channels)}]")
    if run_with:
        lines.append(f"# run_with: [{', '.join(quote(r) for r in run_with)}]")
    return lines


def test_accepted_specs_render_back_to_the_same_spec():
    seen = {"ok": 0, "error": 0}
    items = st.lists(ITEM, min_size=1, max_size=4)

    @settings(max_examples=4500, **SETTINGS)
    @given(items, st.lists(ITEM, max_size=3), st.lists(ITEM, max_size=3),
           st.sampled_from([str, dq, sq]))
    def check(env, channels, run_with, quote):
        first = outcome(raw_block(env, channels, run_with, quote))
        seen[first[0]] += 1
        if first[0] != "ok":
            return
        for style in ("flow", "block"):
            assert outcome(render(first, style)) == first, style

    check()
    figure(f"fuzz round_trip examples={sum(seen.values())} accepted={seen['ok']} "
           f"rejected={seen['error']}")
    assert seen["ok"] >= 1000


def test_file_and_inline_code_read_the_same():
    seen = [0]

    @settings(max_examples=1500, **SETTINGS)
    @given(st.lists(LINE, max_size=8))
    def check(lines):
        seen[0] += 1
        text = "\n".join([HEADER, *lines]) + "\n"
        if "\0" in text:  # no command line can carry a NUL (a file holding one is binary)
            return
        try:  # a lone surrogate is no UTF-8: no file and no -c argument hold the same text
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return
        results = []
        for source in ("file", "inline"):
            try:
                if source == "file":
                    spec = ce.read_spec(ce.iter_lines(io.BytesIO(data), "s"), "s", "s.py")
                else:
                    spec = ce.load_spec(ce.Source("s", "", inline=text))
                results.append(("ok", spec.env, spec.channels))
            except ce.UsageError as e:
                results.append(("error", e.message, e.line))
        assert results[0] == results[1], (text, results)

    check()
    figure(f"fuzz file_vs_inline examples={seen[0]}")
    assert seen[0] >= 500


# ---------------------------------------------------------------- conda-script blocks

CS_LINE = st.one_of(
    st.sampled_from(["# /// conda-script", "# /// end-conda-script", "// /// conda-script",
                     '# channels = ["c"]', '# entrypoint = "x ${SCRIPT}"', "# entrypoint = {",
                     '#   unix = "a && b",', "# }", "# [dependencies]", '# a = "*"',
                     "# b = { version = '1.*', build = 'x' }", "#", "", "# /// script",
                     "# conda execute", "# env: [python]", "# [tool.other]", "# x = 1"]),
    st.sampled_from(["#", "# # a comment", '# c = { version = "2" }', "#   d = '>=1'"]),
    TEXT.map(lambda t: "# # " + t),  # a TOML comment
    TEXT.map(lambda t: "# " + t),
    TEXT,
)
SHELL = st.text(alphabet=st.one_of(st.sampled_from("$(){}'\" &|;<>`*?\\=\t\nab"),
                                   st.characters()), max_size=40)


def test_any_conda_script_lines_give_a_spec_or_a_usage_error():
    seen = {"ok": 0, "error": 0}

    @settings(max_examples=2500, **SETTINGS)
    @given(st.lists(CS_LINE, max_size=6), st.booleans())
    def check(lines, framed):
        head = ['# channels = ["c"]', '# entrypoint = "x ${SCRIPT}"'] if framed else []
        tail = ["# /// end-conda-script"] if framed else []
        try:
            spec = parse(["# /// conda-script", *head, *lines, *tail], "fuzz.sh")
        except ce.UsageError as e:
            assert e.code == ce.EXIT_USAGE and e.message and e.line >= 0
            seen["error"] += 1
            return
        assert isinstance(spec, ce.Spec)
        assert not any(s.startswith("-") for s in spec.env + spec.channels)
        seen["ok"] += 1

    check()
    figure(f"fuzz conda_script examples={sum(seen.values())} accepted={seen['ok']}")
    assert sum(seen.values()) >= 1000 and seen["ok"] >= 50


def test_any_entrypoint_parses_or_is_a_usage_error():
    seen = {"ok": 0, "error": 0}

    @settings(max_examples=3000, **SETTINGS)
    @given(SHELL, st.lists(st.text(max_size=6), max_size=3))
    def check(text, outputs):
        try:
            commands = ce.parse_entrypoint(text, "f", 3)
        except ce.UsageError as e:
            assert (e.code, e.line) == (ce.EXIT_USAGE, 3) and "column" in e.message
            seen["error"] += 1
            return
        seen["ok"] += 1
        assert commands and all(words for words in commands)
        for part in (p for words in commands for word in words for p in word):
            assert part.kind != "var" or part.value in ce.ENTRY_VARIABLES
        given_out = iter(outputs * 100)
        for words in commands:  # expansion never fails, whatever the $(...) print
            args = [a for w in words for a in ce.expand_word(
                w, {"SCRIPT": "/s", "CACHE": "/c"}, lambda p: next(given_out, ""))]
            assert all(isinstance(a, str) for a in args)

    check()
    figure(f"fuzz entrypoint examples={sum(seen.values())} accepted={seen['ok']}")
    assert sum(seen.values()) >= 1500 and seen["ok"] >= 100
