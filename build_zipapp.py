"""Build dist/conda-execute.pyz: conda_execute.py, its bytecode for every Python found, a tiny __main__.py.

    python build_zipapp.py [--python INTERPRETER] [--output PATH] [--pythons EXE,...] [--no-bytecode]

zipimport never writes bytecode, so a pyz holding only source compiles the 3,000-line module
on every run (~20-60 ms, more than a whole warm run). A user runs the one released pyz with
whatever Python the machine has, so the archive holds the module's bytecode for every Python
3.8+ the build finds (this one, `pyenv root`/versions/*, python3 and python3.X on PATH; or
--pythons), one member per magic number, conda_execute.<magic hex>.pyc, each compiled by its
own interpreter in a subprocess. __main__.py reads the member for the running Python's magic
number (`_frozen_importlib_external.MAGIC_NUMBER`: already loaded) and executes it as the
module conda_execute: one read, one unmarshal, no importlib machinery. A Python with no member
(a newer one) compiles the module once and keeps the bytecode in a per-user cache,
$XDG_CACHE_HOME/conda-execute/pyc, keyed by the module's sha256 and the magic number
(_pyc_cache.py, read only then).

zipimport looks for __main__.pyc only, so one Python (the first of --pythons; by default the
one running the build) gets __main__.pyc; the others compile the small __main__.py, which
costs ~1-2 ms however small it is (a process's first compile() creates the AST types).

Each .pyc is an unchecked hash-based pyc (PEP 552: no timestamp, never compared with the source
at run time), compiled with a fixed hash seed (set constants marshal in a fixed order). The
archive is byte-for-byte reproducible: members in name order, fixed timestamps and permissions,
so two builds of the same source with the same Pythons give the same sha256 (printed with the
size and the versions). __main__ and the .pyc files are stored (the warm path needs no zlib);
the sources read only by a Python without bytecode are deflated. With --no-bytecode there is no
.pyc at all: every Python uses the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))
# Run on every Python, compiled by all but one: small, and free of importlib.util (~0.5 ms).
MAIN = b"""\
import sys
from _frozen_importlib_external import MAGIC_NUMBER
from marshal import loads

if hasattr(__loader__, "archive"):  # run as a zip: this Python's bytecode, else the user cache
    conda_execute = sys.modules["conda_execute"] = type(sys)("conda_execute")
    conda_execute.__file__ = __loader__.archive + "/conda_execute.py"
    try:
        code = loads(memoryview(__loader__.get_data("conda_execute.%s.pyc" % MAGIC_NUMBER.hex()))[16:])
    except OSError:
        exec(__loader__.get_data("_pyc_cache.py"), globals())
        code = cached_code(__loader__)
    exec(code, conda_execute.__dict__)
else:  # unpacked into a directory
    import conda_execute
raise SystemExit(conda_execute.console_main())
"""
# The per-user bytecode cache, for a Python the pyz has no bytecode for. KEY (filled in by the
# build) is the module source's sha256: a changed pyz never loads an old entry.
PYC_CACHE = r'''
"""Bytecode of conda_execute for a Python this pyz carries none for, cached per user.

