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

A warm run (the environment exists) needs about half the module, so the bytecode comes in
parts (split_source, done once on the source by the building Python, each part then compiled
by every interpreter): conda_execute.<magic>.pyc holds every statement but the definitions a
warm run does not reach (WARM names the functions it does), with a stub of the same signature
for each function kept apart that another part names; conda_execute.<magic>.conda-script
(stored) holds what only a conda-script block's warm run adds (CONDA_SCRIPT), and
conda_execute.<magic>.cold (deflated) the rest, each on the same line numbers. The first call
of a stub runs its part in the module (COLD_LOADER's __cold__, appended to the warm part),
gives each stub its real code (the function object stays the one every reference holds) and
calls it. The warm part also goes without docstrings, and all bytecode without column ranges
(3.11+). A warm run thus unmarshals half as much and creates half the classes. Generators and
decorated or rebound names always stay warm.

zipimport looks for __main__.pyc only, so one Python (the first of --pythons; by default the
one running the build) gets __main__.pyc; the others compile the small __main__.py, which
costs ~1-2 ms however small it is (a process's first compile() creates the AST types), as
any one-file zipapp costs on the Pythons it was not built with; each line more costs ~10 µs.

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
import ast
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
    conda_execute.__loader__ = __loader__  # COLD_LOADER reads the cold part through it
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
# Appended to the warm part (split_source): what each stub calls (kept out of __main__.py,
# which all but one Python compile on every run: ~0.2-0.3 ms more for these 12 lines).
COLD_LOADER = '''

def __cold__(f, part, done=set()):
    """Run one part the build kept apart, once (build_zipapp.split_source); F is then its
    real self."""
    if part not in done:
        from _frozen_importlib_external import MAGIC_NUMBER
        from marshal import loads

        done.add(part)
        g, before = f.__globals__, dict(f.__globals__)
        exec(loads(memoryview(__loader__.get_data(f"conda_execute.{MAGIC_NUMBER.hex()}.{part}"))[16:]), g)
        for name, stub in before.items():
            if g[name] is not stub:  # keep the function object every reference holds
                stub.__code__, stub.__doc__, g[name] = g[name].__code__, g[name].__doc__, stub
    return f
'''
# The per-user bytecode cache, for a Python the pyz has no bytecode for. KEY (filled in by the
# build) is the module source's sha256: a changed pyz never loads an old entry.
PYC_CACHE = r'''
"""Bytecode of conda_execute for a Python this pyz carries none for, cached per user.

$XDG_CACHE_HOME/conda-execute/pyc/conda_execute.KEY.MAGIC.pyc (default ~/.cache): both dirs
0700 and the file 0600, this user's, never a symlink; written atomically (a fresh temp file,
renamed). An entry that is unreadable, corrupt, foreign or stale is ignored and replaced; an
unwritable cache only costs a compile on each run. Never an error. Writing an entry removes
the entries of other pyz contents (earlier versions: KEY differs) that this user owns, so the
cache holds one entry per Python for the pyz in use.
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
    _prune(folder)


def _prune(folder):
    for name in os.listdir(folder):
        if name.startswith("conda_execute.") and name.endswith(".pyc") and \
                not name.startswith("conda_execute.%s." % KEY):
            try:
                if _ours(os.lstat(os.path.join(folder, name)), S_IFREG):
                    os.unlink(os.path.join(folder, name))
            except OSError:
                pass


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
# The functions a warm run calls (the environment exists, GC is not due): for a '# conda execute'
# block (with or without run_with), a PEP 723 block, a conda-script block (with CONDA_SCRIPT)
# and `-s SPEC -- CMD`;
# with a condarc, CONDA_EXE, the default or a configured env dir; a lock file, activation
# scripts, a script from stdin, a bootstrapped micromamba. Anything else is loaded on first use
# (~1-2 ms once). tests/test_pyz_bytecode.py runs these warm with the cold part taken out of the
# pyz (all but the bootstrapped micromamba): a name missing here fails there.
WARM = (
    "_activating", "_array_table_rule", "_block_line", "_block_lines", "_bootstrap_setting",
    "_check_bootstrapped", "_check_key_parts", "_check_keys", "_check_parents", "_check_text",
    "_cli_specs", "_conda_spec_name", "_config", "_digits", "_end_pep723_block", "_env_lock",
    "_env_var", "_expand", "_flag", "_foreign", "_get_or_create_nest", "_interpreter",
    "_is_content_line", "_is_frozen", "_is_pin", "_items", "_json_string", "_key_value_rule",
    "_list_item", "_lock", "_lstat_in", "_main", "_makedirs_private", "_mark", "_marked",
    "_memfile", "_name_end", "_name_starts", "_names_us", "_number", "_open_dir", "_open_in",
    "_open_script", "_parse_array", "_parse_basic_str", "_parse_escape", "_parse_flow_list",
    "_parse_inline_table", "_parse_key", "_parse_key_part", "_parse_key_value_pair",
    "_parse_literal_str", "_parse_multiline_str", "_parse_plain", "_parse_quoted",
    "_parse_scalar", "_parse_value", "_past_env", "_pep723_line", "_prepend", "_private_dir",
    "_python_clause", "_python_runs_us", "_rc_files", "_read_blocks", "_read_json_object",
    "_release", "_run", "_run_spec", "_rx", "_say", "_sha256", "_sha256_bytes", "_sha256_hex",
    "_skip_array_ws", "_skip_chars", "_skip_comment", "_skip_until", "_strings", "_table",
    "_table_rule", "_toml_document", "_toml_escape", "_toml_skip_comment", "_toml_string_end",
    "_toml_token", "_toml_type", "_toml_value", "_unmark", "_which", "_words", "acquire",
    "activate_scripts", "activated_environ", "apply_lock", "block_prefix", "bootstrap_dir",
    "bootstrapped_micromamba", "check_ad_hoc", "check_match_spec", "check_relaunch",
    "conda_platform", "conda_root", "condarc_paths", "console_main", "default_env_dir",
    "default_run_with", "ensure_env", "env_for", "env_name", "env_named", "env_platform",
    "env_vars", "exec_in_env", "find_manager", "find_pep723", "is_complete", "is_match_spec",
    "is_own_file", "is_pep440_prefix", "is_pep440_version", "is_platform", "iter_lines",
    "launch_mark", "launches_us", "load_config", "load_spec", "lock_opener", "log_line",
    "main", "make_source", "manager_exe", "maybe_collect_in_background", "metadata_hash",
    "missing_interpreter", "open_env_dir", "parse_args", "parse_block", "parse_lock",
    "parse_toml", "pep440_clause", "pep723_fields", "pep723_opener", "private_dir",
    "python_spec", "read_condarc", "read_lock", "read_lock_block", "read_spec", "record_use",
    "script_argv", "script_opener", "source_from_stdin", "spec_from_fields", "spec_identity",
    "spec_name", "split_shebang", "toml_subset", "tool_argv", "tool_source", "tool_spec",
    "unnamed_file", "with_specs",
)
# The functions only a conda-script block's warm run adds: a part of their own (stored), run
# when such a block is read; a '# conda execute', PEP 723 or -s run does without them.
CONDA_SCRIPT = (
    "_expanded", "_key_line", "_match_spec", "_run_in_env", "_shell_command", "_shell_dollar",
    "_shell_double", "_shell_sequence", "_shell_word", "_when_holds", "conda_script_spec",
    "dependency_field_ok", "dependency_spec", "entry_variables", "expand_word", "is_assignment",
    "parse_entrypoint", "run_entrypoint", "script_block_line", "select_entrypoint",
    "shown_command", "is_pixi_form", "pixi_script_spec", "_pixi_targets", "pixi_dependency",
    "pixi_dependency_spec", "pixi_entrypoint", "_pixi_split", "_pixi_version",
    "_split_constraints", "_pixi_first", "_glob_or_exact",
)
PARTS = {"conda-script": CONDA_SCRIPT}  # and "cold": every other function kept apart


class Split(NamedTuple):
    """The module's source as sources of the same lines (line numbers hold in each)."""

    warm: str  # the module without the definitions kept apart, a stub for each one that
    #            another part names, and COLD_LOADER after its last line
    parts: dict[str, str]  # part -> the definitions it holds (and the __future__ import)
    stubs: dict[str, str]  # function stubbed in `warm` -> its part


def _loaded_names(node: ast.AST) -> set[str]:
    """The names NODE reads at run time (annotations are strings: `from __future__`)."""
    names, todo = set(), [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            names.add(n.id)
        todo.extend(child for field, child in ast.iter_fields(n) if field not in
                    ("annotation", "returns") for child in (child if isinstance(child, list)
                                                            else [child])
                    if isinstance(child, ast.AST))
    return names


def _bound_once(tree: ast.Module) -> set[str]:
    """Top-level names bound by exactly one statement and never by a `global`."""
    counts: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [(a.asname or a.name).split(".")[0] for a in node.names]
        else:
            names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Store)]
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    rebound = {n for node in ast.walk(tree) if isinstance(node, ast.Global) for n in node.names}
    return {name for name, count in counts.items() if count == 1 and name not in rebound}


def _cold_candidates(tree: ast.Module, warm: tuple[str, ...]) -> dict[str, ast.stmt]:
    """Plain top-level defs not in WARM, plain top-level classes, and constants (NAME = value,
    bound once, placed like classes: where they are read): {name: node}."""
    once = _bound_once(tree)
    found = {node.name: node for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.decorator_list
             and node.name in once and node.name not in warm and node.body[0].lineno > node.lineno
             and "__cold__" not in _loaded_names(node) and not _yields(node)}
    found.update({_placed_name(node): node for node in tree.body if _placed_name(node) in once
                  and isinstance(node, ast.Assign) and not _placed_name(node).startswith("_")
                  and "__cold__" not in _loaded_names(node)})
    return found


def _placed_name(node: ast.stmt) -> str | None:
    """The name a def or class defines, or the one name NAME = value binds (else None)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
            isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _yields(node: ast.AST) -> bool:
    """Whether NODE holds a yield: a generator's code cannot be given to a plain function
    (Python 3.13 warns), so generators stay warm."""
    return any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in ast.walk(node))


def _docstring_lines(node: ast.AST) -> tuple[int, int]:
    """The lines (a slice) of the docstring of NODE, a def or class: none (0, 0) unless other
    statements follow it on later lines (a warm run's bytecode goes without them: ~8%)."""
    body = getattr(node, "body", None)
    if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and len(body) > 1 and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
            and body[0].lineno > node.lineno and body[1].lineno > body[0].end_lineno):
        return 0, 0
    return body[0].lineno - 1, body[0].end_lineno


def _defaults(args: ast.arguments) -> list[ast.AST]:
    return [d for d in [*args.defaults, *args.kw_defaults] if d is not None]


def _stub_call(node: ast.FunctionDef, part: str) -> str:
    """`return __cold__(f, PART)(a, b, *c, d=d, **e)`: the call that forwards F's arguments."""
    a = node.args
    args = [p.arg for p in [*getattr(a, "posonlyargs", []), *a.args]]
    if a.vararg:
        args.append("*" + a.vararg.arg)
    args += [f"{p.arg}={p.arg}" for p in a.kwonlyargs]
    if a.kwarg:
        args.append("**" + a.kwarg.arg)
    return f"    return __cold__({node.name}, {part!r})({', '.join(args)})"


def _homes(tree: ast.Module, movable: dict[str, ast.stmt], functions: dict[str, str]
           ) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Where each movable definition lives ("warm" or a part), and the names each place reads.

    A function lives in its part (FUNCTIONS); a class where it is read: in the warm part if
    warm code or two parts read it, else in the one part that does (to a fixed point: class
    bodies read more). Defaults count as warm: a stub evaluates them."""
    home = {n: functions.get(n, "cold") for n in movable}
    for _ in range(len(movable) + 1):
        refs: dict[str, set[str]] = {"warm": set()}
        for node in tree.body:
            place = home.get(_placed_name(node), "warm")
            refs.setdefault(place, set()).update(_loaded_names(node))
            if isinstance(node, ast.FunctionDef) and place != "warm":
                refs["warm"].update(*map(_loaded_names, _defaults(node.args)))
        moved = {}
        for name in (n for n, node in movable.items() if not isinstance(node, ast.FunctionDef)):
            readers = {p for p, names in refs.items() if name in names}
            place = "warm" if "warm" in readers or len(readers) > 1 else next(iter(readers), "cold")
            if place != home[name]:
                moved[name] = place
        if not moved:
            return home, refs
        home.update(moved)
    raise AssertionError("split_source: the classes' places do not settle")


def split_source(source: str, warm: tuple[str, ...] = WARM,
                 parts: dict[str, tuple[str, ...]] = PARTS) -> Split:
    """Keep in the warm source what a warm run needs: every statement but the definitions a
    warm run does not reach (PARTS' functions, the other plain ones not in WARM, the classes
    only those read), with a stub for each function another part names; each part's source
    defines its own, run by COLD_LOADER's __cold__ on first need."""
    tree = ast.parse(source)
    movable = _cold_candidates(tree, warm)
    functions = {n: p for p, names in parts.items() for n in names if n in movable}
    home, refs = _homes(tree, movable, functions)
    stubs = {n: p for n, p in home.items() if p != "warm" and isinstance(movable[n], ast.FunctionDef)
             and any(n in names for q, names in refs.items() if q != p)}
    lines = source.split("\n")
    warm_lines = list(lines)
    part_lines = {p: [""] * len(lines) for p in (*parts, "cold")}
    for name, node in movable.items():
        if home[name] == "warm":
            continue
        first, last = node.lineno - 1, node.end_lineno
        part_lines[home[name]][first:last] = lines[first:last]
        body = node.body[0].lineno - 1 if name in stubs else first
        warm_lines[body:last] = [""] * (last - body)
        if name in stubs:
            warm_lines[body] = _stub_call(node, home[name])
    for node in ast.walk(ast.Module(body=[n for n in tree.body if _placed_name(n)
                                          not in movable], type_ignores=[])):
        first, last = _docstring_lines(node)
        warm_lines[first:last] = [""] * (last - first)
    future = lines.index("from __future__ import annotations")
    for part in part_lines.values():
        part[future] = lines[future]
    return Split("\n".join(warm_lines) + COLD_LOADER,
                 {p: "\n".join(text) for p, text in part_lines.items()}, stubs)


EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
DEFAULT_PYTHON = "/usr/bin/env python3"
STORED = ("__main__.py", ".pyc", ".conda-script")  # read on warm runs; the rest only on cold
# ones, or without bytecode


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
    parts: tuple = ()  # (name, .pyc) of each part kept apart, when `pyc` is the warm part


def compile_with(interpreter: str, source: bytes, filename: str = "conda_execute.py"
                 ) -> Bytecode | None:
    """SOURCE compiled by INTERPRETER (None unless it is a working Python 3.8+)."""
    try:
        # A fixed hash seed (which -I would ignore): set constants marshal in a fixed order.
        # No column ranges (3.11+; older Pythons ignore the option): a fifth of the bytecode,
        # only for the ^^^ under a traceback's line.
        proc = subprocess.run([interpreter, "-S", "-s", "-X", "no_debug_ranges", "-c", COMPILE,
                               filename], input=source, capture_output=True, timeout=300,
                              env={"PYTHONHASHSEED": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or len(proc.stdout) <= 16:
        return None
    return Bytecode(proc.stderr.decode(errors="replace").strip(), proc.stdout)


def all_bytecode(module_source: bytes, interpreters: list[str], warm: tuple[str, ...] = WARM,
                 parts: dict[str, tuple[str, ...]] = PARTS) -> dict[str, Bytecode]:
    """{magic number (hex): Bytecode} over INTERPRETERS (the first of those sharing a magic):
    the module's warm part, and the parts kept apart beside it (split_source)."""
    split = split_source(module_source.decode("utf-8"), warm, parts)
    out: dict[str, Bytecode] = {}
    for exe in interpreters:
        compiled = [compile_with(exe, text.encode()) for text in (split.warm, *split.parts.values())]
        if None not in compiled:
            parts = tuple((name, b.pyc) for name, b in zip(split.parts, compiled[1:]))
            out.setdefault(compiled[0].pyc[:4].hex(), compiled[0]._replace(parts=parts))
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
    members.update((f"conda_execute.{magic}.{name}", pyc) for magic, b in pycs.items()
                   for name, pyc in b.parts)
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
