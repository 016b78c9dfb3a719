"""Mutation testing of conda_execute.py, one section at a time (slow: not part of CI).

    python tools/mutate.py --list                     # sections, and the tests each runs
    python tools/mutate.py create                     # every mutant of one section
    python tools/mutate.py gc --max 40 --tests "tests/test_core.py -k gc"
    python tools/mutate.py toml --only 850-900        # mutants on those lines only

Each mutant is one small breaking change to the module (a comparison flipped, `and` for `or`,
a `not` dropped, a constant changed, arithmetic swapped, a call statement removed). The tests
run against a scratch copy of the project holding the mutant (PYTHONPATH points there, so
`python -m conda_execute`, the pyz and the installed wheel all get it), and stop at the first
failure. A mutant is *killed* when a test fails, *timed out* when the tests take more than
--timeout seconds (default: 3 times the unmutated run, at least 60), and *survived* when every
test passes: each survivor is printed with its line, to be killed by a test of behaviour or
explained. mutmut 3 does not fit this project: it switches mutants inside the test process,
while these tests run the module in subprocesses (the pyz, `python -m`, a wheel's venv).
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator, List, NamedTuple, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(ROOT, "conda_execute.py")

# name: (words of the section's header in conda_execute.py, the tests that cover it, fast ones)
SECTIONS = {
    "name": ("The environment's name and place",
             "tests/test_metadata.py tests/test_core.py tests/test_reliability.py -k 'name or identity "
             "or dry_run or env_dir or private or shared_env_dir'"),
    "create": ("Creating the environment, once, under a lock",
               "tests/test_core.py -k 'create or force or incomplete or linking or shared_while "
               "or pip_step or prefix or lock'"),
    "record": ("Recording use", "tests/test_core.py tests/test_metadata.py -k 'usage or json_string'"),
    "activate": ("Activating and running", "tests/test_run.py tests/test_core.py -k "
                 "'activate or run_with or shebang or inline or exit or signal or in_use'"),
    "gc": ("Garbage collection and listing", "tests/test_core.py -k 'gc or list'"),
    "block": ("The metadata block", "tests/test_metadata.py tests/test_hostile.py -k 'not readme'"),
    "toml": ("# TOML", "tests/test_pep723.py"),
    "pep723": ("PEP 723 inline script metadata", "tests/test_pep723.py tests/test_pep723_lock.py"),
}

SWAP_CMP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt,
            ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
            ast.Div: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.Mod: ast.Mult}


class Mutant(NamedTuple):
    line: int
    what: str
    source: str


def section_lines(text: str, header: str) -> Tuple[int, int]:
    """First and last line (1-based) of the section whose '# ... ###' header holds HEADER."""
    lines = text.splitlines()
    starts = [i for i, ln in enumerate(lines, 1) if ln.startswith("# ") and ln.endswith("###")]
    for n, start in enumerate(starts):
        if header in lines[start - 1]:
            return start, (starts[n + 1] - 2 if n + 1 < len(starts) else len(lines))
    raise SystemExit(f"no section header holds {header!r}")


def _offset(text_lines: List[str], line: int, col: int) -> int:
    """Character offset of (line, byte column) in the text."""
    before = sum(len(ln) for ln in text_lines[:line - 1])
    return before + len(text_lines[line - 1].encode()[:col].decode())


def _splice(text: str, node: ast.AST, new: str) -> str:
    lines = text.splitlines(keepends=True)
    start = _offset(lines, node.lineno, node.col_offset)
    end = _offset(lines, node.end_lineno, node.end_col_offset)
    return text[:start] + new + text[end:]


def _variants(node: ast.AST) -> Iterator[Tuple[str, str]]:
    """(description, replacement text) for each mutation of NODE itself."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAP_CMP:
                new = copy.deepcopy(node)
                new.ops[i] = SWAP_CMP[type(op)]()
                yield f"{type(op).__name__} -> {type(new.ops[i]).__name__}", f"({ast.unparse(new)})"
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield f"{type(node.op).__name__} -> {type(new.op).__name__}", f"({ast.unparse(new)})"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "not dropped", f"({ast.unparse(node.operand)})"
    elif isinstance(node, ast.BinOp) and type(node.op) in SWAP_BIN:
        if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            return  # '%' formatting and string '+' give only type errors
        new = copy.deepcopy(node)
        new.op = SWAP_BIN[type(node.op)]()
        yield f"{type(node.op).__name__} -> {type(new.op).__name__}", f"({ast.unparse(new)})"
    elif isinstance(node, ast.Constant) and type(node.value) in (bool, int):
        value = (not node.value) if isinstance(node.value, bool) else node.value + 1
        yield f"{node.value!r} -> {value!r}", f"({value!r})"
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield f"call removed: {ast.unparse(node.value.func)}(...)", "pass"
    elif isinstance(node, ast.AugAssign) and type(node.op) in SWAP_BIN:
        new = copy.deepcopy(node)
        new.op = SWAP_BIN[type(node.op)]()
        yield f"{type(node.op).__name__}= -> {type(new.op).__name__}=", ast.unparse(new)
    elif isinstance(node, ast.Break):
        yield "break -> continue", "continue"


