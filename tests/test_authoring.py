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


# --init, --add, --remove ######################################################


def read_back(path):
    """The script's metadata as the real reader sees it (--dry-run: no env, no conda)."""
    import conda_execute

    return conda_execute.load_spec(conda_execute.Source(str(path), str(path)))


def ce_main(*argv):
    """The command line in this process (fast, for many generated cases): (code, stderr)."""
    import contextlib
    import io

    import conda_execute

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = conda_execute.main(list(argv))
    return code, err.getvalue()


def test_init_writes_a_runnable_script_with_a_shebang_for_this_install(ce, pyz, tmp_path):
    script = tmp_path / "new.py"
    proc = ce.run("--init", str(script), "python", "mylib >=1")
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    assert text == (f"#!/usr/bin/env -S python3 {pyz}\n# conda execute\n# env:\n"
                    "#   - python\n#   - mylib >=1\n")
    assert script.stat().st_mode & 0o777 == 0o755 & ~current_umask()
    assert read_back(script).env == ("python", "mylib >=1")
    script.write_text(text + "import mylib; print(mylib.__version__)\n")
    run = subprocess.run([str(script)], capture_output=True, text=True, env=ce.env, timeout=120)
    assert run.returncode == 0 and run.stdout == "1.0\n", run.stderr
    again = ce.run("--init", str(script))
    assert "already has a metadata block" in one_error_line(again)
    module = subprocess.run([sys.executable, "-m", "conda_execute", "--init", str(tmp_path / "m.sh")],
                            capture_output=True, text=True, env={**ce.env, "PYTHONPATH": ROOT})
    assert module.returncode == 0, module.stderr
    assert (tmp_path / "m.sh").read_text() == ("#!/usr/bin/env conda-execute\n# conda execute\n"
                                               "# env:\n#   - bash\n")


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_init_pep723_and_into_an_existing_file(tmp_path):
    new = tmp_path / "p.py"
    assert ce_main("--init", "--format", "pep723", "--channel", "conda-forge", str(new), "numpy")[0] == 0
    body = new.read_text().split("\n", 1)[1]
    assert body == ('# /// script\n# dependencies = []\n# [tool.conda]\n# dependencies = [\n'
                    '#     "numpy",\n# ]\n# channels = [\n#     "conda-forge",\n# ]\n# ///\n')
    spec = read_back(new)
    assert spec.env == ("python", "numpy") and spec.channels == ("conda-forge",)
    pypi = tmp_path / "q.py"
    assert ce_main("--init", "--format", "pep723", "--pypi", str(pypi), "requests<3")[0] == 0
    assert read_back(pypi).pip == ("requests<3",)
    old = tmp_path / "old.py"
    old.write_bytes(b"#!/usr/bin/python3\r\n# -*- coding: utf-8 -*-\r\n# a comment\r\nprint(1)\r\n")
    old.chmod(0o640)
    assert ce_main("--init", str(old), "python")[0] == 0
    assert old.read_bytes() == (b"#!/usr/bin/python3\r\n# -*- coding: utf-8 -*-\r\n# conda execute\r\n"
                                b"# env:\r\n#   - python\r\n\r\n# a comment\r\nprint(1)\r\n")
    assert old.stat().st_mode & 0o777 == 0o640
    assert read_back(old).env == ("python",)


OURS = """\
#!/usr/bin/env conda-execute
# a script  # with comments
# conda execute
# env:
#  - python >=3.8   # the interpreter
#  - 'numpy'
#   # a note inside
#  - "scipy 1.*"
# channels: [conda-forge]
import sys  # code
"""

FLOW = "# conda execute\n# env: [python, 'numpy' , \"scipy 1.*\"]  # three\n# run_with: [python, -u]\nx = 1\n"

PEP = """\
#!/usr/bin/env conda-execute
# /// script
# requires-python = ">=3.9"
# dependencies = [
#   "requests<3",   # http
#   'rich',
# ]
# [tool.conda]
# dependencies = ['numpy']
# [tool.conda-execute]
# run_with = ["python", "-u"]
# ///
print("hi")
"""

