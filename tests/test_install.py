"""pip installation: build the sdist and wheel, install into a fresh venv, run what it installs.

Also the `conda execute` plugin (conda >= 26.3 finds subcommands only through plugins): the
installed entry point, the hook as conda's plugin manager (pluggy) calls it, and its action,
with a stand-in `conda.plugins.types` since conda itself cannot be installed here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("pyproject.toml", "conda_execute.py", "README.md")

FAKE_CONDA_TYPES = '''
from dataclasses import dataclass
from typing import Callable, Optional

@dataclass
class CondaSubcommand:
    """Shaped like conda.plugins.types.CondaSubcommand (conda 24-26)."""
    name: str
    summary: str
    action: Callable
    configure_parser: Optional[Callable] = None
'''


def version():
    with open(os.path.join(ROOT, "conda_execute.py"), encoding="utf-8") as f:
        text = f.read()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """sdist and wheel, built offline from a copy of the sources (the tree is shared)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        shutil.copy(os.path.join(ROOT, name), src / name)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(src)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, os.listdir(out)
    return wheels[0], sdists[0]


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    """A fresh venv with only the wheel installed (no index, no dependencies)."""
    path = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(path / "bin" / "python"),
                           "install", "--no-index", "--no-deps", "--disable-pip-version-check",
                           str(built[0])], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


def test_wheel_and_sdist_hold_the_module_and_the_entry_points(built):
    wheel, sdist = built
    v = version()
    assert wheel.name == f"conda_execute-{v}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert [n for n in names if ".dist-info/" not in n] == ["conda_execute.py"]
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(entry).decode()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "[console_scripts]\nconda-execute = conda_execute:console_main" in text
    assert "[conda]\nconda-execute = conda_execute" in text
    requires = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist:")]
    assert "Requires-Python: >=3.8" in metadata
    assert all("; extra ==" in ln for ln in requires), requires  # no run-time dependencies
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"conda_execute.py", "pyproject.toml", "README.md", "PKG-INFO"} <= members


def test_installed_command_and_module_report_the_version(venv):
    for cmd in ([str(venv / "bin" / "conda-execute"), "--version"],
                [str(venv / "bin" / "python"), "-m", "conda_execute", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"conda-execute {version()}\n"


def test_installed_command_runs_a_script_with_stand_in_conda(venv, conda_root, isolated_env,
                                                             tmp_path):
    script = tmp_path / "hello.py"
    script.write_text(textwrap.dedent("""\
        # conda execute
        # env: [python, mylib]
        import sys
        print("hello", sys.argv[1:], sys.prefix.startswith(sys.argv[1]))
    """))
    env = conda_root.env_with_conda_on_path(isolated_env)
    env_dir = str(tmp_path / "envs")
    env["CONDA_EXECUTE_ENV_DIR"] = env_dir
    proc = subprocess.run([str(venv / "bin" / "conda-execute"), str(script), env_dir],
                          capture_output=True, text=True, env=env, timeout=180, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"hello ['{env_dir}'] True\n"
    assert len(conda_root.calls("create")) == 1


def test_conda_before_26_3_finds_the_console_script_on_path(venv):
    """conda/cli/find_commands.py: `conda-([\\w\\-]+)$` on PATH entries names a subcommand."""
    found = shutil.which("conda-execute", path=str(venv / "bin"))
    assert found and re.match(r"conda-([\w\-]+)$", os.path.basename(found)).group(1) == "execute"


@pytest.fixture
def fake_conda(tmp_path):
    """A `conda.plugins.types` module with CondaSubcommand, on a directory for PYTHONPATH."""
    pkg = tmp_path / "fakeconda" / "conda" / "plugins"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "types.py").write_text(FAKE_CONDA_TYPES)
    return str(tmp_path / "fakeconda")


PLUGIN_CHECK = """
import sys
from importlib.metadata import distribution
eps = [e for e in distribution("conda-execute").entry_points if e.group == "conda"]
assert [(e.name, e.value) for e in eps] == [("conda-execute", "conda_execute")], eps
module = eps[0].load()
hook = module.conda_subcommands
assert hook.conda_impl == {"wrapper": False, "hookwrapper": False, "optionalhook": False,
                           "tryfirst": False, "trylast": False, "specname": None}
assert "conda" not in sys.modules, "conda imported before the hook ran"
(sub,) = list(hook())
assert type(sub).__module__ == "conda.plugins.types"
assert sub.name == "execute" and sub.summary and sub.configure_parser is None
sys.stdout.flush()
sys.exit(sub.action(tuple(sys.argv[1:])))
"""


def test_plugin_entry_point_hook_and_action_in_the_installed_venv(venv, fake_conda,
                                                                  conda_root, isolated_env,
                                                                  tmp_path):
    env = {**isolated_env, "PYTHONPATH": fake_conda}
    python = str(venv / "bin" / "python")
    proc = subprocess.run([python, "-c", PLUGIN_CHECK, "--version"], capture_output=True,
                          text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"conda-execute {version()}\n"

    # `conda execute SCRIPT ARGS`: the action runs the script (exec) with its exit code
    script = tmp_path / "s.py"
    script.write_text("# conda execute\n# env: [python]\nimport sys\n"
                      "print('args', sys.argv[1:])\nsys.exit(7)\n")
    env = conda_root.env_with_conda_exe(env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    proc = subprocess.run([python, "-c", PLUGIN_CHECK, str(script), "-v", "--help"],
                          capture_output=True, text=True, env=env, timeout=180, cwd="/")
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "args ['-v', '--help']\n"


def test_plugin_registers_with_pluggy_as_conda_does(fake_conda):
    """conda's CondaPluginManager is a pluggy.PluginManager("conda") that register()s the
    module from the entry point, then calls hook.conda_subcommands() and iterates each result."""
    code = textwrap.dedent("""
        import pluggy, conda_execute
        spec = pluggy.HookspecMarker("conda")
        class Specs:
            @spec
            def conda_subcommands(self):
                pass
        pm = pluggy.PluginManager("conda")
        pm.add_hookspecs(Specs)
        assert pm.register(conda_execute, "conda_execute") == "conda_execute"
        items = [item for items in pm.hook.conda_subcommands() for item in items]
        assert [i.name for i in items] == ["execute"], items
        print(items[0].action(["--version"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([fake_conda, ROOT])})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"conda-execute {version()}\n0\n"
