"""A stand-in for the ``conda``, ``mamba`` and ``micromamba`` executables, used by the tests only.

Real conda cannot be installed on the test machines, so this program accepts the real
programs' command lines and behaves as ``shared/conda-facts.md`` and
``shared/micromamba-facts.md`` record, quirks included (``conda run`` capture mode, no
signal forwarding, the ``--json`` traceback on a malformed spec, micromamba's missing
``list --explicit``, its exit 252 after forwarding SIGTERM, ...).  Packages are solved and
installed with py-rattler, fully offline, from ``file://`` channels; any other channel
fails as it would on a machine without network (conda ``--offline`` skips it silently).

Other platforms: ``create`` solves for ``$CONDA_SUBDIR`` or ``--subdir``/``--platform``
(conda: a known platform; libmamba: any string, also ``$MAMBA_PLATFORM`` and a prefix's
``.mambarc``), and ``--dry-run --json`` prints each program's plan without installing:
conda's LINK entries without URL or checksums, libmamba's with the full records.
conda's ``search --json [--subdir S] SPEC`` gives full records; ``list --explicit``
takes ``--md5`` or ``--sha256``.

It is started by tiny ``#!/bin/sh`` wrappers that a test fixture writes into a fake
conda root ``ROOT``::

    exec "<python>" "<this file>" --standin-root "ROOT" --standin-argv0 "$0" "$@"

Personalities, chosen by the basename of ``$0`` (or ``"personality"`` in standin.json,
for a renamed executable):

* ``conda``: conda 26.x (argparse command line);
* ``mamba1``: mamba 1.x, conda's command line (``--version`` prints ``mamba X`` and
  ``conda Y``); only through ``"personality"``;
* ``micromamba`` (``micromamba*``): libmamba's CLI11 command line, version
  ``micromamba_version`` (2.0.5 by default; ``1.5.8`` gives 1.5's messages);
* ``mamba`` (``mamba*``): mamba 2.x, micromamba's command line under the name mamba.

Configuration comes from ``ROOT/standin.json`` (never from ``$HOME``)::

    {"channels": ["file:///..."], "pkgs_dir": "...", "envs_dirs": ["ROOT/envs"],
     "conda_version": "26.7.1", "micromamba_version": "2.0.5", "register_envs": true,
     "personality": "micromamba", "custom_channels": {"conda-forge": "file:///..."}}

``channels`` play conda's ``defaults``; the ``channels`` of the condarc files the real
program reads (see :func:`rc_files`) come first, ``defaults`` in them expands to those.
``custom_channels`` maps a channel name to a URL (conda's setting of that name, simplified).

Every invocation, ``--version`` and refused command lines included, appends one JSON
line ``{"argv", "prog", "pid", "ppid", "cwd"}`` to ``ROOT/calls.jsonl`` before anything
else.  Only ``create`` and ``search`` import rattler; every exit goes through :func:`_exit`
(flushed streams, ``os._exit``) because a process that used the rattler solver can crash
in interpreter teardown.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

DEFAULT_CONDA_VERSION = "26.7.1"
DEFAULT_MICROMAMBA_VERSION = "2.0.5"
PERSONALITIES = ("conda", "mamba1", "micromamba", "mamba")
RUN_ERROR_LOG = (
    "ERROR conda.cli.main_run:execute(148): `conda run {cmd}` failed. (See above for error)"
)
#: conda 26.7.1's PLATFORMS (conda/base/constants.py): the choices of ``create --subdir``.
CONDA_PLATFORMS = (
    "emscripten-wasm32", "wasi-wasm32", "freebsd-64", "linux-32", "linux-64", "linux-aarch64",
    "linux-armv6l", "linux-armv7l", "linux-ppc64", "linux-ppc64le", "linux-riscv64",
    "linux-s390x", "osx-64", "osx-arm64", "win-32", "win-64", "win-arm64", "zos-z",
)


# --------------------------------------------------------------------------- basics


def _exit(code: int) -> NoReturn:
    """Flush the standard streams and leave with ``os._exit`` (rattler teardown is unsafe)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code & 0xFF)


def out(text: str = "", end: str = "\n") -> None:
    """Write to stdout."""
    sys.stdout.write(text + end)


def err(text: str = "", end: str = "\n") -> None:
    """Write to stderr, stdout flushed first: both reach a shared file in the order printed."""
    sys.stdout.flush()
    sys.stderr.write(text + end)


@dataclass
class Config:
    """The stand-in's configuration, read from ``ROOT/standin.json``."""

    root: str
    prog: str  # the personality: "conda", "mamba1", "micromamba" or "mamba"
    argv0: str
    channels: List[str] = field(default_factory=list)
    pkgs_dir: str = ""
    envs_dirs: List[str] = field(default_factory=list)
    conda_version: str = DEFAULT_CONDA_VERSION
    micromamba_version: str = DEFAULT_MICROMAMBA_VERSION
    register_envs: bool = True
    add_pip_as_python_dependency: bool = True
    custom_channels: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str, argv0: str) -> Config:
        """Read ``ROOT/standin.json`` (missing keys get defaults under ROOT)."""
        path = os.path.join(root, "standin.json")
        data: Dict[str, Any] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        base = os.path.basename(argv0)
        prog = (
            "micromamba"
            if base.startswith("micromamba")
            else "mamba"
            if base.startswith("mamba")
            else "conda"
        )
        prog = data.get("personality") or prog
        if prog not in PERSONALITIES:
            raise ValueError(f"unknown personality {prog!r}")
        home = os.environ.get("HOME")
        envs_dirs = data.get("envs_dirs") or [os.path.join(root, "envs")] + (
            [os.path.join(home, ".conda", "envs")]
            if home and prog in ("conda", "mamba1")
            else []
        )
        return cls(
            root=root,
            prog=prog,
            argv0=argv0,
            channels=list(data.get("channels", [])),
            pkgs_dir=data.get("pkgs_dir") or os.path.join(root, "pkgs"),
            envs_dirs=list(envs_dirs),
            conda_version=data.get("conda_version", DEFAULT_CONDA_VERSION),
            micromamba_version=data.get("micromamba_version", DEFAULT_MICROMAMBA_VERSION),
            register_envs=bool(data.get("register_envs", True)),
            add_pip_as_python_dependency=bool(data.get("add_pip_as_python_dependency", True)),
            custom_channels=dict(data.get("custom_channels", {})),
        )

    @property
    def is_mamba(self) -> bool:
        """True for libmamba's command line (micromamba, mamba 2.x)."""
        return self.prog in ("micromamba", "mamba")

    @property
    def mamba_major(self) -> int:
        """The libmamba major version (1 or 2)."""
        return int(self.micromamba_version.split(".")[0])

    @property
    def name(self) -> str:
        """The program's name in messages."""
        return "mamba" if self.prog == "mamba1" else self.prog

    @property
    def exe(self) -> str:
        """The path of the wrapper for this personality (``CONDA_EXE`` / ``MAMBA_EXE``)."""
        return os.path.join(self.root, "bin", self.name)

    def version_text(self) -> str:
        """What ``--version`` prints (libmamba: the bare version, mamba 1.x: two lines)."""
        if self.is_mamba:
            return self.micromamba_version
        if self.prog == "mamba1":
            return f"mamba {self.micromamba_version}\nconda {self.conda_version}"
        return f"conda {self.conda_version}"


