"""PEP 723 blocks, the TOML reader for Python < 3.11, and the mapping to a spec.

Runs with pytest, or as a plain script on a bare Python (python tests/test_pep723.py).
"""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import conda_execute as m

try:
    import tomllib  # novm
except ImportError:
    tomllib = None

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the plain-script run on a bare Python
    given = None

INF = float("inf")


class Missing(Exception):
    """A prerequisite missing in a plain run (no pytest): that test is reported as skipped."""


def require(present: object, what: str) -> None:
    """Under pytest: fail in CI (CI=true), skip elsewhere; in a plain run: skip (reported)."""
    if present:
        return
    if "pytest" in sys.modules:
        from conftest import require as pytest_require

        pytest_require(present, what)
    raise Missing(what)


class ERR:
    """Expected: a TOML error at this TOML line (1-based)."""

    def __init__(self, line: int) -> None:
        self.line = line


@contextmanager
def raises(match: str = "", line: int = -1):
    """Expect a UsageError whose message matches `match` (regex) at `line` (if given)."""
    try:
        yield
    except m.UsageError as exc:
        assert re.search(match, exc.message), (match, exc.message)
        assert line == -1 or exc.line == line, (line, exc.line, exc.message)
        assert exc.path == "s.py" and exc.code == 2
    else:
        raise AssertionError(f"no UsageError matching {match!r}")


def numbered(text: str):
    """The (lineno, line) pairs a caller would stream from a file read in text mode."""
    return enumerate(text.split("\n"), 1)


def find(text: str):
    return m.find_pep723(numbered(text), "s.py")


def pep723_metadata(lines, path: str):
    """find_pep723, parse_toml and pep723_fields in one call; None without a block."""
    block = m.find_pep723(lines, path)
    if block is None:
        return None
    opener, text = block
    return m.pep723_fields(m.parse_toml(text, path, opener + 1), path, opener)


# Block finding: the specification's examples and rules #######################

PEP_EXAMPLE = """\
# /// script
# requires-python = ">=3.11"
# dependencies = [
#   "requests<3",
#   "rich",
# ]
# ///

import requests
from rich.pretty import pprint
"""


def test_spec_example():
    assert find(PEP_EXAMPLE) == (1, 'requires-python = ">=3.11"\ndependencies = [\n  "requests<3",\n  "rich",\n]\n')


def test_shebang_bom_crlf():
    text = "\ufeff#!/usr/bin/env python\r\n" + PEP_EXAMPLE.replace("\n", "\r\n")
    assert find(text) == (2, 'requires-python = ">=3.11"\ndependencies = [\n  "requests<3",\n  "rich",\n]\n')
    assert find("\ufeff" + PEP_EXAMPLE)[0] == 1  # a BOM before the opener itself
    # Lines handed over with their newline still on are accepted too.
    lines = enumerate(PEP_EXAMPLE.replace("\n", "\r\n").splitlines(keepends=True), 1)
    assert m.find_pep723(lines, "s.py") == find(PEP_EXAMPLE)


def test_spec_embedded_closers_are_content():
    text = """\
# /// some-toml
# ignored
# ///

# /// script
# embedded-csharp = \"\"\"
# /// <summary>
# /// text
# ///
# /// </summary>
# public class MyClass { }
# \"\"\"
# ///
x = 1
"""
    opener, toml = find(text)
    assert opener == 5
    assert toml.splitlines() == [
        'embedded-csharp = """', "/// <summary>", "/// text", "///", "/// </summary>",
        "public class MyClass { }", '"""',
    ]
    assert m.parse_toml(toml, "s.py", 6)["embedded-csharp"].startswith("/// <summary>\n")


def test_last_closer_of_the_run_wins():
    assert find("# /// script\n# a = 1\n# ///\n#\n# ///\nx\n") == (1, "a = 1\n///\n\n")
    # Content lines after the last closer are not part of the block.
    assert find("# /// script\n# a = 1\n# ///\n#\n# more\n") == (1, "a = 1\n")
    # A closer right after the opener is content, not an end (the regex needs a line).
    assert find("# /// script\n# ///\n# ///\n") == (1, "///\n")
    assert find("# /// script\n# ///\nx\n") is None
    assert find("# /// script\n#\n# ///") == (1, "\n")


