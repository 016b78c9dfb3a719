"""Tests of the conda stand-in itself: it must behave as ``shared/conda-facts.md`` says.

Real processes throughout.  Synchronisation with children goes through files and
FIFOs (polled with a deadline), never through sleeps.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest
from conftest import Channel, CondaRoot, channel_builder, isolated_environ, make_conda_root

PY_XY = f"{sys.version_info.major}.{sys.version_info.minor}"
PY_XYZ = f"{PY_XY}.{sys.version_info.micro}"
DEADLINE = 30.0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def release_fifo(path: Path) -> None:
    """Open a FIFO for writing and close it: the reader blocked in ``open`` gets EOF.

    Non-blocking, retried until a reader has opened it (deadline), so a dead reader
    fails the test instead of hanging it.
    """
    fds: List[int] = []

    def try_open() -> bool:
        try:
            fds.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return False
        return True

    wait_for(try_open, f"a reader on {path}")
    os.close(fds[0])


# --------------------------------------------------------------------------- module fixtures


@pytest.fixture(scope="module")
def menv(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """An isolated environment for module-scoped fixtures."""
    return isolated_environ(os.environ, tmp_path_factory.mktemp("iso"))


@pytest.fixture(scope="module")
def mroot(tmp_path_factory: pytest.TempPathFactory, channel: Channel, pkgs_dir: Path) -> CondaRoot:
    """A fake root shared by the read-only tests of this module."""
    return make_conda_root(tmp_path_factory.mktemp("mroot"), [channel.url], pkgs_dir)


@pytest.fixture(scope="module")
def py_env(mroot: CondaRoot, menv: Dict[str, str]) -> Path:
    """A python env (``python mylib tool activator placeholder``): read-only for tests."""
    prefix = mroot.envs / "pyenv"
    proc = mroot.run(
        "create",
        "-p",
        str(prefix),
        "--yes",
        "python",
        "mylib",
        "tool",
        "activator",
        "placeholder",
        env=menv,
    )
    assert proc.returncode == 0, proc.stderr
    return prefix


@pytest.fixture(scope="module")
def tool_env(
    mroot: CondaRoot, menv: Dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A small env (``tool`` only) outside any ``envs`` dir: read-only for tests."""
    prefix = tmp_path_factory.mktemp("toolenv") / "env"
    proc = mroot.run("create", "-p", str(prefix), "--yes", "tool", env=menv)
    assert proc.returncode == 0, proc.stderr
    return prefix


# --------------------------------------------------------------------------- basics


def test_version_and_call_log(conda_root: CondaRoot, isolated_env: Dict[str, str]) -> None:
    assert conda_root.calls() == []
    for flag in ("--version", "-V"):
        proc = conda_root.run(flag, env=isolated_env)
        assert (proc.returncode, proc.stdout) == (0, "conda 26.7.1\n")
    proc = conda_root.run("--version", prog="micromamba", env=isolated_env)
    assert (proc.returncode, proc.stdout) == (0, "2.0.5\n")  # just the version
    calls = conda_root.calls()
    assert [c["argv"] for c in calls] == [
        ["conda", "--version"],
        ["conda", "-V"],
        ["micromamba", "--version"],
    ]
    assert all(isinstance(c["pid"], int) and c["cwd"] == os.getcwd() for c in calls)
    assert conda_root.calls(prog="micromamba")[0]["argv"] == ["micromamba", "--version"]
    assert conda_root.calls("create") == []


def test_usage_errors_exit_2(conda_root: CondaRoot, isolated_env: Dict[str, str]) -> None:
    proc = conda_root.run("frobnicate", env=isolated_env)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = conda_root.run("create", "-p", "x", "--bogus", "tool", env=isolated_env)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr


