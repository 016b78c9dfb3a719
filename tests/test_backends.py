"""Package managers as they really behave: the kind told from what the program is (not its
name), the calls made to each (create, `--`, the explicit listing for a lock), and a failed
create's messages (libmamba: progress on stdout, the error on stderr, both shown in order).

The stand-in plays conda 26, mamba 1.x (conda's command line), mamba 2.x and micromamba 2.0.5
and 1.5 (libmamba's); see tests/standin/conda_standin.py and ../shared/*-facts.md.
"""

import json
import os
import subprocess
import sys

import pytest
from test_core import PY, write

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
    # the locked rebuild: a new process asks `--version` once, then creates from the lock (no solve)
    proc = run_ce(env, "--conda", str(pm), script)
    assert (proc.returncode, proc.stdout) == (0, "tool 2.0\n"), proc.stderr
    calls = root.calls()[3:]
    assert [c["argv"][1] for c in calls] == ["--version", "create"]
    assert calls[1]["argv"][-2] == "--file" and calls[1]["argv"][-1].endswith(".conda-lock")
    # a warm run asks the manager nothing, not even its version
    assert run_ce(env, "--conda", str(pm), script).returncode == 0
    assert len(root.calls()) == 5


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
    assert [n for n in os.listdir(tmp_path / "e") if len(n) == 20] == []  # no env made


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
    envs = tmp_path / "envs"
    assert [n for n in os.listdir(envs) if len(n) == 20] == []  # no half-made prefix


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
