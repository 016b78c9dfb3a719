"""PEP 723 scripts (conda and PyPI dependencies) and lock files, through the built pyz."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

import conda_execute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_wheel(directory, name, version, body):
    """A minimal pure-Python wheel, written by hand (no build backend needed)."""
    dist = f"{name}-{version}"
    files = {f"{name}.py": body, f"{dist}.dist-info/METADATA":
             f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL":
             "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(directory, f"{dist}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as zf:
        for name_, text in files.items():
            zf.writestr(name_, text)
    return path


@pytest.fixture
def run(pyz, conda_root_factory, fresh_channel, isolated_env, tmp_path):
    """Run the pyz with stand-in conda on a private channel and a local wheel dir for pip."""
    root = conda_root_factory(channels=[fresh_channel.url])
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(str(wheels), "pypidemo", "1.0", "VERSION = '1.0'\n")
    env = root.env_with_conda_on_path(isolated_env)
    env.update(CONDA_EXECUTE_ENV_DIR=str(tmp_path / "envs"), PIP_FIND_LINKS=str(wheels),
               PIP_NO_INDEX="1")

    def run(*args, **kw):
        return subprocess.run([sys.executable, pyz, *args], capture_output=True, text=True,
                              env=kw.pop("env", env), timeout=180, **kw)

    run.root, run.channel, run.wheels, run.env = root, fresh_channel, wheels, env
    return run


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


PEP723 = """
    #!/usr/bin/env -S uv run --script
    # /// script
    # requires-python = ">=3.8"
    # dependencies = ["pypidemo==1.0"]
    # [tool.conda]
    # dependencies = ["mylib"]
    # ///
    import json, sys
    import mylib, pypidemo
    print(json.dumps({"prefix": sys.prefix, "mylib": mylib.__version__,
                      "pypidemo": pypidemo.VERSION, "argv": sys.argv[1:]}))
"""


def micromamba_only(run):
    """run's environment with only the stand-in's micromamba on PATH."""
    env = run.root.env_with_micromamba_on_path(dict(run.env))
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if p != str(run.root.condabin))
    return env


@pytest.mark.parametrize("prog", ["conda", "micromamba"])
def test_pep723_script_gets_conda_and_pypi_dependencies(run, tmp_path, prog):
    script = write(tmp_path / "s.py", PEP723)
    env = run.env if prog == "conda" else micromamba_only(run)
    dry = json.loads(run("--dry-run", script, env=env).stdout)
    assert dry["env"] == ["python >=3.8", "mylib", "pip"] and dry["pip"] == ["pypidemo==1.0"]
    assert dry["run_with"] == ["python"]  # not the uv shebang
    proc = run(script, "x", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["mylib"] == "1.0" and out["pypidemo"] == "1.0" and out["argv"] == ["x"]
    creates = run.root.calls("create", prog=prog)
    assert len(creates) == 1 and "mylib" in creates[0]["argv"]
    # the kind of manager is asked once (`--version`), on the cold run only
    assert [c["argv"][1:2] for c in run.root.calls()] == [["--version"], ["create"]]
    assert run(script, env=env).returncode == 0 and len(run.root.calls()) == 2


def test_pypi_failure_leaves_nothing(run, tmp_path):
    script = write(tmp_path / "s.py", """
        # /// script
        # dependencies = ["nosuchdist==9"]
        # ///
        print("never")
    """)
    proc = run(script)
    assert proc.returncode == 70 and "pip install exited" in proc.stderr
    assert proc.stdout == ""
    envs = tmp_path / "envs" / conda_execute.conda_platform()
    assert [p for p in os.listdir(envs) if len(p) == 20] == []


def test_both_kinds_of_block_is_an_error(run, tmp_path):
    script = write(tmp_path / "s.py", """
        # conda execute
        # env: [python]

        # /// script
        # dependencies = []
        # ///
    """)
    # a '# conda execute' block ends the reading (huge scripts are not read whole): documented
    assert run("--dry-run", script).returncode == 0
    script2 = write(tmp_path / "t.py", """
        # /// script
        # dependencies = []
        # ///
        # conda execute
        # env: [python]
    """)
    proc2 = run(script2)
    assert proc2.returncode == 2 and "keep one" in proc2.stderr
    assert proc2.stderr.startswith(f"{script2}:4: ")  # at the second block
    assert run.root.calls() == []


def test_bad_toml_names_the_script_line(run, tmp_path):
    script = write(tmp_path / "s.py", """
        import os
        # /// script
        # dependencies = [
        #   "a",
        #   oops
        # ]
        # ///
    """)
    proc = run(script)
    assert proc.returncode == 2 and proc.stderr.startswith(f"{script}:5: "), proc.stderr
    assert run.root.calls() == []


TOOL_SCRIPT = """
    # conda execute
    # env: [tool]
    # run_with: [sh]
    tool