def test_info_json(conda_root: CondaRoot, isolated_env: Dict[str, str], channel: Channel) -> None:
    proc = conda_root.run("info", "--json", env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["root_prefix"] == str(conda_root.root)
    assert info["envs_dirs"][0] == str(conda_root.envs)
    assert info["pkgs_dirs"] == [str(conda_root.pkgs)]
    assert info["conda_version"] == "26.7.1"
    assert f"{channel.url}/noarch" in info["channels"]
    assert {"config_files", "sys.prefix"} <= set(info)
    mamba = json.loads(conda_root.run("info", "--json", prog="micromamba", env=isolated_env).stdout)
    assert mamba["base environment"] == str(conda_root.root)


# --------------------------------------------------------------------------- create


def test_create_run_list_remove_round_trip(
    conda_root: CondaRoot, isolated_env: Dict[str, str]
) -> None:
    prefix = conda_root.envs / "rt"
    proc = conda_root.run(
        "create",
        "-p",
        str(prefix),
        "--yes",
        "--offline",
        "--override-channels",
        "-c",
        conda_root.channels[0],
        "tool",
        env=isolated_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "Collecting package metadata" in proc.stdout and "Solving environment: done" in proc.stdout
    )
    assert "tool-2.0-0" in proc.stdout
    assert sorted(os.listdir(prefix / "conda-meta")) == ["created_at", "history", "tool-2.0-0.json"]
    assert "# cmd:" in (prefix / "conda-meta" / "history").read_text()

    proc = conda_root.run("run", "-p", str(prefix), "tool", env=isolated_env)
    assert (proc.returncode, proc.stdout) == (0, "tool 2.0\n")

    listing = conda_root.run("list", "-p", str(prefix), "--explicit", env=isolated_env).stdout
    assert listing.splitlines()[-1].endswith("/noarch/tool-2.0-0.tar.bz2")

    proc = conda_root.run("remove", "-p", str(prefix), "--all", "--yes", env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    assert not prefix.exists()
    for args in (
        ["remove", "-p", str(prefix), "--all", "--yes"],
        ["env", "remove", "-p", str(prefix), "--yes"],
    ):
        proc = conda_root.run(*args, env=isolated_env)
        assert proc.returncode == 1
        assert f"EnvironmentLocationNotFound: Not a conda environment: {prefix}" in proc.stderr
    assert [c["subcommand"] for c in conda_root.calls()] == [
        "create",
        "run",
        "list",
        "remove",
        "remove",
        "env",
    ]


def test_env_remove(conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path) -> None:
    prefix = tmp_path / "empty-env"
    assert conda_root.run("create", "-p", str(prefix), "--yes", env=isolated_env).returncode == 0
    assert (prefix / "conda-meta" / "history").exists()
    assert (
        conda_root.run("env", "remove", "-p", str(prefix), "--yes", env=isolated_env).returncode
        == 0
    )
    assert not prefix.exists()


def test_create_json_and_version_spec(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    proc = conda_root.run(
        "create", "-p", str(prefix), "--json", "tool=1.0", env=isolated_env, input="n\n"
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # the whole stdout is one JSON object; --json implies --yes
    assert result["success"] is True and result["prefix"] == str(prefix)
    (link,) = result["actions"]["LINK"]
    assert {
        "base_url",
        "build_number",
        "build_string",
        "channel",
        "dist_name",
        "name",
        "platform",
        "version",
    } <= set(link)
    assert (link["name"], link["version"], link["dist_name"]) == ("tool", "1.0", "tool-1.0-0")
    assert (prefix / "bin" / "tool").read_text().strip().endswith('"tool 1.0"')


def test_create_prompt_reads_eof_as_yes_and_n_as_no(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    proc = conda_root.run(
        "create", "-p", str(tmp_path / "a"), "tool", env=isolated_env, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, proc.stderr
    assert "Proceed ([y]/n)?" in proc.stdout and (tmp_path / "a" / "bin" / "tool").exists()
    proc = conda_root.run(
        "create", "-p", str(tmp_path / "b"), "tool", env=isolated_env, input="n\n"
    )
    # a declined prompt is CondaSystemExit, a CondaExitZero (conda/exceptions.py 26.7.1): rc 0
    assert (proc.returncode, proc.stderr) == (0, "\nCondaSystemExit: Exiting.\n\n")
    assert not (tmp_path / "b").exists()


def test_double_dash_ends_options(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    proc = conda_root.run(
        "create", "-p", str(tmp_path / "e"), "--yes", "--", "tool<2", env=isolated_env
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "e" / "conda-meta" / "tool-1.0-0.json").exists()


def test_python_pulls_pip(py_env: Path) -> None:
    names = sorted(p.name for p in (py_env / "conda-meta").glob("*.json"))
    assert f"python-{PY_XYZ}-0_fake.json" in names and any(n.startswith("pip-") for n in names)


def test_recreate_existing_env_and_keep_foreign_files(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    env_dir = tmp_path / "env"
    assert (
        conda_root.run("create", "-p", str(env_dir), "--yes", "tool", env=isolated_env).returncode
        == 0
    )
    (env_dir / "stale.txt").write_text("old env")
    assert (
        conda_root.run(
            "create", "-p", str(env_dir), "--yes", "activator", env=isolated_env
        ).returncode
        == 0
    )
    assert not (env_dir / "stale.txt").exists() and not (env_dir / "bin" / "tool").exists()
    assert (env_dir / "conda-meta" / "activator-1.0-0.json").exists()

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "keep.txt").write_text("mine")
    assert (
        conda_root.run("create", "-p", str(plain), "--yes", "tool", env=isolated_env).returncode
        == 0
    )
    assert (plain / "keep.txt").read_text() == "mine" and (plain / "bin" / "tool").exists()


ERROR_KEYS = {
    "caused_by",
    "channel_urls",
    "channels_formatted",
    "error",
    "exception_name",
    "exception_type",
    "message",
    "packages",
    "packages_formatted",
}


@pytest.mark.parametrize(
    ("spec", "missing"),
    [("nosuchpkg", "nosuchpkg"), ("tool>=9", "tool>=9"), ("broken", "nosuchdep")],
    ids=["missing-package", "impossible-version", "missing-dependency"],
)
def test_packages_not_found(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path, spec: str, missing: str
) -> None:
    prefix = tmp_path / "env"
    proc = conda_root.run("create", "-p", str(prefix), "--yes", spec, env=isolated_env)
    assert proc.returncode == 1
    assert (
        "PackagesNotFoundError: The following packages are not available from current channels:"
        in proc.stderr
    )
    assert f"  - {missing}\n" in proc.stderr
    assert "Collecting package metadata" in proc.stdout
    assert not prefix.exists()

    proc = conda_root.run("create", "-p", str(prefix), "--json", spec, env=isolated_env)
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert set(error) >= ERROR_KEYS
    assert error["exception_name"] == "PackagesNotFoundInChannelsError"
    assert error["packages"] == [missing]
    assert not prefix.exists()


def test_conflict_is_unsatisfiable(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    proc = conda_root.run(
        "create", "-p", str(prefix), "--json", "toolplugin", "tool>=2", env=isolated_env
    )
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert error["exception_name"] == "UnsatisfiableError"
    assert {"unsatisfiable", "guidance", "message", "error"} <= set(error)
    proc = conda_root.run(
        "create", "-p", str(prefix), "--yes", "toolplugin", "tool>=2", env=isolated_env
    )
    assert proc.returncode == 1 and "UnsatisfiableError: " in proc.stderr
    assert not prefix.exists()
    # ...and each half alone is fine
    proc = conda_root.run("create", "-p", str(prefix), "--yes", "toolplugin", env=isolated_env)
    assert proc.returncode == 0 and (prefix / "conda-meta" / "tool-1.0-0.json").exists()


def test_invalid_spec_and_the_json_traceback_quirk(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    proc = conda_root.run("create", "-p", str(prefix), "--yes", "tool>=>1", env=isolated_env)
    assert (
        proc.returncode == 1 and "InvalidMatchSpec: " in proc.stderr and "tool>=>1" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    proc = conda_root.run("create", "-p", str(prefix), "--json", "tool>=>1", env=isolated_env)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert not prefix.exists()


def test_failed_create_keeps_a_preexisting_directory(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "existing"
    prefix.mkdir()
    proc = conda_root.run("create", "-p", str(prefix), "--yes", "nosuchpkg", env=isolated_env)
    assert proc.returncode == 1 and prefix.is_dir() and not (prefix / "conda-meta").exists()


def test_environments_txt_only_in_test_home(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    assert conda_root.run("create", "-p", str(prefix), "--yes", env=isolated_env).returncode == 0
    registry = Path(isolated_env["HOME"]) / ".conda" / "environments.txt"
    assert registry.read_text().splitlines() == [str(prefix)]


# --------------------------------------------------------------------------- explicit lists


def test_list_explicit_md5_format(
    mroot: CondaRoot, py_env: Path, menv: Dict[str, str], channel: Channel
) -> None:
    proc = mroot.run("list", "-p", str(py_env), "--explicit", "--md5", env=menv)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:5] == [
        "# This file may be used to create an environment using:",
        "# $ conda create --name <env> --file <this file>",
        "# platform: linux-64" if sys.platform.startswith("linux") else lines[2],
        "# created-by: conda 26.7.1",
        "@EXPLICIT",
    ]
    urls = lines[5:]
    names = [re.sub(r"-[^-]+-[^-]+\.tar\.bz2#.*$", "", u.rsplit("/", 1)[1]) for u in urls]
    assert sorted(names) == ["activator", "mylib", "pip", "placeholder", "python", "tool"]
    # disconnected packages first (by name), then dependency order
    assert names[:3] == ["activator", "placeholder", "tool"]
    assert names.index("python") < names.index("mylib") and names.index("python") < names.index(
        "pip"
    )
    for url in urls:
        assert url.startswith(channel.url + "/")
        path, md5 = url[len("file://") :].split("#")
        assert md5 == hashlib.md5(Path(path).read_bytes()).hexdigest()
    plain = mroot.run("list", "-p", str(py_env), "--explicit", env=menv).stdout
    assert plain.splitlines()[5:] == [u.split("#")[0] for u in urls]


def test_create_from_explicit_file_installs_exactly_without_solving(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    # `broken` alone can never be solved (its dependency is missing): installing it
    # proves the explicit list is installed as-is.
    broken = f"{channel.url}/noarch/broken-1.0-0.tar.bz2"
    md5 = hashlib.md5((channel.path / "noarch" / "broken-1.0-0.tar.bz2").read_bytes()).hexdigest()
    spec = tmp_path / "explicit.txt"
    spec.write_text(
        f"# platform: linux-64\n@EXPLICIT\n{broken}#{md5}\n"
        f"{channel.url}/noarch/tool-1.0-0.tar.bz2\n"
    )
    prefix = tmp_path / "env"
    proc = conda_root.run(
        "create", "-p", str(prefix), "--yes", "--file", str(spec), env=isolated_env
    )
    assert proc.returncode == 0, proc.stderr
    meta = sorted(os.listdir(prefix / "conda-meta"))
    assert meta == ["broken-1.0-0.json", "created_at", "history", "tool-1.0-0.json"]
    listing = conda_root.run(
        "list", "-p", str(prefix), "--explicit", "--md5", env=isolated_env
    ).stdout
    assert f"{broken}#{md5}" in listing.splitlines()

    spec.write_text(f"@EXPLICIT\n{broken}#{'0' * 32}\n")
    proc = conda_root.run(
        "create", "-p", str(tmp_path / "bad"), "--yes", "--file", str(spec), env=isolated_env
    )
    assert proc.returncode == 1 and "ChecksumMismatchError" in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_explicit_round_trip_reproduces_env(
    mroot: CondaRoot, py_env: Path, menv: Dict[str, str], tmp_path: Path
) -> None:
    listing = mroot.run("list", "-p", str(py_env), "--explicit", "--md5", env=menv).stdout
    (tmp_path / "lock.txt").write_text(listing)
    prefix = tmp_path / "copy"
    proc = mroot.run(
        "create", "-p", str(prefix), "--yes", "--file", str(tmp_path / "lock.txt"), env=menv
    )
    assert proc.returncode == 0, proc.stderr
    again = mroot.run("list", "-p", str(prefix), "--explicit", "--md5", env=menv).stdout
    assert again == listing


def test_added_package_is_solved_from_a_fresh_channel(
    conda_root_factory: Callable[..., CondaRoot],
    fresh_channel: Channel,
    isolated_env: Dict[str, str],
    tmp_path: Path,
) -> None:
    fresh_channel.add_package("tool", "3.0", files={"bin/tool": '#!/bin/sh\necho "tool 3.0"\n'})
    root = conda_root_factory(channels=[fresh_channel.url])
    prefix = tmp_path / "env"
    assert root.run("create", "-p", str(prefix), "--yes", "tool", env=isolated_env).returncode == 0
    assert root.run("run", "-p", str(prefix), "tool", env=isolated_env).stdout == "tool 3.0\n"


# --------------------------------------------------------------------------- the python package


def test_python_env_works(py_env: Path, menv: Dict[str, str]) -> None:
    code = "import sys, mylib; print(sys.prefix); print(mylib.__version__, mylib.greet('x'))"
    proc = subprocess.run(
        [str(py_env / "bin" / "python"), "-c", code], env=menv, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(py_env), "1.0 hello x from mylib"]
    assert os.path.islink(py_env / "bin" / f"python{PY_XY}")
    assert (py_env / "lib" / f"python{PY_XY}" / "site-packages" / "mylib" / "__init__.py").exists()
    proc = subprocess.run(
        [str(py_env / "bin" / "python"), "-m", "pip", "--version"],
        env=menv,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{py_env}/lib/python{PY_XY}/site-packages/pip" in proc.stdout


def test_placeholder_rewritten(mroot: CondaRoot, py_env: Path, menv: Dict[str, str]) -> None:
    assert (py_env / "share" / "placeholder.txt").read_text() == f"prefix={py_env}\n"
    proc = mroot.run("run", "-p", str(py_env), "where-am-i", env=menv)
    assert proc.stdout == f"{py_env}\n"


# --------------------------------------------------------------------------- conda run


def test_run_activation(
    mroot: CondaRoot, py_env: Path, tool_env: Path, menv: Dict[str, str]
) -> None:
    code = (
        "import os, json; print(json.dumps({k: os.environ.get(k) for k in "
        "('CONDA_PREFIX', 'CONDA_DEFAULT_ENV', 'CONDA_SHLVL', 'ACTIVATOR_VAR', 'PATH')}))"
    )
    proc = mroot.run("run", "-p", str(py_env), "python", "-c", code, env=menv)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["CONDA_PREFIX"] == str(py_env)
    assert seen["CONDA_DEFAULT_ENV"] == "pyenv"  # basename: the env is in an `envs` dir
    assert seen["CONDA_SHLVL"] == "1"
    assert seen["ACTIVATOR_VAR"] == f"activated-{py_env}"
    assert seen["PATH"].split(os.pathsep)[0] == str(py_env / "bin")
    # outside an `envs` dir conda uses the full path
    proc = mroot.run("run", "-p", str(tool_env), "sh", "-c", 'echo "$CONDA_DEFAULT_ENV"', env=menv)
    assert proc.stdout == f"{tool_env}\n"


def test_run_applies_state_env_vars(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    assert conda_root.run("create", "-p", str(prefix), "--yes", env=isolated_env).returncode == 0
    (prefix / "conda-meta" / "state").write_text(
        json.dumps({"env_vars": {"MY_STATE_VAR": "from state"}})
    )
    proc = conda_root.run(
        "run", "-p", str(prefix), "sh", "-c", 'echo "$MY_STATE_VAR"', env=isolated_env
    )
    assert proc.stdout == "from state\n"


@pytest.mark.parametrize("dashdash", [[], ["--"]], ids=["plain", "double-dash"])
def test_run_passes_arguments_verbatim(
    mroot: CondaRoot, py_env: Path, menv: Dict[str, str], dashdash: List[str]
) -> None:
    args = ["-v", "--help", "a b", "", "$X", "*", 'q"uote', "it's"]
    code = "import sys, json; print(json.dumps(sys.argv[1:]))"
    proc = mroot.run("run", "-p", str(py_env), *dashdash, "python", "-c", code, *args, env=menv)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == args


def test_run_missing_prefix(mroot: CondaRoot, menv: Dict[str, str], tmp_path: Path) -> None:
    proc = mroot.run("run", "-p", str(tmp_path / "nope"), "true", env=menv)
    assert proc.returncode == 1
    assert (
        f"EnvironmentLocationNotFound: Not a conda environment: {tmp_path / 'nope'}" in proc.stderr
    )


@pytest.mark.parametrize("capture", [True, False], ids=["capture", "no-capture"])
def test_run_stdin_and_stream_order(
    mroot: CondaRoot, tool_env: Path, menv: Dict[str, str], capture: bool
) -> None:
    flags = [] if capture else ["--no-capture-output"]
    code = (
        "import sys\n"
        "data = sys.stdin.read()\n"
        "for i in (1, 2):\n"
        "    sys.stderr.write(f'err{i}\\n'); sys.stderr.flush()\n"
        "    sys.stdout.write(f'out{i} {data!r}\\n'); sys.stdout.flush()\n"
    )
    proc = subprocess.run(
        [str(mroot.conda), "run", "-p", str(tool_env), *flags, sys.executable, "-c", code],
        env=menv,
        input=b"hello\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    assert proc.returncode == 0
    if capture:  # stdin at EOF; all stdout, then all stderr
        assert proc.stdout == b"out1 ''\nout2 ''\nerr1\nerr2\n"
    else:
        assert proc.stdout == b"err1\nout1 'hello\\n'\nerr2\nout2 'hello\\n'\n"


@pytest.mark.parametrize("capture", [True, False], ids=["capture", "no-capture"])
def test_run_output_only_after_exit_in_capture_mode(
    mroot: CondaRoot, tool_env: Path, menv: Dict[str, str], tmp_path: Path, capture: bool
) -> None:
    fifo, marker = tmp_path / "go", tmp_path / "wrote-first"
    os.mkfifo(fifo)
    code = (
        "import sys, pathlib\n"
        "sys.stdout.write('first\\n'); sys.stdout.flush()\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        f"open({str(fifo)!r}).read()\n"
        "print('second')\n"
    )
    flags = [] if capture else ["--no-capture-output"]
    proc = subprocess.Popen(
        [str(mroot.conda), "run", "-p", str(tool_env), *flags, sys.executable, "-c", code],
        env=menv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(marker.exists, "the child to write its first line")
        readable, _, _ = select.select([proc.stdout], [], [], 0 if capture else DEADLINE)
        assert bool(readable) is not capture  # captured output is held back while the child runs
        release_fifo(fifo)
        stdout, _ = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    assert stdout == b"first\nsecond\n"


@pytest.mark.parametrize("capture", [True, False], ids=["capture", "no-capture"])
def test_run_binary_output(
    mroot: CondaRoot, tool_env: Path, menv: Dict[str, str], capture: bool
) -> None:
    flags = [] if capture else ["--no-capture-output"]
    code = "import sys; sys.stdout.buffer.write(b'\\xff\\xfeok')"
    proc = subprocess.run(
        [str(mroot.conda), "run", "-p", str(tool_env), *flags, sys.executable, "-c", code],
        env=menv,
        capture_output=True,
        timeout=60,
    )
    assert proc.stdout == (b"\xef\xbf\xbd\xef\xbf\xbdok" if capture else b"\xff\xfeok")


@pytest.mark.parametrize(
    ("command", "rc"),
    [
        (["sh", "-c", "exit 0"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["sh", "-c", "exit 255"], 255),
        (["sh", "-c", "kill -TERM $$"], 143),
        (["sh", "-c", "kill -KILL $$"], 137),
        (["no-such-command-xyz"], 127),
    ],
    ids=["0", "3", "255", "sigterm", "sigkill", "not-found"],
)
def test_run_exit_codes(
    mroot: CondaRoot, tool_env: Path, menv: Dict[str, str], command: List[str], rc: int
) -> None:
    proc = mroot.run("run", "-p", str(tool_env), *command, env=menv)
    assert proc.returncode == rc
    line = (
        "ERROR conda.cli.main_run:execute(148): "
        f"`conda run {' '.join(command)}` failed. (See above for error)"
    )
    assert (line in proc.stderr.splitlines()) is (rc != 0)
    if rc == 127:
        assert "no-such-command-xyz: command not found" in proc.stderr


@pytest.fixture
def blocked_child(tmp_path: Path) -> Iterator[Dict[str, Path]]:
    """Paths for a child that records its pid, blocks on a FIFO, then writes 'survived'."""
    paths = {
        "fifo": tmp_path / "fifo",
        "pid": tmp_path / "child.pid",
        "result": tmp_path / "result",
    }
    os.mkfifo(paths["fifo"])
    yield paths
    if paths["pid"].exists() and not paths["result"].exists():
        pid = int(paths["pid"].read_text())
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def child_code(paths: Dict[str, Path]) -> str:
    """Python code for :func:`blocked_child` (the pid file appears atomically)."""
    pid, tmp = str(paths["pid"]), str(paths["pid"].with_suffix(".tmp"))
    return (
        "import os, pathlib\n"
        f"pathlib.Path({tmp!r}).write_text(str(os.getpid()))\n"
        f"os.replace({tmp!r}, {pid!r})\n"
        f"open({str(paths['fifo'])!r}).read()\n"
        f"pathlib.Path({str(paths['result'])!r}).write_text('survived')\n"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_does_not_forward_signals(
    mroot: CondaRoot,
    tool_env: Path,
    menv: Dict[str, str],
    tmp_path: Path,
    blocked_child: Dict[str, Path],
    sig: signal.Signals,
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**menv, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(
        [
            str(mroot.conda),
            "run",
            "-p",
            str(tool_env),
            sys.executable,
            "-c",
            child_code(blocked_child),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(blocked_child["pid"].exists, "the child's pid file")
        child = int(blocked_child["pid"].read_text())
        os.kill(proc.pid, sig)  # the conda process only, not its group
        _, stderr = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    if sig == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM
    else:
        assert proc.returncode == 1 and "CondaError: KeyboardInterrupt" in stderr
    assert pid_alive(child)  # orphaned, still running
    assert [
        p.name for p in tmpdir.iterdir() if p.name.startswith("tmp")
    ]  # wrapper script left behind
    release_fifo(blocked_child["fifo"])
    wait_for(blocked_child["result"].exists, "the orphaned child to finish")
    assert blocked_child["result"].read_text() == "survived"


def test_run_signal_to_the_group_reaches_the_child(
    mroot: CondaRoot, tool_env: Path, menv: Dict[str, str], blocked_child: Dict[str, Path]
) -> None:
    proc = subprocess.Popen(
        [
            str(mroot.conda),
            "run",
            "-p",
            str(tool_env),
            sys.executable,
            "-c",
            child_code(blocked_child),
        ],
        env=menv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(blocked_child["pid"].exists, "the child's pid file")
        child = int(blocked_child["pid"].read_text())
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not pid_alive(child), "the child to die")
    assert not blocked_child["result"].exists()


# --------------------------------------------------------------------------- micromamba


# libmamba's command line: micromamba 2.0.5 (the facts file), mamba 2.x (the same program
# under the name mamba), micromamba 1.5.8 (its sources: same calls, solver messages without
# the ``=* *`` of 2.x).
LIBMAMBA = {
    "micromamba": ("micromamba", {}),
    "mamba2": ("mamba", {}),
    "micromamba1.5": ("micromamba", {"micromamba_version": "1.5.8"}),
}


@pytest.fixture(scope="module", params=sorted(LIBMAMBA))
def lm(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    channel: Channel,
    pkgs_dir: Path,
) -> Dict[str, object]:
    """A root and the program name for one libmamba personality (module-scoped)."""
    prog, settings = LIBMAMBA[request.param]
    root = make_conda_root(tmp_path_factory.mktemp("lmroot"), [channel.url], pkgs_dir, **settings)
    return {"root": root, "prog": prog, "v2": "micromamba_version" not in settings,
            "id": request.param}


def lmrun(lm: Dict[str, object], *args: str, env: Dict[str, str], **kw: object):
    root = lm["root"]
    assert isinstance(root, CondaRoot)
    return root.run(*args, prog=str(lm["prog"]), env=env, **kw)  # type: ignore[arg-type]


def test_libmamba_version_is_just_the_number(
    conda_root_factory: Callable[..., CondaRoot], isolated_env: Dict[str, str]
) -> None:
    root = conda_root_factory()
    for prog in ("micromamba", "mamba"):
        assert root.run("--version", prog=prog, env=isolated_env).stdout == "2.0.5\n"
        proc = root.run("-V", prog=prog, env=isolated_env)  # CLI11: no -V
        assert proc.returncode == 109
        assert "The following arguments were not expected: -V" in proc.stderr
    old = conda_root_factory(name="old", micromamba_version="1.5.8")
    assert old.run("--version", prog="micromamba", env=isolated_env).stdout == "1.5.8\n"
    mamba1 = conda_root_factory(name="m1", personality="mamba1")
    proc = mamba1.run("--version", prog="mamba", env=isolated_env)
    assert proc.stdout == "mamba 2.0.5\nconda 26.7.1\n" or proc.stdout.startswith("mamba ")
    assert proc.stdout.splitlines()[1] == "conda 26.7.1"


def test_libmamba_create_double_dash_progress_on_stdout_and_quiet(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    prefix = tmp_path / "e"
    proc = lmrun(lm, "create", "-p", str(prefix), "-y", "--override-channels", "-c",
                 channel.url, "--", "tool<2", "mylib", env=menv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Transaction" in proc.stdout and "Linking tool-1.0-0" in proc.stdout
    assert (prefix / "conda-meta" / "tool-1.0-0.json").exists()
    assert any(p.name.startswith("pip-") for p in (prefix / "conda-meta").iterdir())
    quiet = lmrun(lm, "create", "-p", str(tmp_path / "q"), "-y", "-q", "--", "tool", env=menv)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert (tmp_path / "q" / "conda-meta" / "tool-2.0-0.json").exists()


def test_libmamba_create_failures_on_stderr_and_nothing_left(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path
) -> None:
    eq = " =* *" if lm["v2"] else ""
    prefix = tmp_path / "x"
    proc = lmrun(lm, "create", "-p", str(prefix), "-y", "nosuchpkg", env=menv)
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 1
    assert proc.stderr.splitlines() == [
        "error    libmamba Could not solve for environment specs",
        "    The following package could not be installed",
        f"    └─ nosuchpkg{eq} does not exist (perhaps a typo or a missing channel).",
        "critical libmamba Could not solve for environment specs",
    ]
    assert not prefix.exists()
    proc = lmrun(lm, "create", "-p", str(prefix), "-y", "toolplugin", "tool>=2", env=menv)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and not prefix.exists()
    assert lines[0] == "error    libmamba Could not solve for environment specs"
    assert lines[-1] == "critical libmamba Could not solve for environment specs"
    proc = lmrun(lm, "create", "-p", str(prefix), "-y", "tool>=>1", env=menv)
    assert proc.returncode == 1 and not prefix.exists()
    assert proc.stderr == (
        'critical libmamba Error parsing version ">1". Version contains invalid characters '
        "in >1.\n"
    )
    proc = lmrun(lm, "create", "-p", str(prefix), "-y", "--", "--version", env=menv)
    assert proc.returncode == 1 and not prefix.exists()
    assert f"└─ --version{eq} does not exist" in proc.stderr


def test_libmamba_existing_env_replaced_non_conda_folder_refused(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    assert lmrun(lm, "create", "-p", str(prefix), "-y", "tool", env=menv).returncode == 0
    proc = lmrun(lm, "create", "-p", str(prefix), "-y", "mylib", env=menv)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name.split("-")[0] for p in (prefix / "conda-meta").glob("*.json"))
    assert "tool" not in names and "mylib" in names  # only the new specs
    for content in ({"file": "x"}, {}):  # a non-conda folder, even an empty one
        foreign = tmp_path / f"foreign{len(content)}"
        foreign.mkdir()
        for name, text in content.items():
            (foreign / name).write_text(text)
        proc = lmrun(lm, "create", "-p", str(foreign), "-y", "tool", env=menv)
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == [
            "error    libmamba Non-conda folder exists at prefix",
            "critical libmamba Aborting.",
        ]
        assert sorted(os.listdir(foreign)) == sorted(content)


def test_libmamba_python_pulls_pip_and_fails_without_it(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, fresh_channel: Channel
) -> None:
    for sub in fresh_channel.path.iterdir():
        for pkg in sub.glob("pip-*"):
            pkg.unlink()
    channel_builder.index_channel(fresh_channel.path)
    subdir = channel_builder.current_subdir()
    repodata = json.loads((fresh_channel.path / subdir / "repodata.json").read_text())
    assert not any(r["name"] == "pip" for r in repodata["packages"].values())
    proc = lmrun(lm, "create", "-p", str(tmp_path / "p"), "-y", "--override-channels", "-c",
                 fresh_channel.url, "python", env=menv)
    assert proc.returncode == 1 and not (tmp_path / "p").exists()
    assert "pip" in proc.stderr and "does not exist" in proc.stderr


def test_libmamba_rejects_abbreviated_options(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    proc = lmrun(lm, "create", "-p", str(tmp_path / "a"), "-y", "--overr", "-c", channel.url,
                 "tool", env=menv)
    assert proc.returncode == 109 and not (tmp_path / "a").exists()
    assert proc.stderr.splitlines()[0] == "The following arguments were not expected: --overr"


def test_libmamba_json_and_explicit_file(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    proc = lmrun(lm, "create", "-p", str(tmp_path / "j"), "-y", "--json", "tool", env=menv)
    assert proc.returncode == 0, proc.stderr
    link = json.loads(proc.stdout)["actions"]["LINK"]
    assert [(r["name"], r["version"]) for r in link] == [("tool", "2.0")]
    listing = tmp_path / "list.txt"
    url = f"{channel.url}/noarch/tool-1.0-0.tar.bz2"
    listing.write_text(f"@EXPLICIT\n{url}\n")
    proc = lmrun(lm, "create", "-p", str(tmp_path / "f"), "-y", "--file", str(listing), env=menv)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "f" / "conda-meta").glob("*.json")] == ["tool-1.0-0.json"]


def test_libmamba_has_no_list_explicit_but_env_export_explicit(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    prefix = tmp_path / "env"
    assert lmrun(lm, "create", "-p", str(prefix), "-y", "mylib", env=menv).returncode == 0
    proc = lmrun(lm, "list", "-p", str(prefix), "--explicit", "--md5", env=menv)
    assert (proc.returncode, proc.stdout) == (109, "")
    assert proc.stderr.splitlines()[0] == (
        "The following arguments were not expected: --md5 --explicit"
    )
    proc = lmrun(lm, "env", "export", "-p", str(prefix), "--explicit", env=menv)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == [
        "# This file may be used to create an environment using:",
        "# $ conda create --name <env> --file <this file>",
        "# platform: linux-64" if sys.platform.startswith("linux") else lines[2],
        "@EXPLICIT",
    ]  # no "# created-by:"
    names = sorted(u.rsplit("/", 1)[1].split("-")[0] for u in lines[4:])
    assert names == ["mylib", "pip", "python"]
    for url in lines[4:]:
        path, md5 = url[len("file://") :].split("#")
        assert url.startswith(channel.url + "/")
        assert md5 == hashlib.md5(Path(path).read_bytes()).hexdigest()
    same = lmrun(lm, "env", "export", "-p", str(prefix), "--explicit", "--md5", env=menv)
    assert same.stdout == proc.stdout
    bare = lmrun(lm, "env", "export", "-p", str(prefix), "--explicit", "--no-md5", env=menv)
    assert bare.stdout.splitlines()[4:] == [u.split("#")[0] for u in lines[4:]]


def test_libmamba_run_and_env_remove(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    assert lmrun(lm, "create", "-p", str(prefix), "-y", "tool", env=menv).returncode == 0
    code = 'read x; printf "%s|" "$x" "$@" "$CONDA_PREFIX" "$CONDA_DEFAULT_ENV" "$CONDA_SHLVL"; exit 7'
    proc = lmrun(lm, "run", "-p", str(prefix), "sh", "-c", code, "sh", "-v", "a b", "",
                 env=menv, input="hi\n")
    assert proc.returncode == 7
    assert proc.stdout == f"hi|-v|a b||{prefix}|{prefix}|1|"
    assert "ERROR conda.cli.main_run" not in proc.stderr
    proc = lmrun(lm, "run", "-p", str(prefix), "no-such-command-here", env=menv)
    assert proc.returncode == 127
    binary = lmrun(lm, "run", "-p", str(prefix), "printf", r"\000\377\r\n", env=menv,
                   text=False)
    assert binary.stdout == b"\x00\xff\r\n"
    proc = lmrun(lm, "env", "remove", "-p", str(prefix), "-y", env=menv)
    assert proc.returncode == 0 and not prefix.exists()


def test_libmamba_run_forwards_sigterm_then_exits_252(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, blocked_child: Dict[str, Path]
) -> None:
    prefix = tmp_path / "env"
    assert lmrun(lm, "create", "-p", str(prefix), "-y", "tool", env=menv).returncode == 0
    handler = (
        "import signal, sys\n"
        "def on_term(*a):\n"
        "    print('child got SIGTERM', flush=True)\n"
        "    sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
    )
    root = lm["root"]
    assert isinstance(root, CondaRoot)
    proc = subprocess.Popen(
        [str(root.root / "bin" / str(lm["prog"])), "run", "-p", str(prefix), sys.executable,
         "-c", handler + child_code(blocked_child)],
        env=menv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(blocked_child["pid"].exists, "the child's pid file")
        child = int(blocked_child["pid"].read_text())
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 252
    assert stdout == "child got SIGTERM\n"  # the child's own handler ran
    assert "Interrupted system call ; error code 4" in stderr
    wait_for(lambda: not pid_alive(child), "the child to die")
    assert not blocked_child["result"].exists()


# --------------------------------------------------------------------------- channels


@pytest.mark.parametrize("prog", ["conda", "micromamba"])
def test_condarc_channels_are_read_defaults_expand(
    prog: str, conda_root_factory: Callable[..., CondaRoot], isolated_env: Dict[str, str],
    tmp_path: Path, channel: Channel, fresh_channel: Channel,
) -> None:
    fresh_channel.add_package("onlyfresh", "1.0", noarch=True)
    root = conda_root_factory(channels=[channel.url])
    rc = Path(isolated_env["HOME"]) / ".condarc"
    rc.write_text(f"channels:\n  - {fresh_channel.url}\n")
    proc = root.run("create", "-p", str(tmp_path / "a"), "-y", "onlyfresh", prog=prog,
                    env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    # without 'defaults' in the condarc, the default channels are not searched; with it they are
    other = conda_root_factory(channels=[fresh_channel.url], name="other")
    rc.write_text(f"channels: [{channel.url}]\n")
    proc = other.run("create", "-p", str(tmp_path / "b"), "-y", "onlyfresh", prog=prog,
                     env=isolated_env)
    assert proc.returncode == 1 and "onlyfresh" in proc.stderr
    rc.write_text(f"channels: [{channel.url}, defaults]\n")
    proc = other.run("create", "-p", str(tmp_path / "b"), "-y", "onlyfresh", prog=prog,
                     env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    rc.write_text("channels: [conda-forge, defaults]\n")
    proc = root.run("create", "-p", str(tmp_path / "c"), "-y", "tool", prog=prog,
                    env=isolated_env)
    assert proc.returncode == 1 and not (tmp_path / "c").exists()
    assert "conda.anaconda.org/conda-forge" in proc.stderr  # not silently dropped
    mapped = conda_root_factory(name="mapped", custom_channels={"conda-forge": channel.url})
    proc = mapped.run("create", "-p", str(tmp_path / "d"), "-y", "tool", prog=prog,
                      env=isolated_env)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("prog", ["conda", "micromamba"])
def test_a_network_channel_beside_a_file_channel_fails(
    prog: str, conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path,
    channel: Channel,
) -> None:
    proc = conda_root.run("create", "-p", str(tmp_path / "n"), "-y", "--override-channels",
                          "-c", channel.url, "-c", "https://example.invalid/ch", "tool",
                          prog=prog, env=isolated_env)
    assert proc.returncode == 1 and not (tmp_path / "n").exists()
    assert "https://example.invalid/ch/" in proc.stderr


def test_isolated_env_hides_real_home_and_conda(isolated_env: Dict[str, str]) -> None:
    import pwd

    real_home = pwd.getpwuid(os.getuid()).pw_dir
    assert os.environ["HOME"] == isolated_env["HOME"] != real_home
    assert os.path.expanduser("~") == isolated_env["HOME"]
    assert not any(k.startswith(("CONDA_", "MAMBA_")) for k in os.environ
                   if k != "CONDA_EXECUTE_BOOTSTRAP")
    assert os.environ["CONDA_EXECUTE_BOOTSTRAP"] == "0"  # no test downloads micromamba


# --------------------------------------------------------------------------- other platforms

#: The keys of a LINK entry of ``conda create --json`` (PackageRecord.dist_fields_dump).
CONDA_LINK_KEYS = [
    "base_url", "build_number", "build_string", "channel", "dist_name", "name", "platform",
    "version",
]
#: What libmamba's ``to_json(PackageInfo)`` writes for every package (specs/package_info.cpp).
MAMBA_LINK_KEYS = {
    "build", "build_number", "build_string", "channel", "constrains", "depends", "fn",
    "license", "md5", "name", "sha256", "size", "subdir", "timestamp", "track_features",
    "url", "version",
}
MACHO_ARM64 = b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_vars(env: Dict[str, str], **extra: str) -> Dict[str, str]:
    """A copy of ``env`` with ``extra`` set (``CONDA_SUBDIR=...``)."""
    return {**env, **extra}


def private_root(tmp_path: Path, channel: Channel, **settings: object) -> CondaRoot:
    """A root with its own package cache (the foreign python shares the native one's
    name-version-build, so installing it would replace the shared cache entry)."""
    return make_conda_root(tmp_path / "root", [channel.url], tmp_path / "pkgs", **settings)


def test_channel_has_packages_for_three_platforms(channel: Channel) -> None:
    def names(subdir: str) -> List[str]:
        repodata = json.loads((channel.path / subdir / "repodata.json").read_text())
        return sorted(r["name"] for r in repodata["packages"].values())

    for subdir in ("linux-64", "linux-aarch64", "osx-arm64"):
        expected = ["mylib", "pip", "python"] + (["linuxonly"] if subdir == "linux-64" else [])
        assert names(subdir) == sorted(expected)
        for pkg in (channel.path / subdir).glob("*.tar.bz2"):
            with tarfile.open(pkg) as tar:
                index = json.load(tar.extractfile("info/index.json"))  # type: ignore[arg-type]
            assert index["subdir"] == subdir and index["timestamp"] == 1_700_000_000_000
            if index["name"] == "python":
                assert (index["version"], index["build"]) == (PY_XYZ, "0_fake")
    assert "linuxonly" not in names("noarch") and "tool" in names("noarch")
    if channel_builder.current_subdir() != "osx-arm64":  # a stub that cannot run here
        with tarfile.open(channel.path / "osx-arm64" / f"python-{PY_XYZ}-0_fake.tar.bz2") as tar:
            member = tar.extractfile(f"bin/python{PY_XY}")
            assert member is not None and member.read(8) == MACHO_ARM64


@pytest.mark.parametrize("how", ["CONDA_SUBDIR", "--subdir", "--platform"])
def test_conda_dry_run_for_another_platform(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path, channel: Channel,
    how: str,
) -> None:
    prefix = tmp_path / "env"
    flags = [] if how == "CONDA_SUBDIR" else [how, "osx-arm64"]
    env = with_vars(isolated_env, CONDA_SUBDIR="osx-arm64") if how == "CONDA_SUBDIR" else None
    proc = conda_root.run("create", "--dry-run", "--json", *flags, "-p", str(prefix), "--",
                          "python", "mylib", "tool", env=env or isolated_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # cli/install.py handle_txn: stdout_json_success(prefix=..., actions=..., dry_run=True)
    assert list(result) == ["success", "actions", "prefix", "dry_run"]
    assert (result["success"], result["prefix"], result["dry_run"]) == (True, str(prefix), True)
    actions = result["actions"]
    assert list(actions) == ["FETCH", "PREFIX", "LINK"]
    assert (actions["FETCH"], actions["PREFIX"]) == ([], str(prefix))  # file:// fetches nothing
    link = {entry["name"]: entry for entry in actions["LINK"]}
    assert sorted(link) == ["mylib", "pip", "python", "tool"]
    for entry in actions["LINK"]:
        assert sorted(entry) == CONDA_LINK_KEYS  # no url, file name, md5 or sha256
        assert entry["base_url"] == channel.url and entry["channel"] == channel.path.name
    assert link["python"]["platform"] == "osx-arm64" and link["tool"]["platform"] == "noarch"
    assert link["python"]["dist_name"] == f"python-{PY_XYZ}-0_fake"
    assert (link["python"]["build_string"], link["python"]["build_number"]) == ("0_fake", 0)
    assert not prefix.exists()
    assert [c["argv"][1:3] for c in conda_root.calls()] == [["create", "--dry-run"]]


def test_conda_dry_run_with_no_solution_for_the_platform(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    prefix = tmp_path / "env"
    env = with_vars(isolated_env, CONDA_SUBDIR="osx-arm64")
    proc = conda_root.run("create", "--dry-run", "--json", "-p", str(prefix), "--", "linuxonly",
                          env=env)
    assert proc.returncode == 1 and not prefix.exists()
    error = json.loads(proc.stdout)
    assert set(error) >= ERROR_KEYS
    assert error["exception_name"] == "PackagesNotFoundInChannelsError"
    assert error["packages"] == ["linuxonly"]
    assert error["channel_urls"] == [f"{channel.url}/osx-arm64", f"{channel.url}/noarch"]
    env = with_vars(isolated_env, CONDA_SUBDIR="linux-64")  # where it exists
    proc = conda_root.run("create", "--dry-run", "--json", "-p", str(prefix), "--", "linuxonly",
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["actions"]["LINK"][0]["platform"] == "linux-64"


def test_conda_subdir_option_is_checked_but_conda_subdir_is_not(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    prefix = tmp_path / "env"
    # cli/helpers.py add_parser_platform: choices=KNOWN_SUBDIRS minus noarch
    proc = conda_root.run("create", "--dry-run", "--json", "--subdir", "plan9-64", "-p",
                          str(prefix), "tool", env=isolated_env)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "argument --subdir/--platform: invalid choice: 'plan9-64'" in proc.stderr
    # $CONDA_SUBDIR is taken as it is: the channel has no plan9-64/, which reads as empty
    env = with_vars(isolated_env, CONDA_SUBDIR="plan9-64")
    proc = conda_root.run("create", "--dry-run", "--json", "-p", str(prefix), "tool", env=env)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["actions"]["LINK"]
    assert (entry["name"], entry["platform"]) == ("tool", "noarch")
    proc = conda_root.run("create", "--dry-run", "--json", "-p", str(prefix), "python", env=env)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["channel_urls"] == [
        f"{channel.url}/plan9-64", f"{channel.url}/noarch"
    ]
    proc = conda_root.run("create", "--dry-run", "-p", str(prefix), "tool", env=env)
    assert (proc.returncode, proc.stderr) == (0, "\nDryRunExit: Dry run. Exiting.\n\n")
    assert "Platform: plan9-64" in proc.stdout and not prefix.exists()


def test_conda_dry_run_prefix_rules(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    env_dir = tmp_path / "env"
    assert conda_root.run("create", "-p", str(env_dir), "-y", "tool", env=isolated_env
                          ).returncode == 0
    proc = conda_root.run("create", "--dry-run", "--json", "-p", str(env_dir), "tool",
                          env=isolated_env)
    assert proc.returncode == 1 and (env_dir / "conda-meta" / "tool-2.0-0.json").exists()
    error = json.loads(proc.stdout)
    assert (error["exception_name"], error["message"]) == (
        "CondaValueError", "Cannot `create --dry-run` with an existing conda environment"
    )
    # no -p/-n: allowed with --dry-run (a temporary path), else an ArgumentError (rc 2)
    proc = conda_root.run("create", "--dry-run", "--json", "tool", env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    unused = json.loads(proc.stdout)["prefix"]
    assert unused.endswith("/unused-env-name") and not os.path.exists(unused)
    proc = conda_root.run("create", "--json", "tool", env=isolated_env)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["message"] == (
        "one of the arguments -n/--name -p/--prefix is required"
    )


def test_conda_non_conda_directory_is_a_prompt(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "keep.txt").write_text("mine")
    proc = conda_root.run("create", "-p", str(plain), "tool", env=isolated_env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0  # CondaSystemExit: the default answer is no
    assert f"WARNING: A directory already exists at the target location '{plain}'" in proc.stdout
    assert "Continue creating environment (y/[n])? " in proc.stdout
    assert proc.stderr == "\nCondaSystemExit: Exiting.\n\n"
    assert sorted(os.listdir(plain)) == ["keep.txt"]


def test_conda_create_for_another_platform_installs_and_remembers_it(
    channel: Channel, isolated_env: Dict[str, str], tmp_path: Path
) -> None:
    root = private_root(tmp_path, channel)
    prefix = tmp_path / "env"
    env = with_vars(isolated_env, CONDA_SUBDIR="osx-arm64")
    proc = root.run("create", "-y", "-p", str(prefix), "mylib", env=env)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((prefix / "conda-meta" / f"python-{PY_XYZ}-0_fake.json").read_text())
    assert record["subdir"] == "osx-arm64" and "/osx-arm64/" in record["url"]
    assert (prefix / "bin" / f"python{PY_XY}").read_bytes()[:8] == MACHO_ARM64
    # cli/install.py handle_txn: a new env for a non-native subdir gets it in its .condarc
    assert (prefix / ".condarc").read_text() == "subdir: osx-arm64\n"
    native = tmp_path / "native"
    assert root.run("create", "-y", "-p", str(native), "tool", env=isolated_env).returncode == 0
    assert not (native / ".condarc").exists()


def test_conda_list_explicit_sha256_and_platform_header(
    isolated_env: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    root = private_root(tmp_path, channel)
    prefix = tmp_path / "env"
    env = with_vars(isolated_env, CONDA_SUBDIR="osx-arm64")
    assert root.run("create", "-y", "-p", str(prefix), "mylib", env=env).returncode == 0
    proc = root.run("list", "-p", str(prefix), "--explicit", "--sha256", env=isolated_env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # the header names the configured platform, not the env's (main_list.py: context.subdir)
    assert lines[2] == f"# platform: {channel_builder.current_subdir()}" and lines[4] == "@EXPLICIT"
    for line in lines[5:]:  # URL#SHA256, no "sha256:" (main_list.py print_explicit)
        url, digest = line.split("#")
        assert url.startswith(f"{channel.url}/osx-arm64/")
        assert digest == sha256_of(Path(url[len("file://"):]))
    md5 = root.run("list", "-p", str(prefix), "--explicit", "--md5", env=env)
    assert md5.stdout.splitlines()[2] == "# platform: osx-arm64"
    assert [len(u.split("#")[1]) for u in md5.stdout.splitlines()[5:]] == [32, 32, 32]
    both = root.run("list", "-p", str(prefix), "--explicit", "--md5", "--sha256", env=env)
    assert (both.returncode, both.stdout) == (2, "")  # ArgumentError.return_code
    assert "ArgumentError: Only one of --md5 and --sha256 can be specified at the same time" in (
        both.stderr
    )


def test_conda_explicit_list_of_another_platform_installs_as_is(
    isolated_env: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    root = private_root(tmp_path, channel)
    python = channel.path / "osx-arm64" / f"python-{PY_XYZ}-0_fake.tar.bz2"
    mylib = channel.path / "osx-arm64" / "mylib-1.0-0.tar.bz2"
    listing = tmp_path / "osx.txt"
    listing.write_text(  # the three checksum forms of misc.py _get_url_pattern
        "# platform: osx-arm64\n@EXPLICIT\n"
        f"{python.as_uri()}#{sha256_of(python)}\n"
        f"{mylib.as_uri()}#sha256:{sha256_of(mylib)}\n"
        f"{channel.url}/noarch/tool-1.0-0.tar.bz2\n"
    )
    prefix = tmp_path / "env"
    proc = root.run("create", "--dry-run", "--json", "-p", str(prefix), "--file", str(listing),
                    env=isolated_env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")  # DryRunExit, silent
    assert not prefix.exists()
    proc = root.run("create", "-y", "-p", str(prefix), "--file", str(listing), env=isolated_env)
    assert proc.returncode == 0, proc.stderr  # no platform check, no solve
    assert sorted(p.name for p in (prefix / "conda-meta").glob("*.json")) == [
        "mylib-1.0-0.json", f"python-{PY_XYZ}-0_fake.json", "tool-1.0-0.json"
    ]
    assert not (prefix / ".condarc").exists()
    listing.write_text(f"@EXPLICIT\n{python.as_uri()}#{'0' * 64}\n")
    proc = root.run("create", "-y", "-p", str(tmp_path / "bad"), "--file", str(listing),
                    env=isolated_env)
    assert proc.returncode == 1 and "ChecksumMismatchError" in proc.stderr
    assert "expected sha256: " + "0" * 64 in proc.stderr
    listing.write_text(f"@EXPLICIT\n{python.as_uri()}#not-a-digest\n")
    proc = root.run("create", "-y", "-p", str(tmp_path / "bad"), "--file", str(listing),
                    env=isolated_env)
    assert proc.returncode == 1 and "ParseError: Could not parse explicit URL: " in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_conda_offline_reads_no_network_channel(
    conda_root: CondaRoot, isolated_env: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    args = ["-y", "--override-channels", "-c", "https://example.invalid/ch", "-c", channel.url,
            "tool"]
    proc = conda_root.run("create", "--offline", "-p", str(tmp_path / "a"), *args,
                          env=isolated_env)
    assert proc.returncode == 0, proc.stderr  # its repodata is empty, not an error
    proc = conda_root.run("create", "-p", str(tmp_path / "b"), *args, env=isolated_env)
    assert proc.returncode == 1 and "CondaHTTPError" in proc.stderr


# --------------------------------------------------------------------------- conda search


SEARCH_KEYS_PLATFORM = [
    "name", "version", "build", "build_number", "channel", "subdir", "fn", "md5", "url",
    "sha256", "arch", "platform", "depends", "constrains", "license", "timestamp", "size",
]


@pytest.mark.parametrize(
    "query",
    [f"python=={PY_XYZ}=0_fake", f"python={PY_XYZ}=0_fake", f"python {PY_XYZ} 0_fake",
     f"python[version={PY_XYZ},build=0_fake]"],
)
def test_conda_search_json_for_another_subdir(
    mroot: CondaRoot, menv: Dict[str, str], channel: Channel, query: str
) -> None:
    proc = mroot.run("search", "--json", "--subdir", "osx-arm64", query, env=menv)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    (record,) = result["python"]
    assert list(record) == SEARCH_KEYS_PLATFORM  # PackageRecord.dump(): declaration order
    path = channel.path / "osx-arm64" / f"python-{PY_XYZ}-0_fake.tar.bz2"
    assert record["url"] == path.as_uri() and record["fn"] == path.name
    assert record["channel"] == f"{channel.url}/osx-arm64"  # str(Channel): with the subdir
    assert (record["subdir"], record["arch"], record["platform"]) == ("osx-arm64", "arm64", "osx")
    assert record["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert record["sha256"] == sha256_of(path) and record["size"] == path.stat().st_size
    assert record["timestamp"] == 1_700_000_000_000  # milliseconds
    assert (record["depends"], record["build_number"]) == ([], 0)


def test_conda_search_subdirs_flexible_search_and_not_found(
    mroot: CondaRoot, menv: Dict[str, str], channel: Channel
) -> None:
    def search(*args: str, env: Dict[str, str] = menv) -> subprocess.CompletedProcess:
        return mroot.run("search", "--json", *args, env=env)

    tools = json.loads(search("--subdir", "osx-arm64", "tool").stdout)
    assert [(r["version"], r["subdir"]) for r in tools["tool"]] == [("1.0", "noarch"),
                                                                    ("2.0", "noarch")]
    assert tools["tool"][0]["noarch"] == "generic"
    assert tools["tool"][0]["package_type"] == "noarch_generic"
    assert "arch" not in tools["tool"][0]
    env = with_vars(menv, CONDA_SUBDIR="linux-aarch64")
    assert json.loads(search("mylib", env=env).stdout)["mylib"][0]["subdir"] == "linux-aarch64"
    # no match for an exact name: conda retries with *NAME* (same constraints)
    assert sorted(json.loads(search("too").stdout)) == ["tool", "toolplugin"]
    proc = mroot.run("search", "too", "--skip-flexible-search", env=menv)
    assert proc.returncode == 1
    # a [subdir=...] in the spec searches that subdir alone (no noarch)
    proc = search("tool[subdir=osx-arm64]")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["channel_urls"] == [f"{channel.url}/osx-arm64"]
    assert search("--subdir", "plan9-64", "tool>=2").returncode == 0  # any string; noarch
    by_channel = json.loads(search(f"{channel.url}::tool>=2").stdout)  # CHANNEL::SPEC
    assert [r["version"] for r in by_channel["tool"]] == ["2.0"]
    proc = search("--subdir", "osx-arm64", "linuxonly")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert error["exception_name"] == "PackagesNotFoundInChannelsError"  # main_search.py
    assert error["packages"] == ["linuxonly"]
    assert error["channel_urls"] == [f"{channel.url}/osx-arm64", f"{channel.url}/noarch"]
    table = mroot.run("search", "--subdir", "osx-arm64", "mylib", env=menv)
    assert table.returncode == 0 and table.stdout.splitlines()[-1].split() == [
        "mylib", "1.0", "0", channel.path.name
    ]


# --------------------------------------------------------------------------- libmamba platforms


@pytest.mark.parametrize("how", ["--platform", "CONDA_SUBDIR", "MAMBA_PLATFORM"])
def test_libmamba_dry_run_for_another_platform(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel, how: str
) -> None:
    prefix = tmp_path / "env"
    flags = ["--platform", "osx-arm64"] if how == "--platform" else []
    env = menv if flags else with_vars(menv, **{how: "osx-arm64"})
    proc = lmrun(lm, "create", "--dry-run", "--json", *flags, "-p", str(prefix), "--",
                 "python", "tool", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{\n    "actions": {')  # indent 4, sorted keys
    result = json.loads(proc.stdout)
    assert (result["success"], result["dry_run"], result["prefix"]) == (True, True, str(prefix))
    assert result["actions"]["PREFIX"] == str(prefix)
    link = {entry["name"]: entry for entry in result["actions"]["LINK"]}
    assert sorted(link) == ["pip", "python", "tool"]
    for entry in link.values():
        assert set(entry) - {"noarch"} == MAMBA_LINK_KEYS
        path = Path(entry["url"][len("file://"):])
        assert entry["channel"] == channel.url  # a URL
        assert (entry["fn"], entry["size"]) == (path.name, path.stat().st_size)
        assert entry["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
        assert entry["sha256"] == sha256_of(path)
        assert entry["build_string"] == entry["build"] and entry["timestamp"] == 1_700_000_000
    assert (link["python"]["subdir"], link["tool"]["subdir"]) == ("osx-arm64", "noarch")
    assert link["python"]["depends"] == ["pip"]  # add_pip_as_python_dependency
    assert link["tool"]["noarch"] == "generic" and "noarch" not in link["python"]
    assert not prefix.exists()


def test_libmamba_no_env_ignores_conda_subdir(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path
) -> None:
    env = with_vars(menv, CONDA_SUBDIR="osx-arm64")
    proc = lmrun(lm, "create", "--dry-run", "--json", "--no-env", "-p", str(tmp_path / "e"),
                 "mylib", env=env)
    assert proc.returncode == 0, proc.stderr
    subdirs = {e["subdir"] for e in json.loads(proc.stdout)["actions"]["LINK"]}
    assert subdirs == {channel_builder.current_subdir()}


def test_libmamba_unknown_platform_warns_and_solves_noarch(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    # any --platform is accepted; a channel without that subdir is a warning (not with --json)
    args = ["create", "--dry-run", "--platform", "plan9-64", "-p", str(tmp_path / "e"), "tool"]
    proc = lmrun(lm, *args, env=menv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(
        "warning  libmamba Download error (37) Couldn't read a file:// file "
        f"[{channel.url}/plan9-64/repodata.json]"
    )
    assert f"{channel.url}/plan9-64 {channel.url}/noarch" in proc.stdout
    proc = lmrun(lm, *args, "--json", env=menv)
    assert proc.returncode == 0 and proc.stderr == ""
    (entry,) = json.loads(proc.stdout)["actions"]["LINK"]
    assert (entry["name"], entry["subdir"]) == ("tool", "noarch")


def test_conda_info_reports_conda_subdir(
    mroot: CondaRoot, menv: Dict[str, str], channel: Channel
) -> None:
    info = json.loads(mroot.run("info", "--json", env=with_vars(menv, CONDA_SUBDIR="osx-arm64")
                                ).stdout)
    assert info["platform"] == "osx-arm64"
    assert info["channels"] == [f"{channel.url}/osx-arm64", f"{channel.url}/noarch"]


def test_libmamba_unsolvable_json_has_solver_problems(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "env"
    proc = lmrun(lm, "create", "--dry-run", "--json", "--platform", "osx-arm64", "-p",
                 str(prefix), "--", "linuxonly", env=menv)
    assert proc.returncode == 1 and not prefix.exists()
    # api/install.cpp: json_write({"success": false, "solver_problems": ...}); the log level
    # is critical with --json, so stderr has the last line only
    assert json.loads(proc.stdout) == {
        "solver_problems": ["nothing provides requested linuxonly"], "success": False
    }
    assert proc.stderr == "critical libmamba Could not solve for environment specs\n"
    proc = lmrun(lm, "create", "-y", "--json", "-p", str(prefix), "broken", env=menv)
    assert proc.returncode == 1 and not prefix.exists()
    assert json.loads(proc.stdout)["solver_problems"] == [
        "nothing provides nosuchdep needed by broken-1.0-0"
    ]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    proc = lmrun(lm, "create", "-y", "--json", "-p", str(foreign), "tool", env=menv)
    assert (proc.returncode, proc.stdout) == (1, "")  # no JSON was written before the error
    assert proc.stderr == "critical libmamba Aborting.\n"


def test_libmamba_platform_is_stored_in_the_prefix(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    prefix = tmp_path / "env"
    proc = lmrun(lm, "create", "-y", "-q", "--platform", "osx-arm64", "-p", str(prefix),
                 "mylib", env=menv)
    assert proc.returncode == 0, proc.stderr
    # api/create.cpp store_platform_config: "platform: X", no newline
    assert (prefix / ".mambarc").read_text() == "platform: osx-arm64"
    assert json.loads((prefix / "conda-meta" / "mylib-1.0-0.json").read_text())["subdir"] == (
        "osx-arm64"
    )
    export = lmrun(lm, "env", "export", "-p", str(prefix), "--explicit", env=menv)
    assert export.stdout.splitlines()[2] == "# platform: osx-arm64"  # the prefix's .mambarc
    assert f"{channel.url}/osx-arm64/mylib-1.0-0.tar.bz2#" in export.stdout
    # recreated without --platform: solved for the old .mambarc's platform (the target
    # prefix's rc files are read first), which goes with the old env (from an rc: not stored)
    proc = lmrun(lm, "create", "-y", "-q", "-p", str(prefix), "mylib", env=menv)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((prefix / "conda-meta" / "mylib-1.0-0.json").read_text())["subdir"] == (
        "osx-arm64"
    )
    assert not (prefix / ".mambarc").exists()
    # written before the solve: a failed solve leaves the prefix with it
    failed = tmp_path / "failed"
    proc = lmrun(lm, "create", "-y", "--platform", "osx-arm64", "-p", str(failed), "linuxonly",
                 env=menv)
    assert proc.returncode == 1 and os.listdir(failed) == [".mambarc"]
    env = with_vars(menv, CONDA_SUBDIR=channel_builder.current_subdir())
    native = tmp_path / "native"
    assert lmrun(lm, "create", "-y", "-q", "-p", str(native), "tool", env=env).returncode == 0
    assert (native / ".mambarc").read_text() == f"platform: {channel_builder.current_subdir()}"


def test_libmamba_dry_run_checks_no_prefix(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path
) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    proc = lmrun(lm, "create", "--dry-run", "-p", str(foreign), "tool", env=menv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "Dry run. Not executing the transaction."
    assert os.listdir(foreign) == []
    proc = lmrun(lm, "create", "--dry-run", "--json", "-p", str(foreign), env=menv)
    assert proc.returncode == 0, proc.stderr
    if lm["v2"]:  # api/create.cpp (2.x): no specs, --dry-run --json: "Just print the JSON"
        assert json.loads(proc.stdout) == {
            "actions": {"FETCH": [], "PREFIX": str(foreign)}, "dry_run": True,
            "prefix": str(foreign), "success": True,
        }
        assert proc.stdout.startswith('{\n  "actions"')  # dump(2)
    else:
        assert proc.stdout == ""


def test_libmamba_fetch_lists_what_the_cache_lacks(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    root = private_root(tmp_path, channel, **LIBMAMBA[str(lm["id"])][1])
    prog = str(lm["prog"])
    dry = ["create", "--dry-run", "--json", "-p", str(tmp_path / "e"), "tool"]
    before = json.loads(root.run(*dry, prog=prog, env=menv).stdout)["actions"]
    assert [e["fn"] for e in before["FETCH"]] == ["tool-2.0-0.tar.bz2"]
    assert root.run("create", "-y", "-p", str(tmp_path / "a"), "tool", prog=prog, env=menv
                    ).returncode == 0
    after = json.loads(root.run(*dry, prog=prog, env=menv).stdout)["actions"]
    assert "FETCH" not in after and [e["fn"] for e in after["LINK"]] == ["tool-2.0-0.tar.bz2"]


def test_libmamba_offline_solves_from_the_package_cache_only(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    root = private_root(tmp_path, channel, **LIBMAMBA[str(lm["id"])][1])
    prog = str(lm["prog"])
    proc = root.run("create", "-y", "--offline", "-p", str(tmp_path / "a"), "tool", prog=prog,
                    env=menv)
    assert proc.returncode == 1 and "tool" in proc.stderr and "does not exist" in proc.stderr
    assert root.run("create", "-y", "-p", str(tmp_path / "b"), "tool<2", prog=prog, env=menv
                    ).returncode == 0
    proc = root.run("create", "-y", "--offline", "-p", str(tmp_path / "a"), "tool", prog=prog,
                    env=menv)
    assert proc.returncode == 0, proc.stderr  # tool 1.0: the only one in the cache
    assert (tmp_path / "a" / "conda-meta" / "tool-1.0-0.json").exists()


def test_libmamba_explicit_list_hashes_and_json(
    lm: Dict[str, object], menv: Dict[str, str], tmp_path: Path, channel: Channel
) -> None:
    python = channel.path / "osx-arm64" / f"python-{PY_XYZ}-0_fake.tar.bz2"
    listing = tmp_path / "list.txt"
    # PackageInfo::from_url: any hex after '#' is the md5 (a sha256 too); other text is ignored
    listing.write_text(f"@EXPLICIT\n{python.as_uri()}#sha256:{sha256_of(python)}\n")
    proc = lmrun(lm, "create", "--dry-run", "--json", "-p", str(tmp_path / "d"), "--file",
                 str(listing), env=menv)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["actions"]["LINK"]
    assert (entry["name"], entry["subdir"], entry["channel"]) == ("python", "osx-arm64",
                                                                  channel.url)
    assert (entry["size"], entry["timestamp"], entry["depends"]) == (0, 0, [])  # from the URL
    assert "md5" not in entry and "sha256" not in entry and not (tmp_path / "d").exists()
    listing.write_text(f"@EXPLICIT\n{python.as_uri()}#{sha256_of(python)}\n")
    proc = lmrun(lm, "create", "-y", "-p", str(tmp_path / "bad"), "--file", str(listing),
                 env=menv)
    assert proc.returncode == 1 and not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- the call log


def test_every_version_probe_is_logged(
    conda_root_factory: Callable[..., CondaRoot], isolated_env: Dict[str, str]
) -> None:
    root = conda_root_factory()
    mamba1 = conda_root_factory(name="m1", personality="mamba1")
    for prog, flag in [("conda", "--version"), ("conda", "-V"), ("micromamba", "--version"),
                       ("micromamba", "-V"), ("mamba", "--version")]:
        root.run(flag, prog=prog, env=isolated_env)
    mamba1.run("--version", prog="mamba", env=isolated_env)
    assert [(c["prog"], c["argv"]) for c in root.calls()] == [
        ("conda", ["conda", "--version"]),
        ("conda", ["conda", "-V"]),
        ("micromamba", ["micromamba", "--version"]),
        ("micromamba", ["micromamba", "-V"]),  # refused (rc 109), still logged
        ("mamba", ["mamba", "--version"]),
    ]
    assert [c["argv"] for c in mamba1.calls()] == [["mamba", "--version"]]
    assert all(c["subcommand"] is None for c in root.calls())
