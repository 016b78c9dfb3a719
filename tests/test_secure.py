"""Shared machines: another local user must never run code as you or make conda-execute write
your files (issue 17 items 1-4 and the name hash of item 8).

The tests run as root; the other user is ``nobody`` (``setpriv``). Each attack is one a review
reproduced on earlier code: a swap loop on the env dir, planted symlinks for every file
conda-execute writes in the env dir, ``--gc``/``--list`` on another user's dir, parents made
under umask 000, an untrusted bootstrapped micromamba, and another user's lock file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from test_reliability import figure, write

import conda_execute as ce

NOBODY = 65534
PLATFORM = ce.conda_platform()
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


SCRIPT = """
    # conda execute
    # env: [python]
    import sys
    print("real", sys.prefix)
    sys.exit(3)
"""



@pytest.fixture
def run(pyz, conda_root, isolated_env):
    env = conda_root.env_with_conda_on_path(isolated_env)

    def run(*args, env_dir=None, extra=None, **kw):
        e = dict(env, **(extra or {}))
        if env_dir is not None:
            e["CONDA_EXECUTE_ENV_DIR"] = str(env_dir)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([sys.executable, pyz, *map(str, args)], env=e, timeout=120, **kw)

    run.env = env
    return run


def one_line(proc):
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


# ------------------------------------------------------------------ item 1: the swap loop

SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b, stop = (p.encode() for p in sys.argv[1:4])
tries = swaps = 0
while not os.path.exists(stop):
    tries += 1
    swaps += libc.renameat2(-100, a, -100, b, 2) == 0  # AT_FDCWD, RENAME_EXCHANGE
print(tries, swaps)
"""


def evil_env_dir(path, name):
    """nobody's env dir holding a complete-looking env NAME whose python says PWNED."""
    prefix = os.path.join(path, PLATFORM, name)
    os.makedirs(os.path.join(prefix, "conda-meta"))
    os.makedirs(os.path.join(prefix, "bin"))
    with open(os.path.join(prefix, "bin", "python"), "w") as f:
        f.write("#!/bin/sh\necho PWNED\n")
    os.chmod(os.path.join(prefix, "bin", "python"), 0o755)
    with open(os.path.join(prefix, ce.MARKER), "w") as f:
        json.dump({"name": name, "env": ["python"], "created": 0}, f)
    open(os.path.join(path, PLATFORM, name + ".lock"), "w").close()
    for root, dirs, files in os.walk(path):
        for n in [root, *[os.path.join(root, x) for x in dirs + files]]:
            os.lchown(n, NOBODY, NOBODY)


def swap_race(run, script, victim, evil, runs):
    """nobody exchanges VICTIM and EVIL in a loop while we run SCRIPT RUNS times."""
    stop = os.path.join(os.path.dirname(evil), "stop")
    swapper = subprocess.Popen([*AS_NOBODY, sys.executable, "-c", SWAPPER, victim, evil, stop],
                               stdout=subprocess.PIPE, text=True)
    try:
        results = [run(script, env_dir=victim) for _ in range(runs)]
    finally:
        open(stop, "w").close()
        tries, swaps = map(int, swapper.communicate(timeout=60)[0].split())
    return results, tries, swaps


def test_swap_loop_on_a_non_sticky_parent_is_refused(run, public_dir, tmp_path):
    script = write(tmp_path / "s.py", SCRIPT)
    name = json.loads(run("--dry-run", script, env_dir=tmp_path / "x").stdout)["name"]
    proj = os.path.join(public_dir, "proj")  # a group project dir: anyone may rename in it
    os.mkdir(proj)
    os.chmod(proj, 0o777)
    victim, evil = os.path.join(proj, "envs"), os.path.join(proj, "evil")
    os.mkdir(victim, 0o700)
    evil_env_dir(evil, name)
    results, tries, swaps = swap_race(run, script, victim, evil, 20)
    pwned = sum("PWNED" in r.stdout for r in results)
    fig = figure(f"swap_loop non-sticky parent: runs={len(results)} swap_attempts={tries} "
                 f"swaps={swaps} attacker_code_ran={pwned} "
                 f"exit_codes={sorted({r.returncode for r in results})}")
    assert pwned == 0, fig
    assert {r.returncode for r in results} == {73}, fig
    err = one_line(results[0])
    assert "which is writable by other users and not sticky" in err and proj in err, err
    assert "--allow-shared-env-dir" in err


