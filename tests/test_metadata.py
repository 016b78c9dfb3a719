"""The '# conda execute' block: the YAML subset, validation, names, run_with defaults."""

from __future__ import annotations

import io

import pytest

import conda_execute as ce


def spec_of(text: str, filename: str = "s.py") -> ce.Spec:
    lines = ce.iter_lines(io.BytesIO(text.encode()), filename)
    return ce.read_spec(lines, filename, filename)


def error_of(text: str, filename: str = "s.py") -> ce.UsageError:
    with pytest.raises(ce.UsageError) as info:
        spec_of(text, filename)
    return info.value


ORIGINAL = """#!/usr/bin/env python
# conda execute
# env:
#  - python >=3
#  - numpy
# channels:
#  - conda-forge
# run_with: [python, -u]
import numpy
"""


def test_original_tool_example():
    spec = spec_of(ORIGINAL)
    assert spec.env == ("python >=3", "numpy")
    assert spec.channels == ("conda-forge",)
    assert spec.run_with == ("python", "-u")
    assert spec.line == 2


def test_name_matches_the_original_readme_without_channels():
    spec = spec_of("# conda execute\n# env:\n#  - python >=3\n#  - numpy\n")
    assert ce.env_name(spec) == "ea977067a8fbeb21a594"


def test_channels_are_part_of_the_identity_in_order():
    base = "# conda execute\n# env: [python >=3, numpy]\n"
    names = {ce.env_name(spec_of(base + extra)) for extra in
             ("", "# channels: [conda-forge]\n", "# channels: [defaults]\n",
              "# channels: [conda-forge, defaults]\n", "# channels: [defaults, conda-forge]\n")}
    assert len(names) == 5


def test_pip_requirements_are_part_of_the_identity_in_any_order():
    def name(deps):
        return ce.env_name(spec_of(f"# /// script\n# dependencies = {deps}\n# ///\n"))

    names = {name(d) for d in ("[]", '["rich"]', '["httpx"]', '["rich", "httpx"]')}
    assert len(names) == 4
    assert name('["rich", "httpx"]') == name('["httpx", "rich"]')


def test_spec_order_and_whitespace_do_not_change_the_name():
    a = spec_of("# conda execute\n# env: [numpy,   'python   >=3']\n")
    b = spec_of("# conda execute\n# env:\n#   - python >=3\n#       - numpy\n")
    assert ce.env_name(a) == ce.env_name(b) == "ea977067a8fbeb21a594"


@pytest.mark.parametrize("text", [
    "# conda execute:\n# env: [python]\n",
    "  # conda execute  \n  #   env:\n  #  - python\n",
    "#conda execute\n# env: [python]\n",
])
def test_header_variants(text):
    if text.startswith("#conda"):
        assert "no '# conda execute'" in error_of(text).message
    else:
        assert spec_of(text).env == ("python",)


def test_comments_inside_the_block_and_after_values():
    spec = spec_of("# conda execute\n#   # a note\n ## another\n# env:   # specs\n"
                   "#  - python  # the interpreter\n#  - 'a #b'\n# run_with: python -u  # x\n")
    assert spec.env == ("python", "a #b")
    assert spec.run_with == ("python", "-u")


def test_blank_line_ends_the_block():
    spec = spec_of("# conda execute\n# env: [python]\n\n# channels: [x]\n")
    assert spec.channels == ()


def test_block_may_follow_code_and_ends_at_code():
    spec = spec_of("import os\n# conda execute\n# env: [tool]\nx = 1\n# run_with: [y]\n")
    assert spec.env == ("tool",) and spec.run_with == ("python",)


def test_quoted_scalars_and_escapes():
    spec = spec_of("# conda execute\n# env: ['it''s', \"a\\u0062c\", \"q\\\"d\"]\n")
    assert spec.env == ("it's", "abc", 'q"d')


@pytest.mark.parametrize("text, line, words", [
    ("# conda execute\n# env: [python, \"numpy]\n", 2, "unclosed"),
    ("# conda execute\n# env: [python, 'numpy]\n", 2, "unclosed"),
    ("# conda execute\n# env: [python, numpy\n", 2, "unclosed '['"),
    ("# conda execute\n# env: [[python]]\n", 2, "nested"),
    ("# conda execute\n# env:\n#  - [a, b]\n", 3, "nested"),
    ("# conda execute\n# env:\n#  - - a\n", 3, "nested"),
    ("# conda execute\n# env: {a: b}\n", 2, "mapping"),
    ("# conda execute\n# env:\n#  - a: b\n", 3, "mapping"),
    ("# conda execute\n# env: [python]\n# env: [numpy]\n", 3, "duplicate"),
    ("# conda execute\n# env: [python]\n# chanels: [x]\n", 3, "unknown key"),
    ("# conda execute\n# env: []\n", 2, "empty"),
    ("# conda execute\n# env:\n", 2, "empty"),
    ("# conda execute\n# channels: [x]\n", 1, "no 'env:'"),
    ("# conda execute\n# env: python\n", 2, "must be a list"),
    ("# conda execute\n# env:\n#  - --override-channels\n", 3, "starts with '-'"),
    ("# conda execute\n# env: [python]\n# channels: [-c]\n", 3, "starts with '-'"),
    ("# conda execute\n# env: [python]\n# run_with: [-i]\n", 3, "starts with '-'"),
    ("# conda execute\n# env: [python]\n# run_with: []\n", 3, "empty"),
    ("# conda execute\n# env: [\"py\\u0000thon\"]\n", 2, "control character"),
    ("# conda execute\n# env: [\"a\\nb\"]\n", 2, "control character"),
    ("# conda execute\n# env: [a\x07b]\n", 2, "control character"),
    ("# conda execute\n# env: [\"a\\qb\"]\n", 2, "escape"),
    ("# conda execute\n#  - python\n", 2, "without a 'key:'"),
    ("# conda execute\n# just words\n", 2, "expected 'key: value'"),
    ("# conda execute\n# env: [python] trailing\n", 2, "unexpected text"),
    ("# conda execute\n# env:\n#  -\n", 3, "empty list item"),
    ("# conda execute\n# env: [python, *alias]\n", 2, "unsupported YAML"),
    ("# conda execute\n# env: [python]\n# run_with: \"\"\n", 3, "empty"),
])
def test_malformed_blocks_name_file_and_line(text, line, words):
    err = error_of(text)
    assert words in err.message
    assert (err.path, err.line) == ("s.py", line)
    assert str(err).startswith(f"s.py:{line}: " if line else "s.py: ")
    assert err.code == ce.EXIT_USAGE