CS = """\
#!/usr/bin/env conda-execute
# /// conda-script
# channels = ["conda-forge"]  # where
# entrypoint = { unix = "python ${SCRIPT}",
#   win = "python ${SCRIPT}", }
#
# [dependencies]
#   python = ">=3.10"  # the interpreter
#   "numpy" = { version = "1.*", channel = "conda-forge" }
#   scipy = '*'
#
# [tool.pixi]
# x = 1
# /// end-conda-script
print("hi")
"""


@pytest.mark.parametrize("text, what, ops, want", [
    (OURS, "env", [("--add", "mylib"), ("--add", "numpy >=1.26"), ("--remove", "scipy")],
     ["python >=3.8", "numpy >=1.26", "mylib"]),
    (FLOW, "env", [("--add", "mylib"), ("--remove", "python"), ("--add", "tool 1.*")],
     ["numpy", "scipy 1.*", "mylib", "tool 1.*"]),
    (FLOW, "env", [("--remove", "scipy"), ("--remove", "numpy")], ["python"]),
    (PEP, "conda", [("--add", "mylib"), ("--add", "numpy 2.*"), ("--remove", "mylib")],
     ["numpy 2.*"]),
    (PEP, "pip", [("--add --pypi", "httpx>=0.27"), ("--remove --pypi", "Requests"),
                  ("--add --pypi", "rich[jupyter]")], ["rich[jupyter]", "httpx>=0.27"]),
    ("# /// script\n# requires-python = '>=3.9'\n# ///\nx\n", "conda", [("--add", "mylib")],
     ["mylib"]),
    ("# /// script\n# [tool.conda]\n# channels = ['x']\n# ///\n", "conda",
     [("--add", "mylib"), ("--add", "tool")], ["mylib", "tool"]),
    ("# /// script\n# [tool.conda]\n# channels = ['x']\n# ///\n", "pip",
     [("--add --pypi", "six")], ["six"]),
    (CS, "env", [("--add", "mylib"), ("--add", "numpy>=2"), ("--remove", "scipy"),
                 ("--add", "c::tool 1.* b_0"), ("--add", "python 3.12.*")],
     ["python 3.12.*", "numpy >=2", "mylib", "c::tool 1.* b_0"]),
    ("// /// conda-script\n// channels = ['x']\n// entrypoint = 'true'\n// /// end-conda-script\n",
     "env", [("--add", "mylib"), ("--add", "tool"), ("--remove", "mylib")], ["tool"]),
    ("-- /// conda-script\n-- channels = ['x']\n-- entrypoint = 'true'\n-- [dependencies]\n"
     "-- /// end-conda-script\n", "env", [("--add", "mylib 1"), ("--remove", "mylib")], []),
])
@pytest.mark.parametrize("crlf", [False, True])
def test_add_remove_edit_only_the_list(tmp_path, text, what, ops, want, crlf):
    path = tmp_path / "s.py"
    data = text.replace("\n", "\r\n") if crlf else text
    path.write_bytes(data.encode())
    path.chmod(0o751)
    for op, item in ops:
        code, err = ce_main(*op.split(), item, str(path))
        assert code == 0, err
    spec = read_back(path)
    if what == "env":
        assert list(spec.env) == want
    elif what == "pip":
        assert list(spec.pip) == want
    else:
        assert [s for s in spec.env if s.split()[0] not in ("python", "pip")] == want
    new = path.read_bytes().decode()
    assert ("\r\n" in new) == crlf and "\r\n" not in new.replace("\r\n", "") if crlf else "\r" not in new
    old_lines, new_lines = data.split("\n"), new.split("\n")
    untouched = [ln for ln in old_lines if not any(n in ln for n in ("numpy", "scipy", "python",
                 "mylib", "requests", "rich", "dependencies", "tool", "env", "]", "["))]
    assert all(ln in new_lines for ln in untouched)
    assert path.stat().st_mode & 0o777 == 0o751