def test_unclosed_is_ignored():
    assert find("# /// script\n# a = 1\nimport x\n") is None
    assert find("# /// script\n#requires-python = '>=3.11'\n# ///\n") is None  # missing space ends the run
    assert find("# /// script\n# a = 1\n") is None
    # An unclosed block, then a good one: the good one counts.
    assert find("# /// script\n# a = 1\n\n# /// script\n# b = 2\n# ///\n") == (4, "b = 2\n")


def test_not_openers():
    for opener in ("# /// script ", "#/// script", "# ///script", " # /// script", "# /// scr_ipt", "## /// script"):
        assert find(f"{opener}\n# a = 1\n# ///\n") is None, opener


def test_other_types_are_skipped():
    # A `# /// script` line inside another block's run is that block's content.
    text = "# /// pyproject\n# /// script\n# a = 1\n# ///\n"
    assert find(text) is None
    text = "# /// other-type\n# x\n# ///\n\n# /// script\n# a = 1\n# ///\n"
    assert find(text) == (5, "a = 1\n")


def test_two_script_blocks():
    text = "# /// script\n# a = 1\n# ///\n\nimport x\n# /// script\n# b = 2\n# ///\n"
    with raises(r"multiple script blocks \(the first starts at line 1\)", line=6):
        find(text)
    # Back to back with no line between: ONE block per the spec (the last `# ///` of
    # the run closes it), whose TOML then fails to parse.
    assert find("# /// script\n# a = 1\n# ///\n# /// script\n# b = 2\n# ///\nx\n") == (
        1, "a = 1\n///\n/// script\nb = 2\n"
    )
    # A second, unclosed script block is ignored, as the regex never matches it.
    assert find("# /// script\n# a = 1\n# ///\n\n# /// script\n# b = 2\n") == (1, "a = 1\n")


def test_streams_without_holding_the_file():
    def lines():
        yield 1, "# /// script"
        yield 2, "# a = 1"
        yield 3, "# ///"
        for n in range(4, 300_004):
            yield n, "x = 1  # code"

    assert m.find_pep723(lines(), "s.py") == (1, "a = 1\n")


def test_block_size_cap():
    big = "# x = '" + "y" * 1000 + "'"
    with raises("longer than", line=1):
        find("# /// script\n" + "\n".join([big] * 1100) + "\n# ///\n")
    # A long run of comments AFTER the closer is fine: it is not part of the block.
    assert find("# /// script\n# a = 1\n# ///\n" + "\n".join([big] * 1100) + "\n") == (1, "a = 1\n")


def reference_find(text: str):
    """The specification's reference implementation, on a whole text."""
    regex = r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"
    matches = [x for x in re.finditer(regex, text) if x.group("type") == "script"]
    if len(matches) > 1:
        return "error"
    if not matches:
        return None
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in matches[0].group("content").splitlines(keepends=True)
    )
    return text[: matches[0].start()].count("\n") + 1, content


LINE_KINDS = ["# /// script", "# /// other", "# ///", "#", "# a = 1", "# /// script ", "x = 1", "", "#x"]

if given is not None:

    @settings(max_examples=3000, deadline=None)
    @given(st.lists(st.sampled_from(LINE_KINDS), max_size=14), st.booleans())
    def test_same_as_reference_regex(kinds, final_newline):
        text = "\n".join(kinds) + ("\n" if final_newline else "")
        expected = reference_find(text)
        try:
            got = m.find_pep723(numbered(text), "s.py")
        except m.UsageError:
            got = "error"
        assert got == expected, (text, got, expected)

else:  # a bare Python: these exist all the same, and say what they miss

    def test_same_as_reference_regex():
        require(False, "hypothesis")




# TOML: tomllib and toml_subset agree ##############################################

