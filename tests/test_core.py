"""Issue 3 as a user sees it: managers and their dialects, failures, options, config, GC.

Through the built pyz (and `python -m conda_execute` where the entry point matters), against
the stand-in conda. Environments are costly (~0.5 s each): read-only checks share one env dir
per test process (`shared`); tests that count creates or remove envs get their own (`ce`).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from conftest import isolated_environ, make_conda_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import conda_execute  # noqa: E402

MARKER = conda_execute.MARKER
PLATFORM = conda_execute.conda_platform()  # envs live in ENV_DIR/PLATFORM/


class Tool:
    """Runs conda-execute as a user would, with a given environment."""

    def __init__(self, argv0, env, env_dir):
        self.argv0, self.env, self.env_dir = argv0, env, env_dir

    def cmd(self, *args):
        return [*self.argv0, *args]

    def run(self, *args, input="", env=None, timeout=120, **kw):
        return subprocess.run(self.cmd(*args), input=input, capture_output=True, text=True,
                              env=self.env if env is None else env, timeout=timeout, **kw)

    def json(self, *args, **kw):
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def prefix_of(self, script, **kw):
        """The env prefix of SCRIPT, from --dry-run (creates nothing)."""
        return self.json("--dry-run", script, **kw)["prefix"]


def no_proxy(env):
    return {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}


def fresh_stamp(env_dir):
    """Make the env dir's platform dir with a fresh GC stamp: no background GC races this
    test's checks."""
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    open(os.path.join(env_dir, ".gc-stamp"), "w").close()


@pytest.fixture
def ce(pyz, conda_root, isolated_env, tmp_path):
    """The pyz with stand-in conda on PATH and a private env dir (no automatic GC)."""
    env = no_proxy(conda_root.env_with_conda_on_path(isolated_env))
    env_dir = str(tmp_path / "envs")
    env["CONDA_EXECUTE_ENV_DIR"] = env_dir
    fresh_stamp(os.path.join(env_dir, PLATFORM))
    return Tool([sys.executable, pyz], env, os.path.join(env_dir, PLATFORM))


class Shared:
    """One conda root and env dir per test process, holding the `env: [python]` env."""

    def __init__(self, tool, root, tmp):
        self.tool, self.root, self.tmp = tool, root, tmp