$XDG_CACHE_HOME/conda-execute/pyc/conda_execute.KEY.MAGIC.pyc (default ~/.cache): both dirs
0700 and the file 0600, this user's, never a symlink; written atomically (a fresh temp file,
renamed). An entry that is unreadable, corrupt, foreign or stale is ignored and replaced; an
unwritable cache only costs a compile on each run. Never an error.
"""
import os
from _frozen_importlib_external import MAGIC_NUMBER
from marshal import dumps, loads

KEY = "@KEY@"
HEADER = MAGIC_NUMBER + (1).to_bytes(4, "little") + bytes.fromhex(KEY[:16])  # PEP 552 layout
S_IFMT, S_IFDIR, S_IFREG = 0o170000, 0o040000, 0o100000


def _ours(st, kind):
    return st.st_mode & S_IFMT == kind and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _read(folder, path):
    if not all(_ours(os.lstat(d), S_IFDIR) for d in (os.path.dirname(folder), folder)):
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        if not _ours(os.fstat(fd), S_IFREG):
            return None
        data = f.read()
    code = loads(memoryview(data)[16:]) if data[:16] == HEADER else None
    return code if type(code) is type(_read.__code__) else None


def _write(folder, path, code):
    os.makedirs(os.path.dirname(os.path.dirname(folder)), 0o700, exist_ok=True)
    for d in (os.path.dirname(folder), folder):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
    if not all(_ours(os.lstat(d), S_IFDIR) for d in (os.path.dirname(folder), folder)):
        return
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(HEADER + dumps(code))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def cached_code(loader):
    """The module's code object: from the cache, else compiled (and cached if possible)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "conda-execute", "pyc")
    path = os.path.join(folder, "conda_execute.%s.%s.pyc" % (KEY, MAGIC_NUMBER.hex()))
    try:
        code = _read(folder, path)
        if code is not None:
            return code
    except (OSError, EOFError, ValueError, TypeError):
        pass
    code = compile(loader.get_data("conda_execute.py"), "conda_execute.py", "exec",
                   dont_inherit=True)
    try:
        _write(folder, path, code)
    except OSError:
        pass
    return code