def mutants(text: str, first: int, last: int) -> Iterator[Mutant]:
    tree = ast.parse(text)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Module)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    seen = set()
    for node in ast.walk(tree):
        if not hasattr(node, "lineno") or not first <= node.lineno <= last or id(node) in docstrings:
            continue
        for what, new in _variants(node):
            source = _splice(text, node, new)
            if source == text or source in seen:
                continue
            try:
                compile(source, "conda_execute.py", "exec")
            except SyntaxError:
                continue
            seen.add(source)
            yield Mutant(node.lineno, what, source)


def scratch_copy() -> str:
    dst = tempfile.mkdtemp(prefix="ce-mutant-")
    shutil.rmtree(dst)
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache"))
    return dst


def run_tests(tree: str, tests: str, timeout: float) -> str:
    """'passed', 'failed' or 'timeout' for the test selection against TREE."""
    import shlex
    import signal

    env = dict(os.environ, PYTHONPATH=tree, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           *shlex.split(tests)]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, SystemExit, KeyboardInterrupt) as e:
        os.killpg(proc.pid, signal.SIGKILL)  # pytest and the scripts it started
        proc.wait()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        return "timeout"
    if rc == 5:
        raise SystemExit(f"no tests selected by: {tests}")
    return "passed" if rc == 0 else "failed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("section", nargs="?", help=f"one of {', '.join(SECTIONS)}")
    parser.add_argument("--list", action="store_true", help="list sections and their tests")
    parser.add_argument("--tests", help="pytest arguments (default: the section's selection)")
    parser.add_argument("--max", type=int, default=0, help="run at most N mutants (spread out)")
    parser.add_argument("--only", help="only mutants on lines A-B of conda_execute.py")
    parser.add_argument("--timeout", type=float, default=0, help="seconds per mutant")
    args = parser.parse_args()
    if args.list or not args.section:
        for name, (header, tests) in SECTIONS.items():
            print(f"{name:9} {header!r}\n          pytest {tests}")
        return 0
    header, tests = SECTIONS[args.section]
    tests = args.tests or tests
    with open(MODULE, encoding="utf-8") as f:
        text = f.read()
    first, last = section_lines(text, header)
    if args.only:
        first, last = (int(n) for n in args.only.split("-"))
    found = list(mutants(text, first, last))
    chosen = found[::max(1, -(-len(found) // args.max))] if args.max else found
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the scratch copy too
    tree = scratch_copy()
    target = os.path.join(tree, "conda_execute.py")
    try:
        start = time.monotonic()
        if run_tests(tree, tests, 3600) != "passed":
            raise SystemExit(f"the tests fail without a mutant: {tests}")
        timeout = args.timeout or max(60.0, 3 * (time.monotonic() - start))
        print(f"section {args.section} (lines {first}-{last}): {len(found)} mutants, running "
              f"{len(chosen)}; tests: {tests}; timeout {timeout:.0f} s", flush=True)
        counts = {"failed": 0, "passed": 0, "timeout": 0}
        for n, m in enumerate(chosen, 1):
            with open(target, "w", encoding="utf-8") as f:
                f.write(m.source)
            result = run_tests(tree, tests, timeout)
            counts[result] += 1
            if result != "failed":
                print(f"  {'SURVIVED' if result == 'passed' else 'TIMEOUT '} line {m.line}: "
                      f"{m.what}", flush=True)
            if n % 10 == 0:
                print(f"  ... {n}/{len(chosen)}", flush=True)
        print(f"FIGURE mutation section={args.section} mutants={len(chosen)} "
              f"killed={counts['failed']} survived={counts['passed']} "
              f"timed_out={counts['timeout']}")
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