@pytest.fixture(scope="module")
def shared(pyz, channel, pkgs_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shared")
    root = make_conda_root(tmp / "root", [channel.url], pkgs_dir)
    env = no_proxy(root.env_with_conda_on_path(isolated_environ(os.environ, tmp / "iso")))
    env_dir = str(tmp / "envs")
    env["CONDA_EXECUTE_ENV_DIR"] = env_dir
    fresh_stamp(os.path.join(env_dir, PLATFORM))
    tool = Tool([sys.executable, pyz], env, os.path.join(env_dir, PLATFORM))
    script = write(tmp / "warm.py", PY)
    proc = tool.run("--prefix", script)
    assert proc.returncode == 0, proc.stderr
    return Shared(tool, root, tmp)


def write(path, text, mode=0o644):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    path.chmod(mode)
    return str(path)


def wait_until(predicate, what, seconds=60.0):
    """Poll with a deadline (readiness, not a sleep)."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < seconds, f"timed out waiting for {what}"
        time.sleep(0.005)


# The script most tests run: reports what it sees. Its env (`python`) is the shared one.
PY = """
    # conda execute
    # env:
    #  - python
    # run_with: [python]
    import json, os, sys
    print(json.dumps({"argv": sys.argv[1:], "prefix": sys.prefix, "pid": os.getpid(),
                      "stdin": sys.stdin.read(), "unbuffered": sys.stdout.write_through}))
    sys.exit(int(os.environ.get("EXIT", "0")))
"""


def same(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def log_records(env_dir):
    with open(os.path.join(env_dir, "usage.jsonl")) as f:
        return [json.loads(line) for line in f]


def age_env(env_dir, name, hours):
    """Make env NAME look last used HOURS ago: rewrite its log lines and its mtime."""
    when = time.time() - hours * 3600
    path = os.path.join(env_dir, "usage.jsonl")
    records = log_records(env_dir) if os.path.exists(path) else []
    with open(path, "w") as f:
        for rec in records:
            if rec["env"] == name:
                rec["time"] = when
            f.write(json.dumps(rec) + "\n")
    marker = os.path.join(env_dir, name, MARKER)  # and its creation (GC keeps new envs)
    if os.path.exists(marker):
        with open(marker) as f:
            rec = json.load(f)
        rec["created"] = when
        with open(marker, "w") as f:
            json.dump(rec, f)
    os.utime(os.path.join(env_dir, name), (when, when))


###############################################################################
# Package managers: micromamba's dialect, selection, none found ###############
###############################################################################


@pytest.mark.parametrize("how", ["path", "mamba_exe"])
def test_micromamba_personality_end_to_end(pyz, conda_root, isolated_env, tmp_path, how):
    env = (conda_root.env_with_micromamba_on_path(isolated_env) if how == "path"
           else conda_root.env_with_mamba_exe(isolated_env))
    tool = Tool([sys.executable, pyz], no_proxy(env), "")
    script = write(tmp_path / "s.py", PY)
    proc = tool.run(script, "-x", "a b", input="in", env=dict(tool.env, EXIT="5"))
    assert proc.returncode == 5, proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == ["-x", "a b"] and out["stdin"] == "in"
    # the default env dir: <root>/tmp_envs with MAMBA_ROOT_PREFIX; a micromamba outside a
    # root's bin/ (here ROOT/mambabin, often ~/.local/bin) has no root: ~/.conda/tmp_envs
    base = (str(conda_root.root) if how == "mamba_exe"
            else os.path.join(isolated_env["HOME"], ".conda"))
    prefix = os.path.join(base, "tmp_envs", PLATFORM, os.path.basename(out["prefix"]))
    assert same(out["prefix"], prefix)
    creates = conda_root.calls("create")
    assert len(creates) == 1 and conda_root.calls(prog="conda") == []
    argv = creates[0]["argv"]
    assert creates[0]["prog"] == "micromamba"
    assert argv[1:5] == ["create", "-p", prefix, "--yes"] and argv[-1] == "python"
    assert argv[-2:] == ["--", "python"]  # CLI11 ends options at '--' too (micromamba facts)
    again = tool.run(script)
    assert again.returncode == 0 and again.stderr == "" and len(conda_root.calls("create")) == 1


def test_conda_dialect_create_command(ce, conda_root, tmp_path):
    script = write(tmp_path / "s.py", """
        # conda execute
        # env: [python, mylib >=1]
        # channels: [CHANNEL]
        import mylib
        print(mylib.__version__)
    """.replace("CHANNEL", conda_root.channels[0]))
    proc = ce.run(script)
    assert (proc.returncode, proc.stdout) == (0, "1.0\n"), proc.stderr
    (create,) = conda_root.calls("create")
    prefix = ce.prefix_of(script)
    assert create["prog"] == "conda" and create["argv"][1:] == [
        "create", "-p", prefix, "--yes", "--override-channels", "-c", conda_root.channels[0],
        "--", "python", "mylib >=1"]


def test_conda_option_and_variable_select_the_manager(ce, conda_root, tmp_path):
    script = write(tmp_path / "s.py", PY)
    mm = str(conda_root.mambabin / "micromamba")
    assert ce.run("--conda", mm, "--prefix", script).returncode == 0
    assert [c["prog"] for c in conda_root.calls("create")] == ["micromamba"]
    assert ce.run("-f", "--prefix", script, env=dict(ce.env, CONDA_EXECUTE_CONDA=mm)).returncode == 0
    assert [c["prog"] for c in conda_root.calls("create")] == ["micromamba"] * 2
    assert ce.run("-f", "--prefix", script).returncode == 0  # PATH: conda
    assert [c["prog"] for c in conda_root.calls("create")] == ["micromamba"] * 2 + ["conda"]


def test_manager_precedence(pyz, isolated_env, tmp_path, channel, pkgs_dir):
    """--conda > CONDA_EXECUTE_CONDA > CONDA_EXE > MAMBA_EXE > PATH (conda, mamba, micromamba).

    Each candidate lives in its own fake root; the default env dir <root>/tmp_envs shows which
    one was chosen, without creating anything.
    """
    roots = {k: make_conda_root(tmp_path / k, [channel.url], pkgs_dir)
             for k in ("opt", "var", "conda_exe", "mamba_exe", "p_conda", "p_mamba", "p_micro")}
    shutil.copy(roots["p_mamba"].conda, roots["p_mamba"].root / "bin" / "mamba")
    for name in ("conda", "micromamba"):  # p_mamba's bin holds mamba only, p_micro's micromamba
        os.unlink(roots["p_mamba"].root / "bin" / name)
    for name in ("conda", "mamba"):
        os.unlink(roots["p_micro"].root / "bin" / name)
    env = dict(isolated_env, CONDA_EXECUTE_CONDA=str(roots["var"].conda),
               CONDA_EXE=str(roots["conda_exe"].conda), MAMBA_EXE=str(roots["mamba_exe"].micromamba))
    env["PATH"] = os.pathsep.join([str(roots[k].root / "bin") for k in ("p_micro", "p_mamba")]
                                  + [str(roots["p_conda"].condabin), env["PATH"]])
    script = write(tmp_path / "s.py", PY)
    tool = Tool([sys.executable, pyz], env, "")

    def chosen(*opts):
        prefix = tool.prefix_of(script, env=env) if not opts else tool.json(
            *opts, "--dry-run", script, env=env)["prefix"]
        env_dir = os.path.dirname(os.path.dirname(prefix))  # ROOT/tmp_envs/PLATFORM/NAME
        return next(k for k, r in roots.items() if same(os.path.dirname(env_dir), r.root))

    assert chosen("--conda", str(roots["opt"].conda)) == "opt"
    assert chosen() == "var"
    del env["CONDA_EXECUTE_CONDA"]
    assert chosen() == "conda_exe"
    del env["CONDA_EXE"]
    assert chosen() == "mamba_exe"
    del env["MAMBA_EXE"]
    assert chosen() == "p_conda"  # conda is preferred over mamba/micromamba earlier on PATH
    env["PATH"] = env["PATH"].replace(str(roots["p_conda"].condabin) + os.pathsep, "")
    assert chosen() == "p_mamba"
    env["PATH"] = env["PATH"].replace(str(roots["p_mamba"].root / "bin") + os.pathsep, "")
    assert chosen() == "p_micro"


def test_no_package_manager_anywhere(pyz, isolated_env, tmp_path):
    script = write(tmp_path / "s.py", PY)
    tool = Tool([sys.executable, pyz], isolated_env, "")
    home = isolated_env["HOME"]
    for env in (isolated_env, dict(isolated_env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "ed"))):
        proc = tool.run(script, env=env)
        assert proc.returncode == 69 and proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        for word in ("CONDA_EXE", "MAMBA_EXE", "conda", "mamba", "micromamba", "PATH"):
            assert word in proc.stderr
    assert not os.path.exists(tmp_path / "ed")
    assert not os.path.exists(os.path.join(home, ".conda"))
    # --dry-run needs no manager: it only says what would run
    assert tool.json("--dry-run", script)["prefix"].startswith(os.path.join(home, ".conda"))


###############################################################################
# Creating: failures, progress on stderr, -q, -v, incomplete prefixes, -f ######
###############################################################################


@pytest.mark.parametrize("specs, words", [
    ("[python, nosuchpkg]", ["nosuchpkg"]),
    ("[toolplugin, tool >=2]", ["tool"]),
    ("[broken]", ["nosuchdep"]),
])
def test_create_failure(ce, conda_root, tmp_path, specs, words):
    script = write(tmp_path / "bad.py", f"""
        # one
        # conda execute
        # env: {specs}
        print("never")
    """)
    prefix = ce.prefix_of(script)
    for n, quiet in ((1, ()), (2, ("-q",))):
        proc = ce.run(*quiet, script)
        assert proc.returncode == 70 and proc.stdout == ""
        assert "Error" in proc.stderr and all(w in proc.stderr for w in words), proc.stderr
        ours = [ln for ln in proc.stderr.splitlines() if ln.startswith(script)]
        assert len(ours) == 1 and ours[0].startswith(f"{script}:2: ")
        assert not os.path.lexists(prefix)
        assert len(conda_root.calls("create")) == n  # the next run tries again


def test_progress_goes_to_stderr_and_quiet_and_verbose(ce, conda_root, tmp_path):
    script = write(tmp_path / "s.py", PY)
    proc = ce.run(script, "x")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["argv"] == ["x"] and proc.stdout.count("\n") == 1
    assert "creating environment" in proc.stderr
    # not a terminal: two plain lines; conda's own output is kept and shown only if it fails
    assert len(proc.stderr.splitlines()) == 2 and "created environment" in proc.stderr
    proc = ce.run("-q", "-f", script)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.count("\n") == 1
    proc = ce.run("-v", script)
    prefix = ce.prefix_of(script)
    name = os.path.basename(prefix)
    assert proc.returncode == 0 and name in proc.stderr and prefix in proc.stderr
    assert f"running: python {script}" in proc.stderr
    proc = ce.run("-v", "-f", script)
    assert f"create -p {prefix} --yes -- python" in proc.stderr  # the create command is shown
    assert len(conda_root.calls("create")) == 3


@pytest.mark.parametrize("leftover", ["killed_create", "not_an_env"])
def test_incomplete_prefix_is_removed_and_recreated(ce, conda_root, tmp_path, leftover):
    script = write(tmp_path / "s.py", PY)
    prefix = ce.prefix_of(script)
    os.makedirs(os.path.join(prefix, "conda-meta" if leftover == "killed_create" else "stuff"))
    write(tmp_path / "junk", "x")
    shutil.copy(tmp_path / "junk", os.path.join(prefix, "junk"))
    proc = ce.run(script)
    assert proc.returncode == 0, proc.stderr
    assert same(json.loads(proc.stdout)["prefix"], prefix)
    assert "incomplete" in proc.stderr and prefix in proc.stderr
    assert not os.path.exists(os.path.join(prefix, "junk"))
    assert os.path.isfile(os.path.join(prefix, MARKER))
    assert len(conda_root.calls("create")) == 1


def test_force_env_recreates(ce, conda_root, tmp_path):
    script = write(tmp_path / "s.py", PY)
    prefix = ce.run("--prefix", script).stdout.strip()
    age_env(ce.env_dir, os.path.basename(prefix), 2)  # the marker says: created 2 hours ago
    with open(os.path.join(prefix, MARKER)) as f:
        first = json.load(f)
    open(os.path.join(prefix, "added-by-user"), "w").close()
    proc = ce.run("-f", script)
    assert proc.returncode == 0 and json.loads(proc.stdout)["argv"] == []
    with open(os.path.join(prefix, MARKER)) as f:
        created = json.load(f)["created"]
    assert created > first["created"] + 3600, "the completion marker was not written anew"
    assert not os.path.exists(os.path.join(prefix, "added-by-user"))
    assert len(conda_root.calls("create")) == 2
    assert "removing the environment" in proc.stderr


###############################################################################
# --prefix, --dry-run, --list, --gc ##############################################
###############################################################################


def test_prefix_creates_and_prints_only_the_prefix(ce, conda_root, tmp_path):
    script = write(tmp_path / "s.py", PY)
    for _ in (1, 2):
        proc = ce.run("--prefix", script)
        assert proc.returncode == 0
        assert proc.stdout == os.path.join(ce.env_dir, os.path.basename(proc.stdout.strip())) + "\n"
        assert os.path.isfile(os.path.join(proc.stdout.strip(), MARKER))
        assert len(conda_root.calls("create")) == 1
    assert "creating environment" not in proc.stderr


def test_dry_run_prints_one_json_object_and_creates_nothing(ce, conda_root, tmp_path):
    env_dir = str(tmp_path / "never")
    script = write(tmp_path / "s.py", PY)
    proc = ce.run("--dry-run", script, "a", env=dict(ce.env, CONDA_EXECUTE_ENV_DIR=env_dir))
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.count("\n") == 1
    out = json.loads(proc.stdout)
    assert {"env", "channels", "run_with", "name", "prefix", "command"} <= set(out)
    assert out["env"] == ["python"] and out["channels"] == [] and out["run_with"] == ["python"]
    assert out["prefix"] == os.path.join(env_dir, PLATFORM, out["name"])
    assert out["command"] == ["python", script, "a"]
    assert not os.path.exists(env_dir) and conda_root.calls() == []


def test_list_names_last_use_size_specs_script(ce, tmp_path):
    one = write(tmp_path / "one.py", PY)
    two = write(tmp_path / "two.sh", """
        # conda execute
        # env: [mylib]
        echo two
    """)
    assert ce.run(one).returncode == 0
    assert ce.run(two).stdout == "two\n"
    proc = ce.run("--list")
    assert proc.returncode == 0 and proc.stderr == ""
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["NAME", "PLATFORM", "LAST", "USED", "SIZE", "SPECS", "SCRIPT"]
    assert len(rows) == 2
    by_script = {row.split()[-1]: row for row in rows}
    assert set(by_script) == {one, two}
    for script, spec in ((one, "python"), (two, "mylib")):
        row = by_script[script]
        assert row.startswith(os.path.basename(ce.prefix_of(script)) + f"  {PLATFORM} ")
        assert re.search(r" \d+s ago +\d+(\.\d)? (B|KiB|MiB) ", row) and f" {spec} " in row


def test_gc_removes_only_old_envs_dry_run_first(ce, tmp_path):
    old = write(tmp_path / "old.py", PY)
    new = write(tmp_path / "new.sh", "# conda execute\n# env: [mylib]\necho new\n")
    old_prefix, new_prefix = (ce.run("--prefix", s).stdout.strip() for s in (old, new))
    old_name = os.path.basename(old_prefix)
    age_env(ce.env_dir, old_name, 26)  # older than the default 25 h
    age_env(ce.env_dir, os.path.basename(new_prefix), 1)  # not new: GC keeps envs < 1 min old
    proc = ce.run("--gc", "--older-than", "0", "--dry-run")
    assert proc.returncode == 0 and proc.stdout.count("would remove") == 2
    assert os.path.isdir(old_prefix) and os.path.isdir(new_prefix)
    proc = ce.run("--gc")
    assert proc.returncode == 0 and proc.stdout == f"removed: {old_name} python\n"
    assert not os.path.exists(old_prefix) and os.path.isfile(os.path.join(new_prefix, MARKER))
    assert [r["env"] for r in log_records(ce.env_dir)] == [os.path.basename(new_prefix)]
    assert ce.run(new).stdout == "new\n"


def test_gc_keeps_an_env_in_use(ce, tmp_path):
    go, ready = tmp_path / "go", tmp_path / "ready"
    script = write(tmp_path / "wait.py", f"""
        # conda execute
        # env: [python]
        import os, time
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.005)
        print("done")
    """)
    prefix = ce.run("--prefix", script).stdout.strip()
    proc = subprocess.Popen(ce.cmd(script), env=ce.env, stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, "the script to start")
        assert proc.poll() is None
        age_env(ce.env_dir, os.path.basename(prefix), 1)  # GC keeps envs created < 1 min ago
        gc = ce.run("--gc", "--older-than", "0")
        assert gc.returncode == 0 and gc.stdout == f"in use, kept: {os.path.basename(prefix)}\n"
        assert os.path.isfile(os.path.join(prefix, MARKER))
        busy = ce.run("-f", "--prefix", script)  # nor may --force-env pull it away
        assert busy.returncode == 75 and busy.stdout == "" and "in use" in busy.stderr
        assert os.path.isfile(os.path.join(prefix, MARKER))
    finally:
        go.touch()
        out, _ = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, "done\n")
    age_env(ce.env_dir, os.path.basename(prefix), 1)  # GC keeps envs created < 1 min ago
    gc = ce.run("--gc", "--older-than", "0")
    assert gc.stdout.startswith("removed: ") and not os.path.exists(prefix)


def read_line_within(stream, seconds, what):
    """One line from STREAM, failing with WHAT if none comes within SECONDS (a deadline)."""
    import select

    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, f"timed out after {seconds} s waiting for {what}"
    return stream.readline()


def test_the_run_that_creates_an_env_holds_its_lock_shared_while_the_script_runs(ce, tmp_path):
    """Creating takes the lock exclusively; the script then runs holding it shared, so other
    runs of the same env start at once (they must not wait for this script to end)."""
    script = write(tmp_path / "hold.py", """
        # conda execute
        # env: [python]
        import sys
        print("running", flush=True)
        sys.stdin.readline()  # hold the env until the test says so
        print("done")
    """)
    name = os.path.basename(ce.prefix_of(script))
    first = subprocess.Popen(ce.cmd(script), env=ce.env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line_within(first.stdout, 120, "the first (creating) run") == "running\n"
        fd = os.open(os.path.join(ce.env_dir, name + ".lock"), os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pytest.fail("the script runs with its env locked exclusively: every other run "
                            "of this env would wait until it ends")
        finally:
            os.close(fd)
        second = subprocess.Popen(ce.cmd(script), env=ce.env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert read_line_within(second.stdout, 60, "a second run while the first runs") \
                == "running\n"
        finally:
            out, _ = second.communicate("\n", timeout=60)
        assert second.returncode == 0 and out == "done\n"
    finally:
        out, err = first.communicate("\n", timeout=60)
    assert first.returncode == 0 and out == "done\n", err
    assert "creating environment" in err


def test_automatic_gc_runs_detached_when_the_stamp_is_stale(ce, tmp_path):
    old = write(tmp_path / "old.sh", "# conda execute\n# env: [mylib]\necho old\n")
    script = write(tmp_path / "s.py", PY)
    old_prefix = ce.run("--prefix", old).stdout.strip()
    assert ce.run("--prefix", script).returncode == 0
    age_env(ce.env_dir, os.path.basename(old_prefix), 30)
    stamp = os.path.join(ce.env_dir, ".gc-stamp")
    # A fresh stamp (10 minutes old): no GC, the stamp is left alone.
    ten_min = time.time_ns() - 600 * 10**9
    os.utime(stamp, ns=(ten_min, ten_min))
    proc = ce.run(script, "a")
    assert proc.returncode == 0 and json.loads(proc.stdout)["argv"] == ["a"]
    assert os.stat(stamp).st_mtime_ns == ten_min and os.path.isdir(old_prefix)
    # A stale stamp (2 hours old): a detached collector removes the old env. The old env's
    # marker is a FIFO now, so the collector blocks reading it until we write it: the script
    # has finished while its collector still waits, so the script does not wait for the GC.
    two_h = time.time() - 7200
    os.utime(stamp, (two_h, two_h))
    marker = os.path.join(old_prefix, MARKER)
    with open(marker) as f:
        content = f.read()
    os.unlink(marker)
    os.mkfifo(marker)
    proc = ce.run(script, "b", env=dict(ce.env, EXIT="3"))
    assert proc.returncode == 3 and json.loads(proc.stdout)["argv"] == ["b"]
    assert proc.stderr == ""
    assert os.stat(stamp).st_mtime > two_h
    assert os.path.isdir(old_prefix) and len(log_records(ce.env_dir)) > 2  # the GC waits
    fds = []

    def collector_reads():  # the FIFO has a reader: the collector is at the old env's marker
        try:
            fds.append(os.open(marker, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    wait_until(collector_reads, "the collector to read the old env's marker")
    os.write(fds[0], content.encode())
    os.close(fds[0])
    wait_until(lambda: not os.path.exists(old_prefix), "the old env to be removed")
    wait_until(lambda: len(log_records(ce.env_dir)) == 1, "the log to be compacted")


###############################################################################
# Running: the usage log, -c, stdin, URLs, script names vs options ############
###############################################################################


def test_usage_log_line_per_run_with_the_scripts_own_pid(shared, tmp_path):
    script = write(tmp_path / "s.py", PY)
    env_dir = shared.tool.env_dir
    before = len(log_records(env_dir))
    pids = [json.loads(shared.tool.run(script).stdout)["pid"] for _ in range(2)]
    records = log_records(env_dir)[before:]
    assert len(records) == 2
    for rec, pid in zip(records, pids):
        assert set(rec) == {"time", "env", "script", "pid"}
        assert rec["pid"] == pid and rec["script"] == script
        assert rec["env"] == os.path.basename(shared.tool.prefix_of(script))
        assert abs(rec["time"] - time.time()) < 3600
    rel = shared.tool.run("s.py", cwd=str(tmp_path))
    assert rel.returncode == 0 and log_records(env_dir)[-1]["script"] == script  # absolute


def test_a_usage_log_that_cannot_be_opened_only_warns(ce, tmp_path):
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\necho hi\n")
    os.mkdir(os.path.join(ce.env_dir, "usage.jsonl"))  # not a file: opening it to append fails
    proc = ce.run("-q", script)
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr
    log = os.path.join(ce.env_dir, "usage.jsonl")
    assert proc.stderr == f"conda-execute: warning: cannot record use in {log}: Is a directory\n"


def test_inline_code(shared):
    code = "# conda execute\n# env: [python]\nimport sys; print(sys.argv[1:], sys.prefix)"
    proc = shared.tool.run("-c", code, "a", "--list", "-v")
    assert proc.returncode == 0, proc.stderr
    argv, prefix = proc.stdout.rsplit(" ", 1)
    assert argv == "['a', '--list', '-v']"
    assert same(prefix.strip(), shared.tool.prefix_of(str(shared.tmp / "warm.py")))


def test_script_from_stdin(shared):
    script = textwrap.dedent(PY)
    proc = shared.tool.run("-", "a", "-q", input=script)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == ["a", "-q"] and out["stdin"] == ""


@contextlib.contextmanager
def serving(directory):
    """A loopback http.server for DIRECTORY; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(directory), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_script_from_an_http_url(shared, tmp_path):
    write(tmp_path / "remote.py", PY)
    with serving(tmp_path) as base:
        url = f"{base}/remote.py"
        proc = shared.tool.run(url, "arg", input="data")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == ["arg"] and out["stdin"] == "data"
    assert log_records(shared.tool.env_dir)[-1]["script"] == url


