"""Reliability and shared-machine guarantees, proven with real processes and reported figures.

Races (N parallel first runs), SIGKILL at points of a create, GC racing running scripts,
--force-env on a busy env, usage-log robustness and concurrency, SIGINT/SIGTERM during a
create, private dirs, refused shared env dirs, read-only and full file systems.

Pause points inside a create come from a fault-injecting wrapper around the stand-in conda
(``FAULT_AT``): it signals readiness by writing a file and then blocks reading a FIFO that
nobody writes, so no test sleeps to synchronise. Figures are printed (``pytest -s``) and put
into assertion messages.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import in_ci

import conda_execute as ce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = 65534
PLATFORM = ce.conda_platform()


def figure(text):
    """Print a figure of a test (visible with pytest -s) and return it for assert messages."""
    print(f"\nFIGURE {text}")
    return text


def write(path, text, mode=0o644):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    path.chmod(mode)
    return str(path)


def wait_for(predicate, what, proc=None, seconds=60.0):
    """Poll (with a deadline) until PREDICATE() holds: readiness, never a sleep as sync."""
    start = time.monotonic()
    while not predicate():
        if proc is not None:
            assert proc.poll() is None, f"process ended early waiting for {what}"
        assert time.monotonic() - start < seconds, f"timed out waiting for {what}"
        time.sleep(0.002)


def gone(pid):
    return not os.path.exists(f"/proc/{pid}")


def group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def no_traceback(proc):
    text = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert "Traceback" not in text, text
    return text


WRAPPER = r"""#!/bin/sh
# Fault injection around the stand-in conda, for `create` only (FAULT_AT, FAULT_DIR):
#  before: pause before the real conda starts     during: real create done, bin/ removed, pause
#  hold:   real create done, pause (a write to the FIFO releases it with exit 0)
#  after:  real create done, conda-execute (the parent) stopped with SIGSTOP, exit 0: it never
#          writes the marker (the prefix is whole, the marker missing)
#  fill:   real create done, then fill the file system, exit 0
real="@REAL@"
[ "$1" = create ] || exec "$real" "$@"
prefix=$3
ready() { echo $$ > "$FAULT_DIR/ready.tmp" && mv "$FAULT_DIR/ready.tmp" "$FAULT_DIR/ready"; }
case "$FAULT_AT" in
before) ready; exec cat "$FAULT_DIR/fifo" ;;
during) "$real" "$@" || exit $?; rm -rf "$prefix/bin"; ready; exec cat "$FAULT_DIR/fifo" ;;
hold) "$real" "$@" || exit $?; ready; exec cat "$FAULT_DIR/fifo" ;;
after) "$real" "$@" || exit $?; kill -STOP $PPID; ready; exit 0 ;;
fill) "$real" "$@" || exit $?; cat /dev/zero > "$prefix/filler" 2>/dev/null; exit 0 ;;
esac
exec "$real" "$@"
"""


class Tool:
    """conda-execute (the pyz) with a fault-injecting conda and its own env dir."""

    def __init__(self, pyz, conda_root, env, tmp_path):
        self.conda_root, self.tmp = conda_root, tmp_path
        self.root_dir = str(tmp_path / "envs")  # CONDA_EXECUTE_ENV_DIR; envs in its PLATFORM/
        self.env_dir = os.path.join(self.root_dir, PLATFORM)
        self.fault_dir = tmp_path / "fault"
        self.fault_dir.mkdir()
        os.mkfifo(self.fault_dir / "fifo")
        wrapbin = tmp_path / "wrapbin"
        wrapbin.mkdir()
        self.conda = wrapbin / "conda"
        self.conda.write_text(WRAPPER.replace("@REAL@", str(conda_root.conda)))
        self.conda.chmod(0o755)
        self.env = dict(env, CONDA_EXECUTE_ENV_DIR=self.root_dir, CONDA_EXECUTE_CONDA=str(
            self.conda), FAULT_DIR=str(self.fault_dir), FAULT_AT="")
        self.argv0 = [sys.executable, pyz]

    def cmd(self, *args):
        return [*self.argv0, *args]

    def run(self, *args, fault="", timeout=120, env=None, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.cmd(*args), env=dict(env or self.env, FAULT_AT=fault),
                              timeout=timeout, **kw)

    def start(self, *args, fault="", **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.cmd(*args), env=dict(self.env, FAULT_AT=fault), text=True,
                                start_new_session=True, **kw)

    def creates(self):
        return len(self.conda_root.calls("create"))

    def wait_paused(self, proc):
        """Wait for the wrapper's readiness file; return the pausing process's pid."""
        ready = self.fault_dir / "ready"
        wait_for(ready.exists, "the create to pause", proc)
        pid = int(ready.read_text())
        ready.unlink()
        return pid

    def release(self):
        """Let a paused wrapper ('before'/'during'/'hold') go on: EOF on its FIFO."""
        with open(self.fault_dir / "fifo", "w"):
            pass

    def entries(self):
        return sorted(os.listdir(self.env_dir)) if os.path.isdir(self.env_dir) else []


@pytest.fixture
def tool(pyz, conda_root, isolated_env, tmp_path):
    return Tool(pyz, conda_root, isolated_env, tmp_path)


EXIT3 = """
    # conda execute
    # env: [python]
    import sys
    print(sys.prefix)
    sys.exit(3)
