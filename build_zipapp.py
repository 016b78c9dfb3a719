"""Build dist/conda-execute.pyz: conda_execute.py, a small __main__.py, and their bytecode.

    python build_zipapp.py [--python INTERPRETER] [--output PATH] [--no-bytecode]

zipimport never writes bytecode, so a pyz holding only source compiles the whole module on
every run (twice, in fact: zipimport's find_spec loads the code once to learn the file name):
~25 ms per compile, more than a warm run costs in total. The archive therefore also holds
conda_execute.pyc and __main__.pyc, compiled by the Python that runs this build. zipimport
prefers a .pyc whose magic number matches the running interpreter and falls back to the .py on
any other version, so the pyz still runs on every Python 3.8+, at full speed on the version it
was built with: build it with the Python you will run it with. Each .pyc is an unchecked
hash-based pyc (PEP 552: no timestamp, never compared with the source at run time); they and
__main__.py are stored uncompressed, so the warm path needs no zlib; the module's source (read
only on other versions) is deflated. __main__.py imports the module without zipimport's
find_spec, so its code is unmarshalled once, not twice (Python 3.10+; older ones import it
plainly).

The archive is byte-for-byte reproducible: fixed member order, timestamps and permissions,
hash-based bytecode, so two builds of the same source with the same Python give the same sha256
(printed with the size). With --no-bytecode the archive holds only the two sources (smaller,
and every run compiles both).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import os
import stat
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = b"""\
import sys

# A plain `import conda_execute` unmarshals conda_execute.pyc twice: zipimport's find_spec loads
# the code just to learn its file name. Given the file name, Python 3.10+ loads it once.
if hasattr(__loader__, "archive") and hasattr(__loader__, "exec_module"):
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        "conda_execute", os.path.join(__loader__.archive, "conda_execute.py"), loader=__loader__)
    conda_execute = sys.modules["conda_execute"] = importlib.util.module_from_spec(spec)
    __loader__.exec_module(conda_execute)
else:
    import conda_execute
raise SystemExit(conda_execute.console_main())
"""
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
DEFAULT_PYTHON = "/usr/bin/env python3"


def bytecode(module_source: bytes, filename: str = "conda_execute.py") -> bytes:
    """The module compiled by this Python as an unchecked hash-based .pyc (PEP 552).

    Header: magic number, flags 0b01 (hash-based, do not check the source), the source's
    SipHash (what importlib would compute), then the marshalled code. Nothing in it depends on
    the time or the build directory, so it is as reproducible as the source.
    """
    import marshal

    code = compile(module_source, filename, "exec", dont_inherit=True)
    source_hash = importlib.util.source_hash(module_source)
    return (importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little") + source_hash
            + marshal.dumps(code))


def archive_bytes(module_source: bytes, interpreter: str, with_bytecode: bool = True) -> bytes:
    """Return the whole .pyz: a shebang line, then a zip of the members in name order.

    The .pyc files and __main__.py are stored (read on every run: no zlib import, no
    inflating); conda_execute.py, read only by other Python versions, is deflated.
    """
    members = {"__main__.py": MAIN, "conda_execute.py": module_source}
    if with_bytecode:  # compiling even the small __main__.py costs ~1 ms on every run
        members["__main__.pyc"] = bytecode(MAIN, "__main__.py")
        members["conda_execute.pyc"] = bytecode(module_source)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(members.items()):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(".py") and \
                name != "__main__.py" else zipfile.ZIP_STORED
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data, compresslevel=9)
    return b"#!" + interpreter.encode() + b"\n" + buf.getvalue()


def build(output: str, interpreter: str = DEFAULT_PYTHON, with_bytecode: bool = True) -> str:
    """Write the archive to OUTPUT (atomically, mode 0755) and return its sha256.

    It is written to a temp file of its own beside OUTPUT (concurrent builds do not mix), which
    is removed if anything fails.
    """
    import tempfile

    with open(os.path.join(HERE, "conda_execute.py"), "rb") as f:
        data = archive_bytes(f.read(), interpreter, with_bytecode)
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
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help="interpreter line after #! (default: %(default)s); "
                             "e.g. '/usr/bin/python3 -IS' for the fastest start (one word: "
                             "Linux passes one argument)")
    parser.add_argument("--output", "-o", default=os.path.join(HERE, "dist", "conda-execute.pyz"))
    parser.add_argument("--no-bytecode", action="store_true",
                        help="leave out both .pyc files (smaller; every run compiles the module "
                             "and __main__.py)")
    args = parser.parse_args(argv)
    if "\n" in args.python or not args.python.strip():
        parser.error("--python must be one non-empty line")
    digest = build(args.output, args.python.strip(), not args.no_bytecode)
    print(f"{args.output}: {os.path.getsize(args.output)} bytes, sha256 {digest}"
          + ("" if args.no_bytecode else f" (bytecode for Python {sys.version.split()[0]})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
