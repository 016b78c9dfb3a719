"""Clusters (issue 14): platforms in one env dir, locks that degrade safely, damaged envs, job
arrays. Every test runs the built pyz as a user does.

Lock failures come from a tiny LD_PRELOAD shim compiled here with the system's cc: it makes
flock (SHIM_FLOCK=1), and fcntl record locks too (SHIM_FCNTL=1), fail with ENOSYS, as Lustre
mounted without -o flock does, for files directly in the env dir's platform dir (SHIM_PREFIX);
conda's own locks elsewhere are untouched. It also logs every setsid() (SHIM_SETSID_LOG): only
the background GC calls it, so the log counts collectors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from test_reliability import EXIT3, HOLDER, Tool, figure, finish_holder, start_holder, wait_for, write

import conda_execute as ce

PLATFORM = ce.conda_platform()
OTHER = "linux-aarch64" if PLATFORM != "linux-aarch64" else "linux-64"

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int in_env_dir(int fd) {  /* a file directly in SHIM_PREFIX (a dir, ending in '/') */
    const char *prefix = getenv("SHIM_PREFIX");
    char link[64], path[4096];
    ssize_t n;
    size_t len;
    if (!prefix || !*prefix) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    len = strlen(prefix);
    return strncmp(path, prefix, len) == 0 && !strchr(path + len, '/');
}

int flock(int fd, int op) {
    static int (*real)(int, int);
    if (!real) real = dlsym(RTLD_NEXT, "flock");
    if (getenv("SHIM_FLOCK") && in_env_dir(fd)) { errno = ENOSYS; return -1; }
    return real(fd, op);
}

static int refused(int fd, int cmd) {
    return getenv("SHIM_FCNTL") && (cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK
                                     || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW
                                     || cmd == F_OFD_GETLK) && in_env_dir(fd);
}

#define FCNTL(name)                                              \
int name(int fd, int cmd, ...) {                                 \
    static int (*real)(int, int, ...);                           \
    va_list ap;                                                  \
    void *arg;                                                   \
    va_start(ap, cmd);                                           \
    arg = va_arg(ap, void *);                                    \
    va_end(ap);                                                  \
    if (!real) real = dlsym(RTLD_NEXT, #name);                   \
    if (refused(fd, cmd)) { errno = ENOSYS; return -1; }         \
    return real(fd, cmd, arg);                                   \
}
FCNTL(fcntl)
FCNTL(fcntl64)

pid_t setsid(void) {
    static pid_t (*real)(void);
    const char *log = getenv("SHIM_SETSID_LOG");
    if (!real) real = dlsym(RTLD_NEXT, "setsid");
    if (log) {
        FILE *f = fopen(log, "a");
        if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); }
    }
    return real();
}
"""


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    """The LD_PRELOAD shim, compiled once with the system's cc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) to build the lock-failure shim")
    d = tmp_path_factory.mktemp("shim")
    (d / "shim.c").write_text(SHIM)
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(d / "shim.so"), str(d / "shim.c"),
                    "-ldl"], check=True, capture_output=True)
    return str(d / "shim.so")


@pytest.fixture
def tool(pyz, conda_root, isolated_env, tmp_path):
    return Tool(pyz, conda_root, isolated_env, tmp_path)


def faulty(tool, shim, *kinds):
    """TOOL's environment with the shim refusing KINDS ('flock', 'fcntl') in its env dir."""
    env = dict(tool.env, LD_PRELOAD=shim, SHIM_PREFIX=tool.env_dir + os.sep,
               SHIM_SETSID_LOG=str(tool.tmp / "setsid.log"))
    for kind in kinds:
        env[f"SHIM_{kind.upper()}"] = "1"
    tool.env = env
    return env


def race(tool, script, n):
    procs = [tool.start(script) for _ in range(n)]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    return results


def age(tool):
    """Every env looks created and last used an hour ago (GC keeps younger ones)."""
    old = time.time() - 3600
    for name in tool.entries():
        path = os.path.join(tool.env_dir, name)
        if len(name) == 20:
            os.utime(path, (old, old))
            with open(os.path.join(path, ce.MARKER)) as f:
                rec = json.load(f)
            rec["created"] = old
            with open(os.path.join(path, ce.MARKER), "w") as f:
                json.dump(rec, f)
    log = os.path.join(tool.env_dir, ce.LOG_NAME)
    if os.path.exists(log):
        os.unlink(log)


# ------------------------------------------------------------------ locks that degrade