"""

# A script that signals readiness, waits for EOF on stdin, and exits 0 only if its environment
# is still whole (prefix, interpreter and completion marker).
HOLDER = """
    # conda execute
    # env: [python]
    import os, sys
    open(sys.argv[1] + ".tmp", "w").close()
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    sys.stdin.read()
    marker = os.path.join(sys.prefix, @MARKER@)
    ok = os.path.isfile(marker) and os.path.isfile(sys.executable) and os.path.isdir(sys.prefix)
    print("env intact" if ok else "env GONE", flush=True)
    sys.exit(0 if ok else 1)
""".replace("@MARKER@", repr(ce.MARKER))


def start_holder(tool, script, ready):
    proc = tool.start(script, str(ready), stdin=subprocess.PIPE)
    wait_for(ready.exists, "the holder script", proc)
    return proc


def finish_holder(proc):
    out, err = proc.communicate("", timeout=60)
    assert proc.returncode == 0 and out == "env intact\n", (out, err)


# ------------------------------------------------------------------ concurrency and crashes


@pytest.mark.parametrize("n", [8, 16])
def test_parallel_first_runs_create_once(tool, tmp_path, n):
    script = write(tmp_path / "s.py", EXIT3)
    procs = [tool.start(script) for _ in range(n)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = [r[0] for r in results]
    prefixes = {r[1] for r in results}
    creating = sum("creating environment" in r[2] for r in results)
    waited = sum("waiting for another" in r[2] for r in results)
    fig = figure(f"racers={n} creates={tool.creates()} exit_codes={sorted(set(codes))} "
                 f"creating_msgs={creating} waited={waited}")
    assert tool.creates() == 1, fig
    assert codes == [3] * n, (fig, [r[2] for r in results])
    assert len(prefixes) == 1 and creating == 1, fig


@pytest.mark.parametrize("point", ["before", "during", "after"])
def test_sigkill_during_create_leaves_nothing_trusted(tool, tmp_path, point):
    script = write(tmp_path / "s.py", EXIT3)
    proc = tool.start(script, fault=point)
    tool.wait_paused(proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    wait_for(lambda: group_gone(proc.pid), "the process group to die")
    assert proc.returncode == -signal.SIGKILL
    names = [e for e in tool.entries() if len(e) == 20]
    for name in names:  # whatever was left is not marked complete
        assert not os.path.exists(os.path.join(tool.env_dir, name, ce.MARKER))
    before = tool.creates()
    again = tool.run(script)  # no stale lock may block it (the run has a timeout)
    fig = figure(f"kill_point={point} leftover_prefix={bool(names)} creates_before={before} "
                 f"creates_after={tool.creates()} next_exit={again.returncode}")
    assert again.returncode == 3, (fig, again.stderr)
    assert tool.creates() == before + 1, fig
    if names:
        assert "removing incomplete environment" in again.stderr, again.stderr
    assert os.path.isfile(os.path.join(again.stdout.strip(), ce.MARKER))
    assert not [e for e in tool.entries() if e.startswith(".trash-")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_create_stops_conda_and_removes_prefix(tool, tmp_path, signum):
    script = write(tmp_path / "s.py", EXIT3)
    proc = tool.start(script, fault="hold")
    child = tool.wait_paused(proc)
    name = next(e for e in tool.entries() if len(e) == 20)
    assert os.path.isdir(os.path.join(tool.env_dir, name, "conda-meta"))  # half-made prefix
    proc.send_signal(signum)  # to conda-execute only, as a terminal or a job scheduler would
    out, err = proc.communicate(timeout=60)
    fig = figure(f"signal={signum.name} exit={proc.returncode} child_gone={gone(child)} "
                 f"entries={tool.entries()}")
    assert proc.returncode == 128 + signum, (fig, err)
    assert gone(child), fig
    assert tool.entries() == [name + ".create.lock", name + ".lock"], fig  # no prefix, trash
    lines = err.rstrip("\n").split("\n")
    assert lines[-1] == ("conda-execute: error: interrupted while creating the environment; "
                         "nothing was kept"), err
    assert "Traceback" not in err and out == ""
    again = tool.run(script)
    assert again.returncode == 3 and tool.creates() == 2, again.stderr


def _age_envs(env_dir):
    """Make every env look created an hour ago (GC keeps envs created < 1 min ago)."""
    old = time.time() - 3600
    for name in os.listdir(env_dir) if os.path.isdir(env_dir) else []:
        marker = os.path.join(env_dir, name, ce.MARKER)
        try:  # (an env that a racing GC removes meanwhile needs no ageing)
            if len(name) == 20 and os.path.exists(marker):
                with open(marker) as f:
                    rec = json.load(f)
                rec["created"] = old
                with open(marker, "w") as f:
                    json.dump(rec, f)
            if len(name) == 20:
                os.utime(os.path.join(env_dir, name), (old, old))
        except FileNotFoundError:
            pass


def test_gc_racing_running_scripts(tool, tmp_path):
    """100 iterations: a run starts while --gc --older-than 0 runs; then GC while it runs."""
    iterations = int(os.environ.get("CE_GC_RACE_ITERATIONS", "100"))
    assert iterations >= 100 or not in_ci(), "CE_GC_RACE_ITERATIONS may not cut the race in CI"
    script = write(tmp_path / "h.py", HOLDER)
    removed_idle = kept_in_use = 0
    lost = []
    for i in range(iterations):
        _age_envs(tool.env_dir)
        ready = tmp_path / f"ready{i}"
        run = tool.start(script, str(ready), stdin=subprocess.PIPE)
        gc1 = tool.run("--gc", "--older-than", "0")  # races the run's start
        assert gc1.returncode == 0, gc1.stderr
        removed_idle += "removed:" in gc1.stdout
        wait_for(ready.exists, "the script", run)
        _age_envs(tool.env_dir)
        gc2 = tool.run("--gc", "--older-than", "0")  # the env is in use now
        assert gc2.returncode == 0, gc2.stderr
        kept_in_use += "in use, kept" in gc2.stdout
        out, err = run.communicate("", timeout=60)
        if (run.returncode, out) != (0, "env intact\n"):
            lost.append((i, run.returncode, out, err[-500:]))
    fig = figure(f"gc_race iterations={iterations} lost_in_use={len(lost)} "
                 f"kept_in_use={kept_in_use} removed_while_idle={removed_idle} "
                 f"creates={tool.creates()}")
    assert not lost and kept_in_use == iterations, (fig, lost[:3])
    assert tool.creates() == removed_idle + 1, fig


def test_gc_never_collects_an_env_being_created(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    proc = tool.start(script, fault="hold")
    tool.wait_paused(proc)
    name = next(e for e in tool.entries() if len(e) == 20)
    _age_envs(tool.env_dir)
    for _ in range(3):
        gc = tool.run("--gc", "--older-than", "0")
        assert gc.returncode == 0 and f"in use, kept: {name}" in gc.stdout, gc.stdout
        assert os.path.isdir(os.path.join(tool.env_dir, name, "conda-meta"))
    tool.release()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert tool.creates() == 1


def test_force_env_refuses_while_a_script_runs(tool, tmp_path):
    script = write(tmp_path / "h.py", HOLDER)
    holder = start_holder(tool, script, tmp_path / "ready")
    forced = tool.run("--force-env", script, str(tmp_path / "other"), input="")
    fig = figure(f"force_env_busy exit={forced.returncode} creates={tool.creates()}")
    assert forced.returncode == 75, (fig, forced.stderr)
    assert forced.stderr.count("\n") == 1 and "in use by a running script" in forced.stderr
    no_traceback(forced)
    finish_holder(holder)
    assert tool.creates() == 1
    forced = tool.run("-f", script, str(tmp_path / "r2"), input="")  # idle: recreated
    assert forced.returncode == 0 and tool.creates() == 2, forced.stderr


# ------------------------------------------------------------------ the usage log


def test_usage_log_survives_torn_and_garbage_lines(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    assert tool.run(script).returncode == 3
    name = next(e for e in tool.entries() if len(e) == 20)
    log = os.path.join(tool.env_dir, "usage.jsonl")
    now = str(time.time()).encode()
    fakes = ["0123456789abcdef0123", "0123456789abcdef0124"]  # existing dirs, odd records
    for fake in fakes:
        os.mkdir(os.path.join(tool.env_dir, fake))
    garbage = [
        b"not json at all", b"\xff\xfe\x00binary\x00", b"[1, 2]", b'"just a string"', b"null",
        b"{}", b'{"env": 5, "time": 1}', b'{"env": "x", "time": "soon"}',
        b'{"env": "' + fakes[0].encode() + b'", "time": ' + now + b', "pid": "x", "script": 7}',
        b'{"env": "' + fakes[1].encode() + b'", "time": ' + now + b', "pid": true}',
        b'{"env": "' + name.encode() + b'", "time": 2.0, "pid": [1]}',
        b'{"env": ["a"], "time": 3}', b"[" * 100000 + b"]" * 100000, b"{" * 50000,
        b'{"time": 1e999, "env": "' + name.encode() + b'"}', b'{"time": NaN, "env": "nan"}',
        b'{"time": 5, "env": "\\ud800"}', b'{"time": 5, "env": ".."}',
    ]
    with open(log, "ab") as f:
        f.write(b"\n".join(garbage) + b"\n")
        f.write(b'{"time": 1700000000.0, "env": "' + name.encode() + b'", "scr')  # torn: no \n
    script = str(shutil.copy(script, tmp_path / "s2.py"))  # same env, another script path
    used = tool.run(script)  # appends right after the torn line
    assert used.returncode == 3, used.stderr
    listing = tool.run("--list")
    no_traceback(listing)
    assert listing.returncode == 0 and name in listing.stdout, listing.stdout
    assert script in listing.stdout, listing.stdout  # the line after the torn one survived
    gc = tool.run("--gc", "--older-than", "1000")
    no_traceback(gc)
    assert gc.returncode == 0 and os.path.isdir(os.path.join(tool.env_dir, name))
    with open(log, "rb") as f:
        lines = f.read().splitlines()
    records = [json.loads(line) for line in lines]  # compacted: every line valid
    fig = figure(f"log garbage_lines={len(garbage) + 1} after_compaction={len(records)}")
    assert sorted(r["env"] for r in records) == sorted([name, *fakes]), fig
    assert {r["env"]: r["script"] for r in records}[name] == script


APPENDER = """
import os, sys, conda_execute as ce
env_dir, worker, count, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
d = ce.EnvDir(env_dir, os.open(env_dir, os.O_RDONLY), "")
for i in range(count):
    name = f"{worker:04x}{i:016x}"
    ce.record_use(d, ce.Env(name, "", ""), f"{worker}-{i}-" + "x" * width)
