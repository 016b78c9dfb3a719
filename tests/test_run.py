"""The core run path as users meet it: the built pyz (and python -m) against stand-in conda."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import conda_execute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tool:
    """Runs conda-execute as a user would, with a given environment."""

    def __init__(self, argv0, env, env_dir):
        self.argv0, self.env, self.env_dir = argv0, env, env_dir

    def cmd(self, *args):
        return [*self.argv0, *args]

    def run(self, *args, input=None, env=None, timeout=120, **kw):
        return subprocess.run(self.cmd(*args), input=input, capture_output=True, text=True,
                              env=env or self.env, timeout=timeout, **kw)


@pytest.fixture(params=["pyz", "module"])
def tool(request, pyz, conda_root, isolated_env, tmp_path):
    """conda-execute with stand-in conda on PATH and its own env dir."""
    env = conda_root.env_with_conda_on_path(isolated_env)
    env_dir = str(tmp_path / "envs")
    env["CONDA_EXECUTE_ENV_DIR"] = env_dir
    env["PYTHONPATH"] = ROOT if request.param == "module" else ""
    argv0 = [sys.executable, pyz] if request.param == "pyz" else [
        sys.executable, "-m", "conda_execute"]
    return Tool(argv0, env, env_dir)


@pytest.fixture
def pyz_tool(pyz, conda_root, isolated_env, tmp_path):
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    return Tool([sys.executable, pyz], env, str(tmp_path / "envs"))


def wait_for(path, proc, seconds=60.0):
    """Poll (with a deadline) until PATH exists while PROC runs: readiness, not a sleep."""
    import time

    start = time.monotonic()
    while not os.path.exists(path):
        assert proc.poll() is None, "process ended early"
        assert time.monotonic() - start < seconds, f"{path} did not appear"
        time.sleep(0.005)


def write(path, text, mode=0o644):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    path.chmod(mode)
    return str(path)


PY_SCRIPT = """
    # conda execute
    # env:
    #  - python
    #  - mylib
    # run_with: [python]
    import json, os, sys
    import mylib
    print(json.dumps({"argv": sys.argv[1:], "prefix": sys.prefix, "mylib": mylib.__version__,
                      "CONDA_PREFIX": os.environ.get("CONDA_PREFIX"),
                      "CONDA_SHLVL": os.environ.get("CONDA_SHLVL"),
                      "CONDA_DEFAULT_ENV": os.environ.get("CONDA_DEFAULT_ENV"),
                      "PATH0": os.environ["PATH"].split(os.pathsep)[0],
                      "stdin": sys.stdin.read()}))
    sys.exit(int(os.environ.get("EXIT", "0")))
"""


def test_first_run_creates_then_runs_with_args_stdin_and_activation(tool, conda_root, tmp_path):
    script = write(tmp_path / "s.py", PY_SCRIPT)
    args = ["-v", "--help", "a b", "", "$X", "*", 'q"uote']
    proc = tool.run(script, *args, input="from stdin")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    prefix = os.path.realpath(out["prefix"])
    assert os.path.dirname(prefix) == os.path.join(os.path.realpath(tool.env_dir),
                                                   conda_execute.conda_platform())
    assert out["argv"] == args and out["stdin"] == "from stdin" and out["mylib"] == "1.0"
    assert os.path.realpath(out["CONDA_PREFIX"]) == prefix
    assert out["CONDA_SHLVL"] == "1" and os.path.realpath(out["PATH0"]) == prefix + "/bin"
    assert "creating environment" in proc.stderr
    assert len(conda_root.calls("create")) == 1
    again = tool.run(script, "x", input="")
    assert again.returncode == 0 and json.loads(again.stdout)["argv"] == ["x"]
    assert again.stderr == ""
    assert len(conda_root.calls("create")) == 1 and conda_root.calls("run") == []


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exit_code_is_the_scripts(pyz_tool, tmp_path, code):
    script = write(tmp_path / "s.py", PY_SCRIPT)
    env = dict(pyz_tool.env, EXIT=str(code))
    assert pyz_tool.run(script, input="", env=env).returncode == code


def test_killed_by_signal_reports_like_a_shell(pyz_tool, tmp_path):
    script = write(tmp_path / "k.py", """
        # conda execute
        # env: [python]
        import os, signal
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    assert pyz_tool.run(script).returncode == -signal.SIGTERM


