"""Build the local ``file://`` conda channel that the test suite installs from.

Every package is a real ``.tar.bz2`` conda package (``info/index.json``,
``info/paths.json``, ``info/files``, optional ``info/has_prefix``) written with
:mod:`tarfile`, then indexed with ``rattler.index.index_fs`` so that the
conda stand-in (and anything else that reads conda channels) can solve and
install from it fully offline.

Contents of :func:`build_test_channel`:

==============  =========  ==================================================
package         subdir     what it is
==============  =========  ==================================================
``python``      platform   the test machine's interpreter X.Y.Z, build
                           ``0_fake``: ``bin/pythonX.Y`` is a symlink to the
                           *base* interpreter, ``bin/python3``/``bin/python``
                           point to it, ``pyvenv.cfg`` at the prefix root makes
                           ``sys.prefix`` the env.
``pip``         platform   a real pip copied from the test venv (depends on
                           ``python``); ``PREFIX/bin/pip`` entry script.
``mylib`` 1.0   platform   importable ``mylib`` (``__version__ = "1.0"``,
                           ``greet(name)``), depends on ``python``.
``tool``        noarch     1.0 and 2.0: ``bin/tool`` prints ``tool 1.0``/``2.0``.
``toolplugin``  noarch     1.0, depends on ``tool <2``.
``activator``   noarch     1.0, ``etc/conda/activate.d/activator.sh`` exports
                           ``ACTIVATOR_VAR=activated-$CONDA_PREFIX``.
``placeholder`` noarch     1.0, ``share/placeholder.txt`` and ``bin/where-am-i``
                           hold a prefix placeholder rewritten at install.
``broken``      noarch     1.0, depends on ``nosuchdep`` (does not exist).
``linuxonly``   linux-64   1.0, ``share/linuxonly/README``: exists for
                           ``linux-64`` only, so it cannot be solved for
                           ``osx-arm64`` or ``linux-aarch64``.
==============  =========  ==================================================

"platform" is this machine's subdir (:func:`current_subdir`).  Each of the other
:data:`PLATFORMS` (``linux-64``, ``linux-aarch64``, ``osx-arm64``) gets foreign builds
of the platform packages, with the same names, versions and builds: ``python`` X.Y.Z
``0_fake`` whose ``bin/pythonX.Y`` is a stub executable of that platform (a Mach-O or
ELF header only: it cannot run here), ``pip`` (same version, ``0_fake``, no files but
``bin/pip``) and ``mylib`` 1.0.  Solving for another platform therefore works like on
conda-forge: its own platform packages plus the shared ``noarch`` ones.

Use :func:`add_package` to add more packages later (it re-indexes).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

#: The placeholder conda-build writes into text files that mention the build prefix.
PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"

#: A fixed timestamp for package members and index.json (milliseconds for index.json).
_EPOCH = 1_700_000_000

#: The platform subdirs the standard channel has packages for (besides ``noarch``).
PLATFORMS = ("linux-64", "linux-aarch64", "osx-arm64")

#: The first bytes of an executable of each platform: enough for ``file``, not to run.
_EXE_HEADERS = {
    # ELF64, little endian, e_machine EM_X86_64 (62) / EM_AARCH64 (183)
    "linux-64": b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\x3e\x00\x01" + bytes(43),
    "linux-aarch64": b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00\xb7\x00\x01" + bytes(43),
    # Mach-O 64, CPU_TYPE_ARM64, MH_EXECUTE
    "osx-arm64": b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01\x00\x00\x00\x00\x02" + bytes(19),
}

FileContent = Union[str, bytes]


@dataclass
class PackageFile:
    """One regular file of a package: content, mode, and whether it holds a prefix placeholder."""

    content: bytes
    mode: int = 0o644
    placeholder: Optional[str] = None


@dataclass
class PackageSpec:
    """Everything needed to write one conda package archive."""

    name: str
    version: str
    build: str = "0"
    build_number: int = 0
    depends: Sequence[str] = ()
    noarch: bool = False
    files: Dict[str, PackageFile] = field(default_factory=dict)
    symlinks: Dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """``name-version-build.tar.bz2``."""
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"


def current_subdir() -> str:
    """The conda subdir of this machine (e.g. ``linux-64``), as rattler sees it."""
    import rattler

    return str(rattler.Subdir.current())


def base_interpreter() -> Path:
    """The real (non-venv) interpreter of the running Python, symlinks resolved."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return Path(os.path.realpath(exe))