@pytest.mark.parametrize("text, argv, needle, code", [
    (OURS, ["--add", "--", "-x"], "--add '-x': starts with '-'", 2),
    (CS, ["--add", "x[version='1']"], "--add \"x[version='1']\": cannot be written in a "
     "conda-script block", 2),
    (CS, ["--add", "x=1=b"], "--add 'x=1=b': cannot be written in a conda-script block", 2),
    (CS, ["--remove", "nosuch"], "no 'nosuch' to remove in dependencies", 2),
    (CS, ["--add", "--pypi", "six"], "--pypi needs a PEP 723 block", 2),
    (CS.replace('"numpy" = { version = "1.*", channel', '"numpy" = {\n#   version = "1.*", channel'),
     ["--add", "numpy"], "s.py:9: cannot edit [dependencies]: this entry is not on one line", 2),
    (OURS, ["--add", ">=1"], "not a conda match spec", 2),
    (OURS, ["--add", "--pypi", "six"], "--pypi needs a PEP 723 block", 2),
    (OURS, ["--remove", "nosuch"], "no 'nosuch' to remove in env", 2),
    ("# conda execute\n# env: [numpy, scipy]\n", ["--remove", "numpy"], "", 2),
    ("# conda execute\n# env: [python\n", ["--add", "numpy"], "s.py:2: unclosed '['", 2),
    ("# conda execute\n# env: [python]\n# colour: red\n", ["--add", "numpy"],
     "s.py:3: unknown key 'colour'", 2),
    ("print(1)\n", ["--add", "numpy"], "no metadata block to edit (make one with --init)", 2),
    (PEP, ["--add", "--pypi", "not a req!"], "not a PyPI requirement", 2),
    (OURS, ["--add", "--format", "pep723", "numpy"], "--format does not go with --add", 2),
    (OURS, ["--init", "--format", "yaml"], "unknown --format 'yaml'", 2),
    (OURS, ["--add"], "--add needs at least one SPEC and the script", 2),
    (OURS, ["--add", "--list", "numpy"], "--list does not go with --add", 2),
    (OURS, ["--init", "--add", "numpy"], "use one of --init, --add, --remove at a time", 2),
])
def test_bad_edits_change_nothing(ce, tmp_path, text, argv, needle, code):
    path = tmp_path / "s.py"
    path.write_text(text)
    if argv[:2] == ["--remove", "numpy"]:  # the env's last spec: the block needs one
        assert ce_main("--remove", "numpy", str(path))[0] == 0
        argv, needle = ["--remove", "scipy"], "env would be empty"
        text = path.read_text()
    line = one_error_line(ce.run(*argv, str(path)), code)
    assert needle in line
    assert path.read_text() == text
    assert [n for n in os.listdir(tmp_path) if n.startswith("s.py")] == ["s.py"]


def test_read_only_unwritable_dir_and_other_files(ce, tmp_path):
    path = tmp_path / "s.py"
    path.write_text(OURS)
    path.chmod(0o444)
    assert "is read-only (mode 0444)" in one_error_line(ce.run("--add", "mylib", str(path)), 73)
    path.chmod(0o644)
    sub = tmp_path / "ro"
    sub.mkdir()
    (sub / "s.py").write_text(OURS)
    sub.chmod(0o555)
    try:
        if os.geteuid() != 0:  # root writes anywhere
            assert "cannot write" in one_error_line(ce.run("--add", "mylib", str(sub / "s.py")), 73)
            assert (sub / "s.py").read_text() == OURS
    finally:
        sub.chmod(0o755)
    assert "not a regular file" in one_error_line(ce.run("--add", "mylib", str(tmp_path)))
    assert "No such file" in one_error_line(ce.run("--add", "mylib", str(tmp_path / "nope.py")))
    (tmp_path / "d.py").mkdir()
    assert "not a regular file" in one_error_line(ce.run("--init", str(tmp_path / "d.py")))
    assert "cannot tell the language" in one_error_line(ce.run("--init", str(tmp_path / "x.txt")))
    assert "pep723 is for Python" in one_error_line(
        ce.run("--init", "--format", "pep723", str(tmp_path / "x.sh")))
    assert not [n for n in os.listdir(tmp_path) if n.startswith("x.")]
    assert [n for n in os.listdir(tmp_path) if n.startswith("s.py")] == ["s.py"]


