"""Package managers as they really behave: the kind told from what the program is (not its
name), the calls made to each (create, `--`, the explicit listing for a lock), and a failed
create's messages (libmamba: progress on stdout, the error on stderr, both shown in order).

The stand-in plays conda 26, mamba 1.x (conda's command line), mamba 2.x and micromamba 2.0.5
and 1.5 (libmamba's); see tests/standin/conda_standin.py and ../shared/*-facts.md.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_bootstrap import Bare, micromamba_archive, server  # noqa: F401 (server: a fixture)
from test_core import PY, write

from conda_execute import MARKER

TOOL_SH = """
    #!/bin/sh
    # conda execute
    # env: [tool]
    # run_with: [sh]
    tool
"""

# personality -> (executable name in the root's bin/, standin.json settings, kind)
KINDS = {
    "conda": ("conda", {}, "conda"),
    "mamba1": ("mamba", {"personality": "mamba1"}, "conda"),
    "mamba2": ("mamba", {}, "micromamba"),
    "micromamba2": ("micromamba", {}, "micromamba"),
    "micromamba1.5": ("micromamba", {"micromamba_version": "1.5.8"}, "micromamba"),
}


def run_ce(env, *args, **kw):
    return subprocess.run([sys.executable, "-m", "conda_execute", *args], env=env,
                          capture_output=True, text=True, timeout=180, **kw)


@pytest.mark.parametrize("personality", sorted(KINDS))
@pytest.mark.parametrize("how", ["renamed", "symlink"])
def test_kind_from_what_it_is_not_its_name(personality, how, conda_root_factory, isolated_env,
                                           tmp_path):
    """A manager renamed `pm` (or a symlink `pm` to it) speaks its own dialect; --lock works."""
    name, settings, kind = KINDS[personality]
    settings = {"personality": "mamba" if name == "mamba" and not settings else name, **settings}
    root = conda_root_factory(**settings)
    exe = root.root / "bin" / name
    pm = tmp_path / "elsewhere" / "pm"
    pm.parent.mkdir()
    if how == "symlink":
        pm.symlink_to(exe)
    else:
        pm.write_bytes(exe.read_bytes())
        pm.chmod(0o755)
    script = write(tmp_path / "s.sh", TOOL_SH)
    env = dict(isolated_env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "envs"))
    proc = run_ce(env, "--conda", str(pm), "--lock", script)
    assert proc.returncode == 0, proc.stderr
    (version, create, listing) = root.calls()
    assert version["argv"][1:] == ["--version"]
    assert create["argv"][-2:] == ["--", "tool"]
    if kind == "conda":
        assert listing["argv"][1:2] + listing["argv"][-2:] == ["list", "--explicit", "--md5"]
    else:
        assert listing["argv"][1:3] + listing["argv"][-1:] == ["env", "export", "--explicit"]
    lock = (tmp_path / "s.sh.conda-lock").read_text()
    assert "@EXPLICIT" in lock and "/noarch/tool-2.0-0.tar.bz2#" in lock
    # the locked rebuild: a new process remembers the kind (issue 23: probed once per
    # executable), then creates from the lock (no solve)
    proc = run_ce(env, "--conda", str(pm), script)
    assert (proc.returncode, proc.stdout) == (0, "tool 2.0\n"), proc.stderr
    calls = root.calls()[3:]
    assert [c["argv"][1] for c in calls] == ["create"]
    assert calls[0]["argv"][-2] == "--file" and calls[0]["argv"][-1].endswith(".explicit")
    # a warm run asks the manager nothing, not even its version
    assert run_ce(env, "--conda", str(pm), script).returncode == 0
    assert len(root.calls()) == 4


def test_unrecognised_version_output_is_refused(isolated_env, tmp_path):
    fake = tmp_path / "notconda"
    fake.write_text("#!/bin/sh\necho 'frobnicator 3000'\n")
    fake.chmod(0o755)
    script = write(tmp_path / "s.py", PY)
    proc = run_ce(dict(isolated_env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "e")),
                  "--conda", str(fake), script)
    assert proc.returncode == 69 and proc.stdout == ""
    assert proc.stderr.strip().endswith(
        f"{fake} --version exited with 0 and printed 'frobnicator 3000': "
        "not conda, mamba or micromamba")
    assert [d for _, ds, _ in os.walk(tmp_path / "e") for d in ds if len(d) == 20] == []


@pytest.mark.parametrize("personality", ["conda", "micromamba2", "mamba2"])
@pytest.mark.parametrize("quiet", [False, True], ids=["loud", "quiet"])
def test_failed_create_names_the_manager_and_shows_its_output_in_order(
        personality, quiet, conda_root_factory, isolated_env, tmp_path):
    name, settings, kind = KINDS[personality]
    root = conda_root_factory(**settings)
    script = write(tmp_path / "s.py", PY.replace("#  - python", "#  - python\n#  - nosuchpkg"))
    env = dict(isolated_env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "envs"))
    proc = run_ce(env, *(["--quiet"] if quiet else []), "--conda", str(root.root / "bin" / name),
                  script)
    assert proc.returncode == 70 and proc.stdout == ""
    err = proc.stderr
    assert f"{name} create exited with 1 (see above)" in err
    if kind == "micromamba":  # progress (its stdout, none with -q) before its error (stderr)
        progress = -1 if quiet else err.index(f"{root.channels[0]}/")
        error = err.index("critical libmamba Could not solve for environment specs")
        assert progress < err.index("└─ nosuchpkg =* * does not exist") < error
        assert error < err.index(f"{name} create exited with 1")
    else:
        assert err.index("PackagesNotFoundError") < err.index("conda create exited with 1")
    made = [d for _, dirs, _ in os.walk(tmp_path / "envs") for d in dirs if len(d) == 20]
    assert made == []  # no half-made prefix


def test_dry_run_and_warm_runs_never_ask_the_manager(conda_root, isolated_env, tmp_path):
    env = dict(conda_root.env_with_micromamba_on_path(isolated_env),
               CONDA_EXECUTE_ENV_DIR=str(tmp_path / "envs"))
    script = write(tmp_path / "s.py", PY)
    assert json.loads(run_ce(env, "--dry-run", script).stdout)["env"] == ["python"]
    assert conda_root.calls() == []
    assert run_ce(env, script).returncode == 0
    assert [c["argv"][1] for c in conda_root.calls()] == ["--version", "create"]
    for _ in range(2):
        assert run_ce(env, script).returncode == 0
    assert len(conda_root.calls()) == 2


###############################################################################
# The behaviour tests, on every back end (conftest's `backend` fixture) #########
###############################################################################

EXIT3 = """
    # conda execute
    # env: [python]
    import sys
    print(sys.prefix)
    sys.exit(3)