def test_swap_loop_in_a_sticky_dir_never_wins(run, public_dir, tmp_path):
    script = write(tmp_path / "s.py", SCRIPT)
    scratch = os.path.join(public_dir, "scratch")  # like /tmp or a scratch file system
    os.mkdir(scratch)
    os.chmod(scratch, 0o1777)
    victim, evil = os.path.join(scratch, "victim-envs"), os.path.join(scratch, "evil")
    first = run(script, env_dir=victim)
    assert first.returncode == 3 and first.stdout.startswith("real "), first.stderr
    evil_env_dir(evil, os.path.basename(first.stdout.split()[1]))
    runs = int(os.environ.get("CE_SWAP_RUNS", "30"))
    results, tries, swaps = swap_race(run, script, victim, evil, runs)
    pwned = sum("PWNED" in r.stdout for r in results)
    fig = figure(f"swap_loop sticky parent: runs={runs} swap_attempts={tries} swaps={swaps} "
                 f"attacker_code_ran={pwned}")
    assert tries > runs and pwned == 0 and swaps == 0, fig
    assert all(r.returncode == 3 and r.stdout == first.stdout for r in results), fig


def test_parent_of_another_user_is_refused_and_root_parents_are_fine(run, public_dir, tmp_path):
    script = write(tmp_path / "s.py", SCRIPT)
    theirs = os.path.join(public_dir, "theirs")  # nobody's dir, not writable by us... but
    os.mkdir(theirs, 0o755)  # its owner can rename what is in it
    os.chown(theirs, NOBODY, NOBODY)
    mine = os.path.join(theirs, "mine")
    os.mkdir(mine, 0o700)
    proc = run(script, env_dir=mine)
    err = one_line(proc)
    assert proc.returncode == 73 and f"inside {theirs}, which belongs to another user" in err
    assert run("--allow-shared-env-dir", script, env_dir=mine).returncode == 3
    assert run(script, env_dir=os.path.join(public_dir, "ok")).returncode == 3  # root's parents


# ------------------------------------------------------------------ item 2: planted files


@pytest.fixture
def planted(run, tmp_path):
    """A private env dir with the env made, and a file of the user's that must not change."""
    script = write(tmp_path / "s.py", SCRIPT)
    env_dir = tmp_path / "envs"
    first = run(script, env_dir=env_dir)
    assert first.returncode == 3, first.stderr
    bashrc = tmp_path / "home-bashrc"
    bashrc.write_text("mine\n")
    old = time.time() - 86400
    os.utime(bashrc, (old, old))
    d = env_dir / PLATFORM
    name = os.path.basename(first.stdout.split()[1])
    return script, env_dir, d, name, bashrc


def untouched(bashrc):
    st = os.stat(bashrc)
    return bashrc.read_text() == "mine\n" and time.time() - st.st_mtime > 3600


def test_planted_log_symlink_is_not_followed(run, planted):
    script, env_dir, d, _, bashrc = planted
    (d / "usage.jsonl").unlink()
    (d / "usage.jsonl").symlink_to(bashrc)
    proc = run(script, env_dir=env_dir)
    assert proc.returncode == 3, proc.stderr
    assert "cannot record use" in proc.stderr and "symbolic link" in proc.stderr
    assert untouched(bashrc)
    gc = run("--gc", "--older-than", "0", env_dir=env_dir)  # compaction refuses it: exit 73
    assert gc.returncode == 73 and "usage.jsonl is a symbolic link" in one_line(gc)
    assert untouched(bashrc)