# (TOML text, what tomllib gives: a dict or ERR(toml line)), made with Python 3.11's tomllib.
TOML_CORPUS = [
    ('requires-python = ">=3.11"\ndependencies = ["requests<3", "rich"]\n', {'requires-python': '>=3.11', 'dependencies': ['requests<3', 'rich']}),
    ('dependencies = [\n  "a",  # first\n  # a comment line\n  "b",\n]\n', {'dependencies': ['a', 'b']}),
    ('dependencies = []\n', {'dependencies': []}),
    ('# only a comment\n\n', {}),
    ('', {}),
    ('[tool.conda]\nchannels = ["conda-forge", "bioconda"]\ndependencies = ["samtools>=1.19"]\n', {'tool': {'conda': {'channels': ['conda-forge', 'bioconda'], 'dependencies': ['samtools>=1.19']}}}),
    ('[tool.conda-execute]\nrun_with = "python -u"\n', {'tool': {'conda-execute': {'run_with': 'python -u'}}}),
    ('tool.conda.dependencies = ["x"]\ntool.conda.channels = []\n', {'tool': {'conda': {'dependencies': ['x'], 'channels': []}}}),
    ('"quoted key" = 1\n\'lit key\' = 2\nbare-key_1 = 3\n', {'quoted key': 1, 'lit key': 2, 'bare-key_1': 3}),
    ('a . b . "c.d" = "x"\n', {'a': {'b': {'c.d': 'x'}}}),
    ('s = "tab\\there \\"q\\" back\\\\slash \\u00e9 \\U0001F600 nl\\n"\n', {'s': 'tab\there "q" back\\slash é 😀 nl\n'}),
    ("p = 'C:\\\\Users\\\\x no escapes'\n", {'p': 'C:\\\\Users\\\\x no escapes'}),
    ('i = [0, -17, +42, 1_000, 0xdead_BEEF, 0o755, 0b1010]\n', {'i': [0, -17, 42, 1000, 3735928559, 493, 10]}),
    ('f = [3.14, -0.5, 1e3, 6.02E+23, 1_0.5_0, inf, -inf]\n', {'f': [3.14, -0.5, 1000.0, 6.02e+23, 10.5, INF, -INF]}),
    ('b = [true, false]\n', {'b': [True, False]}),
    ('x = {a = "x", b = ["y"], c.d = 1}\n', {'x': {'a': 'x', 'b': ['y'], 'c': {'d': 1}}}),
    ('x = {}\ny = { }\n', {'x': {}, 'y': {}}),
    ('[tool.uv]\nexclude-newer = "2024-01-01T00:00:00Z"\n[[tool.uv.index]]\nurl = "https://a"\n[[tool.uv.index]]\nurl = "https://b"\ndefault = true\n', {'tool': {'uv': {'exclude-newer': '2024-01-01T00:00:00Z', 'index': [{'url': 'https://a'}, {'url': 'https://b', 'default': True}]}}}),
    ('[a]\nb.c = 1\n[a.d]\ne = 2\n', {'a': {'b': {'c': 1}, 'd': {'e': 2}}}),
    ('[a.b]\nx = 1\n[a]\ny = 2\n', {'a': {'b': {'x': 1}, 'y': 2}}),
    ('nested = [[1, 2], ["a"], [], [{x = 1}]]\n', {'nested': [[1, 2], ['a'], [], [{'x': 1}]]}),
    ('m = """\nline one\n  line "two"\\\n   continued\n"""\n', {'m': 'line one\n  line "two"continued\n'}),
    ("ml = '''\nraw \\n text\n'''\nq = '''''two quotes'''''\n", {'ml': 'raw \\n text\n', 'q': "''two quotes''"}),
    ('k = "v" # trailing comment\n  indented = 1\n\t[ t ]  # header comment\n', {'k': 'v', 'indented': 1, 't': {}}),
    ('e = ""\nl = \'\'\n', {'e': '', 'l': ''}),
    ('dependencies = [\r\n  "crlf",\r\n]\r\n', {'dependencies': ['crlf']}),
    ('a = 1\na = 2\n', ERR(2)),
    ('[t]\nx = 1\n[t]\ny = 2\n', ERR(3)),
    ('dependencies = [\n  "a"\n  "b",\n]\n', ERR(3)),
    ('dependencies = [\n  "a",\n', ERR(3)),
    ('x = "unterminated\ny = 1\n', ERR(1)),
    ('x = 1 2\n', ERR(1)),
    ('x = \n', ERR(1)),
    ('= 1\n', ERR(1)),
    ('x = {a = 1,}\n', ERR(1)),
    ('x = {a = 1, a = 2}\n', ERR(1)),
    ('x = "bad \\q escape"\n', ERR(1)),
    ('x = "\\uD800"\n', ERR(1)),
    ('a.b = 1\n[a]\n', ERR(2)),
    ('a = [1]\n[a]\n', ERR(2)),
    ('a = {b = 1}\na.c = 2\n', ERR(2)),
    ('[a]\nb = 1\n[[a]]\n', ERR(3)),
    ('[t\n', ERR(1)),
    ('[[t]\n', ERR(1)),
    ('x = truee\n', ERR(1)),
    ('x = 01\n', ERR(1)),
    ('x = 1__0\n', ERR(1)),
    ('\n\nok = 1\nbad line\n', ERR(4)),
    ('x = "ctl\x01char"\n', ERR(1)),
    ('x = 1 # comment with \x7f\n', ERR(1)),
    ("x = 'unterminated\n", ERR(2)),
    ('x = """never closed\n', ERR(2)),
    ('x = [1, 2\n', ERR(2)),
    ('a.b = 1\na.b.c = 2\n', ERR(2)),
    ('[a]\n[a.b]\n[a]\n', ERR(3)),
]