def test_symlinked_script_edits_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.py"
    real.write_text(OURS)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert ce_main("--add", "mylib", str(link))[0] == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert read_back(real).env[-1] == "mylib"


def test_stale_lock_is_reported(tmp_path):
    path = tmp_path / "s.py"
    path.write_text(OURS)
    (tmp_path / "s.py.conda-lock").write_text(
        "# conda-execute-lock: 1\n# conda-execute-metadata: 00\n# platform: linux-64\n@EXPLICIT\n"
        "https://x/a.conda#0\n")
    code, err = ce_main("--add", "mylib", str(path))
    assert code == 0 and "s.py.conda-lock was made from the old metadata" in err


def test_concurrent_adds_lose_nothing(ce, tmp_path):
    path = tmp_path / "s.py"
    path.write_text(OURS)
    names = [f"pkg{i}" for i in range(12)]
    procs = [subprocess.Popen([*ce.argv0, "-q", "--add", name, str(path)], env=ce.env,
                              stderr=subprocess.PIPE, text=True) for name in names]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    env = read_back(path).env
    assert sorted(env[3:]) == sorted(names) and env[:3] == ("python >=3.8", "numpy", "scipy 1.*")
    assert [n for n in os.listdir(tmp_path) if n.startswith("s.py")] == ["s.py"]


# Property: any layout, any edits -> the reader sees the model's list; the rest is unchanged.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NAMES = ["alpha", "beta", "gamma-x", "d_e", "numpy"]
VERSIONS = ["", " >=1.2", "=1.0", " 2.*", ">=1,<3", "[version='>=1']"]
QUOTES = ["plain", "single", "double"]
items_st = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VERSIONS),
                              st.sampled_from(QUOTES)), min_size=1, max_size=5,
                    unique_by=lambda t: t[0])
ops_st = st.lists(st.tuples(st.booleans(), st.sampled_from(NAMES), st.sampled_from(VERSIONS)),
                  min_size=1, max_size=4)
around_st = st.lists(st.sampled_from(["x = 1", "# note", "", "  # indented", "y = '#'"]),
                     max_size=3)


def _quote(text, style, toml):
    if style == "single" and "'" not in text:
        return f"'{text}'"
    if style == "double" or toml:
        return '"' + text + '"'
    return text if "," not in text and "[" not in text else f'"{text}"'


def _model(items, ops, nonempty):
    new = list(items)
    for add, name, version in ops:
        hit = [k for k, v in enumerate(new) if v.split(" ")[0].split("=")[0].split(">")[0]
               .split("[")[0] == name]
        if add:
            if hit:
                new[hit[0]] = name + version
            else:
                new.append(name + version)
        elif not hit:
            return None  # removing a missing name: an error
        else:
            new = [v for k, v in enumerate(new) if k not in hit]
    return None if nonempty and not new else new


