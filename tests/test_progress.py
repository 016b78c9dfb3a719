"""A calm first run: what creating an environment prints, on a terminal (a pseudo-terminal from
the pty module) and not (pipes), through the built pyz with the stand-in conda and micromamba.

On a terminal: one status line redrawn in place with carriage returns, then one line
`created environment NAME (N packages, T s)`. Elsewhere: plain lines, no carriage return or
escape code. The package manager's own output is shown in full when it fails, and with -v.
stdout is always the script's alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
import threading

import pytest
from test_pep723_lock import make_wheel

SCRIPT = """
    # conda execute
    # env: [python, mylib]
    import mylib
    print("script output", mylib.__version__)
"""
BAD = """
    # conda execute
    # env: [python, nosuchpkg]
    print("never")
"""


def run_on_tty(argv, env, columns=100):
    """Run ARGV with stderr on a pseudo-terminal (stdout a pipe): (code, stdout, terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []

    def read_all():  # concurrently: a full terminal buffer would block the writer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_all)
    reader.start()
    out = proc.stdout.read()
    proc.wait(timeout=300)
    reader.join(timeout=60)
    os.close(master)
    return proc.returncode, out.decode(), b"".join(chunks).decode().replace("\r\n", "\n")


def screen(terminal):
    """The lines left on screen: each line as its last carriage return leaves it."""
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in terminal.split("\n")]
    return [line for line in lines if line]


def in_order(needle, haystack):
    """Whether every character of NEEDLE is in HAYSTACK, in the same order."""
    rest = iter(haystack)
    return all(c in rest for c in needle)


