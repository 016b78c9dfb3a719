"""Issue 23 item 3: the manager's kind is probed once per executable, not once per first run.

Proof from the stand-in's call log (ROOT/calls.jsonl: one line per invocation of conda): a
second first run (another spec, so another create) with the same manager runs `create` only,
no `--version`; a replaced, rewritten or touched manager is probed again; a cache that cannot
be used (a file in its way, a dir others can write or another user owns, a garbage entry)
costs a probe, never an error. `-v` says which:

    conda-execute: package manager EXE (conda command line): probed with --version
    conda-execute: package manager EXE (conda command line): remembered from an earlier probe

The cache is per user, in $XDG_CACHE_HOME/conda-execute/ (each test has its own: isolated_env).
Through the built pyz and `python -m conda_execute`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOBODY = 65534
PROBED = "probed with --version"
REMEMBERED = "remembered from an earlier probe"


def script(tmp_path, n):
    """A script whose env is new (spec `python`, then `python`+`mylib`...): each is a create."""
    specs = ["python", "mylib", "tool", "activator", "placeholder"][: n + 1]
    path = tmp_path / f"s{n}.py"
    path.write_text("# conda execute\n# env:\n" + "".join(f"#  - {s}\n" for s in specs)
                    + "print('ran')\n")
    return str(path)


class Runner:
    def __init__(self, how, pyz, env, conda_root, tmp_path):
        self.argv0 = [sys.executable, pyz] if how == "pyz" else [sys.executable, "-m",
                                                                  "conda_execute"]
        self.env = dict(env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "envs"))
        if how == "module":
            self.env["PYTHONPATH"] = ROOT
        self.conda_root, self.tmp, self.n = conda_root, tmp_path, 0
        self.cache = os.path.join(self.env["XDG_CACHE_HOME"], "conda-execute")
        self.exe = str(conda_root.condabin / "conda")  # what PATH finds

    def first_run(self, verbose=True):
        """A first run of a new script (a create); returns stderr."""
        self.n += 1
        proc = subprocess.run([*self.argv0, *(["-v"] if verbose else []), script(self.tmp, self.n)],
                              env=self.env, capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)
        assert (proc.returncode, proc.stdout) == (0, "ran\n"), proc.stderr
        assert "Traceback" not in proc.stderr and "warning" not in proc.stderr, proc.stderr
        return proc.stderr

    def asked(self):
        """What conda was asked, in order: '--version' or the subcommand."""
        return [c["argv"][1] for c in self.conda_root.calls()]


def said(stderr, how, exe):
    """The -v line on the kind of EXE, probed or remembered (HOW)."""
    pattern = (rf"^conda-execute: package manager {re.escape(exe)} \(conda command line\): "
               rf"{re.escape(how)}$")
    return re.search(pattern, stderr, re.M) is not None


@pytest.fixture(params=["pyz", "module"])
def runner(request, pyz, conda_root, isolated_env, tmp_path):
    env = {k: v for k, v in conda_root.env_with_conda_on_path(isolated_env).items()
           if not k.lower().endswith("_proxy")}
    return Runner(request.param, pyz, env, conda_root, tmp_path)


def test_a_second_first_run_asks_no_version(runner):
    err = runner.first_run()
    assert runner.asked() == ["--version", "create"]
    assert said(err, PROBED, runner.exe), err
    err = runner.first_run()
    assert runner.asked() == ["--version", "create", "create"], "the kind was probed again"
    assert said(err, REMEMBERED, runner.exe), err
    runner.first_run(verbose=False)
    assert runner.asked().count("--version") == 1
    mode = os.stat(os.path.join(runner.cache)).st_mode & 0o777
    assert mode == 0o700, oct(mode)
    for top, dirs, files in os.walk(runner.cache):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            assert not st.st_mode & 0o077, (os.path.join(top, name), oct(st.st_mode))


def replace(path):
    """A new file (new inode) with the same content, renamed over PATH: an upgrade."""
    tmp = path + ".new"
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


def rewrite(path):
    """The same inode, one more line: size and mtime change."""
    with open(path, "a") as f:
        f.write("# updated\n")


def touch(path):
    """Only the mtime changes."""
    later = time.time() + 5
    os.utime(path, (later, later))


@pytest.mark.parametrize("change", [replace, rewrite, touch], ids=lambda f: f.__name__)
def test_a_changed_manager_is_probed_again(runner, change):
    runner.first_run()
    runner.first_run()
    assert runner.asked() == ["--version", "create", "create"]
    change(runner.exe)
    err = runner.first_run()
    assert runner.asked()[3:] == ["--version", "create"], runner.asked()
    assert said(err, PROBED, runner.exe), err
    err = runner.first_run()  # remembered again, for the file it is now
    assert runner.asked()[5:] == ["create"] and said(err, REMEMBERED, runner.exe), err


def test_another_manager_has_its_own_entry(runner, conda_root_factory):
    other = conda_root_factory(name="other-root")
    runner.first_run()
    env_other = dict(runner.env, CONDA_EXECUTE_CONDA=str(other.conda))
    saved, runner.env = runner.env, env_other
    err = runner.first_run()
    assert said(err, PROBED, str(other.conda)), err
    assert [c["argv"][1] for c in other.calls()] == ["--version", "create"]
    runner.env = saved
    err = runner.first_run()
    assert said(err, REMEMBERED, runner.exe) and runner.asked() == ["--version", "create",
                                                                      "create"], err


def spoil(runner, how):
    """Make the per-user cache unusable, HOW."""
    cache = runner.cache
    if how == "a-file-in-its-way":  # $XDG_CACHE_HOME/conda-execute is a file: no dir there
        shutil.rmtree(cache, ignore_errors=True)
        with open(cache, "w") as f:
            f.write("not a directory\n")
    elif how == "writable-by-others":  # someone else could have planted an answer
        for top, dirs, _ in os.walk(cache):
            for d in [top, *(os.path.join(top, n) for n in dirs)]:
                os.chmod(d, 0o777)
    elif how == "another-users":
        for top, dirs, files in os.walk(cache):
            for p in [top, *(os.path.join(top, n) for n in dirs + files)]:
                os.chown(p, NOBODY, NOBODY)
    elif how == "garbage-entries":
        for top, _, files in os.walk(cache):
            if os.path.basename(top) != "pyc":
                for name in files:
                    with open(os.path.join(top, name), "wb") as f:
                        f.write(b"micromamba \xff\x00 nonsense\n")


@pytest.mark.parametrize("how", ["a-file-in-its-way", "writable-by-others", "another-users",
                                 "garbage-entries"])
def test_an_unusable_cache_costs_a_probe_never_an_error(runner, how):
    runner.first_run()
    spoil(runner, how)
    err = runner.first_run()  # runs, probes, says nothing about the cache but -v's line
    assert runner.asked() == ["--version", "create", "--version", "create"], (how, err)
    assert said(err, PROBED, runner.exe), err
    ours = [ln.replace(str(runner.tmp), "TMP") for ln in err.splitlines()
            if ln.startswith("conda-execute: ")]  # (the test's own name holds "cache")
    assert not [ln for ln in ours if re.search(r"cache|warning|error", ln)], err
    err = runner.first_run()
    if how == "garbage-entries":  # the entry was rewritten: remembered from now on
        assert runner.asked()[4:] == ["create"] and said(err, REMEMBERED, runner.exe), err
    else:  # never trusted, never an error: a probe each time
        assert runner.asked()[4:] == ["--version", "create"] and said(err, PROBED, runner.exe), err
