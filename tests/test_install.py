"""pip installation: build the sdist and wheel, install into a fresh venv, run what it installs.

Also the `conda execute` plugin (conda >= 26.3 finds subcommands only through plugins): the
installed entry point, the hook as conda's plugin manager (pluggy) calls it, and its action,
with pluggy loading the entry point as conda does and a stand-in `conda.plugins.types`
(only the type) since conda itself cannot be installed here.
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
    """conda/cli/find_commands.py: every file of a PATH dir named `conda-([\\w\\-]+)$` is a
    subcommand, and `conda NAME ARGS` runs `conda-NAME ARGS`: list the dir as conda does."""
    bindir = str(venv / "bin")
    found = {}
    for fn in os.listdir(bindir):
        m = re.match(r"conda-([\w\-]+)$", fn)
        if m and os.path.isfile(os.path.join(bindir, fn)):
            found[m.group(1)] = os.path.join(bindir, fn)
    assert list(found) == ["execute"], sorted(os.listdir(bindir))
    proc = subprocess.run([found["execute"], "--version"], capture_output=True, text=True, cwd="/")
    assert (proc.returncode, proc.stdout) == (0, f"conda-execute {version()}\n"), proc.stderr


@pytest.fixture
def fake_conda(tmp_path):
    """A `conda.plugins.types` module with CondaSubcommand, on a directory for PYTHONPATH."""
    pkg = tmp_path / "fakeconda" / "conda" / "plugins"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "types.py").write_text(FAKE_CONDA_TYPES)
    return str(tmp_path / "fakeconda")


# conda/plugins/manager.py as conda >= 24 has it: a pluggy.PluginManager("conda") with
# CondaSpecs; load_entrypoints("conda") walks importlib.metadata.distributions(), loads each entry
# point of the group, registers it under its canonical name (a module's __spec__.name), then
# get_hook_results("subcommands") flattens hook.conda_subcommands() and sorts by name. conda's
# main then calls the chosen subcommand's action with the words after its name.
CONDA_PLUGIN_MANAGER = """
import sys
from importlib.metadata import distributions
import pluggy

hookspec = pluggy.HookspecMarker("conda")

class CondaSpecs:
    @hookspec
    def conda_subcommands(self):
        \"\"\"Register external subcommands in conda.\"\"\"

pm = pluggy.PluginManager("conda")
pm.add_hookspecs(CondaSpecs)
loaded = []
for dist in distributions():
    for entry_point in dist.entry_points:
        if entry_point.group != "conda":
            continue
        plugin = entry_point.load()
        canonical = plugin.__spec__.name
        if pm.get_plugin(canonical) or pm.is_blocked(canonical):
            continue
        pm.register(plugin, canonical)
        loaded.append((dist.metadata["Name"], entry_point.name, canonical))
assert loaded == [("conda-execute", "conda-execute", "conda_execute")], loaded
assert "conda" not in sys.modules, "conda imported before the hook ran"
subcommands = sorted((item for items in pm.hook.conda_subcommands() for item in items),
                     key=lambda item: item.name)
assert [s.name for s in subcommands] == ["execute"], subcommands
(sub,) = subcommands
assert type(sub).__module__ == "conda.plugins.types" and sub.summary
assert sub.configure_parser is None
sys.stdout.flush()
sys.exit(sub.action(tuple(sys.argv[1:])))
"""


@pytest.fixture
def pluggy_dir(tmp_path):
    """A directory holding only pluggy (pure Python), for PYTHONPATH in the wheel's venv."""
    import pluggy

    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "pluggy").symlink_to(os.path.dirname(pluggy.__file__))
    return str(deps)


def test_conda_plugin_manager_loads_the_entry_point_and_runs_a_script(venv, fake_conda,
                                                                      pluggy_dir, conda_root,
                                                                      isolated_env, tmp_path):
    """`conda execute` on conda >= 26.3: pluggy loads the installed entry point, the hook yields
    the subcommand, its action runs the script (exec) and passes its exit code."""
    env = {**isolated_env, "PYTHONPATH": os.pathsep.join([pluggy_dir, fake_conda])}
    python = str(venv / "bin" / "python")
    proc = subprocess.run([python, "-c", CONDA_PLUGIN_MANAGER, "--version"], capture_output=True,
                          text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"conda-execute {version()}\n"

    script = tmp_path / "s.py"
    script.write_text("# conda execute\n# env: [python]\nimport sys\n"
                      "print('args', sys.argv[1:])\nsys.exit(7)\n")
    env = conda_root.env_with_conda_exe(env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    proc = subprocess.run([python, "-c", CONDA_PLUGIN_MANAGER, str(script), "-v", "--help"],
                          capture_output=True, text=True, env=env, timeout=180, cwd="/")
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "args ['-v', '--help']\n"
    assert len(conda_root.calls("create")) == 1