@pytest.fixture
def setup(pyz, conda_root, isolated_env, tmp_path):
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    os.makedirs(env["CONDA_EXECUTE_ENV_DIR"], mode=0o700)
    open(os.path.join(env["CONDA_EXECUTE_ENV_DIR"], ".gc-stamp"), "w").close()  # no GC

    def script(text=SCRIPT, name="s.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)

    def dry_run(path):
        return json.loads(subprocess.run([sys.executable, pyz, "--dry-run", path], env=env,
                                         capture_output=True, text=True).stdout)

    setup.pyz, setup.env, setup.script, setup.root = pyz, env, script, conda_root
    setup.name_of = lambda path: dry_run(path)["name"]
    setup.prefix_of = lambda path: dry_run(path)["prefix"]
    return setup


@pytest.mark.parametrize("manager", ["conda", "micromamba"])
def test_first_run_on_a_terminal_is_a_status_line_then_one_line(setup, manager):
    env = setup.env if manager == "conda" else \
        dict(setup.env, CONDA_EXECUTE_CONDA=str(setup.root.micromamba))
    script = setup.script()
    name = setup.name_of(script)
    code, out, terminal = run_on_tty([sys.executable, setup.pyz, script], env)
    assert code == 0, terminal
    assert out == "script output 1.0\n"  # stdout is the script's alone
    assert "\x1b" not in terminal
    left = screen(terminal)
    assert len(left) == 1, terminal
    assert left[0].startswith(f"conda-execute: created environment {name} (3 packages, ")
    assert left[0].endswith(" s)")
    # before it, one status line drawn (and redrawn) in place, never a new line
    draws = terminal.split("\n")[0].split("\r")
    status = [d for d in draws if d.strip()][:-1]
    assert status, terminal
    for drawn in status:
        assert drawn.startswith(f"conda-execute: creating environment {name} with {manager} ("), \
            terminal
        assert len(drawn.rstrip()) < 100  # fits the terminal: a redraw stays on its line
    print("FIGURE tty", manager, len(status), "draws; left on screen:", left)


def test_failed_create_on_a_terminal_shows_the_managers_whole_output(setup, tmp_path):
    script = setup.script(BAD, "bad.py")
    name = setup.name_of(script)
    code, out, terminal = run_on_tty([sys.executable, setup.pyz, script], setup.env)
    assert code == 70 and out == ""
    left = screen(terminal)
    assert left[-1].startswith(f"{script}:1: could not create environment {name}: conda create "
                               "exited with 1"), left
    # the whole of what conda printed, stdout and stderr, as it printed it
    alone = setup.root.run("create", "-p", str(tmp_path / "alone"), "--yes", "--", "python",
                           "nosuchpkg")
    assert alone.returncode == 1 and "nosuchpkg" in alone.stderr
    for stream in (alone.stdout, alone.stderr):  # both interleaved as they came: each whole
        assert stream.strip() and in_order(stream, terminal), (stream, terminal)
    assert "PackagesNotFoundError" in terminal


def test_verbose_on_a_terminal_shows_the_managers_whole_output_as_it_comes(setup, tmp_path):
    script = setup.script()
    code, out, terminal = run_on_tty([sys.executable, setup.pyz, "-v", script], setup.env)
    assert code == 0 and out == "script output 1.0\n"
    assert "\r" not in terminal  # no status line: the output itself is the progress
    alone = setup.root.run("create", "-p", str(tmp_path / "alone"), "--yes", "--", "python",
                           "mylib")
    assert alone.returncode == 0
    prefix = setup.prefix_of(script)
    lines = [shown.replace(prefix, "@") for shown in screen(terminal)]
    for line in alone.stdout.replace(str(tmp_path / "alone"), "@").splitlines():
        if line.strip():
            assert line.rstrip() in lines, (line, terminal)
    assert any(ln.startswith("conda-execute: created environment ") for ln in lines)


def test_not_a_terminal_plain_lines_and_quiet_nothing(setup):
    script = setup.script()
    name = setup.name_of(script)
    proc = subprocess.run([sys.executable, setup.pyz, script], env=setup.env,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "script output 1.0\n"
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"conda-execute: creating environment {name} with conda (first run) ..."
    assert lines[1].startswith(f"conda-execute: created environment {name} (3 packages, ")
    assert len(lines) == 2, proc.stderr
    quiet = subprocess.run([sys.executable, setup.pyz, "-q", "-f", script], env=setup.env,
                           capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == "script output 1.0\n"
    for flags in ((), ("-q",)):  # a failure shows conda's output, -q or not
        bad = subprocess.run([sys.executable, setup.pyz, *flags, setup.script(BAD, "bad.py")],
                             env=setup.env, capture_output=True, text=True)
        assert bad.returncode == 70 and "\r" not in bad.stderr
        assert "PackagesNotFoundError" in bad.stderr and "Collecting package metadata" in \
            bad.stderr


def test_pip_step_on_a_terminal_and_not(setup, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "pypidemo", "1.0", "VERSION = '1.0'\n")
    env = dict(setup.env, PIP_FIND_LINKS=str(wheels), PIP_NO_INDEX="1")
    script = setup.script('# /// script\n# dependencies = ["pypidemo==1.0"]\n# ///\n'
                          'import pypidemo; print("pypidemo", pypidemo.VERSION)\n', "p.py")
    name = setup.name_of(script)
    code, out, terminal = run_on_tty([sys.executable, setup.pyz, script], env)
    assert code == 0 and out == "pypidemo 1.0\n", terminal
    left = screen(terminal)
    assert len(left) == 1 and left[0].startswith(
        f"conda-execute: created environment {name} (2 packages + 1 from PyPI, "), terminal
    assert f"\rconda-execute: installing PyPI packages into {name} with pip (" in terminal
    plain = subprocess.run([sys.executable, setup.pyz, "-f", script], env=env,
                           capture_output=True, text=True)
    assert plain.returncode == 0 and "\r" not in plain.stderr
    assert plain.stderr.splitlines()[2:] == [
        f"conda-execute: installing PyPI packages into {name} with pip ...",
        plain.stderr.splitlines()[-1]] and "+ 1 from PyPI" in plain.stderr


def test_first_run_on_a_bare_machine_on_a_terminal(pyz, conda_root_factory, channel,
                                                    isolated_env, tmp_path):
    """Bootstrap by default, on a terminal: the announcement, the download on one line
    (erased), micromamba's sha256, the create's status line, then the script's output."""
    from test_bootstrap import Bare, Server, micromamba_archive

    # the bootstrapped root's condarc says conda-forge: offline, that is the test channel
    conda_root = conda_root_factory(custom_channels={"conda-forge": channel.url})
    server = Server()
    try:
        url = server.add("/mm", micromamba_archive(conda_root))
        bare = Bare(isolated_env, tmp_path, pyz)
        env = dict(bare.env, CONDA_EXECUTE_MICROMAMBA_URL=url)
        code, out, terminal = run_on_tty([sys.executable, pyz, bare.script(), str(tmp_path / "ran")],
                                         env)
    finally:
        server.close()
    assert code == 0, terminal
    assert out.startswith("ran in ") and out.count("\n") == 1
    left = screen(terminal)
    assert [ln.split(" ", 3)[:3] for ln in left] == [
        ["conda-execute:", "no", "conda,"], ["conda-execute:", "installed", "micromamba"],
        ["conda-execute:", "created", "environment"]], terminal
    assert "\rconda-execute: downloading micromamba (" in terminal
    print("FIGURE bare tty first run:", left)