def _block(fmt, items, flow, trailing):
    """A block of format FMT holding ITEMS (name, version, quoting) in a layout."""
    quoted = [_quote(n + v, q, fmt != "ours") for n, v, q in items]
    comment = "  # c" if trailing else ""
    if fmt == "conda-script":  # name = "version", or name = { version = "..." } when flow
        values = [_quote(v.strip() or "*", q, True) for _, v, q in items]
        entries = [f"# {n} = {{ version = {v} }}" if flow else f"# {n} = {v}{comment}"
                   for (n, _, _), v in zip(items, values)]
        return ["# /// conda-script", "# channels = ['x']", "# entrypoint = 'true'",
                "# [dependencies]", *entries, "# /// end-conda-script"]
    if fmt == "pep723":
        if flow:
            arr = ["# dependencies = [" + ", ".join(quoted) + "]"]
        else:
            arr = ["# dependencies = ["] + [f"#   {q}{',' if trailing or k < len(quoted) - 1 else ''}"
                                           for k, q in enumerate(quoted)] + ["# ]"]
        return ["# /// script", "# [tool.conda]", *arr, "# ///"]
    if flow:
        return ["# conda execute", "# env: [" + ", ".join(quoted) + "]" + comment]
    return ["# conda execute", "# env:"] + [f"#  - {q}" + comment for q in quoted]


def _as_read(fmt, spec):
    """SPEC (name + version) as the reader gives it back for FMT."""
    if fmt != "conda-script":
        return " ".join(spec.split())
    name = spec.split(" ")[0].split("=")[0].split(">")[0]
    version = spec[len(name):].strip()
    return f"{name} {version}" if version else name


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(items=items_st, ops=ops_st, flow=st.booleans(),
       fmt=st.sampled_from(["ours", "pep723", "conda-script"]), before=around_st,
       after=around_st, crlf=st.booleans(), trailing=st.booleans())
def test_edits_read_back_as_modelled(tmp_path, items, ops, flow, fmt, before, after, crlf,
                                     trailing):
    if fmt == "conda-script":  # a [key=value] spec has no `name = "version"` spelling
        items = [(n, v, q) for n, v, q in items if "[" not in v] or [("alpha", "", "double")]
    specs = [n + v for n, v, _ in items]
    after = ["import x", *after]
    lines = [*before, *([""] if before else []), *_block(fmt, items, flow, trailing), "",
             *after, ""]
    nl = "\r\n" if crlf else "\n"
    path = tmp_path / f"s{abs(hash((tuple(specs), tuple(ops), flow, fmt)))}.py"
    path.write_bytes(nl.join(lines).encode())
    model = specs
    for add, name, version in ops:
        argv = ["--add", name + version] if add else ["--remove", name]
        before_edit = path.read_bytes()
        model_next = _model(model, [(add, name, version)], fmt == "ours")
        if fmt == "conda-script" and add and "[" in version:
            model_next = None
        code, err = ce_main("-q", *argv, str(path))
        if model_next is None:
            assert code == 2 and len(err.strip().splitlines()) == 1, err
            assert path.read_bytes() == before_edit
            continue
        assert code == 0, (err, path.read_text())
        model = model_next
    spec = read_back(path)
    got = [s for s in spec.env if s != "python"] if fmt == "pep723" else list(spec.env)
    assert got == [_as_read(fmt, s) for s in model]
    new = path.read_bytes().decode().split(nl)
    assert new[:len(before)] == before and new[-len(after) - 1:] == [*after, ""]


@pytest.mark.parametrize("name, prefix", [("s.js", "//"), ("s.lua", "--"), ("s.sh", "#"),
                                          ("s.hs", "--"), ("s.erl", "%")])
def test_round_trip_in_each_comment_syntax(tmp_path, name, prefix):
    path = tmp_path / name
    assert ce_main("--init", str(path), "tool 1.*")[0] == 0
    first = path.read_text().split("\n")
    assert f"{prefix} conda execute" in first and f"{prefix}   - tool 1.*" in first
    assert ce_main("--add", "mylib", "tool", str(path))[0] == 0
    assert ce_main("--remove", "mylib", str(path))[0] == 0
    assert read_back(path).env == ("tool",)
    assert [ln for ln in path.read_text().split("\n") if "tool" not in ln] == \
        [ln for ln in first if "tool" not in ln]


@pytest.mark.parametrize("name, prefix, runner", [("s.py", "#", "python"), ("s.js", "//", "node"),
                                                  ("s.lua", "--", "lua"), ("s.erl", "%", "escript")])