def outcome(parse, text: str):
    """A reader's result on text at script line 1: the dict, or ('error', line)."""
    try:
        return parse(text, "s.py", 1)
    except m.UsageError as exc:
        assert exc.message.startswith("invalid TOML in script block: "), exc.message
        return ("error", exc.line)


def expected(value):
    return ("error", value.line) if isinstance(value, ERR) else value


def test_toml_corpus_subset():
    for text, want in TOML_CORPUS:
        assert outcome(m.toml_subset, text) == expected(want), text


def test_toml_corpus_tomllib():
    require(tomllib, "tomllib (Python 3.11+)")
    for text, want in TOML_CORPUS:
        assert outcome(m.parse_toml, text) == expected(want), text
        assert outcome(m.parse_toml, text) == outcome(m.toml_subset, text), text


def test_toml_1_1_escapes_only_in_conda_script_blocks():
    """\\e and \\xHH are TOML 1.1 (conda-script blocks); a bad \\x is one error, never a crash."""
    assert m.toml_subset(m.Toml11('a = "\\x41\\e\\x7e"\n'), "s.py", 3) == {"a": "A\x1b~"}
    for bad in ("\\xZZ", "\\x4", "\\xZ1", "\\x1Z", "\\x"):
        with raises("Invalid hex value", line=3):
            m.toml_subset(m.Toml11(f'a = "{bad}"\n'), "s.py", 3)
        with raises("Unescaped", line=3):  # TOML 1.0 (PEP 723) knows no \\x
            m.toml_subset(f'a = "{bad}"\n', "s.py", 3)


def test_toml_error_lines_are_script_lines():
    text = "dependencies = [\n  \"a\"\n  \"b\",\n]\n"
    for parse in (m.parse_toml, m.toml_subset):
        with raises("invalid TOML", line=5 + 2):
            parse(text, "s.py", 5)
    with raises("invalid TOML", line=4):  # end of document: the closer's line
        pep723_metadata(numbered("#!/bin/python\n# /// script\n# x = [1,\n# ///\n"), "s.py")


def test_toml_subset_unsupported():
    with raises("unsupported TOML.*dates and times", line=3):
        m.toml_subset("a = 1\n\nwhen = 1979-05-27\n", "s.py", 1)
    with raises("unsupported TOML", line=1):
        m.toml_subset("t = 07:32:00\n", "s.py", 1)
    assert str(_usage(lambda: m.toml_subset("x = \n", "s.py", 9))) == "s.py:9: invalid TOML in script block: Invalid value"


def _timed(what: str, call):
    """call(), its time printed as a figure (hostile inputs: bounded cost, not a timed assert)."""
    start = time.perf_counter()
    try:
        return call()
    finally:
        print(f"FIGURE {what} on Python {sys.version.split()[0]}: "
              f"{time.perf_counter() - start:.3f} s")


def test_deep_dotted_keys_are_refused_before_any_parser():
    """A 32,700-part key cost tomllib and toml_subset 20-30 s and 4 GB (quadratic)."""
    deep = "a." * 32_699 + "a = 1\n"
    for parse in (m.parse_toml, m.toml_subset):
        with raises("a key of more than 64 dotted parts", line=11):
            _timed(f"{parse.__name__} 32700-part key", lambda p=parse: p("x = 1\n" + deep, "s.py", 10))
    with raises("more than 64 dotted parts", line=3):  # a table header too
        m.parse_toml("\n\n[" + "t." * 64 + "t]\n", "s.py", 1)
    key64 = ".".join(["k"] * 64)
    assert m.parse_toml(f"{key64} = 1\n", "s.py", 1) == m.toml_subset(f"{key64} = 1\n", "s.py", 1)
    for text in ['x = "' + "a." * 100 + '"\n', "x = '''\n" + "a." * 100 + "\n'''\n",
                 '# ' + "a." * 100 + '\n', 'x = [' + "1.5, " * 100 + ']\n',
                 'x = """a\\""""\ny = "' + "a." * 100 + '"\n']:  # dots in strings, comments, floats
        assert m.parse_toml(text, "s.py", 1) == m.toml_subset(text, "s.py", 1), text
    for text in ['x = """a\\""""\n' + "a." * 64 + "a = 1\n", "x = 'a\\'\n" + "a." * 64 + "a = 1\n"]:
        with raises("more than 64 dotted parts", line=2):  # a string's end found as TOML does
            m.parse_toml(text, "s.py", 1)