'''
# Run by each interpreter: a source (stdin) as an unchecked hash-based pyc (stdout).
# `from __future__ import annotations` becomes a compiler flag (the line left blank, so line
# numbers hold): the bytecode then does not import the __future__ module (~0.15 ms a run).
COMPILE = """\
import __future__, importlib.util, marshal, sys
if sys.version_info < (3, 8):
    sys.exit(3)
source = sys.stdin.buffer.read()
sys.stderr.write("%d.%d.%d" % sys.version_info[:3])
future = b"\\nfrom __future__ import annotations\\n"
flags = __future__.annotations.compiler_flag if future in source else 0
code = compile(source.replace(future, b"\\n\\n", 1), sys.argv[1], "exec", flags, dont_inherit=True)
sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little")
                        + importlib.util.source_hash(source) + marshal.dumps(code))
"""
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
DEFAULT_PYTHON = "/usr/bin/env python3"
STORED = ("__main__.py", ".pyc")  # read on every run; the rest only without bytecode


def find_pythons() -> list[str]:
    """Candidate interpreters: this one, pyenv's versions, python3 and python3.X on PATH."""
    found = [os.path.realpath(sys.executable)]
    roots = [os.environ.get("PYENV_ROOT", "")]
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        roots.append(out.stdout.strip() if out.returncode == 0 else "")
    import pwd  # the real home (tests point HOME elsewhere)

    roots.append(os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".pyenv"))
    for root in dict.fromkeys(r for r in roots if r):
        versions = os.path.join(root, "versions")
        for d in sorted(os.listdir(versions)) if os.path.isdir(versions) else []:
            found.append(os.path.join(versions, d, "bin", "python3"))
    for name in ["python3", *(f"python3.{minor}" for minor in range(8, 30))]:
        exe = shutil.which(name)
        if exe and os.sep + "shims" + os.sep not in exe:  # a pyenv shim may fail or mislead
            found.append(exe)
    return list(dict.fromkeys(os.path.realpath(p) for p in found if os.path.exists(p)))


class Bytecode(NamedTuple):
    """The module compiled by one interpreter."""

    version: str  # e.g. 3.11.7
    pyc: bytes  # an unchecked hash-based .pyc: magic number, flags 0b01, SipHash, code


def compile_with(interpreter: str, source: bytes, filename: str = "conda_execute.py"
                 ) -> Bytecode | None:
    """SOURCE compiled by INTERPRETER (None unless it is a working Python 3.8+)."""
    try:
        # A fixed hash seed (which -I would ignore): set constants marshal in a fixed order.
        proc = subprocess.run([interpreter, "-S", "-s", "-c", COMPILE, filename], input=source,
                              capture_output=True, timeout=300, env={"PYTHONHASHSEED": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or len(proc.stdout) <= 16:
        return None
    return Bytecode(proc.stderr.decode(errors="replace").strip(), proc.stdout)


def all_bytecode(module_source: bytes, interpreters: list[str]) -> dict[str, Bytecode]:
    """{magic number (hex): Bytecode} over INTERPRETERS; the first of those sharing a magic."""
    out: dict[str, Bytecode] = {}
    for exe in interpreters:
        compiled = compile_with(exe, module_source)
        if compiled is not None:
            out.setdefault(compiled.pyc[:4].hex(), compiled)
    return out


def archive_bytes(module_source: bytes, interpreter: str, pycs: dict[str, Bytecode],
                  main_pyc: bytes | None = None) -> bytes:
    """Return the whole .pyz: a shebang line, then a zip of the members in name order."""
    key = hashlib.sha256(module_source).hexdigest()
    members = {"__main__.py": MAIN, "conda_execute.py": module_source,
               "_pyc_cache.py": PYC_CACHE.replace("@KEY@", key).lstrip().encode()}
    if main_pyc:
        members["__main__.pyc"] = main_pyc
    members.update((f"conda_execute.{magic}.pyc", b.pyc) for magic, b in pycs.items())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_STORED if name.endswith(STORED) else \
                zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data, compresslevel=9)
    return b"#!" + interpreter.encode() + b"\n" + buf.getvalue()


def write_atomically(output: str, data: bytes) -> None:
    """Write OUTPUT (mode 0755) through a temp file of its own beside it, removed on failure."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".tmp", dir=folder)
    try:
        with open(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def build(output: str, interpreter: str = DEFAULT_PYTHON,
          pythons: list[str] | None = None) -> tuple[str, dict[str, Bytecode]]:
    """Write the archive to OUTPUT with bytecode for PYTHONS (default: all found; [] for none),
    and __main__.pyc for the first of them (by default the Python running this build).

    Returns its sha256 and the bytecode by magic number.
    """
    with open(os.path.join(HERE, "conda_execute.py"), "rb") as f:
        source = f.read()
    pythons = find_pythons() if pythons is None else pythons
    pycs = all_bytecode(source, pythons)
    main_pyc = compile_with(pythons[0], MAIN, "__main__.py") if pycs else None
    data = archive_bytes(source, interpreter, pycs, main_pyc and main_pyc.pyc)
    write_atomically(output, data)
    return hashlib.sha256(data).hexdigest(), pycs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help="interpreter line after #! (default: %(default)s); "
                             "e.g. '/usr/bin/python3 -IS' for the fastest start (one word: "
                             "Linux passes one argument)")
    parser.add_argument("--output", "-o", default=os.path.join(HERE, "dist", "conda-execute.pyz"))
    parser.add_argument("--pythons", metavar="EXE,...",
                        help="comma-separated interpreters to compile the module with "
                             "(default: every Python 3.8+ found)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no .pyc at all: every Python compiles the module once into the "
                             "per-user cache")
    args = parser.parse_args(argv)
    if "\n" in args.python or not args.python.strip():
        parser.error("--python must be one non-empty line")
    pythons = [] if args.no_bytecode else None
    if args.pythons is not None and not args.no_bytecode:
        pythons = [p for p in args.pythons.split(",") if p]
        missing = [p for p in pythons if compile_with(p, b"") is None]
        if missing:
            parser.error(f"not a working Python 3.8+: {', '.join(missing)}")
    digest, pycs = build(args.output, args.python.strip(), pythons)
    versions = ", ".join(sorted((b.version for b in pycs.values()),
                                key=lambda v: tuple(map(int, v.split(".")))))
    print(f"{args.output}: {os.path.getsize(args.output)} bytes, sha256 {digest} "
          f"(bytecode for Python {versions or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