def read_until(fd, seen, end, seconds):
    """Read FD (after SEEN) until it ends with END; fail after SECONDS (a deadline)."""
    import select
    import time

    deadline = time.monotonic() + seconds
    while not seen.endswith(end):
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], \
            f"no {end!r} within {seconds} s (output is not live); got {seen!r}"
        chunk = os.read(fd, 4096)
        assert chunk, f"output ended before {end!r}: {seen!r}"
        seen += chunk
    return seen


def test_script_is_the_process_signals_reach_it(pyz_tool, tmp_path):
    ready = tmp_path / "ready"
    script = write(tmp_path / "sig.py", f"""
        # conda execute
        # env: [python]
        import signal, sys, time
        def bye(signum, frame):
            print("got", signum, flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, bye)
        open({str(ready)!r}, "w").close()
        while True:
            time.sleep(0.01)
    """)
    assert pyz_tool.run("--prefix", script).returncode == 0  # create the env first
    proc = subprocess.Popen(pyz_tool.cmd(script), env=pyz_tool.env, stdout=subprocess.PIPE,
                            text=True)
    wait_for(ready, proc)
    proc.send_signal(signal.SIGTERM)  # to the pid we started: it must be the script itself
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7 and out == f"got {signal.SIGTERM}\n"


def test_stdout_is_binary_clean_and_interleaving_is_live(pyz_tool, tmp_path):
    script = write(tmp_path / "b.py", """
        # conda execute
        # env: [python]
        import sys
        sys.stdout.buffer.write(bytes(range(256)))
        sys.stdout.flush()
        sys.stderr.write("err\\n")
    """)
    proc = subprocess.run(pyz_tool.cmd(script), env=pyz_tool.env, capture_output=True)
    assert proc.returncode == 0 and proc.stdout == bytes(range(256))
    assert proc.stderr.endswith(b"err\n")
    # Live and interleaved: stdout and stderr on one pipe, as a terminal shows them, in the
    # script's order, while the script still runs (nothing buffers them in between).
    script = write(tmp_path / "i.py", """
        # conda execute
        # env: [python]
        import sys
        for n in "12":
            sys.stdout.write(f"out{n}\\n"); sys.stdout.flush()
            sys.stderr.write(f"err{n}\\n"); sys.stderr.flush()
            sys.stdin.readline()
    """)
    assert pyz_tool.run("--prefix", script).returncode == 0  # create the env first
    proc = subprocess.Popen(pyz_tool.cmd("-q", script), env=pyz_tool.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        seen = b""
        for n in (1, 2):  # the script waits for a line after each pair: output must be live
            seen = read_until(proc.stdout.fileno(), seen, b"err%d\n" % n, 60)
            proc.stdin.write(b"\n")
            proc.stdin.flush()
        assert seen == b"out1\nerr1\nout2\nerr2\n"
    finally:
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_activate_d_scripts_and_state_vars(pyz_tool, tmp_path):
    script = write(tmp_path / "a.sh", """
        # conda execute
        # env: [activator]
        echo "ACTIVATOR_VAR=$ACTIVATOR_VAR"
        echo "CONDA_PREFIX=$CONDA_PREFIX"
    """)
    proc = pyz_tool.run(script)
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert values["ACTIVATOR_VAR"] and values["CONDA_PREFIX"] in values["ACTIVATOR_VAR"]
    prefix = values["CONDA_PREFIX"]
    with open(os.path.join(prefix, "conda-meta", "state"), "w") as f:
        json.dump({"env_vars": {"FROM_STATE": "yes", "gone": "***unset***"}}, f)
    script2 = write(tmp_path / "b.sh", """
        # conda execute
        # env: [activator]
        echo "FROM_STATE=$FROM_STATE GONE=${GONE-unset}"
    """)
    proc = pyz_tool.run(script2)
    assert proc.stdout == "FROM_STATE=yes GONE=unset\n", proc.stderr


def test_full_runs_on_every_python_here_old_ones_included(pyz_tool, tmp_path):
    """Locked-down servers run the pyz with an old system Python: cold and warm runs on each."""
    from conftest import other_pythons

    script = write(tmp_path / "s.py", PY_SCRIPT)
    seen = {}
    for exe in other_pythons():
        proc = subprocess.run([exe, pyz_tool.argv0[1], script, exe], input="in", env=pyz_tool.env,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, (exe, proc.stderr)
        out = json.loads(proc.stdout)
        assert out["argv"] == [exe] and out["stdin"] == "in" and out["mylib"] == "1.0"
        seen[exe] = out["prefix"]
    print("ran on:", sorted(seen))
    assert len(set(seen.values())) == 1  # one environment, whatever runs the launcher
