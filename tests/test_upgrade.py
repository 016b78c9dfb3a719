"""Issue 23 item 1: an upgrade strands no environment of the earlier layout.

Before the platform layout (commit 48c894c) conda-execute kept environments directly in
ENV_DIR/NAME, each with ENV_DIR/NAME.lock beside it (flock LOCK_SH by a running script for its
whole life, LOCK_EX|LOCK_NB by GC), its completion marker NAME/conda-meta/conda-execute
({"name", "env", "channels", "pip", "lock", "created", "conda_execute"}, no platform), and one
usage log ENV_DIR/usage.jsonl ({"time", "env", "script", "pid"} a line). The helpers below
build such an env dir the way that release (41ca56c, the last commit before 48c894c) did; one
test runs that release's own code from git history to prove they agree.

What the product must do (issue 23, "Done when"): with environments of both layouts in one env
dir, `--gc --older-than 0` removes the unused ones of both and keeps any in use (the earlier lock
file name honoured); `--list` shows both (an earlier env's platform: '-' or what its marker
records); last use of an earlier env comes from the earlier usage log, else the prefix's mtime;
an earlier env is never used for a run (a run makes its env in ENV_DIR/PLATFORM/NAME).

Every test runs the built pyz and `python -m conda_execute`, against the stand-in conda.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from typing import Iterator, Optional, Sequence

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import conda_execute as ce  # noqa: E402

PLATFORM = ce.conda_platform()
EARLIER_RELEASE = "41ca56c9b8598e054b0e8fb3cb8f0b9d0765e113"  # parent of 48c894c (platform layout)

# --------------------------------------------------------------------------- the earlier layout
# In ENV_DIR (0700): NAME/ (the prefix; NAME/conda-meta/conda-execute the marker, written
# last), NAME.lock (0600), usage.jsonl, .gc-stamp (mtime: last background GC), and transient
# .trash-NAME-PID/ (a prefix being removed) and *.PID.tmp (an atomic write). Nothing else: no
# NAME.create.lock, no platform directory. Older commits (a327f6f..cb20c07) differ only in the
# marker: "size" always set, and before ca84347 it was conda-meta/conda-execute.json.

OLD_VERSION = "0.1.0"  # __version__ of every commit before the platform layout
MARKER = os.path.join("conda-meta", "conda-execute")
LOG_NAME = "usage.jsonl"
GC_STAMP = ".gc-stamp"


def _json_string(text: str) -> str:
    """As the earlier release wrote strings (without json): lone surrogates as \\udcXX."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch < " " or "\ud800" <= ch <= "\udfff":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def old_env_name(specs: Sequence[str], channels: Sequence[str] = (),
                 pip: Sequence[str] = ()) -> str:
    """The earlier release's env name (41ca56c spec_identity/env_name, no lock file).

    For specs alone it is also today's name (the original conda-execute's): the same script
    maps to ENV_DIR/NAME then and ENV_DIR/PLATFORM/NAME now. With channels or pip it differs
    from today's (48c894c made the hashed text unambiguous).
    """
    text = "\n".join(sorted(specs))
    if channels:
        text += "\n# channels\n" + "\n".join(channels)
    if pip:
        text += "\n# pip\n" + "\n".join(sorted(pip))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def old_log_line(when: float, name: str, script: str, pid: int) -> str:
    """One usage.jsonl line exactly as the earlier release's log_line wrote it."""
    return (f'{{"time": {when:.3f}, "env": {_json_string(name)}, '
            f'"script": {_json_string(script)}, "pid": {pid}}}\n')


def old_marker_text(name: str, specs: Sequence[str], channels: Sequence[str] = (),
                    pip: Sequence[str] = (), lock: Optional[str] = None,
                    created: Optional[float] = None) -> str:
    """conda-meta/conda-execute exactly as 41ca56c's write_marker wrote it."""
    def strings(items: Sequence[str]) -> str:
        return "[" + ", ".join(map(_json_string, items)) + "]"

    created = time.time() if created is None else created
    return (f'{{"name": {_json_string(name)}, "env": {strings(specs)}, '
            f'"channels": {strings(channels)}, "pip": {strings(pip)}, '
            f'"lock": {_json_string(lock) if lock else "null"}, "created": {created:.3f}, '
            f'"conda_execute": {_json_string(OLD_VERSION)}}}\n')


