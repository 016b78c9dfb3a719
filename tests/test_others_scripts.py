"""Scripts as others write them (issue 21, items 3 and 4), run through the built pyz on every
back end: conda-script in the form `pixi exec` implements, beside the documented one, and PEP 723
blocks with top-level keys the specification does not define (uv ignores them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

DEADLINE = 120
PRINT = ("import subprocess, sys, mylib\n"
         "tool = subprocess.run(['tool'], capture_output=True, text=True).stdout.split()\n"
         "print('ok', mylib.__version__, tool[-1:], sys.argv[1:])\n")


@pytest.fixture
def ce(backend, isolated_env, tmp_path, pyz):
    env = backend.env_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")

    def run(*args, input=None):
        return subprocess.run([sys.executable, pyz, *args], capture_output=True, text=True,
                              env=env, timeout=DEADLINE, input=input)
    return run


def pixi_block(url, entry="", extra=""):
    return ("#!/usr/bin/env python3\n"
            "# /// conda-script\n"
            "# [dependencies]\n"
            "# python = \"*\"\n"
            "# mylib = \">=1\"\n"
            "# [dependencies.target.linux]\n"
            "# tool = \"1.*\"\n"
            "# [dependencies.target.win]\n"
            "# nosuchpkg = \"*\"\n"
            "# [script]\n"
            f"# channels = [\"{url}\"]\n"
            + (f"# entrypoint = \"{entry}\"\n" if entry else "")
            + "# [script.target.win]\n"
            "# entrypoint = \"python.exe\"\n"
            + extra
            + "# /// end-conda-script\n" + PRINT)


@pytest.mark.parametrize("entry, command", [
    ("python", ["python", "{s}", "a b"]),
    ("python -u ${SCRIPT} --flag", ["python", "-u", "{s}", "--flag", "a b"]),
    ("", ["/usr/bin/env", "python3", "{s}", "a b"]),
])
def test_pixi_exec_form_runs_with_the_specs_and_command_pixi_would_use(
        ce, channel, tmp_path, entry, command):
    script = tmp_path / "px.py"
    script.write_text(pixi_block(channel.url, entry))
    dry = ce("--dry-run", str(script), "a b")
    assert dry.returncode == 0, dry.stderr
    shown = json.loads(dry.stdout)
    assert shown["format"] == "conda-script (pixi exec)"
    assert shown["env"] == ["python", "mylib >=1", "tool 1.*"]  # linux only: not nosuchpkg
    assert shown["channels"] == [channel.url]
    path = str(script) if entry == "" else os.path.abspath(script)
    assert shown["command"] == [w.format(s=path) for w in command]
    proc = ce(str(script), "a b")
    extra = ["--flag"] if "--flag" in entry else []
    assert (proc.returncode, proc.stdout) == (0, f"ok 1.0 ['1.0'] {[*extra, 'a b']}\n"), \
        proc.stderr


def test_documented_form_still_runs(ce, channel, tmp_path):
    script = tmp_path / "doc.py"
    script.write_text("# /// conda-script\n"
                      f"# channels = [\"{channel.url}\"]\n"
                      "# entrypoint = \"python ${SCRIPT}\"\n"
                      "# [dependencies]\n# python = \"*\"\n# mylib = \">=1\"\n"
                      "# tool = { version = \"2.0\" }\n# /// end-conda-script\n" + PRINT)
    dry = json.loads(ce("--dry-run", str(script)).stdout)
    assert (dry["format"], dry["env"]) == ("conda-script", ["python", "mylib >=1", "tool 2.0"])
    proc = ce(str(script), "x")
    assert (proc.returncode, proc.stdout) == (0, "ok 1.0 ['2.0'] ['x']\n"), proc.stderr


@pytest.mark.parametrize("text, line, needle", [
    ("# /// conda-script\n# channels = [\"c\"]\n# [script]\n# channels = [\"c\"]\n"
     "# /// end-conda-script\n", 2, "mixes the two conda-script forms"),
    ("# /// conda-script\n# entrypoint = \"python\"\n# [script]\n# channels = [\"c\"]\n"
     "# /// end-conda-script\n", 2, "mixes the two conda-script forms"),
    ("# /// conda-script\n# [script]\n# entrypoint = \"python\"\n# /// end-conda-script\n",
     2, "[script]: no 'channels'"),
    ("# /// conda-script\n# [script]\n# channels = [\"c\"]\n# [dependencies]\n"
     "# numpy = { version = \"1\" }\n# /// end-conda-script\n", 5, "takes a string"),
    ("# /// conda-script\n# [script]\n# channels = [\"c\"]\n# [dependencies.target.plan9]\n"
     "# numpy = \"*\"\n# /// end-conda-script\n", 4, "not a platform selector"),
])
def test_pixi_form_errors_are_one_line_at_their_line(ce, tmp_path, text, line, needle):
    script = tmp_path / "bad.py"
    script.write_text(text)
    proc = ce("--dry-run", str(script))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f"{script}:{line}: ") and needle in proc.stderr, proc.stderr


def test_add_and_remove_edit_the_pixi_form_in_place(ce, channel, tmp_path):
    script = tmp_path / "px.py"
    before = pixi_block(channel.url, "python").replace("\n", "\r\n")
    script.write_bytes(before.encode())
    for args in (["--add", "tool 2.0", "mylib=1"], ["--add", "pip >=1,<99"]):
        proc = ce(*args, str(script))
        assert proc.returncode == 0, proc.stderr
    after = script.read_bytes().decode()
    want = before.replace('# mylib = ">=1"\r\n', '# mylib = "1.*"\r\n').replace(
        '# [dependencies.target.linux]', '# tool = "==2.0"\r\n# pip = ">=1,<99"\r\n'
        '# [dependencies.target.linux]')
    assert after == want
    dry = json.loads(ce("--dry-run", str(script)).stdout)
    assert dry["env"] == ["python", "mylib 1.*", "tool 1.*", "pip >=1,<99"]  # the target wins
    assert ce("--remove", "pip", "tool", str(script)).returncode == 0
    assert script.read_bytes().decode() == want.replace(
        '# tool = "==2.0"\r\n# pip = ">=1,<99"\r\n', "")
    refused = ce("--add", "tool 1.0 0", str(script))
    assert refused.returncode == 2 and "pixi exec's conda-script form" in refused.stderr
    assert script.read_bytes().decode() == want.replace(
        '# tool = "==2.0"\r\n# pip = ">=1,<99"\r\n', "")


def test_init_conda_script_keeps_writing_the_documented_form(ce, tmp_path):
    script = tmp_path / "new.py"
    assert ce("--init", "--format", "conda-script", str(script), "python").returncode == 0
    text = script.read_text()
    assert "[script]" not in text and "# entrypoint = " in text and "# channels = " in text


def test_pep723_keys_the_spec_does_not_define_are_ignored_as_uv_does(ce, channel, tmp_path):
    script = tmp_path / "p.py"
    script.write_text("# /// script\n# requires-python = \">=3.8\"\n"
                      "# authors = [\"Ada <ada@example.org>\"]\n# main = \"run\"\n"
                      f"# [tool.conda]\n# channels = [\"{channel.url}\"]\n"
                      "# dependencies = [\"mylib\", \"tool\"]\n# ///\n" + PRINT)
    proc = ce(str(script), "z")
    assert (proc.returncode, proc.stdout) == (0, "ok 1.0 ['2.0'] ['z']\n"), proc.stderr
    verbose = ce("-v", str(script))
    assert "ignored the script block's keys 'authors', 'main'" in verbose.stderr
    assert "authors" not in proc.stderr
    typo = tmp_path / "t.py"  # what PEP 723 defines stays strictly checked
    typo.write_text("# /// script\n# dependencies = \"rich\"\n# ///\n")
    bad = ce("--dry-run", str(typo))
    assert bad.returncode == 2 and "dependencies: expected an array" in bad.stderr


BAD_BLOCKS = {  # a script whose spec conda's parser refuses -> the line that holds it
    "conda-execute": ("# conda execute\n# env:\n#  - python\n#  - numpy >=>1\n", 4),
    "pep723": ("# /// script\n# [tool.conda]\n# dependencies = [\n#   \"python\",\n"
               "#   \"numpy >=1,,<2\",\n# ]\n# ///\n", 5),
    "conda-script": ("# /// conda-script\n# channels = [\"c\"]\n# entrypoint = \"python\"\n"
                     "# [dependencies]\n# python = \"*\"\n# numpy = \"==\"\n"
                     "# /// end-conda-script\n", 6),
    "pixi": ("# /// conda-script\n# [dependencies]\n# python = \"*\"\n# numpy = \">=>1\"\n"
             "# [script]\n# channels = [\"c\"]\n# /// end-conda-script\n", 4),
}


@pytest.mark.parametrize("how", ["pyz", "console"])
@pytest.mark.parametrize("form", sorted(BAD_BLOCKS))
def test_malformed_specs_stop_before_any_conda_call(backend, isolated_env, pyz, tmp_path,
                                                   form, how):
    env = backend.env_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    argv0 = [sys.executable, pyz] if how == "pyz" else [
        os.path.join(os.path.dirname(sys.executable), "conda-execute")]
    text, line = BAD_BLOCKS[form]
    script = tmp_path / "bad.py"
    script.write_text(text)
    for extra in ([], ["--dry-run"], ["--lock"]):
        proc = subprocess.run([*argv0, *extra, str(script)], capture_output=True, text=True,
                              env=env, timeout=DEADLINE)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith(f"{script}:{line}: ") and len(
            proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert backend.root.calls() == [] and not (tmp_path / "envs").exists()
    assert script.read_text() == text
    good = tmp_path / "good.py"
    good.write_text("# conda execute\n# env: [python]\n")
    for args in (["-s", "numpy ==", "--", "true"], ["--with", "numpy=1=2=3", str(good)]):
        proc = subprocess.run([*argv0, *args], capture_output=True, text=True, env=env,
                              timeout=DEADLINE)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert proc.stderr.startswith("conda-execute: error: " + args[0]), proc.stderr
    for args in (["--add", "bad spec >=>", str(good)], ["--init", str(tmp_path / "n.py"),
                                                       "numpy[version="]):
        proc = subprocess.run([*argv0, *args], capture_output=True, text=True, env=env,
                              timeout=DEADLINE)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert good.read_text() == "# conda execute\n# env: [python]\n"
    assert not (tmp_path / "n.py").exists() and backend.root.calls() == []