def test_flock_refused_falls_back_to_record_locks(tool, shim, tmp_path):
    faulty(tool, shim, "flock")
    script = write(tmp_path / "s.py", EXIT3)
    results = race(tool, script, 8)
    codes = [r[0] for r in results]
    fig = figure(f"flock_refused racers=8 creates={tool.creates()} exit_codes={sorted(set(codes))}"
                 f" prefixes={len({r[1] for r in results})}")
    assert tool.creates() == 1 and codes == [3] * 8, (fig, [r[2] for r in results])
    assert not any("warning" in r[2] for r in results), fig  # lockf works: nothing to say
    holder = write(tmp_path / "h.py", HOLDER)
    proc = start_holder(tool, holder, tmp_path / "ready")
    age(tool)
    gc = tool.run("--gc", "--older-than", "0")
    assert gc.returncode == 0 and "in use, kept" in gc.stdout, gc.stdout + gc.stderr
    finish_holder(proc)
    age(tool)
    gc = tool.run("--gc", "--older-than", "0")  # idle now: collected
    assert gc.returncode == 0 and gc.stdout.count("removed: ") == 1, gc.stdout + gc.stderr


def test_no_locks_at_all_warns_once_and_gc_removes_nothing(tool, shim, tmp_path):
    faulty(tool, shim, "flock", "fcntl")
    script = write(tmp_path / "s.py", EXIT3)
    first = tool.run(script)
    assert first.returncode == 3, first.stderr
    warnings = [ln for ln in first.stderr.splitlines() if "warning" in ln]
    fig = figure(f"no_locks warning={warnings!r}")
    assert len(warnings) == 1 and "refuses flock and fcntl locks" in warnings[0], fig
    assert f"file system of {tool.env_dir}" in warnings[0] and "removes nothing" in warnings[0]
    again = tool.run(script)
    assert again.returncode == 3 and again.stderr.count("\n") == 1, again.stderr
    age(tool)
    gc = tool.run("--gc", "--older-than", "0")
    assert gc.returncode == 0 and "removed" not in gc.stdout, gc.stdout
    assert "no locks here, kept" in gc.stdout, gc.stdout
    assert len([e for e in tool.entries() if len(e) == 20]) == 1


# ------------------------------------------------------------------ damaged environments


