"""Development tasks on a fresh clone, with nothing installed first.

    python dev.py test [PYTEST ARGS...]

`test` makes the virtual environment .venv with the Python running this file (if it has none
yet), installs the project with its test extra into it (`pip install -e '.[test]'`; again
whenever pyproject.toml changes), and runs `python -m pytest -n 2 -q` there, with any further
arguments appended (`python dev.py test tests/test_core.py -k lock`). The exit code is
pytest's own (5: no test was collected). CI (.ci/run) runs this same line. No conda is needed:
the tests bring their own conda stand-in.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv")
STAMP = os.path.join(VENV, ".dev-installed")  # the sha256 of the pyproject.toml installed


def say(message: str) -> None:
    sys.stderr.write(f"dev.py: {message}\n")
    sys.stderr.flush()


def venv_python() -> str:
    return os.path.join(VENV, "Scripts", "python.exe") if os.name == "nt" else \
        os.path.join(VENV, "bin", "python")


def project_hash() -> str:
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def ensure_venv() -> str:
    """.venv with the project and its test extra installed; return its python."""
    import venv

    python = venv_python()
    if not os.path.exists(python):
        say(f"creating {VENV} with {sys.executable}")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    wanted = project_hash()
    try:
        with open(STAMP, encoding="utf-8") as f:
            if f.read().strip() == wanted:
                return python
    except OSError:
        pass
    say("installing the project and its test extra: pip install -e '.[test]'")
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], cwd=HERE,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # best effort
    subprocess.run([*pip, "install", "--quiet", "-e", ".[test]"], cwd=HERE, check=True)
    with open(STAMP, "w", encoding="utf-8") as f:
        f.write(wanted + "\n")
    return python


def test(args: list) -> int:
    """Run the test suite in .venv; pytest's exit code."""
    try:
        python = ensure_venv()
    except (OSError, subprocess.CalledProcessError) as e:
        say(f"error: cannot set up {VENV}: {e}")
        return 1
    argv = [python, "-m", "pytest", "-n", "2", "-q", *args]
    sys.stdout.flush()
    if os.name == "nt":
        return subprocess.call(argv, cwd=HERE)
    os.chdir(HERE)
    os.execv(python, argv)  # pytest's signals and exit code are the caller's own
    return 0  # not reached


def main(argv: list) -> int:
    if argv[:1] == ["test"]:
        return test(argv[1:])
    sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
