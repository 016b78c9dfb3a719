"""The conda package: recipe/recipe.yaml built offline with py-rattler-build, then installed.

The build runs the recipe's own script (`pip install . --no-build-isolation`) against a copy of
the test channel to which this test adds `setuptools` (copied from the running interpreter, as
the channel's `pip` is). The package is then installed with the stand-in conda, and the
`conda-execute` entry point it gets (from the package's info/link.json) is run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("pyproject.toml", "conda_execute.py", "README.md", "recipe/recipe.yaml")


def module_version():
    with open(os.path.join(ROOT, "conda_execute.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def setuptools_files():
    """The installed setuptools (package, dist-info, _distutils_hack, .pth) as channel files."""
    import importlib.metadata
    import importlib.util

    version = importlib.metadata.version("setuptools")  # importing it here could break distutils
    xy = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(importlib.util.find_spec("setuptools").origin).parent.parent
    roots = [site / "setuptools", site / "_distutils_hack", site / "pkg_resources",
             *site.glob(f"setuptools-{version}.dist-info")]
    files = {}
    for top in roots:
        for path in sorted(top.rglob("*")) if top.is_dir() else []:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[f"lib/python{xy}/site-packages/{path.relative_to(site).as_posix()}"] = \
                    path.read_bytes()
    pth = site / "distutils-precedence.pth"
    if pth.exists():
        files[f"lib/python{xy}/site-packages/{pth.name}"] = pth.read_bytes()
    return version, files


def test_recipe_version_matches_the_module():
    with open(os.path.join(ROOT, "recipe", "recipe.yaml"), encoding="utf-8") as f:
        text = f.read()
    assert re.search(r'^  version: "([^"]+)"', text, re.M).group(1) == module_version()


@pytest.fixture
def built_package(fresh_channel, tmp_path):
    """Build the recipe from a copy of the sources; return (package path, output channel)."""
    from rattler_build import Stage0Recipe, ToolConfiguration

    version, files = setuptools_files()
    fresh_channel.add_package("setuptools", version, depends=("python",), files=files)
    src = tmp_path / "src"
    for rel in SOURCES:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.join(ROOT, rel), src / rel)
    out = tmp_path / "output"
    recipe = Stage0Recipe.from_file(str(src / "recipe" / "recipe.yaml"))
    results = recipe.run_build(output_dir=str(out), channels=[fresh_channel.url],
                               tool_config=ToolConfiguration(test_strategy="native"))
    packages = [Path(p) for r in results for p in r.packages]
    assert len(packages) == 1, packages
    return packages[0], out


def test_recipe_builds_offline_and_installs_with_stand_in_conda(built_package, fresh_channel,
                                                                conda_root_factory, isolated_env,
                                                                tmp_path):
    package, out = built_package
    version = module_version()
    assert package.parent.name == "noarch"
    assert package.name.startswith(f"conda-execute-{version}-py")

    root = conda_root_factory(channels=[fresh_channel.url])
    prefix = tmp_path / "env"
    proc = root.run("create", "-p", str(prefix), "--yes", "-c", out.as_uri(), "-c",
                    fresh_channel.url, "conda-execute", env=isolated_env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    xy = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = prefix / "lib" / f"python{xy}" / "site-packages"
    assert (site / "conda_execute.py").is_file()
    (dist_info,) = site.glob("conda_execute-*.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[conda]\nconda-execute = conda_execute" in entry_points  # the `conda execute` plugin

    record = json.loads(next((prefix / "conda-meta").glob("conda-execute-*.json")).read_text())
    assert record["noarch"] == "python"
    exe = prefix / "bin" / "conda-execute"  # made at install time from info/link.json
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert exe.read_text().startswith(f"#!{prefix}/bin/python")
    for cmd in ([str(exe), "--version"],
                [str(prefix / "bin" / "python"), "-m", "conda_execute", "--version"]):
        run = subprocess.run(cmd, capture_output=True, text=True, env=isolated_env, cwd="/")
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"conda-execute {version}\n"