def test_planted_lock_symlink_is_refused(run, planted):
    script, env_dir, d, name, bashrc = planted
    (d / f"{name}.lock").unlink()
    (d / f"{name}.lock").symlink_to(bashrc)
    proc = run(script, env_dir=env_dir)
    err = one_line(proc)
    assert proc.returncode == 73 and f"{name}.lock is a symbolic link" in err, err
    assert untouched(bashrc)


def test_planted_lock_of_another_user_or_fifo_is_refused(run, planted):
    script, env_dir, d, name, _ = planted
    os.chown(d / f"{name}.lock", NOBODY, NOBODY)
    proc = run(script, env_dir=env_dir)
    assert proc.returncode == 73 and "not a regular file of yours" in one_line(proc)
    (d / f"{name}.lock").unlink()
    os.mkfifo(d / f"{name}.lock")  # would block an O_WRONLY open: refused at once instead
    proc = run(script, env_dir=env_dir)
    assert proc.returncode == 73 and "not a regular file of yours" in one_line(proc)


def test_planted_gc_stamp_symlink_is_not_touched(run, planted):
    script, env_dir, d, _, bashrc = planted
    stamp = d / ce.GC_STAMP
    stamp.unlink()
    stamp.symlink_to(bashrc)
    old = time.time() - 7200
    os.utime(stamp, (old, old), follow_symlinks=False)  # the link itself looks stale too
    proc = run(script, env_dir=env_dir)
    assert proc.returncode == 3 and proc.stderr == "", proc.stderr
    assert untouched(bashrc) and stamp.is_symlink()


def test_planted_temp_names_are_never_written_through(run, planted):
    """The review planted PATH.<pid>.tmp links for the pids to come; --gc then overwrote them."""
    _, env_dir, d, name, bashrc = planted
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    for pid in range(last + 1, last + 3000):
        os.symlink(bashrc, d / f"usage.jsonl.{pid}.tmp")
        os.symlink(bashrc, d / f".usage.jsonl.{pid}.tmp")
    gc = run("--gc", "--older-than", "1000", env_dir=env_dir)  # compacts the log
    assert gc.returncode == 0, gc.stderr
    assert untouched(bashrc)
    lines = (d / "usage.jsonl").read_text().splitlines()
    assert [json.loads(x)["env"] for x in lines] == [name] and not (d / "usage.jsonl").is_symlink()


def test_gc_and_list_refuse_another_users_env_dir(run, planted):
    _, env_dir, d, name, _ = planted
    os.chmod(env_dir, 0o755)
    os.chown(env_dir, NOBODY, NOBODY)
    for args in (("--gc", "--older-than", "0"), ("--gc", "--dry-run"), ("--list",)):
        proc = run(*args, env_dir=env_dir)
        err = one_line(proc)
        assert proc.returncode == 73 and "belongs to another user" in err, (args, err)
    assert (d / name / "conda-meta").is_dir()
    os.chown(env_dir, 0, 0)
    os.chown(d, NOBODY, NOBODY)  # the platform dir is checked the same way
    proc = run("--list", env_dir=env_dir)
    assert proc.returncode == 73 and "belongs to another user" in one_line(proc)


# ------------------------------------------------------------------ item 3: parents, bootstrap


def test_parents_are_made_0700_under_umask_0(run, tmp_path):
    script = write(tmp_path / "s.py", SCRIPT)
    deep = tmp_path / "home" / "a" / "b" / "envs"
    proc = run(script, env_dir=deep, preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 3, proc.stderr
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777)
             for p in (tmp_path / "home", deep.parent.parent, deep.parent, deep, deep / PLATFORM)}
    figure(f"umask0 modes {modes}")
    assert set(modes.values()) == {"0o700"}, modes


