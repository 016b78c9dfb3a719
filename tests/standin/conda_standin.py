"""A stand-in for the ``conda``, ``mamba`` and ``micromamba`` executables, used by the tests only.

Real conda cannot be installed on the test machines, so this program accepts the real
programs' command lines and behaves as ``shared/conda-facts.md`` and
``shared/micromamba-facts.md`` record, quirks included (``conda run`` capture mode, no
signal forwarding, the ``--json`` traceback on a malformed spec, micromamba's missing
``list --explicit``, its exit 252 after forwarding SIGTERM, ...).  Packages are solved and
installed with py-rattler, fully offline, from ``file://`` channels; any other channel
fails as it would on a machine without network.

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

Every invocation appends one JSON line ``{"argv", "prog", "pid", "ppid", "cwd"}`` to
``ROOT/calls.jsonl``.  Only ``create`` imports rattler; every exit goes through
:func:`_exit` (flushed streams, ``os._exit``) because a process that used the rattler
solver can crash in interpreter teardown.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
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
        # conda/exceptions.py (26.7.1): ArgumentError.return_code = 2
        self.code = 2 if name == "ArgumentError" else 1

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
    search.add_argument("--envs", action="store_true")
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


def unreachable(cfg: Config, url: str) -> StandinError:
    """A channel that is not ``file://``: the fetch fails as it does without network."""
    repodata = f"{url}/{_subdir()}/repodata.json"
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


def _record_info(rec: Any) -> Dict[str, Any]:
    """A rattler record as the dict conda prints in ``actions.LINK``."""
    name = rec.name.normalized
    return {
        "base_url": _chan(rec),
        "build_number": rec.build_number,
        "build_string": str(rec.build),
        "channel": _chan(rec),
        "dist_name": f"{name}-{rec.version}-{rec.build}",
        "name": name,
        "platform": rec.subdir,
        "version": str(rec.version),
    }


def _read_explicit(path: str) -> Tuple[bool, List[str]]:
    """Read a ``--file``: (is_explicit, lines) without comments and blanks."""
    with open(path, encoding="utf-8") as fh:
        lines = [ln.strip() for ln in fh]
    explicit = "@EXPLICIT" in lines
    body = [ln for ln in lines if ln and not ln.startswith("#") and ln != "@EXPLICIT"]
    return explicit, body


def _explicit_records(urls: List[str], rattler: Any, asyncio: Any) -> List[Any]:
    """Records for an ``@EXPLICIT`` list of ``file://`` URLs, md5 verified."""
    records = []
    for line in urls:
        url, _, md5 = line.partition("#")
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
        actual = hashlib.md5(data).hexdigest()
        if md5 and actual != md5:
            raise StandinError(
                "ChecksumMismatchError",
                "Conda detected a mismatch between the expected content and downloaded content\n"
                f"for url '{url}'.\n  download saved to: {path}\n"
                f"  expected md5: {md5}\n  actual md5: {actual}\n",
                url=url,
            )
        rec = asyncio.run(rattler.RepoDataRecord.from_package_archive(path))
        rec.url = url
        rec.md5 = bytes.fromhex(actual)
        rec.sha256 = hashlib.sha256(data).digest()
        rec.size = len(data)
        rec.channel = url.rsplit("/", 2)[0]
        records.append(rec)
    return records


def _missing_specs(
    rattler: Any,
    asyncio: Any,
    channels: List[str],
    spec_strings: List[str],
    specs: List[Any],
    add_pip: bool,
) -> List[str]:
    """Requested specs (and dependencies of matching records) that match no record at all.

    With ``add_pip`` (``add_pip_as_python_dependency``), ``python`` depends on ``pip``.
    """
    gateway = rattler.Gateway()
    platforms = [rattler.Subdir.current(), rattler.Subdir("noarch")]
    names = sorted({_dep_name(str(s)) for s in specs} | ({"pip"} if add_pip else set()))
    result = (
        asyncio.run(gateway.query(channels, platforms, names, recursive=True)) if channels else []
    )
    records = [r for per_channel in result for r in per_channel]
    missing: List[str] = []
    seen: set = set()
    todo: List[Tuple[str, Any]] = list(zip(spec_strings, specs))
    while todo:
        text, spec = todo.pop(0)
        if text in seen:
            continue
        seen.add(text)
        matching = [r for r in records if r.matches(spec)]
        if not matching:
            missing.append(text)
            continue
        for rec in matching:
            extra = ["pip"] if add_pip and rec.name.normalized == "python" else []
            for dep in [*rec.depends, *extra]:
                try:
                    todo.append((dep, rattler.MatchSpec(dep, strict=False)))
                except Exception:
                    pass
    return missing