@pytest.mark.parametrize("name", ["list", "gc", "--weird"])
def test_script_names_that_look_like_commands(shared, tmp_path, name):
    write(tmp_path / name, PY)
    args = ["--", name] if name.startswith("-") else [name]
    proc = shared.tool.run(*args, "--list", "--gc", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["argv"] == ["--list", "--gc"]
    command = shared.tool.json("--dry-run", *args, cwd=str(tmp_path))["command"]
    assert command == ["python", os.path.join(".", name) if name.startswith("-") else name]


def test_management_options_and_usage_errors(shared, tmp_path):
    tool = shared.tool
    listing = tool.run("--list")
    assert listing.returncode == 0 and listing.stdout.startswith("NAME")
    bad = tool.run("--bogus", "s.py")
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1
    assert "--bogus" in bad.stderr
    helped = tool.run("--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage:") and helped.stderr == ""
    assert tool.run("-h").stdout == helped.stdout
    version = tool.run("--version")
    assert (version.returncode, version.stdout) == (0, f"conda-execute {conda_execute.__version__}\n")
    for args in ((), ("--list", "s.py"), ("--older-than", "1", "s.py"), ("--env-dir",), ("--list", "--gc")):
        proc = tool.run(*args, cwd=str(tmp_path))
        assert proc.returncode == 2 and proc.stdout == "", args
        assert len(proc.stderr.splitlines()) == 1, args
    for bad in ("abc", "-1", "nan"):
        proc = tool.run("--gc", "--older-than", bad)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == ("conda-execute: error: --older-than needs a number of hours >= 0, "
                               f"got {bad!r}\n")


def test_python_dash_m_entry_point(shared, tmp_path):
    script = write(tmp_path / "s.py", PY)
    env = dict(shared.tool.env, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "conda_execute", script, "z"], env=env,
                          capture_output=True, text=True, input="", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["argv"] == ["z"]


###############################################################################
# run_with: shebang, extensions, missing command, options ######################
###############################################################################


def test_shebang_runs_the_envs_python(shared, tmp_path):
    script = write(tmp_path / "noext", """
        #!/usr/bin/env python
        # conda execute
        # env: [python]
        import sys
        print(sys.prefix)
    """, mode=0o755)
    proc = shared.tool.run(script)
    assert proc.returncode == 0, proc.stderr
    assert same(proc.stdout.strip(), shared.tool.prefix_of(script))
    assert shared.tool.json("--dry-run", script)["run_with"] == ["/usr/bin/env", "python"]


def test_extension_default_bash(shared, tmp_path):
    script = write(tmp_path / "s.sh", """
        # conda execute
        # env: [python]
        echo "bash=${BASH_VERSION:+yes} $1 $CONDA_PREFIX"
    """)
    proc = shared.tool.run(script, "arg")
    assert proc.returncode == 0, proc.stderr
    word, arg, prefix = proc.stdout.split()
    assert (word, arg) == ("bash=yes", "arg") and same(prefix, shared.tool.prefix_of(script))


def test_run_with_missing_everywhere_exits_127(shared, tmp_path):
    script = write(tmp_path / "s.py", """
        # conda execute
        # env: [python]
        # run_with: [no-such-interpreter-xyz]
    """)
    proc = shared.tool.run(script)
    assert proc.returncode == 127 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "no-such-interpreter-xyz" in proc.stderr
    assert proc.stderr.startswith(f"{script}:1: ")


def test_run_with_options_are_passed(shared, tmp_path):
    script = write(tmp_path / "s.py", PY.replace("[python]", "[python, -u]"))
    env = {k: v for k, v in shared.tool.env.items() if k != "PYTHONUNBUFFERED"}
    assert json.loads(shared.tool.run(script, env=env).stdout)["unbuffered"] is True
    plain = write(tmp_path / "t.py", PY)
    assert json.loads(shared.tool.run(plain, env=env).stdout)["unbuffered"] is False


# The original conda-execute's README example, verbatim apart from its specs.
ORIGINAL_README = '''#!/usr/bin/env python
"""
A script that uses numpy's random normal distribution to print 3 numbers.

"""

# conda execute
# env:
#  - python >=3
#  - numpy

import numpy as np

print(np.random.normal(size=3))
'''


def test_original_readme_example_name_and_run_with(shared, tmp_path):
    path = tmp_path / "my_script.py"
    path.write_text(ORIGINAL_README)
    out = shared.tool.json("--dry-run", str(path))
    assert out["name"] == "ea977067a8fbeb21a594"
    assert out["run_with"] == ["/usr/bin/env", "python"]
    assert out["env"] == ["python >=3", "numpy"]


@pytest.mark.parametrize("block", [
    ORIGINAL_README.replace("python >=3\n#  - numpy", "python").replace(
        "import numpy as np\n\nprint(np.random.normal(size=3))", "print('ran')"),
    "#!/usr/bin/env conda-execute\n    # conda execute\n    # env:\n    #     - python\n"
    "    # run_with: python\nprint('ran')\n",
    "# conda execute:\n#env:\n#- python\n#run_with: [python]\nprint('ran')\n",
    "import sys\n  # conda execute  \n  # env: [python]   # why\n  #  # a comment\n"
    "\nprint('ran')\n",
])
def test_original_tool_metadata_variants_run(shared, tmp_path, block):
    path = tmp_path / "variant.py"
    path.write_text(block)
    proc = shared.tool.run(str(path))
    assert (proc.returncode, proc.stdout) == (0, "ran\n"), proc.stderr


###############################################################################
# Configuration: env dir and remove-if-unused-for from options, env, condarc ##
###############################################################################


CONDARC_NOISE = """\
channels:
  - conda-forge
  - defaults
channel_priority: strict
proxy_servers:
  http: http://proxy.example:8080
  https: https://proxy.example:8443
envs_dirs:
- ~/my-envs
custom_multichannels:
  mine: [https://example.com/a, https://example.com/b]
"""


def rc(path, settings, before=CONDARC_NOISE, after="show_channel_urls: true\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"# conda settings\n{before}conda-execute:\n  # ours\n{settings}\n{after}")
    return path


def test_env_dir_precedence(ce, conda_root, tmp_path):
    script = write(tmp_path / "s.py", PY)
    env = dict(ce.env)
    del env["CONDA_EXECUTE_ENV_DIR"]
    home = env["HOME"]

    def env_dir(*opts):
        prefix = ce.json(*opts, "--dry-run", script, env=env)["prefix"]
        assert os.path.basename(os.path.dirname(prefix)) == PLATFORM, prefix
        return os.path.dirname(os.path.dirname(prefix))

    assert same(env_dir(), conda_root.root / "tmp_envs")  # the root of the conda on PATH
    rc(conda_root.root / ".condarc", "  env-dir: /from/root")
    assert env_dir() == "/from/root"
    rc(os.path.join(home, ".config", "conda", "condarc.d", "x.yml"),
       "  env-dir: ~/from-config-d\n  remove-if-unused-for: 3")
    assert env_dir() == os.path.join(home, "from-config-d")
    rc(os.path.join(home, ".condarc"), '  env-dir: "$MY_PLACE/from-home"', before="")
    env["MY_PLACE"] = str(tmp_path / "place")
    assert env_dir() == str(tmp_path / "place" / "from-home")
    env["CONDARC"] = rc(str(tmp_path / "explicit.yml"), "  env_dir: /from/condarc-var",
                        after="")
    assert env_dir() == "/from/condarc-var"
    env["CONDA_EXECUTE_ENV_DIR"] = "/from/variable"
    assert env_dir() == "/from/variable"
    assert env_dir("--env-dir", "~/from-option") == os.path.join(home, "from-option")
    assert not os.path.exists(os.path.join(home, "from-option"))


def test_conda_root_variable_gives_default_env_dir_and_a_condarc(ce, tmp_path):
    script = write(tmp_path / "s.py", PY)
    other = tmp_path / "other-root"
    env = {k: v for k, v in ce.env.items() if k != "CONDA_EXECUTE_ENV_DIR"}
    env["CONDA_ROOT"] = str(other)
    other.mkdir()
    assert ce.prefix_of(script, env=env).startswith(str(other / "tmp_envs") + os.sep)
    rc(str(other / "condarc.d" / "ce.yaml"), "  env-dir: $CONDA_ROOT/mine")
    assert ce.prefix_of(script, env=env).startswith(str(other / "mine") + os.sep)


def test_default_env_dir_from_conda_exe(pyz, conda_root, isolated_env, tmp_path):
    script = write(tmp_path / "s.py", PY)
    tool = Tool([sys.executable, pyz], no_proxy(conda_root.env_with_conda_exe(isolated_env)), "")
    proc = tool.run(script)
    assert proc.returncode == 0, proc.stderr
    assert same(os.path.dirname(json.loads(proc.stdout)["prefix"]),
                conda_root.root / "tmp_envs" / PLATFORM)
    assert len(conda_root.calls("create")) == 1


def fake_env(env_dir, name, hours):
    """An env dir entry that GC treats as an environment last used HOURS ago."""
    prefix = os.path.join(env_dir, name)
    os.makedirs(os.path.join(prefix, "conda-meta"))
    with open(os.path.join(prefix, MARKER), "w") as f:
        json.dump({"name": name, "env": ["fake"], "channels": []}, f)
    when = time.time() - hours * 3600
    os.utime(prefix, (when, when))
    return prefix


def test_remove_if_unused_for_from_condarc_and_variable(ce, tmp_path):
    fake_env(ce.env_dir, "a" * 20, 3)
    home = ce.env["HOME"]
    env = dict(ce.env)

    def would_remove():
        proc = ce.run("--gc", "--dry-run", env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.count("would remove")

    assert would_remove() == 0  # default 25 h
    rc(os.path.join(home, ".condarc"), "  remove-if-unused-for: 2.5")
    assert would_remove() == 1
    env["CONDA_EXECUTE_REMOVE_IF_UNUSED_FOR"] = "4"
    assert would_remove() == 0
    env["CONDA_EXECUTE_REMOVE_IF_UNUSED_FOR"] = "1"
    assert would_remove() == 1
    assert ce.run("--gc", env=env).stdout == f"removed: {'a' * 20} fake\n"


@pytest.mark.parametrize("settings, line", [
    ("  env-dir: [a, b]", 15),
    ("  unknown-key: 1", 15),
    ("  env-dir: 'unclosed", 15),
    ("  remove-if-unused-for: soon", 15),
])
def test_malformed_condarc_section(ce, tmp_path, settings, line):
    script = write(tmp_path / "s.py", PY)
    path = rc(os.path.join(ce.env["HOME"], ".condarc"), settings)
    with open(path) as f:
        assert f.read().splitlines()[line - 1] == settings
    for args in ((script,), ("--list",)):
        proc = ce.run(*args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith(f"{path}:{line}: ") and len(proc.stderr.splitlines()) == 1


def test_condarc_scalar_section_is_an_error(ce, tmp_path):
    path = os.path.join(ce.env["HOME"], ".condarc")
    with open(path, "w") as f:
        f.write("channels: [defaults]\nconda-execute: yes\n")
    proc = ce.run("--list")
    assert proc.returncode == 2 and proc.stderr.startswith(f"{path}:2: ")


def test_gc_creates_no_lock_files(ce):
    """A missing lock file is held by no one: GC (dry or not) leaves none behind."""
    free, busy = fake_env(ce.env_dir, "a" * 20, 30), fake_env(ce.env_dir, "b" * 20, 30)
    held = os.open(busy + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_SH)  # as a running script holds it
        before = sorted(os.listdir(ce.env_dir))
        proc = ce.run("--gc", "--dry-run")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"would remove: {'a' * 20} fake\nin use, kept: {'b' * 20}\n"
        assert sorted(os.listdir(ce.env_dir)) == before
        proc = ce.run("--gc")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"removed: {'a' * 20} fake\nin use, kept: {'b' * 20}\n"
        assert not os.path.exists(free) and not os.path.exists(free + ".lock")
        assert os.path.isdir(busy) and os.path.exists(busy + ".lock")
    finally:
        os.close(held)


###############################################################################
# Review fixes: errors that escaped, bad --conda, quoting, -c flags, GC and locks #
###############################################################################


def one_line_error(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


def test_lock_file_that_cannot_be_written_is_one_line(ce, tmp_path):
    script = write(tmp_path / "s.py", PY)
    os.mkdir(script + ".conda-lock")  # the lock file's name is taken by a directory
    err = one_line_error(ce.run("-q", "--lock", "--upgrade", script), 2)
    assert err.startswith(f"{script}: cannot write {script}.conda-lock: "), err
    assert not [e for e in os.listdir(tmp_path) if e.endswith(".tmp")]  # no temp file left


def test_pip_pins_errors_are_usage_errors(tmp_path):
    bindir = tmp_path / "bin"
    with pytest.raises(conda_execute.UsageError, match="pip inspect"):
        conda_execute.pip_pins(str(tmp_path))  # no python at all: OSError from the start
    bindir.mkdir()
    write(bindir / "python", """
        #!/bin/sh
        echo '{"installed": [{"installer": "pip"}, 3]}'
    """, 0o755)
    with pytest.raises(conda_execute.UsageError, match="pip inspect"):
        conda_execute.pip_pins(str(tmp_path))  # no metadata: KeyError


def test_deeply_nested_toml_is_a_usage_error(shared, tmp_path):
    script = tmp_path / "deep.py"
    script.write_text("# /// script\n# x = " + "[" * 3000 + "\n# ///\nprint(1)\n")
    err = one_line_error(shared.tool.run(str(script)), 2)
    assert err.startswith(f"{script}:2: invalid TOML") and "nested too deeply" in err, err


def test_fork_failure_skips_background_gc(tmp_path, monkeypatch):
    forks = []

    def no_fork():
        forks.append(1)
        raise BlockingIOError(11, "Resource temporarily unavailable")

    cfg = conda_execute.load_config(str(tmp_path))
    d = conda_execute.open_env_dir(cfg)
    stamp = os.path.join(d.path, conda_execute.GC_STAMP)
    open(stamp, "w").close()
    two_h = time.time() - 7200  # a stale stamp: this run is the one that collects
    os.utime(stamp, (two_h, two_h))
    monkeypatch.setattr(os, "fork", no_fork)
    conda_execute.maybe_collect_in_background(d, 1.0)  # no exception: GC is just skipped
    assert forks == [1], "the collector was never forked: the test proves nothing"
    assert os.stat(stamp).st_mtime > two_h  # the next try is an hour away, not the next run


@pytest.mark.parametrize("how", ["option", "variable"])
def test_bad_conda_given_is_an_error_when_creating(ce, tmp_path, how):
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\necho hi\n")
    bad = str(tmp_path / "no-such-conda")
    args, env = (["--conda", bad], ce.env) if how == "option" else \
        ([], dict(ce.env, CONDA_EXECUTE_CONDA=bad))
    err = one_line_error(ce.run(*args, script, env=env), 69)
    assert bad in err, err
    plain = write(tmp_path / "plain", "not executable\n")
    args, env = (["--conda", plain], ce.env) if how == "option" else \
        ([], dict(ce.env, CONDA_EXECUTE_CONDA=plain))
    err = one_line_error(ce.run(*args, script, env=env), 69)
    assert plain in err, err
    assert not [e for e in os.listdir(ce.env_dir) if len(e) == 20]  # nothing created


def test_activate_d_in_an_env_dir_with_shell_characters(ce, tmp_path):
    weird = tmp_path / 'we"ird $HOME `echo x` \\ dir'
    weird.mkdir()
    env_dir = str(weird / "envs")
    script = write(tmp_path / "a.sh", """
        # conda execute
        # env: [activator]
        echo "ACTIVATOR_VAR=$ACTIVATOR_VAR"
        echo "CONDA_PREFIX=$CONDA_PREFIX"
    """)
    env = dict(ce.env, CONDA_EXECUTE_ENV_DIR=env_dir)
    proc = ce.run(script, env=env)
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert values["CONDA_PREFIX"] == ce.prefix_of(script, env=env) and '"' in env_dir, values
    assert values["ACTIVATOR_VAR"] and values["CONDA_PREFIX"] in values["ACTIVATOR_VAR"]


def test_inline_code_flag_follows_the_interpreter_not_its_last_option(shared, tmp_path):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    write(fake / "node", """
        #!/bin/sh
        printf '%s|' "$@"
    """, 0o755)
    env = dict(shared.tool.env, PATH=f"{fake}{os.pathsep}{shared.tool.env['PATH']}")
    code = "# conda execute\n# env: [python]\n# run_with: [node, --no-warnings]\nx"
    proc = shared.tool.run("-c", code, "a1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("|") == ["--no-warnings", "-e", code, "a1", ""]
    code = "# conda execute\n# env: [python]\n# run_with: [/usr/bin/env, -S, node, --x]\nx"
    proc = shared.tool.run("-c", code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("|") == ["--x", "-e", code, ""]


def test_gc_keeps_an_env_created_less_than_a_minute_ago(ce, tmp_path):
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\necho hi\n")
    prefix = ce.run("--prefix", script).stdout.strip()
    name = os.path.basename(prefix)
    gc = ce.run("--gc", "--older-than", "0")
    assert gc.returncode == 0, gc.stderr
    assert gc.stdout == f"created less than a minute ago, kept: {name}\n"
    assert os.path.isfile(os.path.join(prefix, MARKER))
    age_env(ce.env_dir, name, 1)
    gc = ce.run("--gc", "--older-than", "0")
    assert gc.stdout == f"removed: {name} mylib\n" and not os.path.exists(prefix)


PEP723_PIP = """
    # /// script
    # dependencies = ["somepkg"]
    # ///
    print("hi")
"""


def test_pip_step_that_cannot_start_exits_70_and_keeps_nothing(ce, conda_root, tmp_path):
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    write(wrap / "conda", f"""
        #!/bin/sh
        "{conda_root.conda}" "$@" || exit $?
        if [ "$1" = create ]; then rm -f "$3/bin/python"*; fi
    """, 0o755)
    script = write(tmp_path / "p.py", PEP723_PIP)
    prefix = ce.prefix_of(script)
    proc = ce.run("--conda", str(wrap / "conda"), script)
    err = proc.stderr
    assert proc.returncode == 70 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("conda-execute: error: cannot run "), err
    assert not os.path.exists(prefix) and not [
        e for e in os.listdir(ce.env_dir) if e.startswith(".trash-")]


@pytest.mark.parametrize("how", ["fails_after_linking", "killed_after_linking"])
def test_conda_that_fails_after_linking_leaves_nothing_half_made(ce, conda_root, tmp_path, how):
    """conda usually removes its own failed prefix; micromamba does not roll back a transaction
    that fails after linking, and a killed conda cleans nothing: the prefix is ours to remove."""
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    fail = "exit 1" if how == "fails_after_linking" else "kill -KILL $$"
    write(wrap / "conda", f"""
        #!/bin/sh
        "{conda_root.conda}" "$@" || exit $?
        if [ "$1" = create ]; then {fail}; fi
    """, 0o755)
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\necho hi\n")
    prefix = ce.prefix_of(script)
    proc = ce.run("--conda", str(wrap / "conda"), script)
    assert proc.returncode == 70 and proc.stdout == "", proc.stderr
    code = 1 if how == "fails_after_linking" else -signal.SIGKILL
    assert proc.stderr.splitlines()[-1].startswith(
        f"{script}:1: could not create environment ") and f"exited with {code}" in proc.stderr
    assert len(conda_root.calls("create")) == 1  # the stand-in did link the packages
    assert not os.path.lexists(prefix), os.listdir(prefix)
    assert not [e for e in os.listdir(ce.env_dir) if e.startswith(".trash-")]
    proc = ce.run(script)  # and the next run starts afresh
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr
    assert "incomplete" not in proc.stderr


def _blocked_on_a_lock(pid):
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[5] == str(pid) for line in f)


def test_quiet_hides_the_waiting_message(ce, tmp_path):
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\necho hi\n")
    name = os.path.basename(ce.prefix_of(script))
    held = os.open(os.path.join(ce.env_dir, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_SH)  # as a script starting on the env holds it
        proc = subprocess.Popen(ce.cmd("-q", script), env=ce.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_until(lambda: _blocked_on_a_lock(proc.pid) or proc.poll() is not None,
                   "conda-execute to wait for the lock")
        assert proc.poll() is None
    finally:
        os.close(held)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, "hi\n", "")


def test_flags_that_do_not_belong_are_refused(shared, tmp_path):
    script = write(tmp_path / "s.py", PY)
    for manage in ("--list", "--gc"):
        for flag in ("--upgrade", "--locked", "--force-env", "--prefix", "--lock"):
            err = one_line_error(shared.tool.run(manage, flag), 2)
            assert flag in err and manage in err, err
    for flag in (("--older-than", "1"), ("--dry-run",)):
        err = one_line_error(shared.tool.run("--list", *flag), 2)
        assert flag[0] in err
    err = one_line_error(shared.tool.run("--lock", "--upgrade", "--locked", script), 2)
    assert "--locked" in err and "--upgrade" in err
    usage = shared.tool.run("--help").stdout
    assert "--lock [--upgrade] [--embed] [--platform SUBDIR...] SCRIPT" in usage and "-e for perl" in usage


def test_url_with_a_query_string_still_gets_its_runner_from_the_extension(shared, tmp_path):
    write(tmp_path / "remote.sh", """
        # conda execute
        # env: [tool]
        echo "shell: $0 $1"; tool
    """)

    with serving(tmp_path) as base:
        proc = shared.tool.run(f"{base}/remote.sh?raw=1", "x")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("shell: /dev/fd/") and proc.stdout.endswith(" x\ntool 2.0\n")


# ------------------------------------------------------------------ issue 17, item 8


def test_bad_env_var_from_the_environment_is_one_line(ce, tmp_path):
    """execve refuses these: a traceback before; now FILE: message, exit 70, nothing runs."""
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\necho ran\n")
    assert ce.run(script).stdout == "ran\n"
    prefix = ce.prefix_of(script)
    pkg = os.path.join(prefix, "etc", "conda", "env_vars.d", "bad.json")
    state = os.path.join(prefix, "conda-meta", "state")
    os.makedirs(os.path.dirname(pkg), exist_ok=True)
    for path, wrap in ((pkg, lambda d: d), (state, lambda d: {"env_vars": d})):
        for name, value in (("A=B", "x"), ("NUL", "a\0b"), ("", "x"), ("LONE", "\ud800")):
            with open(path, "w") as f:
                json.dump(wrap({"GOOD": "1", name: value}), f)
            err = one_line_error(ce.run(script), 70)
            assert err.startswith(f"{path}: environment variable {name!r} cannot be set"), err
        os.unlink(path)
    assert ce.run(script).stdout == "ran\n"


def test_unset_marker_masks_a_package_value_and_keeps_an_inherited_one(ce, tmp_path):
    """'***unset***' (conda env config vars unset) as conda's activate reads it
    (conda/activate.py _build_activate_stack; test_build_activate_dont_activate_unset_var):
    the variable is left out of what activation exports, so a package's value is masked, and
    a value the caller already has is neither exported nor unset: it stays."""
    script = write(tmp_path / "s.sh", "# conda execute\n# env: [mylib]\n"
                   'echo "PKG=${PKG-unset} MINE=${MINE-unset}"\n')
    assert ce.run(script).returncode == 0
    prefix = ce.prefix_of(script)
    os.makedirs(os.path.join(prefix, "etc", "conda", "env_vars.d"), exist_ok=True)
    with open(os.path.join(prefix, "etc", "conda", "env_vars.d", "p.json"), "w") as f:
        json.dump({"PKG": "from-package", "MINE": "from-package"}, f)
    with open(os.path.join(prefix, "conda-meta", "state"), "w") as f:
        json.dump({"env_vars": {"PKG": "***unset***", "MINE": "***unset***"}}, f)
    proc = ce.run(script, env=dict(ce.env, MINE="inherited"))
    assert proc.stdout == "PKG=unset MINE=inherited\n", proc.stderr


def test_list_shows_control_characters_escaped(ce, tmp_path):
    """Markers and the log are files others may write (a shared env dir): --list printed
    their bytes raw (terminal escapes), and a marker's non-list env was a traceback."""
    script = write(tmp_path / "s\x1b[2J\x07.sh", "# conda execute\n# env: [mylib]\necho ran\n")
    assert ce.run(script).stdout == "ran\n"
    platform_dir = os.path.dirname(ce.prefix_of(script))  # ENV_DIR/PLATFORM
    planted = os.path.join(platform_dir, "0123456789abcdef0123")
    os.makedirs(os.path.join(planted, "conda-meta"))
    with open(os.path.join(planted, MARKER), "w") as f:
        json.dump({"env": ["x\x1b]0;title\x07", 3], "channels": "c\x9b31m", "size": 1}, f)
    with open(os.path.join(platform_dir, "usage.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.time(), "env": "0123456789abcdef0123",
                            "script": "/tmp/evil\n\rfake row"}) + "\n")
    proc = ce.run("--list")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert not set(proc.stdout) & (set(map(chr, range(32))) - {"\n"} | set(map(chr, range(127, 160))))
    rows = proc.stdout.splitlines()
    assert len(rows) == 3, rows
    assert any(r.endswith(str(tmp_path) + "/s\\x1b[2J\\x07.sh") for r in rows), rows
    assert any("x\\x1b]0;title\\x07 3  [c\\x9b31m]" in r and r.endswith("/tmp/evil\\x0a\\x0dfake row")
               for r in rows), rows


@pytest.mark.parametrize("entry", ["", ".", "bin"])
def test_a_relative_path_entry_never_finds_the_package_manager(pyz, isolated_env, tmp_path, entry):
    """PATH=':/usr/bin' made ./conda (in whatever dir the user stood) the package manager."""
    work = tmp_path / "work"
    (work / "bin").mkdir(parents=True)
    canary = tmp_path / "canary"
    for d in (work, work / "bin"):
        write(d / "conda", f"#!/bin/sh\ntouch {canary}\nexit 1\n", mode=0o755)
    write(work / "s.py", PY)
    env = dict(isolated_env, PATH=entry + os.pathsep + isolated_env["PATH"])
    proc = subprocess.run([sys.executable, pyz, "s.py"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=120)
    one_line_error(proc, 69)
    assert not canary.exists()
