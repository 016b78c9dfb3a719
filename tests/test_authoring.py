"""Authoring and ad-hoc runs (issue 15), as users meet them: the built pyz against stand-in conda.

Tool mode (-s SPEC -- CMD), --with, --list --json, --init, --add and --remove.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import conda_execute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CE:
    """conda-execute (the pyz) with stand-in conda on PATH and its own env dir."""

    def __init__(self, argv0, env, env_dir):
        self.argv0, self.env, self.env_dir = argv0, env, env_dir

    def run(self, *args, input=None, cwd=None):
        return subprocess.run([*self.argv0, *args], input=input, capture_output=True, text=True,
                              env=self.env, timeout=120, cwd=cwd)

    def envs(self):
        return sorted(n for n in os.listdir(self.env_dir) if len(n) == 20) \
            if os.path.isdir(self.env_dir) else []


@pytest.fixture
def ce(pyz, conda_root, isolated_env, tmp_path):
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")  # envs in its PLATFORM/
    return CE([sys.executable, pyz], env, str(tmp_path / "envs" / conda_execute.conda_platform()))


def one_error_line(proc, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr.strip()


# Tool mode ###################################################################


def test_tool_mode_runs_the_command_in_a_cached_env(ce, conda_root):
    first = ce.run("-s", "tool", "--", "tool", "a", "b")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "tool 2.0\n"
    again = ce.run("-q", "-s", "tool")  # the spec's name is the default command
    assert again.returncode == 0, again.stderr
    assert again.stdout == "tool 2.0\n" and again.stderr == ""
    assert len(conda_root.calls("create")) == 1 and len(ce.envs()) == 1
    pinned = ce.run("-q", "-s", "tool 1.0", "tool")  # other specs: another env
    assert pinned.stdout == "tool 1.0\n"
    assert len(conda_root.calls("create")) == 2 and len(ce.envs()) == 2
    listing = ce.run("--list")
    assert "tool 1.0" in listing.stdout and "<-s tool 1.0>" in listing.stdout


def test_tool_mode_exit_code_args_activation_and_channel(ce, conda_root, channel):
    proc = ce.run("-q", "-s", "python", "--channel", channel.url, "--", "python", "-c",
                  "import os, sys; print(os.environ['CONDA_PREFIX'] == sys.prefix, sys.argv[1:]);"
                  " sys.exit(7)", "x y")
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "True ['x y']\n"
    create = conda_root.calls("create")[0]["argv"]
    assert "--override-channels" in create and channel.url in create
    dry = json.loads(ce.run("--dry-run", "-s", "tool", "-s", "mylib", "--", "tool", "z").stdout)
    assert dry["env"] == ["tool", "mylib"] and dry["command"] == ["tool", "z"]
    assert dry["channels"] == []


@pytest.mark.parametrize("argv, needle", [
    (["-s", "-x", "--", "tool"], "-s '-x': starts with '-'"),
    (["-s", ">=1.0"], "not a conda match spec"),
    (["-s", ""], "-s '': empty spec"),
    (["-s", "tool", "--lock"], "--lock does not go with -s"),
    (["-s", "tool", "-c", "print(1)"], "-c does not go with -s"),
    (["--channel", "x", "s.py"], "--channel goes with -s"),
    (["--list", "-s", "tool"], "--spec does not go with --list"),
    (["-s"], "option --spec needs a value"),
])
def test_tool_mode_bad_input(ce, conda_root, argv, needle):
    line = one_error_line(ce.run(*argv))
    assert needle in line
    assert conda_root.calls("create") == [] and ce.envs() == []


def test_tool_mode_command_not_in_env_is_127(ce):
    proc = ce.run("-q", "-s", "tool", "--", "no-such-command-here")
    assert "no-such-command-here" in one_error_line(proc, 127)


# --with #######################################################################

SCRIPT = """\
# conda execute
# env: [python]
import importlib.util
print(importlib.util.find_spec("mylib") is not None)
"""


def test_with_adds_specs_for_one_run_in_its_own_env(ce, conda_root, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    plain = ce.run("-q", str(script))
    assert plain.stdout == "False\n", plain.stderr
    extra = ce.run("-q", "--with", "mylib", str(script))
    assert extra.stdout == "True\n", extra.stderr
    assert ce.run("-q", "--with", "mylib", str(script)).stdout == "True\n"
    assert ce.run("-q", str(script)).stdout == "False\n"
    assert len(conda_root.calls("create")) == 2 and len(ce.envs()) == 2
    dry = json.loads(ce.run("--dry-run", "--with", "mylib", "--with", "tool 1.0", str(script)).stdout)
    assert dry["env"] == ["python", "mylib", "tool 1.0"]
    assert ce.run("--dry-run", "--with", "python", str(script)).stdout.startswith('{"env": ["python"],')


def test_with_refuses_locks_and_bad_specs(ce, conda_root, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    for flag in ("--lock", "--locked"):
        assert "--with does not go with --lock" in one_error_line(
            ce.run(flag, "--with", "mylib", str(script)))
    assert "--with '-x'" in one_error_line(ce.run("--with", "-x", str(script)))
    assert "--with 'a\\x01'" in one_error_line(ce.run("--with", "a\x01", str(script)))
    assert conda_root.calls("create") == [] and script.read_text() == SCRIPT


# --list --json ################################################################

LIST_KEYS = {"name": str, "prefix": str, "complete": bool, "platform": str, "specs": list,
             "channels": list, "pip": list, "created": float, "last_used": float, "size": int,
             "last_script": str}


def test_list_json_one_object_per_env(ce, channel, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    assert ce.run("-q", str(script)).returncode == 0
    assert ce.run("-q", "-s", "tool 1.0", "--channel", channel.url).returncode == 0
    proc = ce.run("--list", "--json")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 2
    for rec in records:
        assert set(rec) == set(LIST_KEYS)
        for key, kind in LIST_KEYS.items():
            assert isinstance(rec[key], kind) or (kind is float and isinstance(rec[key], int)), key
        assert rec["complete"] and rec["size"] > 0 and rec["created"] <= rec["last_used"]
        assert rec["prefix"] == os.path.join(ce.env_dir, rec["name"])
    tool, plain = records  # most recently used first
    assert tool["specs"] == ["tool 1.0"] and tool["channels"] == [channel.url]
    assert tool["last_script"] == "<-s tool 1.0>"
    assert plain["specs"] == ["python"] and plain["channels"] == [] and plain["pip"] == []
    assert plain["last_script"] == str(script)
    assert ce.run("--list").stdout.count("\n") == 3  # the table: header and two rows


def test_list_json_empty_and_misplaced(ce, tmp_path):
    proc = ce.run("--list", "--json")
    assert proc.returncode == 0 and proc.stdout == ""
    assert "--json goes with --list" in one_error_line(ce.run("--json", str(tmp_path / "s.py")))
    assert "--json does not go with --gc" in one_error_line(ce.run("--gc", "--json"))