def test_toml_subset_is_linear_in_array_tables():
    """40,000 [[aN]] tables took toml_subset 403 s (tomllib 0.66 s): flags kept per key now."""
    text = "".join(f"[[a{i}]]\nk = {i}\n" for i in range(40_000))
    want = {f"a{i}": [{"k": i}] for i in range(40_000)}
    assert _timed("toml_subset 40000 [[aN]] tables", lambda: m.toml_subset(text, "s.py", 1)) == want
    assert _timed("parse_toml 40000 [[aN]] tables", lambda: m.parse_toml(text, "s.py", 1)) == want
    text = "[[a]]\nb.c = 1\n[a.d]\n" * 40_000
    assert _timed("toml_subset 40000 [[a]] tables", lambda: m.toml_subset(text, "s.py", 1)) == \
        {"a": [{"b": {"c": 1}, "d": {}}] * 40_000}
    with raises("Cannot declare a.d twice", line=5):  # the flags still see repeats
        m.toml_subset("[[a]]\n[a.d]\n[[a]]\n[a.d]\n[a.d]\n", "s.py", 1)


def test_block_text_cap_comes_before_parsing():
    lines = [f"# [[a{i}]]\n" for i in range(7_000)]  # 77 kB
    with raises("script block longer than 65536 characters", line=1):
        _timed("find_pep723 77 kB block", lambda: find("# /// script\n" + "".join(lines) + "# ///\n"))
    assert find("# /// script\n" + "".join(lines[:5_000]) + "# ///\n")  # 54 kB


def _usage(call):
    try:
        call()
    except m.UsageError as exc:
        return exc
    raise AssertionError("no UsageError")


def render_toml(value) -> str:
    """A TOML value for value (str, int, bool, float, list, dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return '"' + "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in out) + '"'
    if isinstance(value, list):
        return "[\n" + "".join(f"  {render_toml(v)},  # item\n" for v in value) + "]"
    return "{" + ", ".join(f"{render_key(k)} = {render_toml(v)}" for k, v in value.items()) + "}"


def render_key(key: str) -> str:
    return key if key and re.fullmatch(r"[A-Za-z0-9_-]+", key) else render_toml(key)


def render_document(data: dict) -> str:
    """Scalars and arrays first, then one [table] per nested dict (dotted headers)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{render_key(key)} = {render_toml(value)}")
    for key, table in tables:
        lines.append(f"\n[{render_key(key)}]")
        for sub, value in table.items():
            if isinstance(value, dict):  # a dotted key, or an inline table
                for leaf, item in value.items():
                    lines.append(f"{render_key(sub)} . {render_key(leaf)} = {render_toml(item)}")
            else:
                lines.append(f"{render_key(sub)} = {render_toml(value)}")
    return "\n".join(lines) + "\n"