@pytest.mark.parametrize("how", ["binary-0777", "binary-other-owner", "bin-dir-0777"])
def test_untrusted_bootstrapped_micromamba_is_refused(pyz, isolated_env, tmp_path, how):
    script = write(tmp_path / "s.py", SCRIPT)
    home = os.path.join(isolated_env["XDG_CACHE_HOME"], "conda-execute")
    exe = os.path.join(home, "bin", "micromamba")
    os.makedirs(os.path.dirname(exe), 0o700)
    os.chmod(home, 0o700)
    with open(exe, "w") as f:
        f.write("#!/bin/sh\ntouch \"$0.ran\"\nexit 1\n")
    os.chmod(exe, 0o755)
    if how == "binary-0777":
        os.chmod(exe, 0o777)
    elif how == "binary-other-owner":
        os.chown(exe, NOBODY, NOBODY)
    else:
        os.chmod(os.path.dirname(exe), 0o777)
    proc = subprocess.run([sys.executable, pyz, script], env=dict(
        isolated_env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "envs")), capture_output=True,
        text=True, timeout=60)
    err = one_line(proc)
    figure(f"bootstrapped_micromamba {how}: exit={proc.returncode} {err.strip()!r}")
    assert proc.returncode == 74 and not os.path.exists(exe + ".ran"), err
    assert ("writable by other users" if "0777" in how else "belongs to another user") in err


# ------------------------------------------------------------------ item 4: lock files


@pytest.mark.parametrize("how", ["other-owner", "world-writable"])
def test_lock_file_of_another_user_is_not_used(run, conda_root, tmp_path, how):
    script = write(tmp_path / "s.py", SCRIPT)
    env_dir = tmp_path / "envs"
    made = run("--lock", script, env_dir=env_dir)
    assert made.returncode == 0, made.stderr
    lock = script + ".conda-lock"
    if how == "other-owner":
        os.chown(lock, NOBODY, NOBODY)
    else:
        os.chmod(lock, 0o666)
    proc = run(script, env_dir=tmp_path / "envs2")
    assert proc.returncode == 3, proc.stderr
    assert f"warning: {lock}: lock file " in proc.stderr and "not using it" in proc.stderr
    create = conda_root.calls("create")[-1]["argv"]
    assert "--file" not in create, create  # solved from the metadata instead
    locked = run("--locked", script, env_dir=tmp_path / "envs3")
    assert locked.returncode == 2 and one_line(locked).startswith(f"{lock}: lock file ")


@pytest.mark.parametrize("pin", ["evil @ https://example.com/evil.whl", "x==1 --index-url=h",
                                 "x>=1", "-e .", "x==1;python_version>'3'", "==1"])
def test_lock_pins_are_name_equals_version_only(run, tmp_path, pin):
    script = write(tmp_path / "s.py", SCRIPT)
    with open(script + ".conda-lock", "w") as f:
        f.write(f"# conda-execute-lock: 1\n# conda-execute-metadata: x\n"
                f"# conda-execute-pip: {pin}\n# platform: {PLATFORM}\n@EXPLICIT\nfile:///x\n")
    proc = run(script, env_dir=tmp_path / "envs")
    assert proc.returncode == 2 and "bad pip pin" in one_line(proc), proc.stderr


# ------------------------------------------------------------------ item 8: the name's hash


def test_env_name_hash_input_is_unambiguous():
    def spec(env, channels=(), pip=()):
        return ce.Spec(tuple(env), tuple(channels), ("python",), "", 0, pip=tuple(pip))

    assert ce.env_name(spec(["python >=3", "numpy"])) == "ea977067a8fbeb21a594"  # original's
    pairs = [
        (spec(["!a", "# channels", "b"]), spec(["!a"], ["b"])),
        (spec(["a", "# pip", "b"]), spec(["a"], pip=["b"])),
        (spec(["a"], ["b", "# pip", "c"]), spec(["a"], ["b"], ["c"])),
        (spec(["# conda-execute identity 2", "# env", '"a"']), spec(["a"])),
    ]
    for one, other in pairs:
        assert ce.env_name(one) != ce.env_name(other), (one, other)