def test_run_with_string_is_split_and_options_after_the_command_are_fine():
    spec = spec_of("# conda execute\n# env: [python]\n# run_with: python -X dev -u\n")
    assert spec.run_with == ("python", "-X", "dev", "-u")


@pytest.mark.parametrize("shebang, filename, expected", [
    ("#!/usr/bin/env python3", "s", ("/usr/bin/env", "python3")),
    ("#!/bin/bash -e", "s.py", ("/bin/bash", "-e")),
    ("#!/usr/bin/env conda-execute", "s.py", ("python",)),
    ("#!/usr/bin/env -S python3 /opt/conda-execute.pyz", "s.sh", ("bash",)),
    ("#!/opt/conda/bin/conda execute", "s.R", ("Rscript",)),
    ("", "s.pl", ("perl",)),
    ("", "s.rb", ("ruby",)),
    ("", "s.jl", ("julia",)),
    ("", "s.js", ("node",)),
])
def test_run_with_defaults(shebang, filename, expected):
    text = (shebang + "\n" if shebang else "") + "# conda execute\n# env: [python]\n"
    assert spec_of(text, filename).run_with == expected


def test_unknown_extension_without_run_with_asks_for_it():
    err = error_of("# conda execute\n# env: [python]\n", "script.xyz")
    assert "run_with" in err.message and err.line == 1


def test_block_line_cap():
    text = "# conda execute\n# env:\n" + "#  - p\n" * (ce.MAX_BLOCK_LINES + 5)
    assert "longer than" in error_of(text).message


def test_binary_and_bad_utf8_and_bom_and_crlf():
    assert "NUL" in error_of("# conda execute\n# env: [a\0]\n").message
    with pytest.raises(ce.UsageError) as info:
        ce.read_spec(ce.iter_lines(io.BytesIO(b"# conda execute\n# env: [\xff]\n"), "s.py"),
                     "s.py", "s.py")
    assert "UTF-8" in info.value.message and info.value.line == 2
    bom = b"\xef\xbb\xbf#!/usr/bin/env python\r\n# conda execute\r\n# env: [python]\r\n"
    spec = ce.read_spec(ce.iter_lines(io.BytesIO(bom), "s"), "s", "s")
    assert spec.env == ("python",) and spec.run_with == ("/usr/bin/env", "python")


def test_overlong_line_outside_the_block_is_skipped_not_read_whole():
    text = "x = '" + "a" * (3 * ce.MAX_LINE_BYTES) + "'\n# conda execute\n# env: [python]\n"
    assert spec_of(text).env == ("python",)


def test_json_string_matches_json_dumps():
    import json

    for s in ["plain", 'q"uote', "back\\slash", "tab\tnl\n", "\x00\x1f\x7f", "ünï", "\udcff"]:
        assert json.loads(ce._json_string(s)) == s


def test_both_formats_give_one_env_name_for_the_same_specs():
    # whitespace inside an item is collapsed by both (it was kept by PEP 723 only)
    block = '# conda execute\n# env: ["numpy  >=1.20", "python \t3.11.*"]\n# channels: [conda-forge]\n'
    pep723 = ('# /// script\n# [tool.conda]\n# dependencies = ["numpy  >=1.20", " python   3.11.* "]\n'
              '# channels = ["conda-forge"]\n# ///\n')
    yaml_spec, toml_spec = spec_of(block), spec_of(pep723)
    assert yaml_spec.env == toml_spec.env == ("numpy >=1.20", "python 3.11.*")
    assert ce.env_name(yaml_spec) == ce.env_name(toml_spec)


def test_conda_execute_block_after_another_pep723_block_has_the_same_length_limit():
    body = "".join(f"#  - pkg{i}\n" for i in range(1200))
    text = "# /// other\n# x = 1\n# ///\n# conda execute\n# env:\n" + body
    err = error_of(text)
    assert "longer than 1000 lines" in err.message
    assert (err.path, err.line) == ("s.py", 4 + ce.MAX_BLOCK_LINES + 1)
    assert str(err).startswith(f"s.py:{err.line}: ")
    # the same block without the other one before it: the same error at the same line
    plain = error_of("\n\n\n# conda execute\n# env:\n" + body)
    assert (plain.message, plain.line) == (err.message, err.line)