if given is not None:
    TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
    KEYS = st.one_of(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), TEXT)
    SCALARS = st.one_of(
        TEXT, st.integers(-(2**63), 2**63), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)
    )
    VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
    SPECS = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,6}( ?[<>=!]=?[0-9](\.[0-9]){0,2})?", fullmatch=True), max_size=5)
    PEP723_DOCS = st.fixed_dictionaries(
        {},
        optional={
            "requires-python": st.sampled_from([">=3.8", ">=3.9,<3.13", "==3.11.*", "~=3.10"]),
            "dependencies": SPECS,
            "tool": st.fixed_dictionaries(
                {},
                optional={
                    "conda": st.fixed_dictionaries({}, optional={"dependencies": SPECS, "channels": SPECS}),
                    "conda-execute": st.fixed_dictionaries(
                        {}, optional={"run_with": st.one_of(TEXT, st.lists(TEXT, max_size=3))}
                    ),
                    "uv": st.dictionaries(KEYS, st.one_of(VALUES, st.dictionaries(KEYS, SCALARS, max_size=3)), max_size=4),
                },
            ),
        },
    )

    @settings(max_examples=400, deadline=None)
    @given(PEP723_DOCS)
    def test_rendered_pep723_documents_parse_back(data):
        text = render_document({k: v for k, v in data.items() if k != "tool"})
        if data.get("tool") == {}:
            text += "\n[tool]\n"
        for name, table in data.get("tool", {}).items():
            text += _render_tool(name, table)
        assert m.toml_subset(text, "s.py", 1) == data, text
        if tomllib is not None:
            assert tomllib.loads(text) == data, text

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(KEYS, VALUES, max_size=6))
    def test_rendered_documents_parse_back(data):
        text = render_document(data)
        assert m.toml_subset(text, "s.py", 1) == data, text
        if tomllib is not None:
            assert tomllib.loads(text) == data, text


else:

    def test_rendered_pep723_documents_parse_back():
        require(False, "hypothesis")

    def test_rendered_documents_parse_back():
        require(False, "hypothesis")


def _render_tool(name: str, table: dict) -> str:
    """[tool.NAME] with its keys; nested tables as [tool.NAME.KEY]."""
    head = f"\n[tool.{render_key(name)}]\n"
    plain = "".join(f"{render_key(k)} = {render_toml(v)}\n" for k, v in table.items() if not isinstance(v, dict))
    nested = "".join(
        f"\n[tool.{render_key(name)}.{render_key(k)}]\n"
        + "".join(f"{render_key(a)} = {render_toml(b)}\n" for a, b in v.items())
        for k, v in table.items()
        if isinstance(v, dict)
    )
    return head + plain + nested


# From metadata to an environment #############################################


def fields(data: dict):
    return m.pep723_fields(data, "s.py", 3)


def test_requires_python_table():
    table = {
        ">=3.10": "python >=3.10",
        ">=3.9,<3.13": "python >=3.9,<3.13",
        " >= 3.9 , < 3.13 ": "python >=3.9,<3.13",
        "==3.11.*": "python 3.11.*",
        "==3.11": "python ==3.11",
        "!=3.11.*,>=3.8": "python !=3.11.*,>=3.8",
        "!=3.12.1": "python !=3.12.1",
        "~=3.10": "python >=3.10,3.*",
        "~=3.10.2": "python >=3.10.2,3.10.*",
        ">3.8,<=3.12": "python >3.8,<=3.12",
        ">=3.13.0rc1": "python >=3.13.0rc1",
    }
    for requires, spec in table.items():
        assert m.python_spec(requires, "s.py", 3) == spec, requires
        assert fields({"requires-python": requires})[0] == (spec,)
    for bad, why in {
        "===3.11": "arbitrary equality", "~=3": "two version parts", ">=3.*": "expected", "3.11": "expected",
        "": "expected", ">=3.10,": "expected", ">=1!3.10": "expected", "==3.11+local": "expected",
        ">=3.10 <3.13": "expected", "~=3.10.*": "expected",
    }.items():
        with raises(why, line=3):
            m.python_spec(bad, "s.py", 3)
    with raises("requires-python: expected a string", line=3):
        fields({"requires-python": 3.11})


def test_mapping():
    assert fields({}) == (("python",), (), (), ())
    assert fields({"dependencies": []}) == (("python",), (), (), ())
    assert fields({"dependencies": ["rich>=13", "httpx[http2]; python_version>'3.8'"]}) == (
        ("python", "pip"), (), ("rich>=13", "httpx[http2]; python_version>'3.8'"), ()
    )
    data = {
        "requires-python": ">=3.11",
        "dependencies": ["rich"],
        "tool": {
            "conda": {"channels": ["conda-forge", "bioconda"], "dependencies": ["numpy>=1.24", "samtools 1.19.*"]},
            "conda-execute": {"run_with": ["python", "-u"]},
            "uv": {"exclude-newer": "2024-01-01", "index": [{"url": "x"}]},  # other tools: left alone
            "black": 1,
        },
    }
    assert fields(data) == (
        ("python >=3.11", "numpy>=1.24", "samtools 1.19.*", "pip"),
        ("conda-forge", "bioconda"),
        ("rich",),
        ("python", "-u"),
    )
    # An explicit python (any spelling of the name) or pip in [tool.conda] wins.
    for spec in ("python 3.12.*", "python=3.12", "conda-forge::python>=3.12", "Python"):
        data = {"requires-python": ">=3.11", "dependencies": ["x"], "tool": {"conda": {"dependencies": [spec, "pip<25"]}}}
        assert fields(data)[0] == (spec, "pip<25"), spec
    assert fields({"tool": {"conda": {"dependencies": ["python-dateutil"]}}})[0] == ("python", "python-dateutil")
    assert fields({"tool": {"conda-execute": {"run_with": "  bash  -e "}}})[3] == ("bash", "-e")
    assert fields({"tool": {"conda": {"dependencies": ["  numpy  "]}}})[0] == ("python", "numpy")
    with raises("requires-python '===3.1'"):  # checked even when [tool.conda] names python
        fields({"requires-python": "===3.1", "tool": {"conda": {"dependencies": ["python"]}}})