def test_conda_script_round_trip(tmp_path, name, prefix, runner):
    path = tmp_path / name
    assert ce_main("--init", "--format", "conda-script", str(path), "tool 1.*", "c::lib")[0] == 0
    first = path.read_text()
    block = (f"{prefix} /// conda-script\n{prefix} channels = [\"conda-forge\"]\n"
             f"{prefix} entrypoint = \"{runner} ${{SCRIPT}}\"\n{prefix} [dependencies]\n"
             f"{prefix} tool = \"1.*\"\n{prefix} lib = {{ version = \"*\", channel = \"c\" }}\n"
             f"{prefix} /// end-conda-script\n")
    assert first.endswith(block)
    spec = read_back(path)
    assert spec.env == ("tool 1.*", "c::lib") and spec.channels == ("conda-forge",)
    assert spec.entrypoint.text == f"{runner} ${{SCRIPT}}"
    assert ce_main("--add", "mylib >=2", "tool", "lib 2 b_1", str(path))[0] == 0
    assert read_back(path).env == ("tool", "lib 2 b_1", "mylib >=2")
    assert f'{prefix} lib = {{ version = "2", build = "b_1" }}\n' in path.read_text()
    assert ce_main("--remove", "mylib", "lib", str(path))[0] == 0
    assert read_back(path).env == ("tool",)
    assert [ln for ln in path.read_text().split("\n") if "tool" not in ln and "lib" not in ln] == \
        [ln for ln in first.split("\n") if "tool" not in ln and "lib" not in ln]


def test_conda_script_init_into_an_existing_file_and_defaults(tmp_path):
    old = tmp_path / "old.sh"
    old.write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    old.chmod(0o700)
    assert ce_main("--init", "--format", "conda-script", "--channel", "a", "--channel", "b",
                   str(old))[0] == 0
    assert old.read_bytes() == (b'#!/bin/sh\r\n# /// conda-script\r\n# channels = ["a", "b"]\r\n'
                                b'# entrypoint = "bash ${SCRIPT}"\r\n# [dependencies]\r\n'
                                b'# bash = "*"\r\n# /// end-conda-script\r\n\r\necho hi\r\n')
    assert old.stat().st_mode & 0o777 == 0o700
    assert read_back(old).env == ("bash",) and read_back(old).channels == ("a", "b")
    assert ce_main("--add", "jq", str(old))[0] == 0
    assert old.read_bytes().count(b"\r\n") == old.read_bytes().count(b"\n")
    code, err = ce_main("--init", "--format", "conda-script", str(tmp_path / "x.py"), "a[build=1]")
    assert code == 2 and "cannot be written in a conda-script block" in err
    code, err = ce_main("--init", "--pypi", "--format", "conda-script", str(tmp_path / "x.py"), "six")
    assert code == 2 and "--pypi goes with --format pep723" in err
    assert not (tmp_path / "x.py").exists()


@pytest.mark.parametrize("crlf", [False, True])
def test_conda_script_edits_keep_every_other_byte(tmp_path, crlf):
    path = tmp_path / "s.py"
    nl = "\r\n" if crlf else "\n"
    path.write_bytes(CS.replace("\n", nl).encode())
    path.chmod(0o710)
    for argv in (["--add", "numpy>=2", "mylib"], ["--remove", "scipy"], ["--add", "python"]):
        assert ce_main("-q", *argv, str(path))[0] == 0
    want = CS.replace('#   python = ">=3.10"', '#   python = "*"').replace(
        '"numpy" = { version = "1.*", channel = "conda-forge" }', '"numpy" = ">=2"').replace(
        "#   scipy = '*'", '#   mylib = "*"')
    assert path.read_bytes() == want.replace("\n", nl).encode()
    assert path.stat().st_mode & 0o777 == 0o710
    assert read_back(path).env == ("python", "numpy >=2", "mylib")