def _tarinfo(name: str, size: int = 0, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_package(subdir_dir: Path, spec: PackageSpec, subdir: str) -> Path:
    """Write ``spec`` as a ``.tar.bz2`` conda package into ``subdir_dir``; return its path."""
    subdir_dir.mkdir(parents=True, exist_ok=True)
    paths: List[dict] = []
    for rel in sorted(set(spec.files) | set(spec.symlinks)):
        if rel in spec.symlinks:
            paths.append({"_path": rel, "path_type": "softlink", "size_in_bytes": 0})
            continue
        f = spec.files[rel]
        entry = {
            "_path": rel,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(f.content).hexdigest(),
            "size_in_bytes": len(f.content),
        }
        if f.placeholder:
            entry["file_mode"] = "text"
            entry["prefix_placeholder"] = f.placeholder
        paths.append(entry)
    index = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": list(spec.depends),
        "license": "BSD-3-Clause",
        "timestamp": _EPOCH * 1000,
        "subdir": "noarch" if spec.noarch else subdir,
    }
    if spec.noarch:
        index["noarch"] = "generic"
    else:
        plat, _, arch = subdir.partition("-")
        index["platform"] = plat
        index["arch"] = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}.get(arch, arch)
    info_files: Dict[str, bytes] = {
        "info/index.json": json.dumps(index, indent=2, sort_keys=True).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2).encode(),
        "info/files": "".join(p["_path"] + "\n" for p in paths).encode(),
    }
    has_prefix = [
        f"{f.placeholder} text {rel}\n" for rel, f in sorted(spec.files.items()) if f.placeholder
    ]
    if has_prefix:
        info_files["info/has_prefix"] = "".join(has_prefix).encode()

    target = subdir_dir / spec.filename
    tmp = target.with_name(target.name + ".part")
    with tarfile.open(tmp, "w:bz2", compresslevel=1) as tar:
        for name, data in info_files.items():
            tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
        for rel in sorted(spec.files):
            f = spec.files[rel]
            tar.addfile(_tarinfo(rel, len(f.content), f.mode), io.BytesIO(f.content))
        for rel, dest in sorted(spec.symlinks.items()):
            info = _tarinfo(rel, 0, 0o777)
            info.type = tarfile.SYMTYPE
            info.linkname = dest
            tar.addfile(info)
    os.replace(tmp, target)
    return target


def index_channel(channel_dir: Path) -> None:
    """(Re)write ``repodata.json`` for every subdir of ``channel_dir`` with rattler."""
    from rattler.index import index_fs

    (channel_dir / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel_dir, write_zst=False, write_shards=False, force=True))


def add_package(
    channel_dir: Union[str, Path],
    name: str,
    version: str,
    build: str = "0",
    *,
    depends: Sequence[str] = (),
    files: Optional[Mapping[str, Union[FileContent, PackageFile]]] = None,
    symlinks: Optional[Mapping[str, str]] = None,
    noarch: bool = True,
    build_number: int = 0,
    reindex: bool = True,
    subdir: Optional[str] = None,
) -> Path:
    """Add one package to an existing channel and re-index it.

    ``files`` maps a path inside the prefix to its content (str/bytes; paths under
    ``bin/`` become executable) or to a :class:`PackageFile`. Returns the archive path.
    Use it for lock-file tests, e.g. ``add_package(ch, "tool", "3.0", files=...)``.
    ``noarch=False`` puts it in this machine's subdir, or in ``subdir`` when given
    (``subdir="osx-arm64"``).
    """
    channel_dir = Path(channel_dir)
    subdir = subdir or current_subdir()
    pfiles: Dict[str, PackageFile] = {}
    for rel, content in (files or {}).items():
        if isinstance(content, PackageFile):
            pfiles[rel] = content
        else:
            data = content.encode() if isinstance(content, str) else content
            mode = 0o755 if rel.startswith("bin/") else 0o644
            pfiles[rel] = PackageFile(
                data, mode, PLACEHOLDER if PLACEHOLDER.encode() in data else None
            )
    spec = PackageSpec(
        name=name,
        version=version,
        build=build,
        build_number=build_number,
        depends=tuple(depends),
        noarch=noarch,
        files=pfiles,
        symlinks=dict(symlinks or {}),
    )
    path = write_package(channel_dir / ("noarch" if noarch else subdir), spec, subdir)
    if reindex:
        index_channel(channel_dir)
    return path