"""


def test_lock_pins_builds_until_upgraded(run, tmp_path):
    script = write(tmp_path / "s.sh", TOOL_SCRIPT)
    proc = run("--lock", script)
    assert proc.returncode == 0, proc.stderr
    lock = tmp_path / "s.sh.conda-lock"
    text = lock.read_text()
    assert text.startswith("# conda-execute-lock: 2\n# conda-execute-metadata: ")
    assert "@EXPLICIT" in text and "/tool-2.0-" in text and "#" in text.split("@EXPLICIT")[1]
    assert run("--dry-run", script).stdout.count(str(lock)) == 1
    assert run(script).stdout == "tool 2.0\n"
    created = run.root.calls("create")[-1]["argv"]  # from the lock's list for here
    assert created[-2] == "--file" and created[-1].endswith(".explicit")

    run.channel.add_package("tool", "3.0", files={"bin/tool": "#!/bin/sh\necho tool 3.0\n"})
    # on another machine (a fresh env dir) the locked script still gets the old build ...
    other = str(tmp_path / "other-machine")
    assert run("--env-dir", other, script).stdout == "tool 2.0\n"
    # ... while an unlocked copy solves and gets the newest
    unlocked = write(tmp_path / "copy.sh", TOOL_SCRIPT)
    assert run("--env-dir", other, unlocked).stdout == "tool 3.0\n"
    assert run("--lock", "--upgrade", script).returncode == 0
    assert "/tool-3.0-" in lock.read_text()
    assert run(script).stdout == "tool 3.0\n"


def test_stale_lock_warns_and_solves_or_fails_with_locked(run, tmp_path):
    script = write(tmp_path / "s.sh", TOOL_SCRIPT)
    assert run("--lock", script).returncode == 0
    write(tmp_path / "s.sh", TOOL_SCRIPT.replace("[tool]", "[tool, mylib]"))
    proc = run(script)
    assert proc.returncode == 0 and "other metadata" in proc.stderr and "warning" in proc.stderr
    proc = run("--locked", script)
    assert proc.returncode == 2 and "other metadata" in proc.stderr
    assert proc.stderr.startswith(f"{script}.conda-lock:2: ")
    other = tmp_path / "none.sh"
    other.write_text(textwrap.dedent(TOOL_SCRIPT))
    proc = run("--locked", str(other))
    assert proc.returncode == 2 and "no lock file" in proc.stderr


def test_lock_records_pypi_pins_and_reinstalls_them_no_deps(run, tmp_path):
    script = write(tmp_path / "s.py", PEP723.replace("pypidemo==1.0", "pypidemo"))
    assert run("--lock", script).returncode == 0
    text = (tmp_path / "s.py.conda-lock").read_text()
    assert "# conda-execute-pip: pypidemo==1.0\n" in text
    make_wheel(str(run.wheels), "pypidemo", "2.0", "VERSION = '2.0'\n")
    out = json.loads(run(script).stdout)
    assert out["pypidemo"] == "1.0"  # the pin, though 2.0 is now available


def test_malformed_lock_is_an_error_with_its_line(run, tmp_path):
    script = write(tmp_path / "s.sh", TOOL_SCRIPT)
    (tmp_path / "s.sh.conda-lock").write_text("hello\n")
    proc = run(script)
    assert proc.returncode == 2 and proc.stderr.startswith(f"{script}.conda-lock:1: ")
    assert run.root.calls() == []


def test_micromamba_creates_from_the_lock_too(run, tmp_path):
    script = write(tmp_path / "s.sh", TOOL_SCRIPT)
    env = micromamba_only(run)
    assert run("--lock", script, env=env).returncode == 0
    proc = run(script, env=env)
    assert proc.stdout == "tool 2.0\n", proc.stderr
    created = run.root.calls("create", prog="micromamba")[-1]["argv"]
    assert created[-2] == "--file" and created[-1].endswith(".explicit")  # the lock's list


@pytest.mark.parametrize("prog", ["conda", "micromamba"])
def test_a_bundle_carries_the_pypi_wheels_its_lock_pins(run, tmp_path, prog):
    """Issue 22: --bundle pip-downloads the lock's PyPI pins; the offline run installs them
    with --no-index --find-links from the bundle (no PIP_FIND_LINKS, no network, no channel)."""
    src = tmp_path / "src"
    src.mkdir()
    script = write(src / "s.py", PEP723)
    env = run.env if prog == "conda" else micromamba_only(run)
    made = run("--bundle", script, "--output", str(tmp_path / "b"), env=env)
    assert made.returncode == 0, made.stderr
    assert [n for n in os.listdir(tmp_path / "b" / "wheels") if n.startswith("pypidemo-1.0")]
    run.wheels.rename(tmp_path / "wheels-gone")
    run.channel.path.rename(tmp_path / "channel-gone")
    offline = {k: v for k, v in env.items() if k not in ("PIP_FIND_LINKS",)}
    offline["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "target-envs")
    proc = subprocess.run(["unshare", "-n", sys.executable, str(tmp_path / "b" / "conda-execute.pyz"),
                           str(tmp_path / "b" / "s.py"), "y"], capture_output=True, text=True,
                          env=offline, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["pypidemo"] == "1.0" and out["mylib"] == "1.0" and out["argv"] == ["y"]