"""

PEP723 = """
    # /// script
    # requires-python = ">=3.8"
    # dependencies = ["pypidemo==1.0"]
    # [tool.conda]
    # dependencies = ["mylib"]
    # ///
    import mylib, pypidemo
    print(mylib.__version__, pypidemo.VERSION)
"""

HOLD = r"""#!/bin/sh
# `create` runs the real program, then says so (FAULT_DIR/ready) and waits on FAULT_DIR/fifo
[ "$1" = create ] || exec "@REAL@" "$@"
"@REAL@" "$@" || exit $?
echo $$ > "$FAULT_DIR/ready.tmp" && mv "$FAULT_DIR/ready.tmp" "$FAULT_DIR/ready"
exec cat "$FAULT_DIR/fifo"
"""


class On:
    """conda-execute (the module) with one back end on PATH and a private env dir."""

    def __init__(self, backend, env, tmp_path):
        self.backend, self.tmp = backend, tmp_path
        self.env_dir = str(tmp_path / "envs")
        self.env = dict(backend.env_on_path(env), CONDA_EXECUTE_ENV_DIR=self.env_dir)

    def run(self, *args, env=None, **kw):
        return run_ce(dict(self.env, **(env or {})), *args, **kw)

    def start(self, *args, env=None, **kw):
        return subprocess.Popen([sys.executable, "-m", "conda_execute", *args],
                                env=dict(self.env, **(env or {})), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def calls(self, sub=None):
        return [c["argv"][1] for c in self.backend.root.calls(sub)]

    def env_paths(self):
        """The environments' prefixes (ENV_DIR/PLATFORM/NAME)."""
        found = []
        for top, dirs, _ in os.walk(self.env_dir):
            found += [os.path.join(top, d) for d in dirs if len(d) == 20]
            dirs[:] = [d for d in dirs if len(d) != 20]
        return sorted(found)

    def envs(self):
        return sorted(os.path.basename(p) for p in self.env_paths())


@pytest.fixture
def on(backend, isolated_env, tmp_path):
    return On(backend, isolated_env, tmp_path)


def test_run_and_reuse(on, tmp_path):
    script = write(tmp_path / "s.py", PY)
    proc = on.run(script, "-x", "a b", input="in", env={"EXIT": "5"})
    assert proc.returncode == 5, proc.stderr
    out = json.loads(proc.stdout)
    assert out["argv"] == ["-x", "a b"] and out["stdin"] == "in"
    assert on.envs() == [os.path.basename(out["prefix"])]
    assert on.calls() == ["--version", "create"]
    again = on.run(script, input="")
    assert again.returncode == 0 and again.stderr == ""
    assert json.loads(again.stdout)["prefix"] == out["prefix"] and len(on.calls()) == 2


