"""The pyz's bytecode: each Python loads its own member; a Python without one uses the cache.

A run proves which code it executed through `--version`: the tests put bytecode compiled from
a source whose __version__ says where it came from ("from-member", "from-cache") where the
mechanism should find it, so a run that compiled the pyz's real source instead prints 0.1.0.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
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
    (entry,) = cached(cache)  # writing old's entry pruned new's: one per Python in use
    old_key = __import__("hashlib").sha256(labelled("old")).hexdigest()
    assert entry.name.startswith(f"conda_execute.{old_key}.")


def test_an_upgrade_prunes_earlier_entries_it_owns_and_nothing_else(tmp_path):
    """Issue 23: earlier pyz versions' entries (any Python) go when a new one is written;
    files that are not entries, and entries of the current pyz for other Pythons, stay."""
    cache = tmp_path / "cache"
    new = write_pyz(tmp_path / "new.pyz", labelled("new"), {})
    key = __import__("hashlib").sha256(labelled("new")).hexdigest()
    folder = cache / "conda-execute" / "pyc"
    folder.mkdir(parents=True, mode=0o700)
    folder.parent.chmod(0o700)
    earlier = [folder / f"conda_execute.{'ab' * 32}.{m}.pyc" for m in ("550d0d0a", "f30d0d0a")]
    kept = [folder / "notes.txt", folder / f"conda_execute.{key}.00000000.pyc"]
    for path in earlier + kept:
        path.write_bytes(b"x")
    assert version(sys.executable, new, cache) == "new"
    magic = importlib.util.MAGIC_NUMBER.hex()
    assert cached(cache) == sorted([*kept, folder / f"conda_execute.{key}.{magic}.pyc"])


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


# --------------------------------------------------------------------------- the cold part

SPLIT_DEMO = '''\
"""A module split as the pyz splits conda_execute: only console_main is warm."""

from __future__ import annotations

import sys

__version__ = "demo"


class Cold(tuple):  # named by cold functions only: defined by the cold part
    def twice(self) -> list:
        return list(self * 2)


def kinds(a, b=2, /, c=3, *rest, d, e=5, **kw) -> tuple:
    """Every kind of parameter."""
    return (a, b, c, rest, d, e, sorted(kw.items()))


def counting(n: int):
    yield from range(n)


def uses_cold_class() -> list:
    return Cold((1, 2)).twice()


def deep() -> str:  # called by a cold function only: no stub
    return "deep"


def calls_deep() -> str:
    return deep()


class Tiered(tuple):  # read by the tier's functions only: defined by the tier
    pass


def tier_helper() -> str:  # called from its own part only: no stub
    return "helper"


def tiered(x: int = 2) -> tuple:  # a part of its own ("tier"), which calls into "cold"
    return (x, tier_helper(), Tiered((1,)), calls_deep())


TABLE = {"kinds": kinds}  # holds the stub's function object


def console_main() -> int:
    print(TABLE["kinds"](1, d=4, z=9), kinds(1, 2, 3, 4, d=5, e=6), tiered())
    print(list(counting(3)), uses_cold_class(), calls_deep())
    print(TABLE["kinds"] is kinds, kinds.__doc__, kinds.__name__, kinds.__defaults__)
    return 0
'''


def test_the_cold_part_runs_on_first_use_and_keeps_every_function_what_it_was(tmp_path):
    """A demo module split with only console_main warm gives, on every Python, what it gives
    run from source: arguments of every kind, defaults, docstrings, a generator, a class only
    cold code names, and the function object a table held before the cold part ran."""
    b = builder()
    tiers = {"tier": ("tiered", "tier_helper")}
    split = b.split_source(SPLIT_DEMO, ("console_main",), tiers)
    assert split.stubs == {"kinds": "cold", "uses_cold_class": "cold", "calls_deep": "cold",
                           "tiered": "tier"}  # no generator
    cold, tier = split.parts["cold"], split.parts["tier"]
    assert "class Cold" in cold and "class Cold" not in split.warm + tier
    assert "def deep" in cold and "def deep" not in split.warm + tier
    assert "class Tiered" in tier and "def tier_helper" in tier
    assert "class Tiered" not in split.warm + cold and "def tier_helper" not in split.warm + cold
    assert split.warm.endswith(b.COLD_LOADER)  # after the module's last line: lines hold
    assert len(split.warm[:-len(b.COLD_LOADER)].splitlines()) == len(cold.splitlines()) == len(
        tier.splitlines()) == len(SPLIT_DEMO.splitlines())
    pythons = other_pythons()
    pyz = tmp_path / "demo.pyz"
    pyz.write_bytes(b.archive_bytes(SPLIT_DEMO.encode(), "/usr/bin/env python3", b.all_bytecode(
        SPLIT_DEMO.encode(), pythons, ("console_main",), tiers)))
    for exe in pythons:
        want = subprocess.run([exe, "-c", SPLIT_DEMO + "console_main()"], capture_output=True,
                              text=True, check=True).stdout
        got = subprocess.run([exe, str(pyz)], capture_output=True, text=True)
        assert (got.returncode, got.stderr, got.stdout) == (0, "", want), exe
        assert "(1, 2, 3, (), 4, 5, [('z', 9)])" in want and "True Every kind" in want
        assert "(2, 'helper', (1,), 'deep')" in want


def without_parts(pyz: str, out: Path, parts=(".cold", ".conda-script")) -> Path:
    """A copy of PYZ without the members of PARTS (shebang line kept)."""
    with open(pyz, "rb") as f:
        shebang = f.readline()
    with zipfile.ZipFile(pyz) as zin, zipfile.ZipFile(out.with_suffix(".zip"), "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith(parts):
                zout.writestr(info, zin.read(info.filename))
    out.write_bytes(shebang + out.with_suffix(".zip").read_bytes())
    return out


def test_a_warm_run_needs_no_cold_code_in_any_block_form(pyz, channel, conda_root, isolated_env,
                                                         tmp_path):
    """build_zipapp.WARM is complete: with the cold part (and, but for the conda-script
    block, CONDA_SCRIPT's part) taken out of the pyz, a warm run of
    each form (a '# conda execute' block with and without run_with, PEP 723 with
    requires-python, literal strings and [tool.conda], conda-script, -s SPEC, a script on
    stdin, a script with its lock file, an environment with activation scripts and variables)
    still works on every Python here, with a condarc, CONDA_EXE and the default env dir,
    importing nothing but WARM_IMPORTS; while anything that needs cold code fails (so the copy
    really lacks it)."""
    env = conda_root.env_with_conda_on_path(isolated_env)
    env.pop("CONDA_EXECUTE_ENV_DIR", None)
    env["CONDA_EXE"] = shutil.which("conda", path=env["PATH"])
    with open(os.path.join(env["HOME"], ".condarc"), "a") as f:
        f.write("conda-execute:\n  remove-if-unused-for: 30\n  bootstrap: true\n")
    url = channel.url
    shows = "import os; print(os.environ.get('ACT'), os.environ.get('STATE_VAR'), 1)\n"
    scripts = {
        "ce.py": "# conda execute\n# env: [python]\n# run_with: [python]\nprint('ce', 1)\n",
        "norun.py": "# conda execute\n# env: [python]\nprint('norun', 1)\n",
        "pep723.py": ("# /// script\n# requires-python = '>=3.8'\n# dependencies = ['pip']\n"
                      f"# [tool.conda]\n# channels = [\"{url}\"]\n# ///\nprint('pep723', 1)\n"),
        "cs.py": (f'# /// conda-script\n# channels = ["{url}"]\n'
                  '# entrypoint = "python ${SCRIPT}"\n# [dependencies]\n# python = "*"\n'
                  "# /// end-conda-script\nprint('cs', 1)\n"),
        "locked.py": "# conda execute\n# env: [python, pip]\nprint('locked', 1)\n",
        "embedded.py": "# conda execute\n# env: [python, pip]\nprint('embedded', 1)\n",
        "act.py": "# conda execute\n# env: [python, pip >=0]\n" + shows,
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    runs = [([str(tmp_path / name)], None) for name in scripts]
    runs.append((["-s", "python", "--", "python", "-c", "print('tool', 1)"], None))
    runs.append((["-"], scripts["ce.py"]))
    full = [sys.executable, pyz]
    subprocess.run([*full, "--lock", str(tmp_path / "locked.py")], env=env, check=True,
                   capture_output=True)
    subprocess.run([*full, "--lock", "--embed", str(tmp_path / "embedded.py")], env=env,
                   check=True, capture_output=True)
    for argv, stdin in runs:  # the first run creates the environment: the full pyz
        first = subprocess.run([*full, *argv], env=env, input=stdin, capture_output=True,
                               text=True)
        assert first.returncode == 0, first.stderr
    prefix = Path(subprocess.run([*full, "--prefix", str(tmp_path / "act.py")], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip())
    assert str(prefix).startswith(str(conda_root.root))  # the default env dir, beside conda's
    (prefix / "etc" / "conda" / "activate.d").mkdir(parents=True)
    (prefix / "etc" / "conda" / "activate.d" / "act.sh").write_text("export ACT=on\n")
    (prefix / "conda-meta" / "state").write_text('{"env_vars": {"STATE_VAR": "set"}}')
    prefix.parent.joinpath(".gc-stamp").touch()  # GC not due (cold code, once an hour)
    warm_only = without_parts(pyz, tmp_path / "warm-only.pyz")  # and without conda-script's
    with_cs = without_parts(pyz, tmp_path / "with-cs.pyz", (".cold",))
    for exe in other_pythons():
        for argv, stdin in runs:
            pyz_ = with_cs if argv[0].endswith("cs.py") else warm_only
            proc = subprocess.run([exe, str(pyz_), *argv], env=env, input=stdin,
                                  capture_output=True, text=True)
            assert (proc.returncode, proc.stderr) == (0, ""), (exe, argv, proc.stderr)
            assert proc.stdout.endswith(" 1\n"), (exe, argv, proc.stdout)
            imported = subprocess.run([exe, "-X", "importtime", str(pyz_), *argv],
                                      env=env, input=stdin, capture_output=True,
                                      text=True).stderr
            names = [line.rpartition("|")[2].strip() for line in imported.splitlines()
                     if line.startswith("import time:")]
            after = names[len(names) - names[::-1].index("runpy"):]  # what runpy ran imported
            if argv[0].endswith("act.py"):  # conda-meta/state is JSON: json (and its re) too
                after = [n for n in after if n not in JSON_IMPORTS]
            assert set(after) <= WARM_IMPORTS, (exe, argv, after)
        acted = subprocess.run([exe, str(warm_only), str(tmp_path / "act.py")], env=env,
                               capture_output=True, text=True)
        assert acted.stdout == "on set 1\n", acted  # the activation really ran
    cold = subprocess.run([sys.executable, str(warm_only), "--list"], env=env,
                          capture_output=True, text=True)
    assert cold.returncode != 0 and "conda_execute." in cold.stderr


# All a warm run imports beyond what runpy has loaded: built in (_operator) or one small
# extension each (re alone would cost 5-7 ms, tomllib 6-10 ms more, subprocess ~4 ms).
WARM_IMPORTS = {"_operator", "_sha256", "_sha2", "fcntl"}
# What reading an environment's variables (conda-meta/state, etc/conda/env_vars.d: JSON) adds,
# 3.8-3.13: json and what it imports.
JSON_IMPORTS = {"json", "json.decoder", "json.scanner", "json.encoder", "_json", "re", "enum",
                "sre_compile", "sre_parse", "sre_constants", "_sre", "copyreg", "_locale",
                "re._compiler", "re._parser", "re._constants", "re._casefix", "types",
                "operator", "functools", "_functools", "collections", "_collections",
                "itertools", "keyword", "reprlib", "heapq", "_heapq", "collections.abc"}
