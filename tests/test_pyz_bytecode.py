"""The pyz's bytecode: each Python loads its own member; a Python without one uses the cache.

A run proves which code it executed through `--version`: the tests put bytecode compiled from
a source whose __version__ says where it came from ("from-member", "from-cache") where the
mechanism should find it, so a run that compiled the pyz's real source instead prints 0.1.0.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import other_pythons

ROOT = Path(__file__).resolve().parent.parent
SOURCE = (ROOT / "conda_execute.py").read_bytes()
VERSION_LINE = b'__version__ = "0.1.0"\n'


def builder():
    spec = importlib.util.spec_from_file_location("_ce_build_zipapp", ROOT / "build_zipapp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def labelled(label: str) -> bytes:
    """The module's source with __version__ = LABEL."""
    assert VERSION_LINE in SOURCE
    return SOURCE.replace(VERSION_LINE, f'__version__ = "{label}"\n'.encode())


def version(exe: str, pyz: Path, cache: Path) -> str:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    proc = subprocess.run([exe, str(pyz), "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stderr == "", (exe, proc.stderr)
    return proc.stdout.split()[-1]


def cached(cache: Path) -> list:
    folder = cache / "conda-execute" / "pyc"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def write_pyz(path: Path, source: bytes, pycs: dict) -> Path:
    b = builder()
    path.write_bytes(b.archive_bytes(source, "/usr/bin/env python3", pycs))
    return path


def test_each_python_runs_its_own_bytecode_and_never_touches_the_cache(tmp_path):
    b = builder()
    pythons = other_pythons()
    members = b.all_bytecode(labelled("from-member"), pythons)
    pyz = write_pyz(tmp_path / "x.pyz", SOURCE, members)  # the real source beside them
    cache = tmp_path / "cache"
    seen = {}
    for exe in pythons:
        assert version(exe, pyz, cache) == "from-member", exe
        seen[exe] = True
    assert cached(cache) == [] and not (cache / "conda-execute").exists()
    print("each used its member:", sorted(seen))
    if os.environ.get("CI") == "true":
        assert len(members) >= 6, "CI has Python 3.8-3.13: a release pyz must carry all six"


def test_the_built_pyz_runs_everywhere_without_writing_the_cache(pyz, tmp_path):
    cache = tmp_path / "cache"
    for exe in other_pythons():
        assert version(exe, Path(pyz), cache) == "0.1.0"
    assert cached(cache) == []


def test_a_python_without_bytecode_compiles_once_then_uses_the_cache(tmp_path):
    pyz = write_pyz(tmp_path / "src.pyz", SOURCE, {})
    cache = tmp_path / "cache"
    assert version(sys.executable, pyz, cache) == "0.1.0"
    (entry,) = cached(cache)
    key = __import__("hashlib").sha256(SOURCE).hexdigest()
    magic = importlib.util.MAGIC_NUMBER
    assert entry.name == f"conda_execute.{key}.{magic.hex()}.pyc"
    for level in (entry.parent.parent, entry.parent):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    data = entry.read_bytes()
    assert data[:4] == magic and data[8:16] == bytes.fromhex(key[:16])
    # The next run loads the entry: replace its code with labelled code, same header.
    import marshal

    entry.write_bytes(data[:16] + marshal.dumps(compile(labelled("from-cache"),
                                                        "conda_execute.py", "exec")))
    assert version(sys.executable, pyz, cache) == "from-cache"
    assert cached(cache) == [entry]


def test_a_changed_pyz_never_loads_the_old_entry(tmp_path):
    cache = tmp_path / "cache"
    old = write_pyz(tmp_path / "old.pyz", labelled("old"), {})
    new = write_pyz(tmp_path / "new.pyz", labelled("new"), {})
    assert version(sys.executable, old, cache) == "old"
    assert version(sys.executable, new, cache) == "new"
    assert version(sys.executable, old, cache) == "old"
    assert len(cached(cache)) == 2  # one per content


def test_corrupt_stale_or_linked_entries_are_ignored_and_replaced(tmp_path):
    pyz = write_pyz(tmp_path / "src.pyz", SOURCE, {})
    cache = tmp_path / "cache"
    version(sys.executable, pyz, cache)
    (entry,) = cached(cache)
    good = entry.read_bytes()
    elsewhere = tmp_path / "elsewhere.pyc"
    elsewhere.write_bytes(good[:16] + __import__("marshal").dumps(
        compile(labelled("from-link"), "conda_execute.py", "exec")))
    bad_entries = {
        "truncated": good[:len(good) // 2],
        "empty": b"",
        "garbage": good[:16] + b"\x00garbage" * 100,
        "not code": good[:16] + __import__("marshal").dumps(("a", 1)),
        "other key": good[:8] + b"\x00" * 8 + good[16:],
        "other magic": b"\x00\x00\r\n" + good[4:],
    }
    for what, data in bad_entries.items():
        entry.write_bytes(data)
        assert version(sys.executable, pyz, cache) == "0.1.0", what
        assert entry.read_bytes() == good, what  # replaced by a good one
    entry.unlink()
    entry.symlink_to(elsewhere)
    assert version(sys.executable, pyz, cache) == "0.1.0"  # a symlink is not followed...
    assert not entry.is_symlink() and entry.read_bytes() == good  # ...but replaced
    entry.chmod(0o666)  # writable by others: not trusted
    entry.write_bytes(elsewhere.read_bytes())
    assert version(sys.executable, pyz, cache) == "0.1.0"
    assert entry.read_bytes() == good and stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_an_unsafe_or_unwritable_cache_only_costs_a_compile(tmp_path):
    pyz = write_pyz(tmp_path / "src.pyz", SOURCE, {})
    shared = tmp_path / "shared"
    (shared / "conda-execute" / "pyc").mkdir(parents=True)
    (shared / "conda-execute" / "pyc").chmod(0o777)  # others may write: never used
    for _ in range(2):
        assert version(sys.executable, pyz, shared) == "0.1.0"
    assert cached(shared) == []
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert version(sys.executable, pyz, not_a_dir) == "0.1.0"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "conda-execute").symlink_to(tmp_path / "target", target_is_directory=True)
    (tmp_path / "target" / "pyc").mkdir(parents=True, mode=0o700)
    assert version(sys.executable, pyz, linked) == "0.1.0"
    assert list((tmp_path / "target" / "pyc").iterdir()) == []


def test_a_python_left_out_of_the_build_uses_the_cache_and_others_do_not(tmp_path):
    """The release build with one version left out (--pythons), run by every Python here."""
    pythons = other_pythons()
    me = importlib.util.MAGIC_NUMBER
    others = [p for p in pythons if subprocess.run(
        [p, "-I", "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"],
        capture_output=True, text=True).stdout.strip() != me.hex()]
    assert others, f"needs a Python 3.8+ of another version than {sys.version}: {pythons}"
    out = tmp_path / "partial.pyz"
    subprocess.run([sys.executable, str(ROOT / "build_zipapp.py"), "--output", str(out),
                    "--pythons", ",".join(others)], check=True, capture_output=True)
    with zipfile.ZipFile(out) as zf:
        assert f"conda_execute.{me.hex()}.pyc" not in zf.namelist()
    cache = tmp_path / "cache"
    for exe in others:
        assert version(exe, out, cache) == "0.1.0"
    assert cached(cache) == []
    assert version(sys.executable, out, cache) == "0.1.0"
    (entry,) = cached(cache)
    assert entry.name.endswith(f".{me.hex()}.pyc")