def _tool_script(version: str) -> PackageFile:
    return PackageFile(f'#!/bin/sh\necho "tool {version}"\n'.encode(), 0o755)


def _python_spec(subdir: str) -> PackageSpec:
    exe = base_interpreter()
    vi = sys.version_info
    xy = f"{vi.major}.{vi.minor}"
    version = f"{vi.major}.{vi.minor}.{vi.micro}"
    cfg = f"home = {exe.parent}\ninclude-system-site-packages = false\nversion = {version}\n"
    return PackageSpec(
        name="python",
        version=version,
        build="0_fake",
        files={
            "pyvenv.cfg": PackageFile(cfg.encode()),
            f"lib/python{xy}/site-packages/README.txt": PackageFile(
                b"site-packages of the fake conda python package\n"
            ),
        },
        symlinks={
            f"bin/python{xy}": str(exe),
            "bin/python3": f"python{xy}",
            "bin/python": f"python{xy}",
        },
    )


def _pip_spec(subdir: str) -> PackageSpec:
    import pip

    vi = sys.version_info
    xy = f"{vi.major}.{vi.minor}"
    src = Path(pip.__file__).parent
    site = src.parent
    dist_infos = sorted(site.glob(f"pip-{pip.__version__}.dist-info"))
    files: Dict[str, PackageFile] = {}
    for root in [src, *dist_infos]:
        for path in sorted(root.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            rel = path.relative_to(site).as_posix()
            files[f"lib/python{xy}/site-packages/{rel}"] = PackageFile(path.read_bytes())
    script = (
        f"#!{PLACEHOLDER}/bin/python{xy}\n"
        "import re\nimport sys\n"
        "from pip._internal.cli.main import main\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        "    sys.exit(main())\n"
    ).encode()
    for name in ("pip", "pip3"):
        files[f"bin/{name}"] = PackageFile(script, 0o755, PLACEHOLDER)
    return PackageSpec(
        name="pip",
        version=pip.__version__,
        build="0_fake",
        depends=("python",),
        files=files,
    )


def _mylib_spec(subdir: str) -> PackageSpec:
    vi = sys.version_info
    xy = f"{vi.major}.{vi.minor}"
    code = (
        '"""A tiny library from the test channel."""\n'
        '__version__ = "1.0"\n\n\n'
        "def greet(name):\n"
        '    """Return a greeting."""\n'
        '    return "hello " + name + " from mylib"\n'
    )
    return PackageSpec(
        name="mylib",
        version="1.0",
        build="0",
        depends=("python",),
        files={f"lib/python{xy}/site-packages/mylib/__init__.py": PackageFile(code.encode())},
    )


def _foreign_python_spec(subdir: str) -> PackageSpec:
    """``python`` for another platform: this interpreter's version, a stub executable."""
    vi = sys.version_info
    xy = f"{vi.major}.{vi.minor}"
    return PackageSpec(
        name="python",
        version=f"{vi.major}.{vi.minor}.{vi.micro}",
        build="0_fake",
        files={
            f"bin/python{xy}": PackageFile(_EXE_HEADERS[subdir], 0o755),
            f"lib/python{xy}/site-packages/README.txt": PackageFile(
                f"site-packages of the fake {subdir} python package\n".encode()
            ),
        },
        symlinks={"bin/python3": f"python{xy}", "bin/python": f"python{xy}"},
    )


def _foreign_pip_spec(subdir: str) -> PackageSpec:
    """``pip`` for another platform: the test venv's pip version, only ``bin/pip``."""
    import pip

    script = f"#!{PLACEHOLDER}/bin/python\nraise SystemExit('pip for {subdir}')\n".encode()
    return PackageSpec(
        name="pip",
        version=pip.__version__,
        build="0_fake",
        depends=("python",),
        files={"bin/pip": PackageFile(script, 0o755, PLACEHOLDER)},
    )


def _linuxonly_spec() -> PackageSpec:
    return PackageSpec(
        "linuxonly",
        "1.0",
        files={"share/linuxonly/README": PackageFile(b"built for linux-64 only\n")},
    )


def platform_package_specs(subdir: str) -> List[PackageSpec]:
    """The packages of platform ``subdir``: this machine's (real python and pip) or foreign."""
    if subdir == current_subdir():
        specs = [_python_spec(subdir), _pip_spec(subdir), _mylib_spec(subdir)]
    else:
        specs = [_foreign_python_spec(subdir), _foreign_pip_spec(subdir), _mylib_spec(subdir)]
    if subdir == "linux-64":
        specs.append(_linuxonly_spec())
    return specs


def standard_package_specs(subdir: str) -> List[PackageSpec]:
    """The packages of this machine's ``subdir`` and ``noarch`` (see the module docstring)."""
    where_am_i = f'#!/bin/sh\necho "{PLACEHOLDER}"\n'.encode()
    return [
        *platform_package_specs(subdir),
        PackageSpec("tool", "1.0", noarch=True, files={"bin/tool": _tool_script("1.0")}),
        PackageSpec("tool", "2.0", noarch=True, files={"bin/tool": _tool_script("2.0")}),
        PackageSpec(
            "toolplugin",
            "1.0",
            noarch=True,
            depends=("tool <2",),
            files={"share/toolplugin/README": PackageFile(b"a plugin for tool < 2\n")},
        ),
        PackageSpec(
            "activator",
            "1.0",
            noarch=True,
            files={
                "etc/conda/activate.d/activator.sh": PackageFile(
                    b'export ACTIVATOR_VAR="activated-${CONDA_PREFIX}"\n'
                ),
                "etc/conda/deactivate.d/activator.sh": PackageFile(b"unset ACTIVATOR_VAR\n"),
            },
        ),
        PackageSpec(
            "placeholder",
            "1.0",
            noarch=True,
            files={
                "share/placeholder.txt": PackageFile(
                    f"prefix={PLACEHOLDER}\n".encode(), 0o644, PLACEHOLDER
                ),
                "bin/where-am-i": PackageFile(where_am_i, 0o755, PLACEHOLDER),
            },
        ),
        PackageSpec(
            "broken",
            "1.0",
            noarch=True,
            depends=("nosuchdep",),
            files={"share/broken/README": PackageFile(b"depends on something missing\n")},
        ),
    ]


def build_test_channel(channel_dir: Union[str, Path]) -> Path:
    """Write the standard test channel into ``channel_dir`` and index it; return the dir.

    This machine's packages (:func:`standard_package_specs`), then those of every other
    platform of :data:`PLATFORMS` (:func:`platform_package_specs`).
    """
    channel_dir = Path(channel_dir)
    subdir = current_subdir()
    for spec in standard_package_specs(subdir):
        write_package(channel_dir / ("noarch" if spec.noarch else subdir), spec, subdir)
    for other in PLATFORMS:
        if other != subdir:
            for spec in platform_package_specs(other):
                write_package(channel_dir / other, spec, other)
    (channel_dir / subdir).mkdir(parents=True, exist_ok=True)
    index_channel(channel_dir)
    return channel_dir


if __name__ == "__main__":  # pragma: no cover - manual use
    print(build_test_channel(Path(sys.argv[1])))
