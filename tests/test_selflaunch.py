"""conda-execute never becomes a script's interpreter (issue 21, item 1).

Every script `--init` writes (each --format), written from the pyz, the console script and
`python -m conda_execute`, runs three ways (`python3 conda-execute.pyz SCRIPT`, `./SCRIPT`,
`conda-execute SCRIPT`) on every back end of the stand-in; and whatever a shebang, run_with or
entrypoint says, conda-execute started by itself for the same script stops with one line (exit 2)
naming the line that caused it. Every subprocess has a deadline: a loop is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import conda_execute

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSOLE = os.path.join(os.path.dirname(sys.executable), "conda-execute")
DEADLINE = 120  # seconds; a run that loops never ends, and fails here
BODY = {  # what each format's script does once its block is written
    "py": "import sys, mylib\nprint('ok', mylib.__version__, sys.argv[1:])\n",
}
FORMATS = ("conda-execute", "pep723", "conda-script")


def run(argv, env, cwd=None):
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=DEADLINE,
                          cwd=cwd)


def writers(pyz):
    """The three installs --init can be run from."""
    return {"pyz": [sys.executable, pyz], "console": [CONSOLE],
            "module": [sys.executable, "-m", "conda_execute"]}


@pytest.fixture
def env(backend, isolated_env, tmp_path):
    env = backend.env_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]  # conda-execute
    return env


def test_the_console_script_is_there():
    assert os.access(CONSOLE, os.X_OK), "pip install -e .[test] puts conda-execute beside python"


@pytest.mark.parametrize("writer", ["pyz", "console", "module"])
def test_every_init_format_runs_three_ways(backend, env, pyz, tmp_path, writer, channel):
    ways = {"pyz": lambda s: [sys.executable, pyz, s], "direct": lambda s: [s],
            "console": lambda s: [CONSOLE, s]}
    for fmt in FORMATS:
        script = str(tmp_path / f"{fmt}.py")
        made = run([*writers(pyz)[writer], "--init", "--format", fmt,
                   "--channel", channel.url, script, "python", "mylib"],
                   env)
        assert made.returncode == 0, made.stderr
        with open(script, "a") as f:
            f.write(BODY["py"])
        with open(script) as f:
            first = f.readline()
        assert first.startswith("#!") and ("conda-execute" in first), first
        for way, argv in ways.items():
            proc = run([*argv(script), "a b", "-v"], env)
            assert (proc.returncode, proc.stdout) == (0, "ok 1.0 ['a b', '-v']\n"), \
                (fmt, writer, way, first, proc.stderr)


def test_the_pyz_under_another_name_and_through_options_is_recognised(env, pyz, tmp_path):
    """Decided by what the file is: a copy of the pyz named x.pyz, run as
    `#!/usr/bin/env -S python3 -I /path/x.pyz` or directly (`#!/path/x.pyz`), is ours."""
    other = tmp_path / "dir with space" / "x.pyz"
    other.parent.mkdir()
    shutil.copy(pyz, other)
    plain = tmp_path / "x.pyz"
    shutil.copy(pyz, plain)
    for shebang in (f"#!/usr/bin/env -S python3 -I '{other}'", f"#!{sys.executable} -IS {plain}",
                    f"#!/usr/bin/env -S {sys.executable} -m conda_execute"):
        script = tmp_path / "s.py"
        script.write_text(f"{shebang}\n# conda execute\n# env: [python, mylib]\n{BODY['py']}")
        proc = run([sys.executable, str(other), str(script), "x"], env)
        assert (proc.returncode, proc.stdout) == (0, "ok 1.0 ['x']\n"), (shebang, proc.stderr)
    copy = tmp_path / "bin" / "x.pyz"
    copy.parent.mkdir()
    shutil.copy(pyz, copy)
    os.chmod(copy, 0o755)
    script = tmp_path / "direct.py"
    script.write_text(f"#!{copy}\n# conda execute\n# env: [python, mylib]\n{BODY['py']}")
    script.chmod(0o755)
    proc = run([str(script), "y"], env)
    assert (proc.returncode, proc.stdout) == (0, "ok 1.0 ['y']\n"), proc.stderr


def launcher(tmp_path, argv0):
    """A shell script that execs conda-execute: nothing in it says so to a reader of its head."""
    path = tmp_path / "launch"
    path.write_text("#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in argv0) + ' "$@"\n')
    path.chmod(0o755)
    return str(path)


LOOPS = {  # script text (LAUNCH: the launcher's path) -> the line the error names
    "shebang": ("#!{launch}\n# conda execute\n# env: [python]\nprint('never')\n", 1),
    "run_with": ("# conda execute\n# env: [python]\n# run_with: [{launch}]\nprint('never')\n", 3),
    "pep723": ("# /// script\n# [tool.conda]\n# dependencies = ['python']\n"
               "# [tool.conda-execute]\n# run_with = ['{launch}']\n# ///\nprint('never')\n", 1),
    "entrypoint": ("# /// conda-script\n# channels = [\"{url}\"]\n# entrypoint = \"{launch} ${{SCRIPT}}\"\n"
                   "# [dependencies]\n# python = \"*\"\n# /// end-conda-script\n", 3),
    "entrypoint-child": ("# /// conda-script\n# channels = [\"{url}\"]\n"
                         "# entrypoint = \"{launch} ${{SCRIPT}} && python -c pass\"\n"
                         "# [dependencies]\n# python = \"*\"\n# /// end-conda-script\n", 3),
}


@pytest.mark.parametrize("how", ["pyz", "console"])
@pytest.mark.parametrize("case", sorted(LOOPS))
def test_conda_execute_started_by_itself_for_the_same_script_stops(
        backend, env, pyz, tmp_path, how, case, channel):
    argv0 = writers(pyz)[how]
    text, line = LOOPS[case]
    script = tmp_path / "loop.py"
    script.write_text(text.format(launch=launcher(tmp_path, argv0), url=channel.url))
    script.chmod(0o755)
    proc = run([*argv0, str(script)], env)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"{script}:{line}: ") and "start itself again" in lines[-1], \
        proc.stderr
    assert "Traceback" not in proc.stderr and "never" not in proc.stdout


def test_a_script_may_run_itself_again_as_a_child(env, pyz, tmp_path):
    """Not a loop: the script's own child (another process) runs conda-execute on it."""
    script = tmp_path / "worker.py"
    script.write_text(
        "#!/usr/bin/env conda-execute\n# conda execute\n# env: [python, mylib]\n"
        "import subprocess, sys\n"
        "if sys.argv[1:] == ['--worker']:\n    print('worker'); sys.exit(3)\n"
        "p = subprocess.run([sys.argv[0], '--worker'], capture_output=True, text=True)\n"
        "print('parent', p.returncode, p.stdout.strip())\n")
    script.chmod(0o755)
    for argv in ([sys.executable, pyz, str(script)], [str(script)], [CONSOLE, str(script)]):
        proc = run(argv, env)
        assert (proc.returncode, proc.stdout) == (0, "parent 3 worker\n"), (argv, proc.stderr)


def test_launches_us_reads_commands_as_env_and_python_do(pyz, tmp_path):
    """The unit under the flows above, on the shapes of shebang users write."""
    other = tmp_path / "renamed"
    shutil.copy(pyz, other)
    yes = [f"/usr/bin/env -S python3 {pyz}", f"/usr/bin/python3 -IS {pyz}", str(other),
           f"/usr/bin/env -S python3 -X importtime '{other}'", "/usr/bin/env conda-execute",
           "/opt/x/conda-execute", "conda execute", "/usr/bin/env -S python3 -m conda_execute",
           "python3 -mconda_execute", f"/usr/bin/env -u HOME FOO=1 python3 {pyz}", CONSOLE]
    no = ["/usr/bin/env python3", "/bin/bash", "/usr/bin/env -S python3 -c pass",
          "python3 -m other", "/usr/bin/env perl -w", f"/usr/bin/env -S python3 {tmp_path}",
          "conda run", ""]
    for text in yes:
        assert conda_execute.launches_us(conda_execute.split_shebang(text)), text
    for text in no:
        assert not conda_execute.launches_us(conda_execute.split_shebang(text)), text