def log_call(root: str, prog: str, args: Sequence[str]) -> None:
    """Append one JSON line for this invocation to ``ROOT/calls.jsonl`` (one write)."""
    record = {
        "prog": prog,
        "argv": [prog, *args],
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
    }
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(os.path.join(root, "calls.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class StandinError(Exception):
    """An error reported the way conda reports a ``CondaError`` (rc 1; ``ArgumentError`` 2)."""

    def __init__(self, name: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.extra = extra
        # conda/exceptions.py (26.7.1): ArgumentError.return_code = 2; CondaSystemExit (a
        # declined prompt) is a CondaExitZero: rc 0.  libmamba always exits 1 (report).
        self.code = {"ArgumentError": 2, "CondaSystemExit": 0}.get(name, 1)

    def dump_map(self) -> Dict[str, Any]:
        """The JSON object ``conda --json`` prints for this error."""
        result: Dict[str, Any] = dict(self.extra)
        result.update(
            caused_by="None",
            error=f"{self.display_name}: {self.message}",
            exception_name=self.name,
            exception_type=f"<class 'conda.exceptions.{self.name}'>",
            message=self.message,
        )
        return result

    @property
    def display_name(self) -> str:
        """The class name conda shows in front of the text on stderr."""
        return (
            "PackagesNotFoundError" if self.name == "PackagesNotFoundInChannelsError" else self.name
        )


def report(cfg: Config, exc: StandinError, as_json: bool) -> int:
    """Print an error as conda or micromamba would; return the exit code.

    libmamba with ``--json``: the log level is ``critical`` (configuration.cpp
    log_level_fallback_hook), so only the last line reaches stderr, and stdout holds JSON
    only if something was written to it before the error: ``{"solver_problems": [...],
    "success": false}`` after a failed solve (api/install.cpp), else nothing.
    """
    if cfg.is_mamba:
        problems = exc.extra.get("solver_problems")
        if as_json and problems is not None:
            out(json.dumps({"solver_problems": problems, "success": False}, indent=4))
        for line in [] if as_json else exc.extra.get("mamba_lines", []):
            err(line)
        err(f"critical libmamba {exc.extra.get('mamba_message', exc.message)}")
        return 1
    if as_json:
        dumped = exc.dump_map()
        for key in ("mamba_lines", "mamba_message", "solver_problems"):
            dumped.pop(key, None)
        out(json.dumps(dumped, indent=2, sort_keys=True))
    else:
        err(f"\n{exc.display_name}: {exc.message}\n")
    return exc.code


def env_not_found(cfg: Config, prefix: str) -> StandinError:
    """``EnvironmentLocationNotFound`` (micromamba: a critical log line)."""
    return StandinError(
        "EnvironmentLocationNotFound",
        f"Not a conda environment: {prefix}",
        location=prefix,
        mamba_message=f'The given prefix does not exist: "{prefix}"',
    )


def is_env(prefix: str) -> bool:
    """A conda environment is a directory with ``conda-meta/``."""
    return os.path.isdir(os.path.join(prefix, "conda-meta"))


def resolve_prefix(cfg: Config, prefix: Optional[str], name: Optional[str]) -> str:
    """``-p PREFIX`` / ``-n NAME`` / nothing (the root, i.e. ``base``) to an absolute path."""
    if prefix:
        return os.path.abspath(os.path.expanduser(prefix))
    if name:
        if name in ("base", "root"):
            return cfg.root
        for envs_dir in cfg.envs_dirs:
            candidate = os.path.join(envs_dir, name)
            if is_env(candidate):
                return candidate
        return os.path.join(cfg.envs_dirs[0], name)
    return cfg.root


def confirm(cfg: Config, question: str = "Proceed ([y]/n)? ", default: bool = True) -> bool:
    """Ask on stdout and read one line; EOF or an empty answer take ``default``."""
    if cfg.is_mamba:
        question = "Confirm changes: [Y/n] "
    out(question, end="")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    out()
    answer = answer.strip().lower()
    if not answer:
        return default
    return answer in ("y", "yes")


# --------------------------------------------------------------------------- parsing


class ArgumentParser(argparse.ArgumentParser):
    """argparse with conda's usage-error behaviour (rc 2) or CLI11's for libmamba (rc 109).

    CLI11 matches long options exactly: no abbreviations (``--overr``) for libmamba.
    """

    mamba = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", not self.mamba)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if self.mamba:
            prefix = "unrecognized arguments: "
            if message.startswith(prefix):
                # CLI11 (ExtrasError) lists the unexpected arguments last one first.
                extras = message[len(prefix) :].split()
                message = "The following arguments were not expected: " + " ".join(extras[::-1])
            err(message)
            err("Run with --help for more information.")
            _exit(109)
        self.print_usage(sys.stderr)
        err(f"{self.prog}: error: {message}")
        _exit(2)


def _add_prefix_options(p: argparse.ArgumentParser) -> None:
    """-p/-n (and libmamba's -r/--root-prefix: init_prefix_options, on every subcommand)."""
    p.add_argument("-p", "--prefix")
    p.add_argument("-n", "--name")
    if isinstance(p, ArgumentParser) and p.mamba:
        p.add_argument("-r", "--root-prefix")


def _add_common(p: argparse.ArgumentParser, mamba: bool) -> None:
    p.add_argument("-y", "--yes", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--offline", action="store_true")
    p.add_argument("--dry-run", *([] if mamba else ["-d"]), action="store_true")
    p.add_argument("-v", "--verbose", action="count", default=0)
    if mamba:
        p.add_argument("--rc-file", action="append")
        p.add_argument("--no-rc", action="store_true")
        p.add_argument("--no-env", action="store_true")
        p.add_argument("--log-level")
    else:
        p.add_argument("--debug", action="store_true")


def _add_search_parser(sub: Any, name: str) -> None:
    """conda's ``search`` (cli/main_search.py, 26.7.1): ``--subdir`` takes any string."""
    search = sub.add_parser("search", prog=f"{name} search")
    search.add_argument("match_spec", nargs="?", default="*")
    search.add_argument("--subdir", "--platform", dest="subdir")
    search.add_argument("-i", "--info", action="store_true")
    search.add_argument("--skip-flexible-search", action="store_true")
    search.add_argument("-f", "--full-name", action="store_true")
    search.add_argument("--canonical", action="store_true")
    search.add_argument("-c", "--channel", action="append", default=[])
    search.add_argument("-O", "--override-channels", action="store_true")
    search.add_argument("--use-local", action="store_true")
    search.add_argument("-C", "--use-index-cache", action="store_true")
    search.add_argument("-k", "--insecure", action="store_true")
    search.add_argument("--offline", action="store_true")
    search.add_argument("--json", action="store_true")
    search.add_argument("-q", "--quiet", action="store_true")
    search.add_argument("-v", "--verbose", action="count", default=0)


def build_parser(cfg: Config) -> ArgumentParser:
    """The command line of the personality: the subset the tool may use."""
    mamba = cfg.is_mamba
    ArgumentParser.mamba = mamba
    name = cfg.name
    parser = ArgumentParser(prog=name, add_help=True)
    parser.add_argument(*([] if mamba else ["-V"]), "--version", action="store_true")
    sub = parser.add_subparsers(dest="cmd", metavar="COMMAND")

    create = sub.add_parser("create", prog=f"{name} create")
    _add_prefix_options(create)
    _add_common(create, mamba)
    create.add_argument("-c", "--channel", action="append", default=[])
    create.add_argument("--override-channels", *([] if mamba else ["-O"]), action="store_true")
    if mamba:  # common_options.cpp: --platform, any string
        create.add_argument("--platform")
    else:  # cli/helpers.py add_parser_platform: the known platforms only (argparse choices)
        create.add_argument(
            "--subdir", "--platform", dest="subdir", choices=CONDA_PLATFORMS, metavar="SUBDIR"
        )
    create.add_argument(
        *(["-f"] if mamba else []), "--file", dest="file", action="append", default=[]
    )
    create.add_argument("--no-default-packages", action="store_true")
    create.add_argument("--solver")
    create.add_argument("--copy", action="store_true")
    create.add_argument("--strict-channel-priority", action="store_true")
    create.add_argument("specs", nargs="*")

    run = sub.add_parser("run", prog=f"{name} run")
    _add_prefix_options(run)
    run.add_argument("--cwd")
    if mamba:
        run.add_argument("-a", "--attach")
        run.add_argument("--clean-env", action="store_true")
        run.add_argument("-e", "--env", action="append", default=[])
        run.add_argument("--label")
    else:
        run.add_argument("-v", "--verbose", action="count", default=0)
        run.add_argument("--dev", action="store_true")
        run.add_argument("--debug-wrapper-scripts", action="store_true")
        run.add_argument(
            "--no-capture-output", "--live-stream", "-s", dest="no_capture", action="store_true"
        )
    run.add_argument("executable_call", nargs=argparse.REMAINDER)

    remove = sub.add_parser("remove", aliases=["uninstall"], prog=f"{name} remove")
    _add_prefix_options(remove)
    _add_common(remove, mamba)
    remove.add_argument("--all", *(["-a"] if mamba else []), dest="all", action="store_true")
    remove.add_argument("packages", nargs="*")

    env = sub.add_parser("env", prog=f"{name} env")
    env_sub = env.add_subparsers(dest="env_cmd", metavar="COMMAND")
    env_remove = env_sub.add_parser("remove", prog=f"{name} env remove")
    _add_prefix_options(env_remove)
    _add_common(env_remove, mamba)
    env_list = env_sub.add_parser("list", prog=f"{name} env list")
    env_list.add_argument("--json", action="store_true")
    if mamba:  # micromamba/src/env.cpp (1.x and 2.x): -e/--explicit, "--no-md5,!--md5"
        export = env_sub.add_parser("export", prog=f"{name} env export")
        _add_prefix_options(export)
        export.add_argument("-e", "--explicit", action="store_true")
        export.add_argument("--no-md5", dest="md5", action="store_false")
        export.add_argument("--md5", dest="md5", action="store_true")
        export.add_argument("--json", action="store_true")

    lst = sub.add_parser("list", prog=f"{name} list")
    _add_prefix_options(lst)
    if mamba:  # libmamba <= 2.0.5: `list [regex] [-f]`, no --explicit/--md5
        lst.add_argument("-f", "--full-name", action="store_true")
    else:
        lst.add_argument("--explicit", action="store_true")
        lst.add_argument("--md5", action="store_true")
        lst.add_argument("--sha256", action="store_true")  # main_list.py (26.x)
    lst.add_argument("--json", action="store_true")
    lst.add_argument("-q", "--quiet", action="store_true")
    lst.add_argument("regex", nargs="?")

    if not mamba:
        _add_search_parser(sub, name)

    info = sub.add_parser("info", prog=f"{name} info")
    info.add_argument("--json", action="store_true")
    info.add_argument("--base", action="store_true")
    info.add_argument("-e", "--envs", action="store_true")
    if mamba:
        _add_prefix_options(info)
    return parser


# --------------------------------------------------------------------------- prefix records


def read_records(prefix: str) -> List[Dict[str, Any]]:
    """The ``conda-meta/*.json`` package records of an environment."""
    meta = os.path.join(prefix, "conda-meta")
    records = []
    for name in sorted(os.listdir(meta)) if os.path.isdir(meta) else []:
        if name.endswith(".json"):
            with open(os.path.join(meta, name), encoding="utf-8") as fh:
                records.append(json.load(fh))
    return records


def _dep_name(dep: str) -> str:
    return dep.split()[0].split("::")[-1].split("[")[0] if dep.strip() else ""


def _dist_str(rec: Dict[str, Any]) -> str:
    dist = f"{rec['name']}-{rec['version']}-{rec['build']}"
    return f"{rec.get('channel', '')}/{rec.get('subdir', '')}::{dist}"


def toposort_records(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Order records as conda's ``PrefixGraph`` does (``allow_cycles``: the default).

    Disconnected nodes first (by name), then dependency levels sorted by ``dist_str``;
    python's dependency on pip is dropped; a cycle pops the node with fewest parents.
    """
    by_name = {r["name"]: r for r in records}
    graph: Dict[str, set] = {}
    for r in records:
        parents = {_dep_name(d) for d in r.get("depends", [])} & set(by_name)
        parents.discard(r["name"])
        if r["name"] == "python":
            parents.discard("pip")
        graph[r["name"]] = parents
    all_parents = {p for ps in graph.values() for p in ps}
    order: List[str] = sorted(n for n, ps in graph.items() if not ps and n not in all_parents)
    key = {n: _dist_str(by_name[n]) for n in graph}
    while graph:
        ready = sorted((n for n, ps in graph.items() if not ps), key=key.__getitem__)
        if not ready:
            ready = [sorted((len(ps), key[n], n) for n, ps in graph.items())[0][2]]
        for n in ready:
            graph.pop(n)
            if n not in order:
                order.append(n)
        for ps in graph.values():
            ps.difference_update(ready)
    return [by_name[n] for n in order]


# --------------------------------------------------------------------------- create


def _rc_dir_files(base: str, names: Sequence[str]) -> List[str]:
    """``base/NAME`` for each name, then ``base/condarc.d/*.yml`` (sorted)."""
    found = [os.path.join(base, n) for n in names]
    d = os.path.join(base, "condarc.d")
    if os.path.isdir(d):
        found += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith((".yml", ".yaml"))]
    return found


def rc_files(cfg: Config, root_prefix: Optional[str] = None) -> List[str]:
    """The condarc files the real program reads, lowest precedence first.

    conda: conda/base/constants.py SEARCH_PATH (``$CONDA_ROOT`` = this root); libmamba:
    ``compute_default_rc_sources`` (the root prefix's, ``~/.conda``, ``~/.condarc``,
    ``~/.mambarc``, ``$CONDA_PREFIX``, then ``$CONDARC``/``$MAMBARC``).  The system-wide
    ``/etc/conda`` and ``/var/lib/conda`` are left out: tests must not depend on the host.
    """
    env, home = os.environ, os.path.expanduser("~")
    names = [".condarc", "condarc"] + ([".mambarc"] if cfg.is_mamba else [])
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files = _rc_dir_files(root_prefix or cfg.root, names)
    files += _rc_dir_files(os.path.join(xdg, "conda"), names)
    if cfg.is_mamba:
        files += _rc_dir_files(os.path.join(xdg, "mamba"), names)
    files += _rc_dir_files(os.path.join(home, ".conda"), names)
    files += [os.path.join(home, ".condarc")] + (
        [os.path.join(home, ".mambarc")] if cfg.is_mamba else []
    )
    if env.get("CONDA_PREFIX"):
        files += _rc_dir_files(env["CONDA_PREFIX"], names)
    files += [env[v] for v in ("CONDARC", "MAMBARC") if env.get(v) and (v == "CONDARC" or cfg.is_mamba)]
    return [f for f in files if os.path.isfile(f)]


def _rc_channels(path: str) -> List[str]:
    """The ``channels:`` list of a condarc file (block or flow style; the YAML used here)."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("channels:"):
            continue
        rest = line[len("channels:") :].split(" #")[0].strip()
        if rest.startswith("["):
            return [c.strip().strip("'\"") for c in rest.strip("[]").split(",") if c.strip()]
        items = []
        for item in lines[i + 1 :]:
            text = item.strip()
            if not text.startswith("- "):
                break
            items.append(text[2:].split(" #")[0].strip().strip("'\""))
        return items
    return []


def _rc_scalar(path: str, key: str) -> str:
    """The value of a top-level ``key: value`` line of a condarc file, or ``""``."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            name, sep, value = line.partition(":")
            if sep and name == key:
                return value.split(" #")[0].strip().strip("'\"")
    return ""


def _prefix_rc_files(prefix: str) -> List[str]:
    """The target prefix's rc files libmamba reads (``compute_default_rc_sources``)."""
    names = (".condarc", "condarc", ".mambarc")
    return [f for f in _rc_dir_files(prefix, names) if os.path.isfile(f)]


def target_platform(
    cfg: Config, args: argparse.Namespace, prefix: Optional[str] = None
) -> Tuple[str, str]:
    """The platform a command solves for, and where it came from: cli, env, rc or native.

    conda: ``--subdir``/``--platform`` (create only), then ``$CONDA_SUBDIR``; never checked
    against the known subdirs (context.py: a PrimitiveParameter).  libmamba: ``--platform``,
    then ``$CONDA_SUBDIR``, ``$MAMBA_PLATFORM`` (not with ``--no-env``), then ``platform:``
    of the rc files, the target prefix's last (configuration.cpp); any string is accepted.
    """
    cli = getattr(args, "subdir", None) or getattr(args, "platform", None)
    if cli:
        return cli, "cli"
    names = ["CONDA_SUBDIR"] if not cfg.is_mamba else ["CONDA_SUBDIR", "MAMBA_PLATFORM"]
    for name in [] if getattr(args, "no_env", False) else names:
        if os.environ.get(name):
            return os.environ[name], "env"
    if cfg.is_mamba and not getattr(args, "no_rc", False):
        files = rc_files(cfg, getattr(args, "root_prefix", None)) + (
            _prefix_rc_files(prefix) if prefix else []
        )
        for path in reversed(files):
            value = _rc_scalar(path, "platform")
            if value:
                return value, "rc"
    return _subdir(), "native"


def _solve_platforms(platform: str) -> List[str]:
    """The subdirs rattler may query: ``platform`` (if rattler knows it) and ``noarch``.

    A subdir the channel lacks is empty repodata to both programs (conda: a 404 on a
    non-noarch subdir is ``RepodataIsEmpty``; libmamba: ``ignore_failure`` for it).
    """
    import rattler

    try:
        rattler.Subdir(platform)
    except Exception:
        return ["noarch"]
    return [platform, "noarch"]


def configured_channels(cfg: Config, root_prefix: Optional[str] = None) -> List[str]:
    """The channels of the condarc files (higher precedence first), ``defaults`` expanded."""
    names: List[str] = []
    for path in reversed(rc_files(cfg, root_prefix)):
        names += [c for c in _rc_channels(path) if c not in names]
    names = names or ["defaults"]
    result: List[str] = []
    for c in names:
        for url in cfg.channels if c == "defaults" else [channel_url(cfg, c)]:
            if url not in result:
                result.append(url)
    return result


def channel_url(cfg: Config, ch: str) -> str:
    """A channel name, path or URL as a URL (``custom_channels`` first, then anaconda.org)."""
    if ch in cfg.custom_channels:
        return cfg.custom_channels[ch].rstrip("/")
    if ch.startswith("file:"):
        return ch.rstrip("/")
    if os.path.isabs(ch) or ch.startswith("."):
        return "file://" + os.path.abspath(ch).rstrip("/")
    if "://" in ch:
        return ch.rstrip("/")
    return f"https://conda.anaconda.org/{ch}"


def unreachable(cfg: Config, url: str, platform: str) -> StandinError:
    """A channel that is not ``file://``: the fetch fails as it does without network."""
    repodata = f"{url}/{platform}/repodata.json"
    return StandinError(
        "CondaHTTPError",
        f"HTTP 000 CONNECTION FAILED for url <{repodata}>\n"
        "Elapsed: -\n\nAn HTTP error occurred when trying to retrieve this URL.\n"
        "HTTP errors are often intermittent, and a simple retry will get you on your way.",
        url=repodata,
        mamba_lines=[f"error    libmamba Could not resolve host for {repodata}"],
        mamba_message=f"Multiple errors occurred:\n    Download error (6) Could not resolve "
        f"hostname [{repodata}]",
    )


def _chan(rec: Any) -> str:
    """A record's channel URL without rattler's trailing slash."""
    return (rec.channel or "").rstrip("/")


def channel_name(cfg: Config, url: str) -> str:
    """The channel's name as the program prints it in a record.

    A ``custom_channels`` name, or the path after ``https://conda.anaconda.org/``; else
    conda gives the last path component of a ``file://`` URL (models/channel.py
    ``_read_channel_configuration``, step 6) and libmamba the URL itself (specs/channel.cpp
    ``resolve_path_name``: ``uri.pretty_str()``).
    """
    for name, target in cfg.custom_channels.items():
        if target.rstrip("/") == url:
            return name
    alias = "https://conda.anaconda.org/"
    if url.startswith(alias):
        return url[len(alias) :]
    return url if cfg.is_mamba else url.rsplit("/", 1)[-1]


def _record_info(cfg: Config, rec: Any) -> Dict[str, Any]:
    """A record as conda prints it in ``actions.LINK``: ``PackageRecord.dist_fields_dump``.

    No ``url``, file name, ``md5`` or ``sha256`` (models/records.py, 26.7.1).
    """
    name = rec.name.normalized
    return {
        "base_url": _chan(rec),
        "build_number": rec.build_number,
        "build_string": str(rec.build),
        "channel": channel_name(cfg, _chan(rec)),
        "dist_name": f"{name}-{rec.version}-{rec.build}",
        "name": name,
        "platform": rec.subdir,
        "version": str(rec.version),
    }


def _noarch(rec: Any) -> str:
    noarch = rec.noarch
    return "" if noarch is None or noarch.none else "python" if noarch.python else "generic"


def _mamba_info(cfg: Config, rec: Any) -> Dict[str, Any]:
    """A record as libmamba prints it in ``actions``: ``to_json(PackageInfo)``.

    specs/package_info.cpp (2.0.5): ``timestamp`` in seconds (the solvable's), ``track_features``
    a comma-joined string, ``noarch`` only for noarch packages, ``md5``/``sha256`` when known.
    With ``add_pip_as_python_dependency`` a solved ``python`` also depends on ``pip``
    (solver/libsolv/helpers.cpp edits the solvable; rattler's solve does the same).
    """
    name = rec.name.normalized
    info: Dict[str, Any] = {
        "build": str(rec.build),
        "build_number": rec.build_number,
        "build_string": str(rec.build),
        "channel": channel_name(cfg, _chan(rec)),
        "constrains": list(rec.constrains),
        "depends": list(rec.depends),
        "fn": rec.file_name,
        "license": rec.license or "",
        "name": name,
        "size": rec.size or 0,
        "subdir": rec.subdir,
        "timestamp": int(rec.timestamp.timestamp()) if rec.timestamp else 0,
        "track_features": ",".join(rec.track_features or []),
        "url": rec.url,
        "version": str(rec.version),
    }
    if _noarch(rec):
        info["noarch"] = _noarch(rec)
    if rec.md5:
        info["md5"] = rec.md5.hex()
    if rec.sha256:
        info["sha256"] = rec.sha256.hex()
    return info


def _mamba_url_info(cfg: Config, url: str, md5: str) -> Dict[str, Any]:
    """What libmamba knows of an explicit-list package: ``PackageInfo::from_url`` only."""
    base, subdir, fn = url.rsplit("/", 2)
    stem = fn[: -len(".tar.bz2")] if fn.endswith(".tar.bz2") else fn[: -len(".conda")]
    name, version, build = stem.rsplit("-", 2)
    info: Dict[str, Any] = {
        "build": build,
        "build_number": 0,
        "build_string": build,
        "channel": channel_name(cfg, base),
        "constrains": [],
        "depends": [],
        "fn": fn,
        "license": "",
        "name": name,
        "size": 0,
        "subdir": subdir,
        "timestamp": 0,
        "track_features": "",
        "url": url,
        "version": version,
    }
    if md5:
        info["md5"] = md5
    return info


def is_cached(cfg: Config, rec: Any) -> bool:
    """Whether ``rec``'s package is in the package cache: rattler's ``NAME-VERSION-BUILD.lock``
    holds a revision (8 bytes) and the archive's sha256 (libmamba checks the same: the
    extracted package must match the record)."""
    stem = f"{rec.name.normalized}-{rec.version}-{rec.build}"
    try:
        with open(os.path.join(cfg.pkgs_dir, stem + ".lock"), "rb") as fh:
            lock = fh.read(40)
    except OSError:
        return False
    return bool(rec.sha256) and lock[8:40] == rec.sha256 and os.path.isdir(
        os.path.join(cfg.pkgs_dir, stem)
    )


def _read_explicit(path: str) -> Tuple[bool, List[str]]:
    """Read a ``--file``: (is_explicit, lines) without comments and blanks."""
    with open(path, encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh]
    explicit = "@EXPLICIT" in lines
    body = [ln for ln in lines if ln and not ln.startswith("#") and ln != "@EXPLICIT"]
    return explicit, body


#: conda's explicit-list line (misc.py ``_get_url_pattern``, 26.7.1).
EXPLICIT_LINE = re.compile(
    r"(?:(?P<url_p>.+)(?:[/\\]))?"
    r"(?P<fn>[^/\\#]+(?:\.conda|\.tar\.bz2))"
    r"(?:#("
    r"(?P<md5>[0-9a-f]{32})"
    r"|((sha256:)?(?P<sha256>[0-9a-f]{64}))"
    r"))?$"
)


def explicit_entry(cfg: Config, line: str) -> Tuple[str, str, str]:
    """``(url, md5, sha256)`` of one line of an explicit list, or the program's parse error.

    conda: ``URL``, ``URL#MD5``, ``URL#SHA256`` or ``URL#sha256:SHA256`` (a path becomes a
    ``file://`` URL); anything else is ``ParseError``.  libmamba 2.0.5
    (``PackageInfo::from_url``): any hex string after ``#`` is taken as the md5, even a
    sha256; non-hex text after ``#`` is ignored.
    """
    if cfg.is_mamba:
        url, _, digest = line.partition("#")
        if url.endswith((".tar.bz2", ".conda")):
            return url, digest if re.fullmatch(r"[0-9a-fA-F]*", digest) else "", ""
        raise StandinError(
            "ParseError",
            f'Fail to parse PackageInfo URL "{line}"',
            mamba_message=f'Fail to parse PackageInfo URL "{line}"',
        )
    if "://" not in line:
        line = "file://" + os.path.abspath(os.path.expanduser(line))
    m = EXPLICIT_LINE.match(line)
    if m is None:
        raise StandinError("ParseError", f"Could not parse explicit URL: {line}")
    url = f"{m.group('url_p')}/{m.group('fn')}" if m.group("url_p") else m.group("fn")
    return url, m.group("md5") or "", m.group("sha256") or ""


def _checksum_mismatch(url: str, path: str, kind: str, expected: str, actual: str) -> StandinError:
    return StandinError(
        "ChecksumMismatchError",
        "Conda detected a mismatch between the expected content and downloaded content\n"
        f"for url '{url}'.\n  download saved to: {path}\n"
        f"  expected {kind}: {expected}\n  actual {kind}: {actual}\n",
        url=url,
    )


def _explicit_records(entries: List[Tuple[str, str, str]], rattler: Any, asyncio: Any) -> List[Any]:
    """Records for an ``@EXPLICIT`` list of ``file://`` URLs, md5/sha256 verified.

    No platform check: conda installs another platform's URLs as they are (the explicit
    spec's ``available_platforms`` is always ``(context.subdir,)``; misc.py fetches and
    links the records), and so does libmamba (``create_explicit_transaction_from_urls``).
    """
    records = []
    for url, md5, sha256 in entries:
        if not url.startswith("file://"):
            raise StandinError(
                "CondaHTTPError",
                f"HTTP 000 CONNECTION FAILED for url <{url}>\n"
                "(offline stand-in: only file:// URLs)",
                url=url,
            )
        path = url[len("file://") :]
        if not os.path.exists(path):
            raise StandinError("CondaFileIOError", f"'{path}'. No such file or directory", url=url)
        with open(path, "rb") as fh:
            data = fh.read()
        actual_md5, actual_sha = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        if md5 and actual_md5 != md5.lower():
            raise _checksum_mismatch(url, path, "md5", md5, actual_md5)
        if sha256 and actual_sha != sha256:
            raise _checksum_mismatch(url, path, "sha256", sha256, actual_sha)
        rec = asyncio.run(rattler.RepoDataRecord.from_package_archive(path))
        rec.url = url
        rec.md5 = bytes.fromhex(actual_md5)
        rec.sha256 = bytes.fromhex(actual_sha)
        rec.size = len(data)
        rec.channel = url.rsplit("/", 2)[0]
        records.append(rec)
    return records


class CachedRecords:
    """A rattler ``RepoDataSource``: the given records whose package is in the package cache.

    What micromamba solves from with ``--offline``: libmamba 2.0.5 downloads no index then,
    ``file://`` channels included (subdirdata.cpp: "TODO load local channels even when
    offline"; a ``file://`` subdir never uses the index cache), and adds the packages
    extracted in its package caches instead (api/channel_loader.cpp).
    """

    def __init__(self, records: List[Any]) -> None:
        self.records = records

    async def fetch_package_records(self, platform: Any, name: Any) -> List[Any]:
        """The cached records of ``name`` for ``platform``."""
        wanted = getattr(name, "normalized", str(name))
        return [
            r for r in self.records if r.subdir == str(platform) and r.name.normalized == wanted
        ]

    def package_names(self, platform: Any) -> List[str]:
        """The names of the cached records of ``platform``."""
        return sorted({r.name.normalized for r in self.records if r.subdir == str(platform)})


def _cached_source(cfg: Config, channels: List[str], platforms: List[str]) -> CachedRecords:
    import asyncio

    import rattler

    gateway = rattler.Gateway()
    names = [n.normalized for n in asyncio.run(gateway.names(channels, platforms))] if channels else []
    result = asyncio.run(gateway.query(channels, platforms, names, recursive=False)) if names else []
    records = [r for per_source in result for r in per_source]
    return CachedRecords([r for r in records if is_cached(cfg, r)])


def _missing_specs(
    rattler: Any,
    asyncio: Any,
    sources: List[Any],
    platforms: List[str],
    spec_strings: List[str],
    specs: List[Any],
    add_pip: bool,
) -> List[Tuple[str, str]]:
    """Requested specs (and dependencies of matching records) that match no record at all:
    ``(spec, needed_by)``, ``needed_by`` being ``""`` for a requested spec.

    With ``add_pip`` (``add_pip_as_python_dependency``), ``python`` depends on ``pip``.
    """
    gateway = rattler.Gateway()
    names = sorted({_dep_name(str(s)) for s in specs} | ({"pip"} if add_pip else set()))
    result = (
        asyncio.run(gateway.query(sources, platforms, names, recursive=True)) if sources else []
    )
    records = [r for per_source in result for r in per_source]
    missing: List[Tuple[str, str]] = []
    seen: set = set()
    todo: List[Tuple[str, Any, str]] = [(t, s, "") for t, s in zip(spec_strings, specs)]
    while todo:
        text, spec, parent = todo.pop(0)
        if text in seen:
            continue
        seen.add(text)
        matching = [r for r in records if r.matches(spec)]
        if not matching:
            missing.append((text, parent))
            continue
        for rec in matching:
            extra = ["pip"] if add_pip and rec.name.normalized == "python" else []
            dist = f"{rec.name.normalized}-{rec.version}-{rec.build}"
            for dep in [*rec.depends, *extra]:
                try:
                    todo.append((dep, rattler.MatchSpec(dep, strict=False), dist))
                except Exception:
                    pass
    return missing


def _mamba_spec(cfg: Config, spec: str) -> str:
    """A spec as libmamba 2.x prints it in a solver problem (``name =* *``); 1.x as given."""
    if cfg.mamba_major < 2 or not spec or any(c in spec for c in " =<>!~*["):
        return spec
    return f"{spec} =* *"


def _build_form(spec: str) -> str:
    """A spec as libsolv names a requested dependency: libmamba's ``conda_build_form``
    (``name``, ``name version``, ``name version build``)."""
    import rattler

    try:
        ms = rattler.MatchSpec(spec, strict=False)
    except Exception:
        return spec
    parts = [ms.name.normalized if hasattr(ms.name, "normalized") else _dep_name(spec)]
    if ms.version is not None or ms.build is not None:
        parts.append(str(ms.version) if ms.version is not None else "*")
    if ms.build is not None:
        parts.append(str(ms.build))
    return " ".join(parts)


def _not_found(
    cfg: Config, missing: List[Tuple[str, str]], channel_urls: List[str]
) -> StandinError:
    """``PackagesNotFoundInChannelsError`` naming the platform's channel URLs (conda), or
    libmamba's "does not exist" problem tree; ``solver_problems`` in libsolv's words."""
    names = [m for m, _ in missing]
    pkgs = "\n".join(f"  - {m}" for m in names)
    chans = "\n".join(f"  - {c}" for c in channel_urls)
    message = (
        "The following packages are not available from current channels:\n\n"
        f"{pkgs}\n\nCurrent channels:\n\n{chans}\n\n"
        "To search for alternate channels that may provide the conda package you're\n"
        "looking for, navigate to\n\n    https://anaconda.org\n\n"
        "and use the search bar at the top of the page.\n"
    )
    lines = ["error    libmamba Could not solve for environment specs"]
    lines += [
        "    The following packages are incompatible"
        if len(missing) > 1
        else "    The following package could not be installed"
    ]
    lines += [
        f"    └─ {_mamba_spec(cfg, m)} does not exist (perhaps a typo or a missing channel)."
        for m in names
    ]
    problems = [  # libsolv's solver_problem2str for the two rule kinds
        f"nothing provides {dep} needed by {parent}"
        if parent
        else f"nothing provides requested {_build_form(dep)}"
        for dep, parent in missing
    ]
    return StandinError(
        "PackagesNotFoundInChannelsError",
        message,
        channel_urls=channel_urls,
        channels_formatted=chans,
        packages=names,
        packages_formatted=pkgs,
        mamba_lines=lines,
        mamba_message="Could not solve for environment specs",
        solver_problems=problems,
    )


def _unsatisfiable(specs: List[str], solver_message: str) -> StandinError:
    detail = "\n".join("  " + ln for ln in solver_message.splitlines())
    message = (
        "The following specifications were found to be incompatible with each other:\n\n"
        f"Output in format: Requested package -> Available versions\n\n{detail}\n"
    )
    return StandinError(
        "UnsatisfiableError",
        message,
        unsatisfiable=[[s] for s in specs],
        guidance="",
        mamba_lines=["error    libmamba Could not solve for environment specs"]
        + ["    " + ln for ln in solver_message.splitlines()],
        mamba_message="Could not solve for environment specs",
        # the shape is libmamba's; the wording is rattler's, not libsolv's
        solver_problems=[ln.strip() for ln in solver_message.splitlines() if ln.strip()],
    )


def _print_plan(
    cfg: Config, prefix: str, specs: List[str], records: List[Any], channels: List[str]
) -> None:
    if cfg.is_mamba:
        out("\nTransaction\n\n  Prefix: " + prefix + "\n\n  Updating specs:\n")
        for s in specs:
            out(f"   - {s}")
        out(
            "\n\n  Package  Version  Build  Channel\n"
            + "─" * 40
            + "\n  Install:\n"
            + "─" * 40
            + "\n"
        )
        for rec in records:
            out(f"  + {rec.name.normalized:<12} {rec.version!s:<9} {rec.build!s:<8} {_chan(rec)}")
        out(f"\n  Summary:\n\n  Install: {len(records)} packages\n\n" + "─" * 40 + "\n\n")
        return
    out("## Package Plan ##\n")
    out(f"  environment location: {prefix}\n")
    if specs:
        out("  added / updated specs:")
        for s in specs:
            out(f"    - {s}")
        out("\n")
    out("The following NEW packages will be INSTALLED:\n")
    for rec in records:
        dist = f"{rec.name.normalized}-{rec.version}-{rec.build}"
        out(f"  {rec.name.normalized:<18} {_chan(rec)}/{rec.subdir}::{dist} ")
    out("\n")


def _subdir() -> str:
    import platform

    machine = platform.machine()
    system = {"Linux": "linux", "Darwin": "osx", "Windows": "win"}.get(platform.system(), "linux")
    arch = {"x86_64": "64", "AMD64": "64", "aarch64": "aarch64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"{system}-{arch}"


def _register_env(cfg: Config, prefix: str, remove: bool = False) -> None:
    """Mimic conda's ``~/.conda/environments.txt``, never in the real home directory."""
    home = os.environ.get("HOME")
    if cfg.is_mamba or not cfg.register_envs or not home:
        return
    try:
        import pwd

        real_home = pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return
    if os.path.realpath(home) == os.path.realpath(real_home):
        return  # the tests must never write to the real $HOME
    path = os.path.join(home, ".conda", "environments.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines: List[str] = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            lines = [ln.rstrip("\n") for ln in fh if ln.strip()]
    lines = [ln for ln in lines if ln != prefix]
    if not remove:
        lines.append(prefix)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("".join(ln + "\n" for ln in lines))


def _write_history(
    cfg: Config, prefix: str, args_list: Sequence[str], records: List[Any], specs: List[str]
) -> None:
    meta = os.path.join(prefix, "conda-meta")
    os.makedirs(meta, exist_ok=True)
    now = datetime.datetime.now()
    lines = [
        f"==> {now:%Y-%m-%d %H:%M:%S} <==",
        "# cmd: " + " ".join([cfg.argv0, *args_list]),
        f"# conda version: {cfg.conda_version}",
    ]
    lines += [f"+{_chan(r)}/{r.subdir}::{r.name.normalized}-{r.version}-{r.build}" for r in records]
    lines.append(f"# update specs: {json.dumps(specs)}")
    with open(os.path.join(meta, "history"), "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    created = os.path.join(meta, "created_at")
    if not os.path.exists(created):
        with open(created, "w", encoding="utf-8") as fh:
            fh.write(datetime.datetime.now(datetime.timezone.utc).isoformat() + "\n")


def _parse_specs(cfg: Config, spec_strings: List[str], as_json: bool, rattler: Any) -> List[Any]:
    """MatchSpecs, or the error each program gives for a malformed one."""
    specs = []
    for s in spec_strings:
        try:
            specs.append(rattler.MatchSpec(s, strict=False))
        except Exception as exc:
            if as_json and not cfg.is_mamba:
                # Quirk of real conda: with --json a malformed spec crashes with a traceback.
                raise InvalidMatchSpec(f"Invalid spec '{s}': {exc}") from exc
            name = _dep_name(s.replace(">", " ").replace("<", " ").replace("=", " "))
            version = s[len(name) :].strip()
            for op in (">=", "<=", "==", "!=", "~=", ">", "<", "="):
                if version.startswith(op):
                    version = version[len(op) :]
                    break
            raise StandinError(
                "InvalidMatchSpec",
                f"Invalid spec '{s}': {exc}",
                mamba_message=f'Error parsing version "{version}". '
                f"Version contains invalid characters in {version}.",
            ) from exc
    return specs


def _clear_prefix(cfg: Config, prefix: str, yes: bool, dry_run: bool) -> bool:
    """Deal with an existing prefix; return whether it still exists (conda keeps a folder).

    conda (cli/main_create.py, 26.7.1): an existing env is refused with ``--dry-run``, else
    removed after a prompt; a non-env directory is kept after a prompt (default no; both
    prompts pass with ``--yes``/``--json``).  libmamba (api/create.cpp): with ``--dry-run``
    nothing is checked at all.
    """
    if not os.path.lexists(prefix) or (cfg.is_mamba and dry_run):
        return os.path.lexists(prefix)
    if is_env(prefix):
        if cfg.is_mamba:  # "Found conda-prefix at '...'. Overwrite?" (-y: yes)
            if not (yes or confirm(cfg, default=False)):
                raise StandinError("CondaSystemExit", "Aborting.", mamba_message="Aborting.")
        elif dry_run:
            raise StandinError(
                "CondaValueError", "Cannot `create --dry-run` with an existing conda environment"
            )
        elif not yes and not confirm(
            cfg,
            f"WARNING: A conda environment already exists at '{prefix}'\n\n"
            "Remove existing environment?\nThis will remove ALL directories contained within "
            "this specified prefix directory, including any other conda environments.\n\n"
            " (y/[n])? ",
            default=False,
        ):
            raise StandinError("CondaSystemExit", "Exiting.")
        shutil.rmtree(prefix)
        return False
    if cfg.is_mamba:  # libmamba create: any existing path without conda-meta, even empty
        raise StandinError(
            "CondaValueError",
            "Non-conda folder exists at prefix",
            mamba_lines=["error    libmamba Non-conda folder exists at prefix"],
            mamba_message="Aborting.",
        )
    if not yes and not confirm(
        cfg,
        f"WARNING: A directory already exists at the target location '{prefix}'\n"
        "but it is not a conda environment.\nContinue creating environment (y/[n])? ",
        default=False,
    ):
        raise StandinError("CondaSystemExit", "Exiting.")
    return True


def _solve(
    cfg: Config,
    sources: List[Any],
    platform: str,
    spec_strings: List[str],
    specs: List[Any],
    progress: bool,
    channel_urls: List[str],
) -> List[Any]:
    """Solve ``specs`` for ``platform`` (and noarch) from ``sources`` or raise the error."""
    import asyncio

    import rattler
    from rattler.exceptions import SolverError

    add_pip = cfg.add_pip_as_python_dependency
    platforms = _solve_platforms(platform)
    try:
        return asyncio.run(
            rattler.solve(
                sources,
                specs,
                gateway=rattler.Gateway(),
                platforms=platforms,
                add_pip_as_python_dependency=add_pip,
            )
        )
    except SolverError as exc:
        if progress:
            out("failed\n")
        missing = _missing_specs(
            rattler, asyncio, sources, platforms, spec_strings, specs, add_pip
        )
        if missing:
            raise _not_found(cfg, missing, channel_urls) from exc
        raise _unsatisfiable(spec_strings, str(exc)) from exc


def command_channels(cfg: Config, args: argparse.Namespace) -> List[str]:
    """``-c`` channels, then (without ``--override-channels``) the configured ones."""
    channels = [channel_url(cfg, c) for c in args.channel]
    if not args.override_channels:
        root_prefix = getattr(args, "root_prefix", None) or (
            os.environ.get("MAMBA_ROOT_PREFIX") if cfg.is_mamba else None
        )
        channels += [c for c in configured_channels(cfg, root_prefix) if c not in channels]
    return channels


def _reachable(cfg: Config, channels: List[str], platform: str, offline: bool) -> List[str]:
    """The channels to read: conda ``--offline`` skips network channels silently (their
    repodata is empty: gateways/repodata, ``context.offline``); without it they fail."""
    if offline and not cfg.is_mamba:
        return [c for c in channels if c.startswith("file://")]
    for c in channels:
        if not c.startswith("file://"):
            raise unreachable(cfg, c, platform)
    return channels


def _warn_missing_subdirs(channels: List[str], platform: str) -> None:
    """libmamba logs a warning for a platform subdir a channel lacks, then ignores it
    (core/subdirdata.cpp: ``ignore_failure`` but for noarch; the message is the download
    error of download/downloader.cpp with curl's text for ``CURLE_FILE_COULDNT_READ_FILE``)."""
    for c in channels:
        path = c[len("file://") :] + f"/{platform}/repodata.json"
        if platform != "noarch" and not os.path.exists(path):
            err(
                "warning  libmamba Download error (37) Couldn't read a file:// file "
                f"[{c}/{platform}/repodata.json]\nCouldn't open file {path}"
            )


def _sources(
    cfg: Config,
    args: argparse.Namespace,
    channels: List[str],
    platform: str,
    progress: bool,
    quiet: bool,
) -> List[Any]:
    """What the solve reads, with the progress each program prints while it loads it:
    the channels (all reachable, or conda's ``--offline`` skips the network ones), or for
    libmamba ``--offline`` the package cache only (:class:`CachedRecords`)."""
    if cfg.is_mamba and args.offline:
        local = [c for c in channels if c.startswith("file://")]
        return [_cached_source(cfg, local, _solve_platforms(platform))]
    if cfg.is_mamba and not quiet:
        out(" ".join(f"{c}/{s}" for c in channels for s in (platform, "noarch")))
    if progress:
        out("Channels:")
        for c in channels:
            out(f" - {c}")
        out(f"Platform: {platform}")
        out("Collecting package metadata (repodata.json): ", end="")
        sys.stdout.flush()
        if not args.offline and any(not c.startswith("file://") for c in channels):
            out("failed\n")
    sources = _reachable(cfg, channels, platform, args.offline)
    if cfg.is_mamba and not args.json:
        _warn_missing_subdirs(sources, platform)
    if progress:
        out("done\nSolving environment: ", end="")
        sys.stdout.flush()
    return sources


def _create_prefix(cfg: Config, args: argparse.Namespace) -> str:
    """``-p``/``-n``; conda's ``--dry-run`` without them uses a temporary path."""
    if args.prefix or args.name:
        return resolve_prefix(cfg, args.prefix, args.name)
    if args.dry_run and not cfg.is_mamba:  # cli/main_create.py: mktemp()/UNUSED_ENV_NAME
        return os.path.join(tempfile.mktemp(), "unused-env-name")
    if cfg.is_mamba:
        raise StandinError(
            "CondaValueError", "Value error: one of --prefix or --name must be given"
        )
    raise StandinError("ArgumentError", "one of the arguments -n/--name -p/--prefix is required")


def cmd_create(cfg: Config, args: argparse.Namespace, raw_args: Sequence[str]) -> int:
    """``create``: solve for the target platform (or read an explicit list) and install."""
    as_json = bool(args.json)
    yes = bool(args.yes or as_json)
    prefix = _create_prefix(cfg, args)
    platform, platform_from = target_platform(cfg, args, prefix)
    channels = command_channels(cfg, args)

    spec_strings = list(args.specs)
    explicit_lines: List[str] = []
    for path in args.file:
        is_explicit, lines = _read_explicit(path)
        if is_explicit:
            explicit_lines += lines
        else:
            spec_strings += lines

    # Both programs deal with the prefix first, then parse the specs and lists.
    existed = _clear_prefix(cfg, prefix, yes, args.dry_run)
    if cfg.is_mamba and not args.dry_run and platform_from in ("cli", "env"):
        existed = _store_platform_config(prefix, platform) or existed

    import asyncio

    import rattler

    specs = _parse_specs(cfg, spec_strings, as_json, rattler)
    explicit = [explicit_entry(cfg, line) for line in explicit_lines]
    if explicit and args.dry_run and not cfg.is_mamba:
        # misc.py get_package_records_from_explicit: DryRunExit once the lines are parsed
        return _dry_run_exit(as_json)
    if cfg.is_mamba and args.dry_run and as_json and not spec_strings and not explicit:
        if cfg.mamba_major >= 2:  # api/create.cpp: "Just print the JSON"
            out(json.dumps(_mamba_empty_dry_run(prefix), indent=2))
        return 0
    progress = not as_json and not cfg.is_mamba
    quiet = bool(args.quiet) or as_json
    sources = [] if explicit else _sources(cfg, args, channels, platform, progress, quiet)
    channel_urls = [f"{c}/{s}" for c in channels for s in (platform, "noarch")]
    if explicit:
        records = _explicit_records(explicit, rattler, asyncio)
    elif specs:
        if not channels:
            raise _not_found(cfg, [(s, "") for s in spec_strings], channel_urls)
        records = _solve(cfg, sources, platform, spec_strings, specs, progress, channel_urls)
        if progress:
            out("done\n")
    else:
        records = []
        if progress:
            out("done\n")

    ordered = _toposort_rattler(records)
    infos, fetch = _mamba_plan(cfg, explicit, records, ordered) if cfg.is_mamba else ([], [])
    if not quiet:
        _print_plan(cfg, prefix, spec_strings, ordered, channels)
    if args.dry_run:
        if cfg.is_mamba:
            return _mamba_dry_run(prefix, infos, fetch, as_json)
        return _dry_run(cfg, prefix, ordered, as_json)
    if not yes and not confirm(cfg):
        raise StandinError("CondaSystemExit", "Exiting.")
    # conda's -q hides the plan only; libmamba's -q prints nothing at all on success.
    silent = as_json or (cfg.is_mamba and quiet)
    _install(cfg, prefix, ordered, specs, existed, raw_args, spec_strings, silent, platform)
    if not cfg.is_mamba and not explicit and platform != _subdir():
        # cli/install.py handle_txn: a new env for another platform remembers it
        with open(os.path.join(prefix, ".condarc"), "w", encoding="utf-8") as fh:
            fh.write(f"subdir: {platform}\n")
    _register_env(cfg, prefix)
    if cfg.is_mamba and as_json:
        if spec_strings or explicit:  # no specs: create_empty_target, no JSON at all
            out(json.dumps(_mamba_result(prefix, infos, fetch, False), indent=4, sort_keys=True))
    else:
        _report_created(cfg, prefix, ordered, as_json, silent)
    return 0


def _mamba_plan(
    cfg: Config, explicit: List[Tuple[str, str, str]], records: List[Any], ordered: List[Any]
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """libmamba's LINK and FETCH entries (core/transaction.cpp ``log_json``): an explicit
    list in its own order, as parsed from the URLs; FETCH what the package cache lacks."""
    pairs = (
        [(_mamba_url_info(cfg, e[0], e[1]), r) for e, r in zip(explicit, records)]
        if explicit
        else [(_mamba_info(cfg, r), r) for r in ordered]
    )
    return [info for info, _ in pairs], [info for info, rec in pairs if not is_cached(cfg, rec)]


def _store_platform_config(prefix: str, platform: str) -> bool:
    """libmamba's ``store_platform_config``: ``PREFIX/.mambarc`` says ``platform: X`` (no
    newline) when ``--platform`` or an env var chose it; written before the solve, so a
    failed solve leaves the prefix behind.  Returns whether the prefix existed."""
    existed = os.path.isdir(prefix)
    os.makedirs(prefix, exist_ok=True)
    with open(os.path.join(prefix, ".mambarc"), "w", encoding="utf-8") as fh:
        fh.write(f"platform: {platform}")
    return existed


def _dry_run_exit(as_json: bool) -> int:
    """conda's ``DryRunExit`` (rc 0): silent with ``--json`` (exceptions.py
    print_conda_exception), else ``DryRunExit: Dry run. Exiting.`` on stderr."""
    if not as_json:
        err("\nDryRunExit: Dry run. Exiting.\n")
    return 0


def conda_actions(cfg: Config, prefix: str, ordered: List[Any]) -> Dict[str, Any]:
    """conda's legacy action group (core/link.py ``_make_legacy_action_groups``): FETCH
    (nothing to download from a ``file://`` channel), PREFIX, LINK (only if any)."""
    actions: Dict[str, Any] = {"FETCH": [], "PREFIX": prefix}
    if ordered:
        actions["LINK"] = [_record_info(cfg, r) for r in ordered]
    return actions


def _dry_run(cfg: Config, prefix: str, ordered: List[Any], as_json: bool) -> int:
    """conda ``--dry-run``: with ``--json`` cli/install.py ``handle_txn`` prints
    ``stdout_json_success(prefix=..., actions=..., dry_run=True)`` (key order kept, as
    conda's json.dumps does), then ``DryRunExit``."""
    if as_json:
        result = {
            "success": True,
            "actions": conda_actions(cfg, prefix, ordered),
            "prefix": prefix,
            "dry_run": True,
        }
        out(json.dumps(result, indent=2))
        return 0
    return _dry_run_exit(as_json)


def _mamba_result(
    prefix: str, infos: List[Dict[str, Any]], fetch: List[Dict[str, Any]], dry_run: bool
) -> Dict[str, Any]:
    """libmamba's JSON after a solve (core/transaction.cpp): ``actions`` only for a
    non-empty transaction, FETCH only if something must be downloaded."""
    result: Dict[str, Any] = {"success": True, "dry_run": dry_run, "prefix": prefix}
    if infos:
        result["actions"] = {"PREFIX": prefix, "LINK": infos, **({"FETCH": fetch} if fetch else {})}
    else:
        result["message"] = "All requested packages already installed"
    return result


def _mamba_empty_dry_run(prefix: str) -> Dict[str, Any]:
    """api/create.cpp (2.x): ``create --dry-run --json`` without specs."""
    return {
        "actions": {"FETCH": [], "PREFIX": prefix},
        "dry_run": True,
        "prefix": prefix,
        "success": True,
    }


def _mamba_dry_run(
    prefix: str, infos: List[Dict[str, Any]], fetch: List[Dict[str, Any]], as_json: bool
) -> int:
    """libmamba ``--dry-run``: the JSON (indent 4, sorted keys), or a line on stdout."""
    if as_json:
        out(json.dumps(_mamba_result(prefix, infos, fetch, True), indent=4, sort_keys=True))
    else:
        out("Dry run. Not executing the transaction.")
    return 0


def _install(
    cfg: Config,
    prefix: str,
    ordered: List[Any],
    specs: List[Any],
    existed: bool,
    raw_args: Sequence[str],
    spec_strings: List[str],
    quiet: bool,
    platform: str,
) -> None:
    """Link the records into ``prefix`` (a failure removes a prefix that was not there)."""
    import asyncio

    import rattler

    had_cachedir_tag = os.path.exists(os.path.join(prefix, "CACHEDIR.TAG"))
    try:
        os.makedirs(prefix, exist_ok=True)
        if ordered:
            if not quiet and not cfg.is_mamba:
                out(
                    "\nDownloading and Extracting Packages:\n\nPreparing transaction: done\n"
                    "Verifying transaction: done\nExecuting transaction: ",
                    end="",
                )
                sys.stdout.flush()
            known = _solve_platforms(platform)[0]
            asyncio.run(
                rattler.install(
                    ordered,
                    prefix,
                    cache_dir=cfg.pkgs_dir,  # type: ignore[arg-type]
                    show_progress=False,
                    requested_specs=[s._match_spec for s in specs],  # type: ignore[misc]
                    platform=rattler.Subdir(known) if known != "noarch" else None,
                )
            )
        _write_history(cfg, prefix, raw_args, ordered, spec_strings)
    except BaseException:
        if not existed:
            shutil.rmtree(prefix, ignore_errors=True)
        raise
    tag = os.path.join(prefix, "CACHEDIR.TAG")
    if not had_cachedir_tag and os.path.exists(tag):
        os.unlink(tag)


def _report_created(
    cfg: Config, prefix: str, ordered: List[Any], as_json: bool, quiet: bool
) -> None:
    """What each program prints after a successful create (libmamba's JSON: cmd_create)."""
    if as_json:
        result = {
            "success": True,
            "actions": conda_actions(cfg, prefix, ordered),
            "prefix": prefix,
        }
        out(json.dumps(result, indent=2))
    elif cfg.is_mamba:
        if quiet:
            return
        out("Transaction starting")
        for rec in ordered:
            out(f"Linking {rec.name.normalized}-{rec.version}-{rec.build}")
        out(
            "\nTransaction finished\n\nTo activate this environment, use:\n\n"
            f"    {cfg.name} activate {prefix}\n\n"
            "Or to execute a single command in this environment, use:\n\n"
            f"    {cfg.name} run -p {prefix} mycommand\n"
        )
    else:
        if ordered:
            out("done")
        out(
            "#\n# To activate this environment, use\n#\n"
            f"#     $ conda activate {prefix}\n#\n# To deactivate an active environment, "
            "use\n#\n#     $ conda deactivate\n"
        )


class InvalidMatchSpec(Exception):
    """Raised uncaught (a traceback) for the ``--json`` crash quirk of real conda."""


def _toposort_rattler(records: List[Any]) -> List[Any]:
    dicts = []
    for r in records:
        dicts.append(
            {
                "name": r.name.normalized,
                "version": str(r.version),
                "build": str(r.build),
                "depends": list(r.depends),
                "channel": _chan(r) or "",
                "subdir": r.subdir,
                "_rec": r,
            }
        )
    return [d["_rec"] for d in toposort_records(dicts)]


# --------------------------------------------------------------------------- run


def _activation_env(cfg: Config, prefix: str) -> Dict[str, str]:
    """The environment ``conda activate PREFIX`` would give (stacking not modelled)."""
    env = dict(os.environ)
    old_prefix = env.get("CONDA_PREFIX")
    path = env.get("PATH", "").split(os.pathsep) if env.get("PATH") else []
    new_bin = os.path.join(prefix, "bin")
    if old_prefix and os.path.join(old_prefix, "bin") in path:
        path[path.index(os.path.join(old_prefix, "bin"))] = new_bin
    else:
        path.insert(0, new_bin)
    env["PATH"] = os.pathsep.join(path)
    if os.path.realpath(prefix) == os.path.realpath(cfg.root):
        default_env = "base"
    elif cfg.is_mamba:  # micromamba run -p P: CONDA_DEFAULT_ENV is the full prefix
        default_env = prefix
    elif os.path.basename(os.path.dirname(prefix)) == "envs":
        default_env = os.path.basename(prefix)
    else:
        default_env = prefix
    try:
        shlvl = int(env.get("CONDA_SHLVL", "0"))
    except ValueError:
        shlvl = 0
    env.update(
        CONDA_PREFIX=prefix,
        CONDA_DEFAULT_ENV=default_env,
        CONDA_SHLVL=str(max(shlvl, 1)),
        CONDA_PROMPT_MODIFIER=f"({default_env}) ",
    )
    if cfg.is_mamba:
        env.update(MAMBA_EXE=cfg.exe, MAMBA_ROOT_PREFIX=cfg.root)
    else:
        env.update(CONDA_EXE=cfg.exe, CONDA_PYTHON_EXE=sys.executable, _CE_M="", _CE_CONDA="")
    state = os.path.join(prefix, "conda-meta", "state")
    if os.path.exists(state):
        with open(state, encoding="utf-8") as fh:
            env_vars = json.load(fh).get("env_vars", {})
        env.update({str(k): str(v) for k, v in env_vars.items()})
    return env


def _wrapper_script(prefix: str, command: Sequence[str], exec_: bool) -> str:
    """Write the ``bash`` wrapper (activate.d scripts, then the command) into $TMPDIR."""
    activate_d = os.path.join(prefix, "etc", "conda", "activate.d")
    scripts = (
        sorted(f for f in os.listdir(activate_d) if f.endswith(".sh"))
        if os.path.isdir(activate_d)
        else []
    )
    lines = [f". {shlex.quote(os.path.join(activate_d, s))}" for s in scripts]
    lines.append(("exec " if exec_ else "") + " ".join(shlex.quote(a) for a in command))
    fd, path = tempfile.mkstemp(
        prefix="tmp" if not exec_ else "mamba_run_", suffix="" if not exec_ else ".sh"
    )
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def cmd_run(cfg: Config, args: argparse.Namespace) -> int:
    """``run``: activate the env in a ``bash`` wrapper and run the command in it."""
    command = list(args.executable_call)
    if command and command[0] == "--":
        command = command[1:]
    prefix = resolve_prefix(cfg, args.prefix, args.name)
    if cfg.is_mamba:
        return _run_mamba(cfg, args, prefix, command)
    if not command:
        raise StandinError("ArgumentError", "No command specified")
    if not is_env(prefix):
        raise env_not_found(cfg, prefix)
    # conda neither forwards nor handles SIGTERM; SIGINT is a KeyboardInterrupt in conda.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = _activation_env(cfg, prefix)
    script = _wrapper_script(prefix, command, exec_=False)
    bash = shutil.which("bash") or "/bin/bash"
    capture = not args.no_capture
    try:
        proc = subprocess.Popen(
            [bash, script],
            cwd=args.cwd or None,
            env=env,
            stdin=subprocess.PIPE if capture else None,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
        stdout, stderr = proc.communicate()
    except KeyboardInterrupt:
        err("\nCondaError: KeyboardInterrupt\n")
        return 1
    rc = proc.returncode
    if capture:
        sys.stdout.write(stdout.decode("utf-8", errors="replace"))
        sys.stdout.flush()
        sys.stderr.write(stderr.decode("utf-8", errors="replace"))
    if rc != 0:
        err(RUN_ERROR_LOG.format(cmd=" ".join(command)))
    if "CONDA_TEST_SAVE_TEMPS" not in os.environ:
        os.unlink(script)
    return rc


def _run_mamba(cfg: Config, args: argparse.Namespace, prefix: str, command: List[str]) -> int:
    """``micromamba run``: streams attached, ``exec`` in the wrapper, SIGTERM forwarded."""
    if not command:
        err("error    libmamba Did not receive any command to run inside environment")
        return 1
    if not os.path.exists(prefix):
        raise env_not_found(cfg, prefix)
    env = {} if args.clean_env else None
    env = _activation_env(cfg, prefix) if env is None else {**env, "CONDA_PREFIX": prefix}
    for item in args.env:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    script = _wrapper_script(prefix, command, exec_=True)
    streams = args.attach
    sink = subprocess.DEVNULL

    def want(name: str) -> Optional[int]:
        return None if streams is None or name in streams else sink

    proc = subprocess.Popen(
        [shutil.which("bash") or "/bin/bash", script],
        cwd=args.cwd or None,
        env=env,
        stdin=want("stdin"),
        stdout=want("stdout"),
        stderr=want("stderr"),
    )

    def kill_if_alive() -> None:
        if proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    terminated: List[int] = []

    def on_term(signum: int, frame: Any) -> None:
        # libmamba's run: SIGTERM -> terminate the child, SIGKILL 3 s later.
        terminated.append(signum)
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        timer = threading.Timer(3.0, kill_if_alive)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, lambda signum, frame: None)  # only a flag in libmamba
    while True:
        try:
            rc = proc.wait()
            break
        except InterruptedError:
            continue
    os.unlink(script)
    if terminated:  # observed on 2.0.5: the wait is interrupted, micromamba exits 252
        err("Interrupted system call ; error code 4")
        return 252
    # reproc reports a signal N as N + 255, which exit() truncates to 8 bits.
    return (255 - rc) & 0xFF if rc < 0 else rc


# --------------------------------------------------------------------------- remove / list / info


def cmd_remove(cfg: Config, args: argparse.Namespace, whole_env: bool) -> int:
    """``remove --all`` / ``env remove``: delete the environment directory."""
    if not (whole_env or args.all):
        raise StandinError(
            "CondaValueError", "Value error: the stand-in only supports removing whole envs (--all)"
        )
    prefix = resolve_prefix(cfg, args.prefix, args.name)
    if not is_env(prefix):
        if cfg.is_mamba:
            raise StandinError(
                "EnvironmentLocationNotFound",
                f"No prefix found at: {prefix}",
                mamba_message=f"No prefix found at: {prefix}",
            )
        raise env_not_found(cfg, prefix)
    if os.path.realpath(prefix) == os.path.realpath(cfg.root):
        raise StandinError("CondaEnvironmentError", "cannot remove root environment")
    yes = args.yes or args.json
    if not args.json:
        out(f"\nRemove all packages in environment {prefix}:\n")
    if not yes and not confirm(cfg):
        raise StandinError("CondaSystemExit", "Exiting.")
    shutil.rmtree(prefix)
    _register_env(cfg, prefix, remove=True)
    if args.json:
        out(json.dumps({"success": True, "actions": {"PREFIX": prefix}}, indent=2, sort_keys=True))
    return 0


def cmd_list(cfg: Config, args: argparse.Namespace) -> int:
    """``list``: ``--explicit [--md5]`` in conda's format, a table, or ``--json``."""
    prefix = resolve_prefix(cfg, args.prefix, args.name)
    if not is_env(prefix):
        raise env_not_found(cfg, prefix)
    if getattr(args, "md5", False) and getattr(args, "sha256", False):
        raise StandinError(  # cli/main_list.py (26.7.1)
            "ArgumentError", "Only one of --md5 and --sha256 can be specified at the same time"
        )
    records = toposort_records(read_records(prefix))
    if getattr(args, "explicit", False):
        digest = "md5" if args.md5 else "sha256" if args.sha256 else ""
        platform, _ = target_platform(cfg, args)
        _print_explicit(records, f"conda {cfg.conda_version}", digest, platform)
        return 0
    records.sort(key=lambda r: r["name"])
    if args.json:
        out(
            json.dumps(
                [
                    {
                        "base_url": r.get("channel"),
                        "build_number": r.get("build_number", 0),
                        "build_string": r["build"],
                        "channel": r.get("channel"),
                        "dist_name": f"{r['name']}-{r['version']}-{r['build']}",
                        "name": r["name"],
                        "platform": r.get("subdir"),
                        "version": r["version"],
                    }
                    for r in records
                ],
                indent=2,
            )
        )
        return 0
    out(f"# packages in environment at {prefix}:\n#")
    out(f"# {'Name':<23} {'Version':<25} {'Build':>6}  Channel")
    for r in records:
        out(f"{r['name']:<25} {r['version']:<25} {r['build']:>6}  {r.get('channel', '')}")
    return 0


def _print_explicit(
    records: List[Dict[str, Any]], created_by: str, digest: str, platform: str
) -> None:
    """The explicit list: conda's header (``# created-by:`` only from conda), one URL a line.

    ``digest`` (``md5``, ``sha256`` or ``""``) is appended as ``URL#HEX``, without a
    ``sha256:`` prefix (cli/main_list.py ``print_explicit``, 26.7.1).  ``# platform:`` is
    the configured platform (conda: ``context.subdir``; libmamba: ``ctx.platform``), not
    the env's.
    """
    out("# This file may be used to create an environment using:")
    out("# $ conda create --name <env> --file <this file>")
    out(f"# platform: {platform}")
    if created_by:
        out(f"# created-by: {created_by}")
    out("@EXPLICIT")
    for r in records:
        out(r["url"] + (f"#{r[digest]}" if digest and r.get(digest) else ""))


def cmd_env_export(cfg: Config, args: argparse.Namespace) -> int:
    """libmamba's ``env export``: ``--explicit`` (md5 unless ``--no-md5``) or the YAML."""
    prefix = resolve_prefix(cfg, args.prefix, args.name)
    if not is_env(prefix):
        raise env_not_found(cfg, prefix)
    records = toposort_records(read_records(prefix))
    if args.explicit:
        platform, _ = target_platform(cfg, args, prefix)
        _print_explicit(records, "", "md5" if args.md5 is not False else "", platform)
        return 0
    out(f"name: {os.path.basename(prefix) if os.path.dirname(prefix) in cfg.envs_dirs else ''}")
    out("channels:")
    for channel in sorted({r.get("channel", "") for r in records}):
        out(f"- {channel}")
    out("dependencies:")
    for r in sorted(records, key=lambda r: r["name"]):
        out(f"- {r['name']}={r['version']}={r['build']}")
    out()
    return 0


def _envs(cfg: Config) -> List[str]:
    found = [cfg.root] if is_env(cfg.root) else []
    for d in cfg.envs_dirs:
        if os.path.isdir(d):
            found += [
                os.path.join(d, n) for n in sorted(os.listdir(d)) if is_env(os.path.join(d, n))
            ]
    return found


def cmd_info(cfg: Config, args: argparse.Namespace) -> int:
    """``info [--json]``: the configuration as conda reports it."""
    subdir, _ = target_platform(cfg, args)
    channel_urls = [f"{c}/{s}" for c in cfg.channels for s in (subdir, "noarch")]
    home = os.environ.get("HOME", "")
    if cfg.is_mamba:
        data = {
            "base environment": cfg.root,
            "channels": channel_urls,
            "env location": os.environ.get("CONDA_PREFIX", "-"),
            "envs directories": cfg.envs_dirs,
            "libmamba version": cfg.micromamba_version,
            "micromamba version": cfg.micromamba_version,
            "package cache": [cfg.pkgs_dir],
            "platform": subdir,
            "populated config files": [],
            "user config files": [os.path.join(home, ".mambarc")],
            "virtual packages": [],
        }
        if args.json:
            out(json.dumps(data, indent=4))
        else:
            for k, v in data.items():
                out(f"{k:>24} : {v if not isinstance(v, list) else ', '.join(v)}")
        return 0
    if args.base:
        out(cfg.root)
        return 0
    data = {
        "active_prefix": os.environ.get("CONDA_PREFIX"),
        "active_prefix_name": None,
        "av_data_dir": os.path.join(cfg.root, "etc", "conda"),
        "channels": channel_urls,
        "conda_build_version": "not installed",
        "conda_env_version": cfg.conda_version,
        "conda_location": os.path.join(cfg.root, "lib", "python3", "site-packages", "conda"),
        "conda_prefix": cfg.root,
        "conda_version": cfg.conda_version,
        "config_files": {},
        "default_prefix": cfg.root,
        "envs": _envs(cfg),
        "envs_dirs": cfg.envs_dirs,
        "netrc_file": None,
        "offline": False,
        "pkgs_dirs": [cfg.pkgs_dir],
        "platform": subdir,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "rc_path": os.path.join(cfg.root, ".condarc"),
        "root_prefix": cfg.root,
        "root_writable": os.access(cfg.root, os.W_OK),
        "site_dirs": [],
        "solver": {"default": True, "name": "libmamba", "user_agent": "solver/libmamba"},
        "sys.executable": sys.executable,
        "sys.prefix": cfg.root,
        "sys.version": sys.version,
        "user_rc_path": os.path.join(home, ".condarc"),
        "virtual_pkgs": [],
    }
    if args.json:
        out(json.dumps(data, indent=2, sort_keys=True))
    elif args.envs:
        out("# conda environments:\n#")
        for e in data["envs"]:
            out(("base" if e == cfg.root else "").ljust(25) + e)
    else:
        out()
        for key in (
            "active_prefix",
            "conda_version",
            "platform",
            "root_prefix",
            "envs_dirs",
            "pkgs_dirs",
            "channels",
        ):
            value = data[key]
            text = "\n".join(value) if isinstance(value, list) else str(value)
            out(f"{key.replace('_', ' '):>25} : {text}")
        out()
    return 0


# --------------------------------------------------------------------------- search

#: The head of a search query: ``[CHANNEL::]NAME`` (NAME may be a glob), then the rest.
SEARCH_HEAD = re.compile(r"^\s*(?:(?P<channel>\S+?)::)?(?P<name>[^\s=<>!~\[]*)(?P<rest>.*)$")


def search_record(rec: Any) -> Dict[str, Any]:
    """A record as ``conda search --json`` prints it: ``PackageRecord.dump()``.

    models/records.py (26.7.1), fields in their declaration order, those without a value
    left out: ``channel`` is the channel URL with the subdir (``str(Channel)``),
    ``timestamp`` in milliseconds, ``noarch`` and ``package_type`` for noarch packages.
    """
    noarch = _noarch(rec)
    d: Dict[str, Any] = {
        "name": rec.name.normalized,
        "version": str(rec.version),
        "build": str(rec.build),
        "build_number": rec.build_number,
        "channel": f"{_chan(rec)}/{rec.subdir}",
        "subdir": rec.subdir,
        "fn": rec.file_name,
    }
    if rec.md5:
        d["md5"] = rec.md5.hex()
    d["url"] = rec.url
    if rec.sha256:
        d["sha256"] = rec.sha256.hex()
    if rec.arch:
        d["arch"] = rec.arch
    if rec.platform:
        d["platform"] = rec.platform
    d["depends"] = list(rec.depends)
    d["constrains"] = list(rec.constrains)
    if rec.track_features:
        d["track_features"] = " ".join(rec.track_features)
    if noarch:
        d["noarch"] = noarch
    if rec.license:
        d["license"] = rec.license
    if noarch:
        d["package_type"] = f"noarch_{noarch}"
    if rec.timestamp:
        d["timestamp"] = int(rec.timestamp.timestamp() * 1000)
    if rec.size:
        d["size"] = rec.size
    return d


def _human_bytes(n: int) -> str:
    """conda.utils.human_bytes."""
    k = n / 1024
    m = k / 1024
    if n < 1024:
        return f"{n} B"
    if k < 1024:
        return f"{round(k)} KB"
    if m < 1024:
        return f"{m:.1f} MB"
    return f"{m / 1024:.2f} GB"


def _pretty_record(rec: Any) -> None:
    """``conda search --info``: main_search.py ``_pretty_record_format``."""
    d = search_record(rec)
    head = f"{d['name']} {d['version']} {d['build']}"
    lines = [head, "-" * len(head)]
    for label, key in (("file name", "fn"), ("name", "name"), ("version", "version"),
                       ("build", "build"), ("build number", "build_number")):
        lines.append(f"{label:<12}: {d[key]}")
    if "size" in d:
        lines.append(f"{'size':<12}: {_human_bytes(d['size'])}")
    for label in ("license", "subdir", "url", "md5"):
        if label in d:
            lines.append(f"{label:<12}: {d[label]}")
    if rec.timestamp:
        lines.append(f"{'timestamp':<12}: {rec.timestamp:%Y-%m-%d %H:%M:%S} UTC")
    deps = "".join(f"\n  - {x}" for x in d["depends"]) if d["depends"] else "[]"
    lines.append(f"{'dependencies':<12}: {deps}")
    out("\n".join(lines) + "\n\n")


def _search_query(
    channels: List[str], subdirs: Sequence[str], name: str, rest: str
) -> List[Any]:
    """The records of ``channels``/``subdirs`` matching ``NAME`` (a glob) and ``rest``,
    sorted as subdir_data.py ``_search_package`` does: name, version, build."""
    import asyncio
    import fnmatch

    import rattler

    platforms = [s for s in dict.fromkeys(subdirs) if s in _solve_platforms(s)]
    if not channels or not platforms:
        return []
    gateway = rattler.Gateway()
    if any(c in name for c in "*?["):
        names = [
            n.normalized
            for n in asyncio.run(gateway.names(channels, platforms))
            if fnmatch.fnmatchcase(n.normalized, name.lower())
        ]
    else:
        names = [name]
    if not names:
        return []
    result = asyncio.run(gateway.query(channels, platforms, names, recursive=False))
    found = []
    for rec in (r for per_source in result for r in per_source):
        if rattler.MatchSpec(rec.name.normalized + rest, strict=False).matches(rec):
            found.append(rec)
    return sorted(found, key=lambda r: (r.name.normalized, r.version, str(r.build)))


def cmd_search(cfg: Config, args: argparse.Namespace) -> int:
    """conda's ``search`` (cli/main_search.py, 26.7.1) in channels, never ``--envs``.

    Subdirs: the spec's ``[subdir=X]`` alone, else ``--subdir``/``$CONDA_SUBDIR`` (any
    string) and ``noarch``.  Nothing found for an exact name: the "flexible" search for
    ``*NAME*`` with the same constraints; still nothing: ``PackagesNotFoundInChannelsError``
    naming every channel/subdir URL searched.  ``--json``: ``{name: [records]}``.
    """
    import rattler

    text = args.match_spec
    head = SEARCH_HEAD.match(text)
    assert head is not None  # the pattern matches any string
    name, rest = head.group("name") or "*", head.group("rest")
    try:
        probe = rattler.MatchSpec("probe" + rest, strict=False)
    except Exception as exc:
        raise StandinError("InvalidMatchSpec", f"Invalid spec '{text}': {exc}") from exc
    platform, _ = target_platform(cfg, args)
    subdirs = [probe.subdir] if probe.subdir else [platform, "noarch"]
    spec_channel = head.group("channel")
    channels = [channel_url(cfg, spec_channel)] if spec_channel else command_channels(cfg, args)
    channels = _reachable(cfg, channels, platform, args.offline)
    if not args.json:
        out("Loading channels: done")
    matches = _search_query(channels, subdirs, name, rest)
    if not matches and not args.skip_flexible_search and not any(c in name for c in "*?["):
        if not args.json:
            out(f"No match found for: {text}. Search: *{name}*{rest}")
        matches = _search_query(channels, subdirs, f"*{name}*", rest)
    if not matches:
        urls = [f"{c}/{s}" for c in channels for s in subdirs]
        raise _not_found(cfg, [(text, "")], urls)
    if args.json:
        found: Dict[str, List[Dict[str, Any]]] = {}
        for rec in matches:
            found.setdefault(rec.name.normalized, []).append(search_record(rec))
        out(json.dumps(found, indent=2))
    elif args.info:
        for rec in matches:
            _pretty_record(rec)
    else:
        out(f"# {'Name':<18} {'Version':>15} {'Build':>15}  {'Channel':<20}")
        for rec in matches:
            chan = channel_name(cfg, _chan(rec))
            out(f"{rec.name.normalized:<20} {rec.version!s:>15} {rec.build!s:>15}  {chan:<20}")
    return 0


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str]) -> int:
    """Entry point: ``--standin-root ROOT --standin-argv0 ARGV0 CONDA_ARGS...``."""
    argv = list(argv)
    root, argv0 = "", "conda"
    while argv and argv[0] in ("--standin-root", "--standin-argv0"):
        flag, value = argv[0], argv[1]
        argv = argv[2:]
        if flag == "--standin-root":
            root = value
        else:
            argv0 = value
    if not root:
        err("conda_standin: --standin-root ROOT is required")
        return 2
    cfg = Config.load(os.path.abspath(root), argv0)
    log_call(cfg.root, cfg.name, argv)

    parser = build_parser(cfg)
    args = parser.parse_args(argv)
    if args.version:
        out(cfg.version_text())
        return 0
    as_json = bool(getattr(args, "json", False))
    try:
        if args.cmd == "create":
            return cmd_create(cfg, args, argv)
        if args.cmd == "run":
            return cmd_run(cfg, args)
        if args.cmd in ("remove", "uninstall"):
            return cmd_remove(cfg, args, whole_env=False)
        if args.cmd == "env":
            if args.env_cmd == "remove":
                return cmd_remove(cfg, args, whole_env=True)
            if args.env_cmd == "export":
                return cmd_env_export(cfg, args)
            if args.env_cmd == "list":
                envs = _envs(cfg)
                out(json.dumps({"envs": envs}, indent=2) if args.json else "\n".join(envs))
                return 0
            parser.parse_args(["env", "--help"])
        if args.cmd == "list":
            return cmd_list(cfg, args)
        if args.cmd == "info":
            return cmd_info(cfg, args)
        if args.cmd == "search":
            return cmd_search(cfg, args)
        parser.print_help(sys.stderr if args.cmd else sys.stdout)
        return 0 if not args.cmd else 2
    except StandinError as exc:
        return report(cfg, exc, as_json)
    except KeyboardInterrupt:
        err(
            "\nCondaError: KeyboardInterrupt\n"
            if not cfg.is_mamba
            else "critical libmamba Interrupted by user"
        )
        return 1
    except InvalidMatchSpec:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # argparse --help
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit(code)
