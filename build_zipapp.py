"""Build dist/conda-execute.pyz: conda_execute.py plus a two-line __main__.py, reproducibly.

    python build_zipapp.py [--python INTERPRETER] [--output PATH]

The archive is byte-for-byte reproducible: fixed member order, timestamps and permissions,
so two builds of the same source give the same sha256 (printed with the size).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import stat
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = b"import conda_execute\nraise SystemExit(conda_execute.console_main())\n"
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
DEFAULT_PYTHON = "/usr/bin/env python3"


def archive_bytes(module_source: bytes, interpreter: str) -> bytes:
    """Return the whole .pyz: a shebang line, then a deflated zip of the two members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted({"__main__.py": MAIN, "conda_execute.py": module_source}.items()):
            info = zipfile.ZipInfo(name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data, compresslevel=9)
    return b"#!" + interpreter.encode() + b"\n" + buf.getvalue()


def build(output: str, interpreter: str = DEFAULT_PYTHON) -> str:
    """Write the archive to OUTPUT (atomically, mode 0755) and return its sha256."""
    with open(os.path.join(HERE, "conda_execute.py"), "rb") as f:
        data = archive_bytes(f.read(), interpreter)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=DEFAULT_PYTHON,
                        help="interpreter line after #! (default: %(default)s); "
                             "e.g. '/usr/bin/python3 -I -S' for the fastest start")
    parser.add_argument("--output", "-o", default=os.path.join(HERE, "dist", "conda-execute.pyz"))
    args = parser.parse_args(argv)
    if "\n" in args.python or not args.python.strip():
        parser.error("--python must be one non-empty line")
    digest = build(args.output, args.python.strip())
    print(f"{args.output}: {os.path.getsize(args.output)} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
