"""The project's shape: stdlib only, Python 3.8 syntax, a reproducible zipapp, CI = README."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile

from conftest import other_pythons

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "conda_execute.py")


def test_module_imports_only_the_standard_library():
    with open(MODULE, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods.add(node.module.split(".")[0])
    assert mods, "no imports found: the check would prove nothing"
    outside = sorted(m for m in mods if m not in sys.stdlib_module_names and m != "__future__")
    assert outside == []


def test_module_runs_on_python_3_8_per_vermin():
    vermin = shutil.which("vermin") or os.path.join(os.path.dirname(sys.executable), "vermin")
    out = subprocess.run([vermin, "--no-tips", "-t=3.8-", "--violations", MODULE,
                          os.path.join(ROOT, "build_zipapp.py")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def build(tmp_path, name="x.pyz", *extra):
    out = tmp_path / name
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "build_zipapp.py"),
                           "--output", str(out), *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


MAGIC = "import importlib.util, sys; print(importlib.util.MAGIC_NUMBER.hex(), *sys.version_info[:2])"
CI_PYTHONS = {(3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13)}  # what CI machines have


def load_builder():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_ce_build", os.path.join(ROOT, "build_zipapp.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_from(pyc: bytes, text: str, flags: int, name: str = "conda_execute.py") -> bool:
    """Whether PYC's code is TEXT compiled (with FLAGS) without column ranges, as under
    -X no_debug_ranges (which the build uses: a fifth of the bytecode on 3.11+)."""
    check = ("import marshal, sys; data = sys.stdin.buffer.read(); n = int(sys.argv[1]);"
             "print(marshal.loads(data[n + 16:]) == compile(data[:n].decode(), sys.argv[2],"
             " 'exec', int(sys.argv[3]), dont_inherit=True))")
    source = text.encode()
    out = subprocess.run([sys.executable, "-X", "no_debug_ranges", "-c", check, str(len(source)),
                          name, str(flags)], input=source + pyc, capture_output=True, check=True)
    return out.stdout == b"True\n"


def magics():
    """{magic number (hex): (major, minor)} of every Python 3.8+ here."""
    out = {}
    for exe in other_pythons():
        magic, major, minor = subprocess.run([exe, "-I", "-c", MAGIC], capture_output=True,
                                             text=True, check=True).stdout.split()
        out[magic] = (int(major), int(minor))
    return out


def test_zipapp_is_reproducible_and_holds_bytecode_for_every_python_here(tmp_path):
    a, out_a = build(tmp_path, "a.pyz")
    b, _ = build(tmp_path, "b.pyz")
    digest = hashlib.sha256(a.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(b.read_bytes()).hexdigest()
    assert digest in out_a and str(a.stat().st_size) in out_a
    assert a.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    here = magics()
    if os.environ.get("CI") == "true":  # the release build must cover them all: fail loudly
        assert set(here.values()) >= CI_PYTHONS, f"Pythons missing in CI: {sorted(here.values())}"
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        assert names == sorted(names)  # a fixed order
        assert set(names) >= {"__main__.py", "__main__.pyc", "_pyc_cache.py", "conda_execute.py",
                              *(f"conda_execute.{m}.pyc" for m in here),
                              *(f"conda_execute.{m}.cold" for m in here),
                              *(f"conda_execute.{m}.conda-script" for m in here)}
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        assert {n for n, m in methods.items() if m == zipfile.ZIP_DEFLATED} == {
            "_pyc_cache.py", "conda_execute.py", *(f"conda_execute.{m}.cold" for m in here)
        }  # read only without bytecode or off the warm path; the rest stored
        assert len(zf.read("__main__.py").decode().splitlines()) < 20
        members = {name: zf.read(name) for name in zf.namelist()}
    # Each member is its Python's, unchecked hash-based (PEP 552), of exactly that source.
    import _imp
    import importlib.util
    import marshal

    source = members["conda_execute.py"]
    for magic in here:
        for part in ("pyc", "cold", "conda-script"):
            pyc = members[f"conda_execute.{magic}.{part}"]
            assert pyc[:4].hex() == magic and int.from_bytes(pyc[4:8], "little") == 0b01
    # the warm part and the parts kept apart, of exactly this source, compiled with the annotations future
    # as a flag, not an import (the line left blank)
    import __future__

    split = load_builder().split_source(source.decode())
    future = "\nfrom __future__ import annotations\n"
    magic = importlib.util.MAGIC_NUMBER.hex()
    for part, text in (("pyc", split.warm), *split.parts.items()):
        mine = members[f"conda_execute.{magic}.{part}"]
        assert mine[8:16] == _imp.source_hash(importlib.util._RAW_MAGIC_NUMBER, text.encode())
        assert text.count(future) == 1
        code = marshal.loads(mine[16:])
        assert "__future__" not in code.co_names
        assert compiled_from(mine, text.replace(future, "\n\n"), __future__.annotations.compiler_flag)
    main_pyc = members["__main__.pyc"]  # the building Python's
    assert main_pyc[:4] == importlib.util.MAGIC_NUMBER
    assert compiled_from(main_pyc, members["__main__.py"].decode(), 0, "__main__.py")
    assert os.access(a, os.X_OK)
    print(out_a)


def test_zipapp_without_bytecode_holds_only_sources(tmp_path):
    pyz, out = build(tmp_path, "src.pyz", "--no-bytecode")
    assert "bytecode for Python none" in out
    with zipfile.ZipFile(pyz) as zf:
        assert zf.namelist() == ["__main__.py", "_pyc_cache.py", "conda_execute.py"]
    out = subprocess.run([sys.executable, str(pyz), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("conda-execute "), out


def test_zipapp_pythons_option_chooses_the_interpreters(tmp_path):
    pyz, out = build(tmp_path, "one.pyz", "--pythons", sys.executable)
    version = ".".join(map(str, sys.version_info[:3]))
    assert f"(bytecode for Python {version})" in out
    with zipfile.ZipFile(pyz) as zf:
        assert len([n for n in zf.namelist() if n.startswith("conda_execute.")]) == 4
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "build_zipapp.py"), "--output",
                          str(tmp_path / "bad.pyz"), "--pythons", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a working Python 3.8+" in bad.stderr
    assert not (tmp_path / "bad.pyz").exists()


def test_zipapp_runs_as_python_arg_and_as_executable(tmp_path):
    pyz, _ = build(tmp_path, "ce.pyz", "--python", sys.executable)
    for cmd in ([sys.executable, str(pyz), "--version"], [str(pyz), "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.startswith("conda-execute "), out


def test_zipapp_interpreter_line_can_carry_flags(tmp_path):
    # Linux passes everything after the interpreter as ONE argument: flags must be combined
    pyz, _ = build(tmp_path, "fast.pyz", "--python", f"{sys.executable} -IS")
    assert pyz.read_bytes().startswith(f"#!{sys.executable} -IS\n".encode())
    out = subprocess.run([str(pyz), "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def readme_commands():
    """The commands of the README's first code block (its first screen), comments removed."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        block = f.read().split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_the_test_command_the_readme_shows():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read().splitlines()
    shown = [c for c in readme_commands() if "test" in c.split()]
    assert shown == ["python dev.py test"], readme_commands()
    assert shown[0] in ci
    # CI's first command after clearing .venv: the README's line sets up everything itself
    commands = [ln for ln in ci if ln and not ln.startswith(("#", "set ", "cd "))]
    assert commands[:2] == ["rm -rf .venv  # the README's line must set up everything itself",
                            shown[0]], commands
    # pytest's exit 5 (no test collected) is reported, not taken for a failure or a pass
    assert 'if [ "$rc" -eq 5 ]; then' in ci