"""

COMPACTOR = """
import os, sys, conda_execute as ce
env_dir, started, done = sys.argv[1:4]
n = 0
d = ce.EnvDir(env_dir, os.open(env_dir, os.O_RDONLY), "")
while not os.path.exists(done):
    ce.compact_log(d)
    n += 1
    if n == 1:
        open(started, "w").close()
print(n)
"""


def _py(code, *args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, **kw)


def _log_records(env_dir):
    with open(os.path.join(env_dir, "usage.jsonl"), "rb") as f:
        return [json.loads(line) for line in f.read().splitlines()]


def test_sixteen_concurrent_appenders_lose_no_line(tmp_path):
    env_dir, workers, count = tmp_path / "envs", 16, 250
    env_dir.mkdir(mode=0o700)
    procs = [_py(APPENDER, env_dir, w, count, 6000) for w in range(workers)]  # > PIPE_BUF
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    records = _log_records(env_dir)
    seen = {r["script"].split("-x")[0] for r in records}
    fig = figure(f"appenders={workers} appends_each={count} lines={len(records)} "
                 f"unique={len(seen)} expected={workers * count}")
    assert len(records) == workers * count and len(seen) == workers * count, fig
    assert oct(os.stat(env_dir / "usage.jsonl").st_mode & 0o777) == "0o600"


def test_compaction_during_appends_loses_no_line(tmp_path):
    env_dir, workers, count = tmp_path / "envs", 8, 250
    env_dir.mkdir(mode=0o700)
    for w in range(workers):  # compaction keeps lines of existing envs only
        for i in range(count):
            (env_dir / f"{w:04x}{i:016x}").mkdir()
    (env_dir / "usage.jsonl").write_text("")
    started, done = tmp_path / "started", tmp_path / "done"
    compactor = _py(COMPACTOR, env_dir, started, done, stdout=subprocess.PIPE, text=True)
    wait_for(started.exists, "the compactor", compactor)
    procs = [_py(APPENDER, env_dir, w, count, 50) for w in range(workers)]
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    done.touch()
    compactions = int(compactor.communicate(timeout=60)[0])
    names = {r["env"] for r in _log_records(env_dir)}
    fig = figure(f"appenders={workers} appends_each={count} compactions={compactions} "
                 f"names_kept={len(names)} expected={workers * count}")
    assert compactions >= 2, fig
    assert len(names) == workers * count, fig


# ------------------------------------------------------------------ shared machines


def test_env_dir_and_log_are_private_even_with_umask_0(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    proc = tool.run(script, preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 3, proc.stderr
    modes = {name: oct(os.stat(os.path.join(tool.env_dir, name)).st_mode & 0o777)
             for name in ["..", "", "usage.jsonl", ".gc-stamp",
                          *[e for e in tool.entries() if e.endswith(".lock")]]}
    figure(f"modes {modes}")
    assert modes.pop("..") == modes.pop("") == "0o700"
    assert set(modes.values()) == {"0o600"}, modes


@pytest.mark.parametrize("how", ["0777", "0770", "0707", "1777", "chown"])
def test_env_dir_others_can_write_is_refused(tool, tmp_path, how):
    script = write(tmp_path / "s.py", EXIT3)
    os.mkdir(tool.root_dir, 0o700)
    if how == "chown":
        os.chown(tool.root_dir, NOBODY, NOBODY)
    else:
        os.chmod(tool.root_dir, int(how, 8))
    proc = tool.run(script)
    err = no_traceback(proc)
    assert proc.returncode == 73, err
    assert err.count("\n") == 1 and err.startswith(tool.root_dir + ": "), err
    assert ("belongs to another user" if how == "chown" else "writable by other users") in err
    assert "--allow-shared-env-dir" in err
    assert tool.conda_root.calls() == [] and tool.entries() == []


def test_shared_env_dir_opt_ins(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    os.mkdir(tool.root_dir, 0o777)
    os.chmod(tool.root_dir, 0o777)
    os.chown(tool.root_dir, NOBODY, NOBODY)
    assert tool.run(script).returncode == 73
    assert tool.run("--allow-shared-env-dir", script).returncode == 3
    env = dict(tool.env, CONDA_EXECUTE_ALLOW_SHARED_ENV_DIR="1")
    assert tool.run(script, env=env).returncode == 3
    rc = tmp_path / "rc.yml"
    rc.write_text("channels: [defaults]\nconda-execute:\n  allow-shared-env-dir: true\n")
    assert tool.run(script, env=dict(tool.env, CONDARC=str(rc))).returncode == 3
    rc.write_text("conda-execute: {allow-shared-env-dir: false}\n")
    assert tool.run(script, env=dict(tool.env, CONDARC=str(rc))).returncode == 73
    assert tool.creates() == 1


def _in_mount_ns(setup, tool, *args, fault="", env=None):
    """Run the tool in a private mount namespace after SETUP (sh); then list the env dir."""
    sh = (f"set -e; {setup}; set +e; \"$@\"; rc=$?; echo \"ENTRIES: $(ls -A '{tool.env_dir}' "
          "2>&1 | tr '\\n' ' ')\"; exit $rc")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", sh,
                           "sh", *tool.cmd(*args)], env=dict(env or tool.env, FAULT_AT=fault),
                          capture_output=True, text=True, timeout=120)


def _entries(proc):
    return proc.stdout.rpartition("ENTRIES: ")[2].split()


def test_read_only_env_dir_is_a_clear_error(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    os.makedirs(tool.env_dir, 0o700)
    ro = f"mount --bind '{tool.env_dir}' '{tool.env_dir}'; " \
         f"mount -o remount,ro,bind '{tool.env_dir}'"
    proc = _in_mount_ns(ro, tool, script)
    err = no_traceback(proc)
    figure(f"read_only exit={proc.returncode} stderr={err.strip()!r}")
    assert proc.returncode == 73 and err.count("\n") == 1, err
    assert "Read-only file system" in err and tool.env_dir in err
    assert tool.conda_root.calls() == []
    parent = tmp_path / "ro-parent"  # the env dir cannot even be created
    parent.mkdir()
    env = dict(tool.env, CONDA_EXECUTE_ENV_DIR=str(parent / "envs"))
    proc = _in_mount_ns(f"mount --bind '{parent}' '{parent}'; mount -o remount,ro,bind "
                        f"'{parent}'", tool, script, env=env)
    err = no_traceback(proc)
    assert proc.returncode == 73 and "cannot create the env dir" in err, err



def test_env_dir_without_permission_is_a_clear_error(pyz, conda_root, isolated_env, public_dir):
    shutil.copy(pyz, os.path.join(public_dir, "ce.pyz"))
    script = os.path.join(public_dir, "s.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent(EXIT3))
    os.chmod(script, 0o644)
    mine = os.path.join(public_dir, "mine")  # nobody's own env dir, but read-only to it
    os.mkdir(mine, 0o500)
    os.chown(mine, NOBODY, NOBODY)
    closed = os.path.join(public_dir, "closed")  # root's private dir: nobody cannot enter
    os.mkdir(closed, 0o700)
    home = os.path.join(public_dir, "home")
    os.mkdir(home)
    os.chown(home, NOBODY, NOBODY)
    stub = os.path.join(public_dir, "conda")  # found by nobody; never reached
    called = os.path.join(home, "stub-called")  # nobody's home: the stub could write there
    with open(stub, "w") as f:
        f.write(f"#!/bin/sh\ntouch '{called}'; exit 99\n")
    os.chmod(stub, 0o755)
    base = dict(isolated_env, HOME=home, CONDA_EXECUTE_CONDA=stub)
    results = {}
    for env_dir in (mine, os.path.join(closed, "envs"), os.path.join(mine, "sub")):
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             sys.executable, os.path.join(public_dir, "ce.pyz"), script],
            env=dict(base, CONDA_EXECUTE_ENV_DIR=env_dir), capture_output=True, text=True,
            timeout=120)
        err = no_traceback(proc)
        results[env_dir] = (proc.returncode, err.strip())
        assert proc.returncode == 73 and err.count("\n") == 1, (env_dir, err)
        assert "Permission denied" in err, err
    figure(f"no_permission {results}")
    assert os.listdir(mine) == [] and not os.path.exists(called)


def test_disk_full_during_create_keeps_nothing(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    disk = tmp_path / "disk"
    disk.mkdir()
    tool.root_dir = str(disk / "envs")
    tool.env_dir = os.path.join(tool.root_dir, PLATFORM)
    env = dict(tool.env, CONDA_EXECUTE_ENV_DIR=tool.root_dir)
    proc = _in_mount_ns(f"mount -t tmpfs -o size=2m tmpfs '{disk}'", tool, script, env=env)
    err = proc.stderr  # conda's own output may hold a traceback: check our last line only
    entries = _entries(proc)
    fig = figure(f"disk_full(2 MiB tmpfs) exit={proc.returncode} entries={entries}")
    assert proc.returncode == 70, (fig, err)
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith(script + ":") and last.endswith("create exited with 1 (see above)")
    assert len(entries) == 2 and all(e.endswith(".lock") for e in entries), fig  # no prefix
    assert tool.creates() == 1


def test_disk_full_when_writing_the_marker_keeps_nothing(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    disk = tmp_path / "disk"
    disk.mkdir()
    tool.root_dir = str(disk / "envs")
    tool.env_dir = os.path.join(tool.root_dir, PLATFORM)
    env = dict(tool.env, CONDA_EXECUTE_ENV_DIR=tool.root_dir)
    proc = _in_mount_ns(f"mount -t tmpfs -o size=24m tmpfs '{disk}'", tool, script, env=env,
                        fault="fill")
    err = no_traceback(proc)
    entries = _entries(proc)
    fig = figure(f"disk_full_at_marker exit={proc.returncode} entries={entries} "
                 f"stderr_tail={err.strip().splitlines()[-1:]}")
    assert proc.returncode == 70, (fig, err)
    assert "No space left on device" in err.strip().splitlines()[-1], fig
    assert all(e.endswith(".lock") for e in entries), fig


def test_disk_full_when_logging_still_runs_the_script(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    disk = tmp_path / "disk"
    disk.mkdir()
    tool.root_dir = str(disk / "envs")
    tool.env_dir = os.path.join(tool.root_dir, PLATFORM)
    env = dict(tool.env, CONDA_EXECUTE_ENV_DIR=tool.root_dir)
    setup = (f"mount -t tmpfs -o size=24m tmpfs '{disk}'; {' '.join(tool.cmd('--prefix', script))}"
             f" >/dev/null 2>&1; rm '{tool.env_dir}/usage.jsonl'; cat /dev/zero > '{disk}/filler' 2>/dev/null || true")
    proc = _in_mount_ns(setup, tool, script, env=env)
    err = no_traceback(proc)
    figure(f"disk_full_at_log exit={proc.returncode} stderr={err.strip()!r}")
    assert proc.returncode == 3, err
    assert "cannot record use" in err and "No space left on device" in err, err
    assert tool.creates() == 1


def test_gc_on_a_read_only_env_dir_is_one_line(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    assert tool.run(script).returncode == 3
    name = next(e for e in tool.entries() if len(e) == 20)
    old = time.time() - 7200  # old enough for any GC rule
    os.utime(os.path.join(tool.env_dir, name), (old, old))
    with open(os.path.join(tool.env_dir, "usage.jsonl"), "w") as f:
        f.write(json.dumps({"time": old, "env": name, "script": script, "pid": 1}) + "\n")
    ro = f"mount --bind '{tool.env_dir}' '{tool.env_dir}'; " \
         f"mount -o remount,ro,bind '{tool.env_dir}'"
    for args in (("--gc", "--older-than", "0"), ("--gc",)):
        proc = _in_mount_ns(ro, tool, *args)
        err = no_traceback(proc)
        figure(f"gc_read_only exit={proc.returncode} stderr={err.strip()!r}")
        assert proc.returncode == 73 and err.count("\n") == 1, err
        assert "Read-only file system" in err and tool.env_dir in err, err
    assert os.path.isdir(os.path.join(tool.env_dir, name, "conda-meta"))