def test_parallel_first_runs_create_once(on, tmp_path):
    script = write(tmp_path / "s.py", EXIT3)
    procs = [on.start(script) for _ in range(6)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [r[0] for r in results] == [3] * 6, [r[2] for r in results]
    assert len({r[1] for r in results}) == 1 and on.calls("create") == ["create"]


def test_sigterm_during_create_stops_it_and_keeps_nothing(on, tmp_path):
    fault = tmp_path / "fault"
    fault.mkdir()
    os.mkfifo(fault / "fifo")
    wrapbin = tmp_path / "wrapbin"
    wrapbin.mkdir()
    hold = wrapbin / on.backend.prog  # the same name: found on PATH before the real one
    hold.write_text(HOLD.replace("@REAL@", str(on.backend.exe)))
    hold.chmod(0o755)
    env = {"PATH": f"{wrapbin}{os.pathsep}{on.env['PATH']}", "FAULT_DIR": str(fault)}
    script = write(tmp_path / "s.py", EXIT3)
    proc = on.start(script, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (fault / "ready").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the create never paused"
            time.sleep(0.01)
        assert len(on.envs()) == 1  # the half-made prefix
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.rstrip("\n").split("\n")[-1] == (
        "conda-execute: error: interrupted while creating the environment; nothing was kept")
    assert on.envs() == [] and out == ""
    again = on.run(script)
    assert again.returncode == 3 and on.calls("create") == ["create", "create"], again.stderr


def test_gc_removes_an_unused_env_and_keeps_one_in_use(on, tmp_path):
    idle = write(tmp_path / "idle.py", EXIT3)
    busy = write(tmp_path / "busy.py", EXIT3.replace("sys.exit(3)", "sys.stdin.read()")
                 .replace("[python]", "[python, mylib]"))
    assert on.run(idle).returncode == 3
    proc = on.start(busy, stdin=subprocess.PIPE)
    try:
        prefix = proc.stdout.readline().strip()
        assert len(on.envs()) == 2
        old = time.time() - 3600
        for path in on.env_paths():  # both unused for an hour (GC keeps envs < 1 minute old)
            marker = os.path.join(path, MARKER)
            with open(marker) as f:
                rec = json.load(f)
            rec["created"] = old
            with open(marker, "w") as f:
                json.dump(rec, f)
        gc = on.run("--gc", "--older-than", "0")
        assert gc.returncode == 0, gc.stderr
        assert on.envs() == [os.path.basename(prefix)] and "in use, kept" in gc.stdout
    finally:
        proc.communicate("", timeout=60)
    assert proc.returncode == 0


def test_lock_rebuild_without_solving_and_locked(on, tmp_path):
    script = write(tmp_path / "s.sh", TOOL_SH)
    proc = on.run("--lock", script)
    assert proc.returncode == 0, proc.stderr
    lock = tmp_path / "s.sh.conda-lock"
    assert "/noarch/tool-2.0-0.tar.bz2#" in lock.read_text()
    proc = on.run("--locked", script)  # built from the lock: create --file, no specs
    assert (proc.returncode, proc.stdout) == (0, "tool 2.0\n"), proc.stderr
    create = on.backend.root.calls("create")[-1]["argv"]
    assert create[-2] == "--file" and create[-1].endswith(".explicit") and "tool" not in create
    other = write(tmp_path / "other.sh", TOOL_SH.replace("[tool]", "[tool <2]"))
    proc = on.run("--locked", other)
    assert proc.returncode != 0 and "lock" in proc.stderr and proc.stdout == ""


def test_pep723_with_pypi_dependencies(on, tmp_path):
    from test_pep723_lock import make_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "pypidemo", "1.0", "VERSION = '1.0'\n")
    script = write(tmp_path / "p.py", PEP723)
    proc = on.run(script, env={"PIP_FIND_LINKS": str(wheels), "PIP_NO_INDEX": "1"})
    assert (proc.returncode, proc.stdout) == (0, "1.0 1.0\n"), proc.stderr
    assert on.calls() == ["--version", "create"]


@pytest.mark.parametrize("version", ["2.0.5", "1.5.8"])
def test_bootstrap_with_each_micromamba(version, conda_root_factory, channel, isolated_env,
                                        tmp_path, pyz, server):  # noqa: F811
    """The bootstrapped micromamba (2.x or 1.5) creates, locks (`env export -r ROOT`), reruns."""
    root = conda_root_factory(custom_channels={"conda-forge": channel.url},
                              micromamba_version=version)
    bare = Bare(isolated_env, tmp_path, pyz)
    url = server.add("/mm", micromamba_archive(root))
    script = write(tmp_path / "t.sh", TOOL_SH)
    proc = bare.run("--lock", script, env={"CONDA_EXECUTE_MICROMAMBA_URL": url})
    assert proc.returncode == 0, proc.stderr
    argv = [c["argv"] for c in root.calls()]
    rootp = os.path.join(bare.cache, "root")
    assert [a[1:3] for a in argv] == [["--version"], ["create", "-r"], ["env", "export"]]
    assert argv[2][3:5] == ["-r", rootp] and argv[2][-1] == "--explicit"
    proc = bare.run(script)
    assert (proc.returncode, proc.stdout) == (0, "tool 2.0\n"), proc.stderr
    assert root.calls()[-1]["argv"][-2] == "--file"