def test_env_whose_interpreter_is_gone_is_rebuilt_not_run_from_path(tool, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    first = tool.run(script)
    assert first.returncode == 3, first.stderr
    prefix = first.stdout.strip()
    os.unlink(os.path.join(prefix, "bin", "python"))  # a scratch purge took it
    again = tool.run(script)
    fig = figure(f"damaged exit={again.returncode} creates={tool.creates()} "
                 f"stderr={again.stderr.splitlines()[:1]}")
    assert again.returncode == 3 and again.stdout.strip() == prefix, fig  # the env's python
    assert tool.creates() == 2, fig
    damaged = [ln for ln in again.stderr.splitlines() if "damaged" in ln]
    assert damaged == [f"conda-execute: environment {os.path.basename(prefix)} is damaged "
                       f"({prefix}/bin/python is gone); recreating it"], again.stderr
    assert os.path.isfile(os.path.join(prefix, "bin", "python"))


# ------------------------------------------------------------------ platforms


TOOL_SCRIPT = """
    # conda execute
    # env: [tool]
    # run_with: [tool]
"""


def test_conda_subdir_gives_its_own_env_and_never_the_native_one(tool, tmp_path):
    script = write(tmp_path / "t.txt", TOOL_SCRIPT)  # tool is noarch: it solves anywhere
    native = tool.run("--prefix", script)
    other = tool.run("--prefix", script, env=dict(tool.env, CONDA_SUBDIR=OTHER))
    back = tool.run("--prefix", script)
    assert native.returncode == other.returncode == back.returncode == 0, other.stderr
    name = os.path.basename(native.stdout.strip())
    fig = figure(f"platforms native={native.stdout.strip()} other={other.stdout.strip()} "
                 f"creates={tool.creates()}")
    assert native.stdout.strip() == os.path.join(tool.env_dir, name), fig
    assert other.stdout.strip() == os.path.join(tool.root_dir, OTHER, name), fig
    assert back.stdout == native.stdout and tool.creates() == 2, fig
    ran = tool.run(script, env=dict(tool.env, CONDA_SUBDIR=OTHER))
    assert ran.returncode == 0 and ran.stdout.startswith("tool "), ran.stderr
    listing = tool.run("--list")
    rows = [ln.split() for ln in listing.stdout.splitlines()[1:]]
    assert sorted((r[0], r[1]) for r in rows) == sorted([(name, PLATFORM), (name, OTHER)])
    bad = tool.run("--prefix", script, env=dict(tool.env, CONDA_SUBDIR="../x"))
    assert bad.returncode == 2 and "CONDA_SUBDIR must be a conda platform" in bad.stderr


def test_gc_on_one_platform_leaves_the_others(tool, tmp_path):
    script = write(tmp_path / "t.txt", TOOL_SCRIPT)
    other_env = dict(tool.env, CONDA_SUBDIR=OTHER)
    assert tool.run("--prefix", script).returncode == 0
    assert tool.run("--prefix", script, env=other_env).returncode == 0
    age(tool)
    gc = tool.run("--gc", "--older-than", "0")
    assert gc.returncode == 0 and gc.stdout.count("removed: ") == 1, gc.stdout
    left = os.listdir(os.path.join(tool.root_dir, OTHER))
    assert [n for n in left if len(n) == 20], left  # another platform's env: not ours to judge



def test_gc_and_list_see_no_directory_that_is_not_a_platform(tool, tmp_path):
    """A folder of the user's beside the platform dirs (here a copy of an env, aged like the
    real one) is not an env dir: --list shows and GC collects only ENV_DIR/PLATFORM/NAME."""
    script = write(tmp_path / "t.txt", TOOL_SCRIPT)
    assert tool.run("--prefix", script).returncode == 0
    age(tool)
    (name,) = [n for n in tool.entries() if len(n) == 20]
    keep = os.path.join(tool.root_dir, "backup", name)
    shutil.copytree(os.path.join(tool.env_dir, name), keep, symlinks=True)
    os.chmod(os.path.dirname(keep), 0o700)
    listing = tool.run("--list")
    rows = [ln.split() for ln in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [(name, PLATFORM)], listing.stdout + listing.stderr
    gc = tool.run("--gc", "--older-than", "0")
    assert gc.returncode == 0 and gc.stdout.count("removed: ") == 1, gc.stdout + gc.stderr
    assert os.path.isfile(os.path.join(keep, ce.MARKER)), "GC removed a folder outside PLATFORM/"


# ------------------------------------------------------------------ job arrays


def job_array(tool, script, n, stale):
    """N simultaneous first runs of SCRIPT; with STALE, GC is due (a 2-hour-old stamp)."""
    os.makedirs(tool.env_dir, 0o700)
    stamp = os.path.join(tool.env_dir, ce.GC_STAMP)
    open(stamp, "w").close()
    if stale:
        two_h = time.time() - 7200
        os.utime(stamp, (two_h, two_h))
    start = time.monotonic()
    results = race(tool, script, n)
    wall = time.monotonic() - start
    with open(os.path.join(tool.env_dir, ce.LOG_NAME)) as f:
        lines = f.read().splitlines()
    setsid = tool.tmp / "setsid.log"
    collectors = len(setsid.read_text().split()) if setsid.exists() else 0
    fig = figure(f"job_array n={n} gc_due={stale} wall={wall:.1f}s creates={tool.creates()} "
                 f"ok={sum(r[0] == 3 for r in results)} log_lines={len(lines)} "
                 f"collectors={collectors} waited={sum('waiting' in r[2] for r in results)}")
    assert tool.creates() == 1 and [r[0] for r in results] == [3] * n, fig
    return lines, collectors, fig


@pytest.mark.parametrize("gc_due", [False, True])
def test_job_array_one_create_all_run_all_logged_at_most_one_gc(tool, shim, tmp_path, gc_due):
    n = int(os.environ.get("CE_JOB_ARRAY_N", "40"))
    faulty(tool, shim)  # no fault: the shim only counts setsid() (background collectors)
    lines, collectors, fig = job_array(tool, write(tmp_path / "s.py", EXIT3), n, gc_due)
    if gc_due:  # exactly one task claims the stale stamp; its collector compacts the log
        assert collectors == 1, fig
    else:  # one line per task
        assert collectors == 0 and len(lines) == n, fig
        assert len({line.rsplit('"pid": ', 1)[1] for line in lines}) == n, fig


def _blocked_on_a_lock(pid):
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[5] == str(pid) for line in f)


def test_job_array_tasks_run_side_by_side_once_the_env_exists(tool, tmp_path):
    """A task queued behind the creating one runs as soon as the env exists, while the first
    task's script still runs (it used to wait for an exclusive lock: one task at a time)."""
    holder = write(tmp_path / "h.py", HOLDER)
    ready1, ready2 = tmp_path / "ready1", tmp_path / "ready2"
    first = tool.start(holder, str(ready1), stdin=subprocess.PIPE, fault="hold")
    tool.wait_paused(first)  # creating: it holds the env's creation lock
    second = tool.start(holder, str(ready2), stdin=subprocess.PIPE)
    wait_for(lambda: _blocked_on_a_lock(second.pid), "the second task to queue", second)
    tool.release()
    wait_for(ready1.exists, "the first task's script", first)
    wait_for(ready2.exists, "the second task's script while the first still runs", second)
    finish_holder(second)
    finish_holder(first)
    assert tool.creates() == 1
