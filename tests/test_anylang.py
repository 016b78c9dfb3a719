"""Scripts of any kind: the '# conda execute' block behind any comment prefix, and conda-script
blocks (pixi's format), run through the built pyz against the stand-in conda."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import conda_execute as ce

CI = os.environ.get("CI") == "true"


def need(program):
    """The path of PROGRAM; skipped if absent, except in CI (where it must be there)."""
    found = shutil.which(program)
    if not found and not CI:
        pytest.skip(f"{program} is not installed")
    assert found, f"{program} is required in CI"
    return found


@pytest.fixture
def run(pyz, conda_root, isolated_env, tmp_path):
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")

    def run(*args, **kw):
        return subprocess.run([sys.executable, pyz, *args], env=env, capture_output=True,
                              text=True, timeout=180, **kw)

    run.root, run.env_dir = conda_root, tmp_path / "envs"
    return run


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def spec_of(text, filename="s.py"):
    return ce.read_spec(ce.iter_lines(io.BytesIO(text.encode()), filename), filename, filename)


def error_of(text, filename="s.py"):
    with pytest.raises(ce.UsageError) as info:
        spec_of(text, filename)
    return info.value


# ------------------------------------------------------------ our block behind any prefix


@pytest.mark.parametrize("prefix", ["#", "//", "--", ";", ";;", "%", "!", "'", "%%", "#'"])
def test_any_comment_prefix(prefix):
    text = (f"first line\n  {prefix} conda execute:\n{prefix} env:\n{prefix}   - mylib >=1\n"
            f"{prefix}  channels: [local]  # a comment\n{prefix} # a comment line\n"
            f"{prefix} run_with: [tool, -x]\nafter = 1\n")
    spec = spec_of(text)
    assert (spec.env, spec.channels, spec.run_with, spec.line) == (
        ("mylib >=1",), ("local",), ("tool", "-x"), 2)


@pytest.mark.parametrize("text,line,message", [
    ("// conda execute\n// env: [mylib]\n# run_with: [x]\n", None, None),  # '#' ends a // block
    ("-- conda execute\n--- env: [mylib]\n", 2, "list item without a 'key:'"),
    ("// conda execute\n//env: [mylib]\n", None, None),
    ("REM conda execute\nREM env: [mylib]\n", 0, "no '# conda execute' metadata block"),
    ("//conda execute\n// env: [mylib]\n", 0, "no '# conda execute' metadata block"),
])
def test_prefix_edges(text, line, message):
    if message is None:
        spec = spec_of(text, "s.js")
        assert spec.env == ("mylib",) and spec.run_with == ("node",)
        return
    error = error_of(text)
    assert error.line == line and message in error.message


@pytest.mark.parametrize("filename,run_with", [
    ("a.js", ["node"]), ("a.cjs", ["node"]), ("a.ts", ["deno", "run"]), ("a.lua", ["lua"]),
    ("a.R", ["Rscript"]), ("a.jl", ["julia"]), ("a.pl", ["perl"]), ("a.rb", ["ruby"]),
    ("a.awk", ["awk", "-f"]), ("a.hs", ["runghc"]), ("a.el", ["emacs", "--script"]),
])
def test_default_run_with_by_extension(filename, run_with):
    assert list(spec_of("// conda execute\n// env: [mylib]\n", filename).run_with) == run_with


def test_javascript_with_a_slash_block(run, tmp_path):
    need("node")
    script = write(tmp_path / "hello.js", """
        #!/usr/bin/env conda-execute
        // conda execute
        // env: [mylib]
        const args = process.argv.slice(2);
        console.log("node ran with", JSON.stringify(args), process.env.CONDA_PREFIX !== undefined);
        process.exit(3);
    """)
    proc = run(script, "a b", "-x")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == 'node ran with ["a b","-x"] true\n'
    assert len(run.root.calls("create")) == 1
    assert run.root.calls("create")[0]["argv"][-1] == "mylib"
    again = run(script)
    assert again.returncode == 3 and len(run.root.calls("create")) == 1


def test_sql_with_a_dash_block(run, tmp_path):
    need("sqlite3")
    script = write(tmp_path / "query.sql", """
        -- conda execute
        -- env: [mylib]
        -- run_with: [sh, -c, 'sqlite3 -batch :memory: < "$0"']
        SELECT 6 * 7;
    """)
    proc = run(script)
    assert (proc.returncode, proc.stdout) == (0, "42\n"), proc.stderr