def _private(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def make_old_env(env_dir: str, name: Optional[str], specs: Sequence[str],
                 platform: str = "", last_used: Optional[float] = None,
                 created: Optional[float] = None, channels: Sequence[str] = (),
                 pip: Sequence[str] = (), script: str = "/home/user/old.py",
                 complete: bool = True, lock_file: bool = True, size: Optional[int] = None,
                 python: Optional[str] = None, mtime: Optional[float] = None) -> str:
    """Build ENV_DIR/NAME as the earlier release left it after a run; return the prefix.

    NAME: None for the name that release gave SPECS (old_env_name).
    PLATFORM: only for the fake package record's "subdir" (the earlier marker records no
      platform: a reader that shows one must take it from elsewhere, or show '-').
    LAST_USED: seconds since the epoch of the run to append to ENV_DIR/usage.jsonl; None:
      no log line (last use is then the prefix's mtime).
    CREATED: the marker's "created" (default: an hour ago, past GC's one-minute grace).
    COMPLETE: False leaves the marker out (a create that was interrupted).
    LOCK_FILE: the NAME.lock the run left beside the prefix (GC removed it with the env).
    SIZE: an int puts "size" in the marker, as a --list of that release recorded it.
    PYTHON: what bin/python is: None -> a symlink to sys.executable (a complete-looking env);
      a string -> a /bin/sh script with that body (e.g. to prove it is never run).
    MTIME: the prefix's mtime (default: CREATED), set last.
    """
    now = time.time()
    created = now - 3600 if created is None else created
    name = name or old_env_name(specs, channels, pip)
    _private(env_dir)
    prefix = os.path.join(env_dir, name)
    meta = os.path.join(prefix, "conda-meta")
    os.makedirs(meta)
    os.makedirs(os.path.join(prefix, "bin"))
    with open(os.path.join(meta, "history"), "w") as f:
        f.write(f"==> {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(created))} <==\n"
                f"# cmd: conda create -p {prefix} --yes -- {' '.join(specs)}\n"
                f"# conda version: 24.1.0\n+local::python-3.11.7-0_fake\n"
                f"# update specs: {json.dumps(list(specs))}\n")
    record = {"name": "python", "version": "3.11.7", "build": "0_fake", "build_number": 0,
              "channel": "local", "subdir": platform or "noarch", "depends": [],
              "files": ["bin/python"], "fn": "python-3.11.7-0_fake.tar.bz2"}
    with open(os.path.join(meta, "python-3.11.7-0_fake.json"), "w") as f:
        json.dump(record, f)
    exe = os.path.join(prefix, "bin", "python")
    if python is None:
        os.symlink(sys.executable, exe)
    else:
        with open(exe, "w") as f:
            f.write("#!/bin/sh\n" + python + "\n")
        os.chmod(exe, 0o755)
    if complete:
        text = old_marker_text(name, specs, channels, pip, None, created)
        if size is not None:  # with_size rewrote it with json.dumps
            rec = json.loads(text)
            rec["size"] = size
            text = json.dumps(rec) + "\n"
        path = os.path.join(prefix, MARKER)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    if lock_file:
        os.close(os.open(os.path.join(env_dir, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600))
    if last_used is not None:
        append_old_log(env_dir, name, last_used, script)
    when = created if mtime is None else mtime
    for path in (meta, prefix):
        os.utime(path, (when, when))
    return prefix


def append_old_log(env_dir: str, name: str, when: float, script: str = "/home/user/old.py",
                   pid: int = 4242) -> None:
    """One run of NAME at WHEN in ENV_DIR/usage.jsonl (O_APPEND, flock shared, as then)."""
    fd = os.open(os.path.join(env_dir, LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.write(fd, old_log_line(when, name, script, pid).encode("utf-8", "surrogatepass"))
    finally:
        os.close(fd)


def touch_old_gc_stamp(env_dir: str, when: Optional[float] = None) -> None:
    """ENV_DIR/.gc-stamp as the earlier release left it (mtime: its last background GC)."""
    path = os.path.join(env_dir, GC_STAMP)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if when is not None:
        os.utime(path, (when, when))


@contextlib.contextmanager
def hold_old_lock(env_dir: str, name: str) -> Iterator[int]:
    """Hold ENV_DIR/NAME.lock as a script run by the earlier release holds it: opened O_RDWR
    (created 0600 if missing) and flock(LOCK_SH) for the script's whole life. A flock belongs
    to the open file description, so another process's LOCK_EX|LOCK_NB fails while this holds.
    """
    fd = os.open(os.path.join(env_dir, name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- running the tool


def no_proxy(env):
    return {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}


class Tool:
    """conda-execute run as a user does (HOW: the built pyz, or `python -m conda_execute`)."""

    def __init__(self, how, pyz, env, env_dir):
        self.how, self.env_dir = how, env_dir
        self.platform_dir = os.path.join(env_dir, PLATFORM)
        self.argv0 = [sys.executable, pyz] if how == "pyz" else [sys.executable, "-m",
                                                                  "conda_execute"]
        self.env = dict(env, CONDA_EXECUTE_ENV_DIR=env_dir)
        if how == "module":
            self.env["PYTHONPATH"] = ROOT

    def run(self, *args, timeout=120, **kw):
        proc = subprocess.run([*self.argv0, *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def ok(self, *args, **kw):
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def listing(self):
        """--list --json, by name."""
        out = self.ok("--list", "--json").stdout
        return {rec["name"]: rec for rec in map(json.loads, out.splitlines())}


@pytest.fixture(params=["pyz", "module"])
def tool(request, pyz, conda_root, isolated_env, tmp_path):
    env = no_proxy(conda_root.env_with_conda_on_path(isolated_env))
    t = Tool(request.param, pyz, env, str(tmp_path / "envs"))
    os.makedirs(t.platform_dir, 0o700)
    os.chmod(t.env_dir, 0o700)
    # fresh GC stamps: no background collector races a test's own --gc
    touch_old_gc_stamp(t.platform_dir)
    touch_old_gc_stamp(t.env_dir)
    return t


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


PY = """
    # conda execute
    # env: [python]
    import sys
    print(sys.prefix)
"""


def new_env(tool, tmp_path, hours_ago):
    """A real env of today's layout (stand-in conda), last used and created HOURS_AGO."""
    script = write(tmp_path / "new.py", PY)
    prefix = tool.ok("--prefix", script).stdout.strip()
    assert os.path.dirname(prefix) == tool.platform_dir
    name = os.path.basename(prefix)
    when = time.time() - hours_ago * 3600
    marker = os.path.join(prefix, ce.MARKER)
    with open(marker) as f:
        rec = json.load(f)
    rec["created"] = when
    with open(marker, "w") as f:
        json.dump(rec, f)
    log = os.path.join(tool.platform_dir, ce.LOG_NAME)
    with open(log) as f:
        lines = [json.loads(ln) for ln in f]
    with open(log, "w") as f:
        for r in lines:
            f.write(json.dumps(dict(r, time=when)) + "\n")
    os.utime(prefix, (when, when))
    return name, prefix


def fake_new_env(tool, name, specs, hours_ago):
    """An env of today's layout made by hand (no conda): ENV_DIR/PLATFORM/NAME."""
    prefix = os.path.join(tool.platform_dir, name)
    os.makedirs(os.path.join(prefix, "conda-meta"))
    when = time.time() - hours_ago * 3600
    with open(os.path.join(prefix, ce.MARKER), "w") as f:
        json.dump({"name": name, "env": list(specs), "channels": [], "created": when}, f)
    os.utime(prefix, (when, when))
    return prefix


@contextlib.contextmanager
def hold_new_lock(tool, name):
    """ENV_DIR/PLATFORM/NAME.lock held shared, as a running script of today holds it."""
    fd = os.open(os.path.join(tool.platform_dir, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def lines_about(out, name):
    return [ln for ln in out.splitlines() if name in ln]


DAY = 86400.0


# --------------------------------------------------------------------------- the tests


def test_gc_removes_unused_envs_of_both_layouts_and_keeps_those_in_use(tool, tmp_path):
    now = time.time()
    new_idle, new_idle_prefix = new_env(tool, tmp_path, hours_ago=2)
    new_busy = "b" * 20
    new_busy_prefix = fake_new_env(tool, new_busy, ["busy"], hours_ago=3)
    old_idle_prefix = make_old_env(tool.env_dir, None, ["numpy"], PLATFORM, last_used=now - 2 * DAY,
                                   created=now - 3 * DAY)
    old_busy_prefix = make_old_env(tool.env_dir, None, ["scipy"], PLATFORM, last_used=now - 2 * DAY,
                                   created=now - 3 * DAY)
    old_idle, old_busy = map(os.path.basename, (old_idle_prefix, old_busy_prefix))
    assert len({new_idle, new_busy, old_idle, old_busy}) == 4

    with hold_old_lock(tool.env_dir, old_busy), hold_new_lock(tool, new_busy):
        dry = tool.ok("--gc", "--older-than", "0", "--dry-run")
        assert [ln for ln in lines_about(dry.stdout, old_idle) if ln.startswith("would remove: ")], \
            dry.stdout
        assert os.path.isdir(old_idle_prefix) and os.path.isdir(new_idle_prefix)
        gc = tool.ok("--gc", "--older-than", "0")
        out = gc.stdout
        for name, what in ((new_idle, "removed: "), (old_idle, "removed: "),
                           (new_busy, "in use, kept: "), (old_busy, "in use, kept: ")):
            assert [ln for ln in lines_about(out, name) if ln.startswith(what)], (name, what, out)
        assert not os.path.lexists(new_idle_prefix)
        assert not os.path.lexists(old_idle_prefix), "an unused env of the earlier layout stays"
        assert not os.path.lexists(old_idle_prefix + ".lock"), "its lock file outlived it"
        assert os.path.isfile(os.path.join(old_busy_prefix, MARKER)), "an env in use was removed"
        assert os.path.exists(old_busy_prefix + ".lock"), "a held lock file was unlinked"
        assert os.path.isdir(new_busy_prefix)
    # the script using the earlier env has ended: the next GC collects it
    gc = tool.ok("--gc", "--older-than", "0")
    assert [ln for ln in lines_about(gc.stdout, old_busy) if ln.startswith("removed: ")], gc.stdout
    assert not os.path.lexists(old_busy_prefix)
    left = [n for n in os.listdir(tool.env_dir) if n not in (PLATFORM, LOG_NAME, GC_STAMP)]
    assert not [n for n in left if ce.is_env_name(n[:20])], left


def test_list_shows_envs_of_both_layouts(tool, tmp_path):
    now = time.time()
    new_name, new_prefix = new_env(tool, tmp_path, hours_ago=0.5)
    used = now - 2 * 3600
    complete = make_old_env(tool.env_dir, None, ["numpy", "python >=3.8"], PLATFORM,
                            last_used=used, created=now - DAY, size=12345,
                            script="/home/user/analysis.py")
    half = make_old_env(tool.env_dir, "0123456789abcdef0123", ["scipy"], PLATFORM,
                        complete=False, created=now - 5 * 3600)
    old_name, half_name = map(os.path.basename, (complete, half))

    table = tool.ok("--list").stdout
    header, *rows = table.splitlines()
    assert header.split()[:2] == ["NAME", "PLATFORM"], table
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) == {new_name, old_name, half_name}, table
    assert by_name[new_name].split()[1] == PLATFORM
    assert by_name[old_name].split()[1] in ("-", PLATFORM), by_name[old_name]
    assert " 2.0h ago " in by_name[old_name] and " 12.1 KiB " in by_name[old_name], table
    assert "numpy python >=3.8" in by_name[old_name], table
    assert by_name[old_name].endswith("/home/user/analysis.py"), table
    assert "(incomplete)" in by_name[half_name] and " 5.0h ago " in by_name[half_name], table

    recs = tool.listing()
    assert set(recs) == {new_name, old_name, half_name}
    assert recs[new_name]["platform"] == PLATFORM and recs[new_name]["prefix"] == new_prefix
    old = recs[old_name]
    assert old["prefix"] == complete and old["complete"] is True
    assert old["platform"] in ("-", "", PLATFORM), old  # the earlier marker records none
    assert old["specs"] == ["numpy", "python >=3.8"] and old["channels"] == []
    assert abs(old["last_used"] - round(used, 3)) < 0.01, old  # from the earlier usage log
    assert old["size"] == 12345 and old["last_script"] == "/home/user/analysis.py"
    assert old["created"] is not None and abs(old["created"] - (now - DAY)) < 0.01
    assert recs[half_name]["complete"] is False
    assert abs(recs[half_name]["last_used"] - (now - 5 * 3600)) < 1  # the prefix's mtime


def test_last_use_of_an_earlier_env_from_its_log_else_its_mtime(tool):
    now = time.time()
    # A: logged 2 h ago (its prefix looks 10 h old: the log wins)
    a = make_old_env(tool.env_dir, None, ["a"], PLATFORM, last_used=now - 2 * 3600,
                     created=now - DAY, mtime=now - 10 * 3600)
    # B: never logged (the log was compacted away, or it ran before logging): mtime 3 h ago
    b = make_old_env(tool.env_dir, None, ["b"], PLATFORM, created=now - DAY,
                     mtime=now - 3 * 3600)
    # C: logged 20 h ago and 1 h ago: the latest line counts
    c = make_old_env(tool.env_dir, None, ["c"], PLATFORM, last_used=now - 20 * 3600,
                     created=now - DAY)
    append_old_log(tool.env_dir, os.path.basename(c), now - 3600)
    with open(os.path.join(tool.env_dir, LOG_NAME), "ab") as f:  # as torn lines were left
        f.write(b'not json\n{"time": 1, "env": 7}\n{"time": 17000')
    names = {os.path.basename(p): k for k, p in (("a", a), ("b", b), ("c", c))}

    def would_remove(hours):
        out = tool.ok("--gc", "--dry-run", "--older-than", str(hours)).stdout
        return sorted(names[ln.split()[2]] for ln in out.splitlines()
                      if ln.startswith("would remove: ") and ln.split()[2] in names)

    assert would_remove(2.5) == ["b"]
    assert would_remove(1.5) == ["a", "b"]
    assert would_remove(0.5) == ["a", "b", "c"]
    assert would_remove(30) == []
    recs = tool.listing()
    assert abs(recs[os.path.basename(a)]["last_used"] - (now - 2 * 3600)) < 0.01
    assert abs(recs[os.path.basename(b)]["last_used"] - (now - 3 * 3600)) < 1
    assert abs(recs[os.path.basename(c)]["last_used"] - (now - 3600)) < 0.01
    assert all(os.path.isdir(p) for p in (a, b, c))  # dry runs removed nothing


def test_an_earlier_env_is_never_used_for_a_run(tool, conda_root, tmp_path):
    """Same specs, same name: the earlier ENV_DIR/NAME is left alone, the run makes
    ENV_DIR/PLATFORM/NAME (the earlier prefix's python, if run, says so and fails)."""
    ran = tmp_path / "old-python-ran"
    old = make_old_env(tool.env_dir, None, ["python"], PLATFORM, last_used=time.time() - 60,
                       python=f'echo old >> "{ran}"; exit 99')
    name = os.path.basename(old)
    with open(os.path.join(old, MARKER), "rb") as f:
        marker = f.read()
    with open(os.path.join(tool.env_dir, LOG_NAME), "rb") as f:
        log = f.read()
    script = write(tmp_path / "s.py", PY)
    dry = json.loads(tool.ok("--dry-run", script).stdout)
    assert dry["name"] == name and dry["prefix"] == os.path.join(tool.platform_dir, name)
    with hold_old_lock(tool.env_dir, name):  # an earlier script still running in it
        proc = tool.ok(script, timeout=120)
    assert proc.stdout.strip() == os.path.join(tool.platform_dir, name)
    assert len(conda_root.calls("create")) == 1
    assert not ran.exists()
    assert tool.ok("--prefix", script).stdout.strip() == os.path.join(tool.platform_dir, name)
    with open(os.path.join(old, MARKER), "rb") as f:
        assert f.read() == marker  # untouched
    with open(os.path.join(tool.env_dir, LOG_NAME), "rb") as f:
        assert f.read() == log  # runs log in ENV_DIR/PLATFORM/usage.jsonl only
    assert len(conda_root.calls("create")) == 1


# --------------------------------------------------------------------------- the release itself


def earlier_release_module(tmp_path):
    """conda_execute.py of the earlier release, from git history (a clone of main has it)."""
    try:
        src = subprocess.run(["git", "-C", ROOT, "show", f"{EARLIER_RELEASE}:conda_execute.py"],
                             capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        src = None
    if src is None or src.returncode != 0:
        pytest.fail(f"the earlier release {EARLIER_RELEASE} is not in this clone's history "
                    "(a shallow clone?): clone the whole repository")
    path = tmp_path / "earlier" / "conda_execute.py"
    path.parent.mkdir()
    path.write_bytes(src.stdout)
    return str(path)


def run_earlier(module, env, *args):
    return subprocess.run([sys.executable, module, *args], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


def test_helpers_build_what_the_earlier_release_built(conda_root, isolated_env, tmp_path):
    module = earlier_release_module(tmp_path)
    env_dir = str(tmp_path / "earlier-envs")
    env = dict(no_proxy(conda_root.env_with_conda_on_path(isolated_env)),
               CONDA_EXECUTE_ENV_DIR=env_dir)
    script = write(tmp_path / "s.py", PY)
    proc = run_earlier(module, env, script)
    assert proc.returncode == 0, proc.stderr
    prefix = proc.stdout.strip()
    name = os.path.basename(prefix)
    assert prefix == os.path.join(env_dir, name) and name == old_env_name(["python"])
    assert sorted(os.listdir(env_dir)) == sorted([name, name + ".lock", LOG_NAME, GC_STAMP])
    made = str(tmp_path / "helper-envs")
    mine = make_old_env(made, None, ["python"], PLATFORM, last_used=time.time(), script=script)
    touch_old_gc_stamp(made)
    assert sorted(os.listdir(made)) == sorted(os.listdir(env_dir))
    with open(os.path.join(prefix, MARKER)) as f:
        theirs = f.read()
    with open(os.path.join(mine, MARKER)) as f:
        ours = f.read()
    assert list(json.loads(theirs)) == list(json.loads(ours))  # the same keys, in order
    strip = re.compile(r'"created": [0-9.]+')
    assert strip.sub("", theirs) == strip.sub("", ours)
    with open(os.path.join(env_dir, LOG_NAME)) as f:
        (line,) = f.read().splitlines(keepends=True)
    rec = json.loads(line)
    assert line == old_log_line(rec["time"], name, script, rec["pid"])
    for d in (env_dir, made):
        assert os.stat(d).st_mode & 0o777 == 0o700
        assert os.stat(os.path.join(d, name + ".lock")).st_mode & 0o777 == 0o600
    assert os.path.isfile(os.path.join(prefix, "conda-meta", "history"))


def test_an_env_dir_the_earlier_release_made_is_listed_and_collected(tool, conda_root, tmp_path):
    """The real thing: the earlier release creates and runs (one env idle, one in use while
    its script runs), then today's --list shows them and --gc collects the idle one only."""
    module = earlier_release_module(tmp_path)
    env = dict(tool.env)
    env.pop("PYTHONPATH", None)
    idle = write(tmp_path / "idle.py", PY)
    go, ready = tmp_path / "go", tmp_path / "ready"
    busy = write(tmp_path / "busy.py", f"""
        # conda execute
        # env: [python, mylib]
        import os, sys, time
        open({str(ready)!r}, "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.01)
        print(sys.prefix)
    """)
    proc = run_earlier(module, env, idle)
    assert proc.returncode == 0, proc.stderr
    idle_prefix = proc.stdout.strip()
    idle_name = os.path.basename(idle_prefix)
    assert os.path.dirname(idle_prefix) == tool.env_dir
    holder = subprocess.Popen([sys.executable, module, busy], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert holder.poll() is None, holder.communicate()
            assert time.monotonic() < deadline, "the earlier release's script never started"
            time.sleep(0.01)
        busy_name = old_env_name(["python", "mylib"])
        busy_prefix = os.path.join(tool.env_dir, busy_name)
        assert os.path.isdir(busy_prefix)
        # both made long ago, as far as GC's one-minute grace is concerned
        for prefix in (idle_prefix, busy_prefix):
            path = os.path.join(prefix, MARKER)
            with open(path) as f:
                rec = json.load(f)
            rec["created"] = time.time() - DAY
            with open(path, "w") as f:
                json.dump(rec, f)
        recs = tool.listing()
        assert {idle_name, busy_name} <= set(recs), recs
        assert recs[idle_name]["prefix"] == idle_prefix
        assert recs[busy_name]["specs"] == ["python", "mylib"]
        gc = tool.ok("--gc", "--older-than", "0")
        assert [ln for ln in lines_about(gc.stdout, idle_name) if ln.startswith("removed: ")], \
            gc.stdout
        assert [ln for ln in lines_about(gc.stdout, busy_name)
                if ln.startswith("in use, kept: ")], gc.stdout
        assert not os.path.lexists(idle_prefix) and os.path.isdir(busy_prefix)
    finally:
        go.touch()
        out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0 and out.strip() == busy_prefix, err