SCREEN = 24  # lines: what a user sees before scrolling


def test_first_screens_of_help_and_readme_show_the_shortest_path(tmp_path):
    """A script with a block, the one command that runs it, and what happens without conda."""
    helped = subprocess.run([sys.executable, "-m", "conda_execute", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    screen = helped.stdout.splitlines()[:SCREEN]
    example = [ln[4:] for ln in screen if ln.startswith(("    #", "    import"))]
    assert example[:2] == ["# conda execute", "# env: [python >=3.8, numpy]"], screen
    assert any(ln.strip().startswith("$ conda-execute hello.py") for ln in screen), screen
    bare = " ".join(screen)
    assert "No conda, mamba or micromamba" in bare and "downloaded once" in bare
    assert "--no-bootstrap" in bare and "exit 69" in bare
    # the example is a real script: its block reads as shown
    (tmp_path / "hello.py").write_text("\n".join(example) + "\n")
    dry = subprocess.run([sys.executable, "-m", "conda_execute", "--env-dir", str(tmp_path / "e"),
                          "--dry-run", str(tmp_path / "hello.py")], cwd=ROOT, capture_output=True,
                         text=True)
    assert dry.returncode == 0, dry.stderr
    assert '"env": ["python >=3.8", "numpy"]' in dry.stdout

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        top = "".join(f.readlines()[:30])  # a screen of a README rendered as text
    assert "```python\n#!/usr/bin/env conda-execute\n# conda execute\n# env:\n" in top
    assert "```sh\nconda-execute script.py ARGS..." in top
    assert "no `conda`, `mamba` or `micromamba`" in top and "downloads micromamba" in top
    assert "`--no-bootstrap` refuses" in top


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "conda_execute", "--version"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith("conda-execute ")


def test_pep723_reader_on_every_python_here_including_those_without_tomllib():
    """The plain-script mode of tests/test_pep723.py needs no pytest: run it on each Python."""
    without_tomllib = 0
    for exe in other_pythons():
        out = subprocess.run([exe, os.path.join(ROOT, "tests", "test_pep723.py")],
                             capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, (exe, out.stdout[-2000:], out.stderr[-2000:])
        assert "tests passed" in out.stdout
        without_tomllib += "test_toml_corpus_tomllib (tomllib" in out.stdout
    assert without_tomllib, "no Python without tomllib ran the reader (toml_subset)"


def test_pyz_reads_a_pep723_script_on_every_python_here(tmp_path):
    pyz, _ = build(tmp_path)
    script = tmp_path / "s.py"
    script.write_text('# /// script\n# requires-python = ">=3.8"\n# dependencies = ["rich"]\n'
                      '# [tool.conda]\n# channels = ["conda-forge"]\n# ///\n')
    results = set()
    for exe in other_pythons():
        out = subprocess.run([exe, str(pyz), "--env-dir", str(tmp_path / "e"), "--dry-run",
                              str(script)], capture_output=True, text=True)
        assert out.returncode == 0, (exe, out.stderr)
        results.add(out.stdout)
    assert len(results) == 1 and '"pip": ["rich"]' in results.pop()