def _mamba_spec(cfg: Config, spec: str) -> str:
    """A spec as libmamba 2.x prints it in a solver problem (``name =* *``); 1.x as given."""
    if cfg.mamba_major < 2 or not spec or any(c in spec for c in " =<>!~*["):
        return spec
    return f"{spec} =* *"


def _not_found(cfg: Config, missing: List[str], channels: List[str]) -> StandinError:
    pkgs = "\n".join(f"  - {m}" for m in missing)
    chans = "\n".join(f"  - {c}" for c in channels)
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
        for m in missing
    ]
    return StandinError(
        "PackagesNotFoundInChannelsError",
        message,
        channel_urls=channels,
        channels_formatted=chans,
        packages=missing,
        packages_formatted=pkgs,
        mamba_lines=lines,
        mamba_message="Could not solve for environment specs",
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


def _clear_prefix(cfg: Config, prefix: str, yes: bool) -> bool:
    """Deal with an existing prefix; return whether it still exists (conda keeps a folder)."""
    if not os.path.lexists(prefix):
        return False
    if is_env(prefix):
        if cfg.is_mamba:  # "Found conda-prefix at '...'. Overwrite?" (-y: yes)
            if not (yes or confirm(cfg, default=False)):
                raise StandinError("CondaSystemExit", "Aborting.", mamba_message="Aborting.")
        elif not yes:
            err(f"WARNING: A conda environment already exists at '{prefix}'")
            if not confirm(
                cfg,
                "Remove existing environment?\nThis will remove ALL directories contained within "
                "this specified prefix directory.\n (y/[n])? ",
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
    return True


def _solve(
    cfg: Config, channels: List[str], spec_strings: List[str], specs: List[Any], progress: bool
) -> List[Any]:
    """Solve ``specs`` from ``channels`` (every one ``file://``) or raise conda's error."""
    import asyncio

    import rattler
    from rattler.exceptions import SolverError

    add_pip = cfg.add_pip_as_python_dependency
    try:
        return asyncio.run(
            rattler.solve(
                channels,
                specs,
                gateway=rattler.Gateway(),
                platforms=[str(rattler.Subdir.current()), "noarch"],
                add_pip_as_python_dependency=add_pip,
            )
        )
    except SolverError as exc:
        if progress:
            out("failed\n")
        missing = _missing_specs(rattler, asyncio, channels, spec_strings, specs, add_pip)
        if missing:
            raise _not_found(cfg, missing, channels) from exc
        raise _unsatisfiable(spec_strings, str(exc)) from exc


def cmd_create(cfg: Config, args: argparse.Namespace, raw_args: Sequence[str]) -> int:
    """``create``: solve (or read an explicit list) and install into a new prefix."""
    as_json = bool(args.json)
    yes = bool(args.yes or as_json)
    if not args.prefix and not args.name:
        raise StandinError(
            "CondaValueError", "Value error: one of --prefix or --name must be given"
        )
    prefix = resolve_prefix(cfg, args.prefix, args.name)
    channels = [channel_url(cfg, c) for c in args.channel]
    if not args.override_channels:
        root_prefix = getattr(args, "root_prefix", None) or (
            os.environ.get("MAMBA_ROOT_PREFIX") if cfg.is_mamba else None
        )
        channels += [c for c in configured_channels(cfg, root_prefix) if c not in channels]

    spec_strings = list(args.specs)
    explicit_urls: List[str] = []
    for path in args.file:
        explicit, lines = _read_explicit(path)
        if explicit:
            explicit_urls += lines
        else:
            spec_strings += lines

    import asyncio

    import rattler

    specs = _parse_specs(cfg, spec_strings, as_json, rattler)
    existed = _clear_prefix(cfg, prefix, yes)
    progress = not as_json and not cfg.is_mamba
    quiet = bool(args.quiet) or as_json
    if cfg.is_mamba and not quiet and not explicit_urls:
        out(" ".join(f"{c}/{s}" for c in channels for s in (_subdir(), "noarch")))
    if progress and not explicit_urls:
        out("Channels:")
        for c in channels:
            out(f" - {c}")
        out(f"Platform: {_subdir()}")
        out("Collecting package metadata (repodata.json): ", end="")
        sys.stdout.flush()
        if any(not c.startswith("file://") for c in channels):
            out("failed\n")
    if not explicit_urls:
        for c in channels:
            if not c.startswith("file://"):
                raise unreachable(cfg, c)
        if progress:
            out("done\nSolving environment: ", end="")
            sys.stdout.flush()
    if explicit_urls:
        records = _explicit_records(explicit_urls, rattler, asyncio)
    elif specs:
        if not channels:
            raise _not_found(cfg, spec_strings, channels)
        records = _solve(cfg, channels, spec_strings, specs, progress)
        if progress:
            out("done\n")
    else:
        records = []
        if progress:
            out("done\n")

    ordered = _toposort_rattler(records)
    if not quiet:
        _print_plan(cfg, prefix, spec_strings, ordered, channels)
    if args.dry_run:
        return _dry_run(prefix, ordered, as_json)
    if not yes and not confirm(cfg):
        raise StandinError("CondaSystemExit", "Exiting.")
    # conda's -q hides the plan only; libmamba's -q prints nothing at all on success.
    silent = as_json or (cfg.is_mamba and quiet)
    _install(cfg, prefix, ordered, specs, existed, raw_args, spec_strings, silent)
    _register_env(cfg, prefix)
    _report_created(cfg, prefix, ordered, as_json, silent)
    return 0


def _dry_run(prefix: str, ordered: List[Any], as_json: bool) -> int:
    if as_json:
        out(
            json.dumps(
                {
                    "dry_run": True,
                    "success": True,
                    "prefix": prefix,
                    "actions": {"LINK": [_record_info(r) for r in ordered], "PREFIX": prefix},
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        err("\nDryRunExit: Dry run. Exiting.\n")
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
            asyncio.run(
                rattler.install(
                    ordered,
                    prefix,
                    cache_dir=cfg.pkgs_dir,  # type: ignore[arg-type]
                    show_progress=False,
                    requested_specs=[s._match_spec for s in specs],  # type: ignore[misc]
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
    """What each program prints after a successful create."""
    if as_json:
        link = [_record_info(r) for r in ordered]
        result: Dict[str, Any] = {
            "actions": {"FETCH": [], "LINK": link, "PREFIX": prefix},
            "prefix": prefix,
            "success": True,
        }
        if cfg.is_mamba:
            result["dry_run"] = False
        out(json.dumps(result, indent=2, sort_keys=True))
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
    records = toposort_records(read_records(prefix))
    if getattr(args, "explicit", False):
        _print_explicit(records, f"conda {cfg.conda_version}", args.md5)
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


def _print_explicit(records: List[Dict[str, Any]], created_by: str, md5: bool) -> None:
    """The explicit list: conda's header (``# created-by:`` only from conda), one URL a line."""
    out("# This file may be used to create an environment using:")
    out("# $ conda create --name <env> --file <this file>")
    out(f"# platform: {_subdir()}")
    if created_by:
        out(f"# created-by: {created_by}")
    out("@EXPLICIT")
    for r in records:
        out(r["url"] + (f"#{r['md5']}" if md5 and r.get("md5") else ""))


def cmd_env_export(cfg: Config, args: argparse.Namespace) -> int:
    """libmamba's ``env export``: ``--explicit`` (md5 unless ``--no-md5``) or the YAML."""
    prefix = resolve_prefix(cfg, args.prefix, args.name)
    if not is_env(prefix):
        raise env_not_found(cfg, prefix)
    records = toposort_records(read_records(prefix))
    if args.explicit:
        _print_explicit(records, "", args.md5 is not False)
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
    subdir = _subdir()
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