def test_validation_errors():
    cases = [
        ({"tool": []}, "tool: expected a table, got an array"),
        ({"tool": {"conda": "numpy"}}, r"\[tool.conda\]: expected a table, got a string"),
        ({"tool": {"conda": {"dependency": []}}}, r"\[tool.conda\]: unknown key 'dependency'"),
        ({"tool": {"conda-execute": {"run-with": "x"}}}, r"unknown key 'run-with' \(known: run_with\)"),
        ({"tool": {"conda-execute": []}}, "expected a table"),
        ({"dependencies": "rich"}, "dependencies: expected an array of strings, got a string"),
        ({"dependencies": ["rich", 3]}, r"dependencies\[1\]: expected a string, got an integer"),
        ({"dependencies": ["-r req.txt"]}, r"dependencies\[0\]: '-r req.txt' starts with '-'"),
        ({"dependencies": ["--index-url=http://evil"]}, "starts with '-'"),
        ({"dependencies": ["  "]}, r"dependencies\[0\]: empty string"),
        ({"dependencies": ["a\nb"]}, "control character"),
        ({"dependencies": ["a\x00"]}, "control character"),
        ({"tool": {"conda": {"dependencies": ["--override-channels"]}}}, "starts with '-'"),
        ({"tool": {"conda": {"dependencies": [True]}}}, "got a boolean"),
        ({"tool": {"conda": {"channels": ["-c"]}}}, r"channels\[0\]: '-c' starts with '-'"),
        ({"tool": {"conda": {"channels": ["a\tb"]}}}, "control character"),
        ({"tool": {"conda": {"channels": [""]}}}, "empty string"),
        ({"tool": {"conda": {"channels": {"a": 1}}}}, "got a table"),
        ({"tool": {"conda-execute": {"run_with": []}}}, "run_with: empty"),
        ({"tool": {"conda-execute": {"run_with": "   "}}}, "run_with: empty"),
        ({"tool": {"conda-execute": {"run_with": ["-u", "python"]}}}, r"run_with\[0\]: '-u' starts with '-'"),
        ({"tool": {"conda-execute": {"run_with": 3}}}, "got an integer"),
    ]
    for data, message in cases:
        with raises(message, line=3):
            fields(data)


def test_end_to_end():
    text = """#!/usr/bin/env python
# /// script
# requires-python = ">=3.9,<3.13"
# dependencies = ["rich>=13"]
# [tool.conda]
# channels = ["conda-forge"]
# dependencies = ["numpy >=1.24"]
# ///
print(1)
"""
    assert pep723_metadata(numbered(text), "s.py") == (
        ("python >=3.9,<3.13", "numpy >=1.24", "pip"), ("conda-forge",), ("rich>=13",), ()
    )
    assert pep723_metadata(numbered("print(1)\n"), "s.py") is None
    with raises("unknown key 'channel'", line=2):
        pep723_metadata(numbered("\n# /// script\n# [tool.conda]\n# channel = []\n# ///\n"), "s.py")

# The hand matchers of the warm path, each against the regex it stands for ##################

# Characters near every edge of the patterns: names, operators, separators, unicode spaces,
# letters and digits that are not ASCII.
MATCHER_CHARS = "aAzZ09_.-:=<>!~*[] \t\n\r\x0b\x1c\u2028\u3000#/'\"{},rcb\u0661\u00e9"


def _regex_group(pattern, text, group=1, how="fullmatch"):
    found = getattr(re.compile(pattern), how)(text)
    return found.group(group) if found else None


if given is not None:

    @settings(max_examples=3000, deadline=None)
    @given(st.text(MATCHER_CHARS, max_size=12), st.sampled_from(["", "# /// ", "# ///", "#  /// "]))
    def test_pep723_opener_is_its_regex(rest, head):
        line = head + rest
        assert m.pep723_opener(line) == (_regex_group(m.PEP723_OPENER_RE, line) or ""), line

    @settings(max_examples=3000, deadline=None)
    @given(st.text(MATCHER_CHARS, max_size=6), st.sampled_from(["", *m.PEP440_OPERATORS, " ", "="]),
           st.text("0123456789.*arcb \u0661", max_size=8))
    def test_pep440_matchers_are_their_regexes(space, op, version):
        clause = space + op + version
        found = re.fullmatch(m.PEP440_CLAUSE_RE, clause)
        assert m.pep440_clause(clause) == (found.groups() if found else ("", "")), clause
        for text in (version, version.strip(), clause):
            assert m.is_pep440_version(text) == bool(re.fullmatch(m.PEP440_VERSION_RE, text)), text
            assert m.is_pep440_prefix(text) == bool(re.fullmatch(m.PEP440_PREFIX_RE, text)), text

    @settings(max_examples=5000, deadline=None)
    @given(st.text(MATCHER_CHARS, max_size=14), st.sampled_from(["", "conda-forge::", "a b::", "::"]))
    def test_spec_name_and_match_spec_are_their_regexes(rest, head):
        spec = head + rest
        assert m.spec_name(spec) == (_regex_group(m.CONDA_SPEC_NAME_RE, spec, how="match") or ""), spec
        assert m.is_match_spec(spec) == bool(re.fullmatch(m.MATCH_SPEC_RE, spec)), spec

    @settings(max_examples=3000, deadline=None)
    @given(st.text(MATCHER_CHARS, max_size=20), st.integers(0, 22))
    def test_toml_token_is_its_regex(text, pos):
        found = re.compile(m.TOML_SCAN_RE).search(text, pos)
        want = (found.group(), found.end()) if found else ("", pos)
        assert m._toml_token(text, pos) == want, (text, pos)

    @settings(max_examples=3000, deadline=None)
    @given(st.text(MATCHER_CHARS + "+|^,", max_size=10), st.sampled_from(["version", "build"]))
    def test_dependency_matchers_are_their_regexes(text, key):
        assert m.dependency_field_ok(key, text) == bool(
            re.fullmatch(m.DEPENDENCY_FIELD_RES[key], text)), (key, text)
        assert (m._name_end(text, 0) == len(text) > 0) == bool(
            re.fullmatch(m.DEPENDENCY_NAME_RE, text)), text
        assignment = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=").match(text)
        assert m.is_assignment(text) == bool(assignment), text

    @settings(max_examples=3000, deadline=None)
    @given(st.text(MATCHER_CHARS, max_size=10), st.sampled_from(["", "conda ", "mamba ", "2.", "10.3"]))
    def test_version_line_matchers_are_their_regexes(rest, head):
        line = head + rest
        assert m.is_conda_version_line(line) == bool(re.match(r"(conda|mamba) [0-9]", line)), line
        assert m.is_bare_version(line) == bool(re.match(r"[0-9]+(\.[0-9]+)+\S*$", line)), line

else:

    def test_version_line_matchers_are_their_regexes():
        require(False, "hypothesis")

    def test_dependency_matchers_are_their_regexes():
        require(False, "hypothesis")

    def test_pep723_opener_is_its_regex():
        require(False, "hypothesis")

    def test_pep440_matchers_are_their_regexes():
        require(False, "hypothesis")

    def test_spec_name_and_match_spec_are_their_regexes():
        require(False, "hypothesis")

    def test_toml_token_is_its_regex():
        require(False, "hypothesis")


if __name__ == "__main__":  # plain run, for a Python without pytest
    tests = [(name, f) for name, f in sorted(globals().items()) if name.startswith("test_") and callable(f)]
    skipped = []
    for name, test in tests:
        try:
            test()
        except Missing as missing:
            skipped.append(f"{name} ({missing})")
            continue
        print("ok", name)
    print(f"{len(tests) - len(skipped)} tests passed on Python {sys.version.split()[0]}",
          *(["skipped, missing a prerequisite:", *skipped] if skipped else []), sep="\n")
