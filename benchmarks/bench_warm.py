"""Benchmarks of conda-execute's start-up (issues 6, 10): numbers to read, never thresholds.

    python benchmarks/bench_warm.py            # full mode, several minutes
    python benchmarks/bench_warm.py --quick    # small counts (CI runs this)

Run it with a Python that has py-rattler (the test venv: `pip install -e '.[test]'`); for the
uv comparison also `pip install uv` (without it that row is skipped with a note). Everything is
built in a temporary directory, which is removed at the end (`--keep` keeps it):

- the pyz, built from a snapshot of conda_execute.py by build_zipapp.py's own code: bytecode
  for every Python 3.8+ it finds (build_zipapp.find_pythons), __main__.pyc for the real
  interpreter running this (`os.path.realpath(sys._base_executable)`, never a shim);
- a stand-in conda root exactly like the tests' (tests/conftest.py's `make_conda_root`, the
  test channel of tests/standin/channel.py, the isolated environment of `isolated_environ`);
- one environment (`env: [python]`), created by a first run of the pyz;
- null launchers: the floor any launcher has. Each is started the same way as the
  conda-execute it is compared with and only does `os.execv(ENV/bin/python, [.., script])`:
  a zipapp (__main__.py and its __main__.pyc compiled by the Python that runs it, stored; a
  variant without the .pyc, the naive zipapp), a module for `python -m`, and a console script
  in a venv (pip's wrapper text, the modules installed in site-packages and byte-compiled by
  that venv's Python, as pip does).

Each table is measured side by side: all its rows run once per round, in a shuffled order,
after warm-up rounds; a time is one whole process (posix_spawn to exit, the exec'd script
included), the table shows the median. Sections:

1. warm run on every Python found: the pyz and `-I -S`, each against a null launcher zipapp
   run by that Python, and `python -m conda_execute` from a pip install (a venv of it);
2. warm run through each invocation on this Python, against its null launcher, against
   `ENV/bin/python script`, and the fastest documented invocation against `uv run --script`;
3. what the warm path imports (`-X importtime`, modules beyond the null launcher's) and what
   the bytecode in the pyz saves (compile time of the module);
4. the warm run with a 100,000-line usage log and with 1,000 environments in the env dir;
5. `--list` and `--gc --dry-run` over 1,000 environments, `--dry-run` alone;
6. the newest Python found, left out of a build: its first run (it compiles the module into the
   user cache), its later runs, against the release pyz and a null launcher;
7. create overhead: cold runs against the bare stand-in create they run plus the script run
   alone, for the stand-in's conda, micromamba and mamba 2 (each alone on PATH), a one-file env
   and a 10,000-file env, with the manager's kind probed (`EXE --version`, an empty user cache)
   and remembered (the cache already holds it);
8. warm run of each block form ('# conda execute', PEP 723, conda-script) and of tool mode
   (-s), on every Python found, against a null launcher built the way the pyz is;
9. bundles (--bundle), with the stand-in's conda and micromamba: the bundle's size, the time
   to make it, and a first run from it against first runs of the same script from the channel.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
REALPY = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)

SCRIPT = "# conda execute\n# env: [python]\n# run_with: [python]\npass\n"
UV_SCRIPT = "# /// script\n# dependencies = []\n# ///\npass\n"
NULL_MODULE = '''"""A null launcher: exec the environment's python with the arguments, nothing else."""
import os
import sys

PYTHON = {python!r}


def console_main():
    os.execv(PYTHON, [PYTHON, *sys.argv[1:]])


if __name__ == "__main__":
    console_main()
'''
NULL_MAIN = "import os, sys\nos.execv({python!r}, [{python!r}, *sys.argv[1:]])\n"
# pip's console-script wrapper (pip/_internal/operations/install/wheel.py, PipScriptMaker).
PIP_WRAPPER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {func}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({func}())
"""


def load(name: str, path: Path):
    """Import a file under a private name (tests/conftest.py, build_zipapp.py, the module)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# --------------------------------------------------------------------------- timing

NEWLINE = b"\n"
DEVNULL = os.open(os.devnull, os.O_RDWR)
Case = Tuple[str, List[str], Dict[str, str]]  # label, argv (argv[0] absolute), environment


def spawn(cmd: Sequence[str], env: Dict[str, str]) -> float:
    """Seconds from posix_spawn to exit, stdio on /dev/null; a failure shows its stderr."""
    return spawn_cpu(cmd, env)[0]


def spawn_cpu(cmd: Sequence[str], env: Dict[str, str]) -> Tuple[float, float]:
    """spawn()'s wall time, and the CPU seconds (user + system) the process used: the exec'd
    script included (same process). CPU time hardly moves when other work loads the machine,
    wall time does."""
    actions = [(os.POSIX_SPAWN_DUP2, DEVNULL, fd) for fd in (0, 1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(cmd[0], list(cmd), env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True)
        raise SystemExit(f"benchmark command failed ({status}): {' '.join(cmd)}\n{proc.stderr}")
    return elapsed, usage.ru_utime + usage.ru_stime


def measure(cases: Sequence[Case], rounds: int, warmup: int) -> Dict[str, float]:
    """Median seconds per case, all cases once per round in a shuffled order."""
    return {label: wall for label, (wall, _) in measure_cpu(cases, rounds, warmup).items()}


def measure_cpu(cases: Sequence[Case], rounds: int, warmup: int
                ) -> Dict[str, Tuple[float, float]]:
    """Median wall and median CPU seconds per case, all cases once per round, shuffled."""
    times: Dict[str, List[Tuple[float, float]]] = {label: [] for label, _, _ in cases}
    order = list(cases)
    for i in range(warmup + rounds):
        random.shuffle(order)
        for label, cmd, env in order:
            sample = spawn_cpu(cmd, env)
            if i >= warmup:
                times[label].append(sample)
    return {label: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
            for label, ts in times.items()}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *map(line, rows)])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# --------------------------------------------------------------------------- set-up


class Bench:
    """The temporary world: channel, conda root, env dirs, launchers."""

    def __init__(self, tmp: Path, quick: bool):
        self.tmp, self.quick = tmp, quick
        conftest = load("_ce_bench_conftest", TESTS / "conftest.py")
        self.ce = None  # the module snapshot, loaded in build()
        channel = self.channel = conftest.channel_builder.build_test_channel(tmp / "channel")
        self.root = conftest.make_conda_root(tmp / "root", [channel.as_uri()], tmp / "pkgs")
        base = conftest.isolated_environ(os.environ, tmp / "isolated")
        base.pop("PYTHONPATH", None)
        self.isolated = base  # no package manager on PATH: see manager_env
        self.env = self.root.env_with_conda_on_path(base)
        self.env_dir = tmp / "envs"
        self.env["CONDA_EXECUTE_ENV_DIR"] = str(self.env_dir)
        self.env.pop("PYTHONPATH", None)
        self.script = tmp / "trivial.py"
        self.script.write_text(SCRIPT)
        self.uv_script = tmp / "trivial_uv.py"
        self.uv_script.write_text(UV_SCRIPT)

    def build(self) -> None:
        """The pyz variants from one snapshot of the module, with bytecode for every Python."""
        src_dir = self.tmp / "src"
        src_dir.mkdir()
        shutil.copy2(ROOT / "conda_execute.py", src_dir / "conda_execute.py")
        source = (src_dir / "conda_execute.py").read_bytes()
        # byte-compiled like an installed module (PYTHONDONTWRITEBYTECODE may be set here)
        subprocess.run([REALPY, "-m", "compileall", "-q", str(src_dir)], check=True)
        self.ce = load("_ce_bench_module", src_dir / "conda_execute.py")
        builder = self.builder = load("_ce_bench_build", ROOT / "build_zipapp.py")
        self.source_dir, self.source = src_dir, source
        # One interpreter per magic number, as the release build picks them (REALPY first).
        self.pycs: Dict[str, object] = {}
        self.pythons: List[Tuple[str, str, str]] = []  # (version, interpreter, magic hex)
        for exe in builder.find_pythons():
            compiled = builder.all_bytecode(source, [exe])  # warm and cold part, as released
            for magic, bytecode in compiled.items():
                if magic not in self.pycs:
                    self.pycs[magic] = bytecode
                    self.pythons.append((bytecode.version, exe, magic))
        self.pythons.sort(key=lambda p: tuple(map(int, p[0].split("."))))
        self.main_pyc = builder.compile_with(REALPY, builder.MAIN, "__main__.py").pyc
        self.pyz = self.pyz_file("conda-execute.pyz", REALPY)
        self.pyz_src = self.pyz_file("conda-execute-source-only.pyz", REALPY, {}, None)
        self.pyz_fast = self.pyz_file("conda-execute-fast.pyz", f"{REALPY} -IS")
        self.pyz_env_s = self.pyz_file("conda-execute-env-s.pyz", "/usr/bin/env -S python3 -I -S")
        # with PATH starting at the real interpreter's directory, for the env -S shebang
        self.env_s = dict(self.env, PATH=os.pathsep.join([os.path.dirname(REALPY),
                                                          self.env["PATH"]]))

    def pyz_file(self, name: str, interpreter: str, pycs: Optional[dict] = None,
                 main_pyc: Optional[bytes] = b"") -> str:
        """A pyz as build_zipapp.py writes it (default: bytecode for every Python found)."""
        path = self.tmp / name
        path.write_bytes(self.builder.archive_bytes(
            self.source, interpreter, self.pycs if pycs is None else pycs,
            self.main_pyc if main_pyc == b"" else main_pyc))
        path.chmod(0o755)
        return str(path)

    def create_env(self) -> None:
        """The one environment: a cold run of the pyz (verbose, to learn the create command)."""
        proc = subprocess.run([REALPY, self.pyz, "-v", str(self.script)], env=self.env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"creating the environment failed:\n{proc.stderr}")
        found = re.search(r"running: (\S+ create .*)", proc.stderr)
        assert found, proc.stderr
        self.create_cmd = found.group(1).split(" ")
        prefix = subprocess.run([REALPY, self.pyz, "--prefix", str(self.script)], env=self.env,
                                capture_output=True, text=True, check=True).stdout.strip()
        self.prefix = Path(prefix)
        self.env_python = str(self.prefix / "bin" / "python")

    def null_pyz(self, name: str, interpreter: str, python: Optional[str] = REALPY,
                 env_python: str = "") -> str:
        """A null launcher zipapp, with __main__.pyc compiled by PYTHON (None: source only),
        exec'ing ENV_PYTHON (default: the environment's)."""
        main = NULL_MAIN.format(python=env_python or self.env_python).encode()
        members = {"__main__.py": main}
        if python:  # like conda-execute's pyz on the Python that built it
            members["__main__.pyc"] = self.builder.compile_with(python, main, "__main__.py").pyc
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for member, data in members.items():  # stored, like conda-execute's
                zf.writestr(zipfile.ZipInfo(member, date_time=self.builder.EPOCH), data)
        path = self.tmp / name
        path.write_bytes(b"#!" + interpreter.encode() + b"\n" + buf.getvalue())
        path.chmod(0o755)
        return str(path)

    def venv(self, name: str, python: str) -> Path:
        """A venv of PYTHON with conda_execute and null_launcher installed as pip installs
        them (in site-packages, byte-compiled by that Python), and their console scripts."""
        venv = self.tmp / name
        subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next(venv.glob("lib/python*/site-packages"))
        shutil.copy2(self.source_dir / "conda_execute.py", site)
        shutil.copy2(self.null_dir / "null_launcher.py", site)
        subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(site)],
                       check=True)
        for script, module, func in (("conda-execute", "conda_execute", "console_main"),
                                     ("null-launcher", "null_launcher", "console_main")):
            path = venv / "bin" / script
            path.write_text(PIP_WRAPPER.format(python=venv / "bin" / "python", module=module,
                                               func=func))
            path.chmod(0o755)
        return venv

    def null_launchers(self) -> None:
        self.null_pyz_main = self.null_pyz("null.pyz", REALPY)
        self.null_pyz_fast = self.null_pyz("null-fast.pyz", f"{REALPY} -IS")
        self.null_pyz_src = self.null_pyz("null-source.pyz", REALPY, None)
        null_dir = self.tmp / "nullmod"
        null_dir.mkdir()
        (null_dir / "null_launcher.py").write_text(NULL_MODULE.format(python=self.env_python))
        subprocess.run([REALPY, "-m", "compileall", "-q", str(null_dir)], check=True)
        self.null_dir = null_dir
        self.venv_dir = self.venv("venv", REALPY)

    def env_dir_copy(self, name: str) -> Tuple[Path, Dict[str, str]]:
        """Another env dir holding a copy of the environment (and its lock, log, GC stamp);
        returns its platform dir (where envs live) and the variables that select it."""
        root = self.tmp / name
        d = root / self.prefix.parent.name
        d.mkdir(mode=0o700, parents=True)
        shutil.copytree(self.prefix, d / self.prefix.name, symlinks=True)
        self.touch_gc_stamp(d)
        return d, dict(self.env, CONDA_EXECUTE_ENV_DIR=str(root))

    def manager_env(self, prog: str) -> Dict[str, str]:
        """The isolated environment with one stand-in personality alone on PATH (a directory
        holding a copy of ROOT/bin/PROG: the stand-in's personality is its basename), the
        default env dir and user cache (set CONDA_EXECUTE_ENV_DIR, XDG_CACHE_HOME to vary)."""
        only = self.root.root / f"only-{prog}"
        if not only.exists():
            only.mkdir()
            shutil.copy2(self.root.root / "bin" / prog, only / prog)
        return dict(self.isolated, PATH=os.pathsep.join([str(only), self.isolated["PATH"]]))

    def cold_packages(self, n_files: int) -> None:
        """smallpkg (one file) and bigpkg (N_FILES files) in the channel, once."""
        if getattr(self, "n_files", None) is not None:
            assert self.n_files == n_files
            return
        builder = sys.modules["_ce_bench_conftest"].channel_builder
        builder.add_package(self.channel, "smallpkg", "1.0",
                            files={"share/small/one.txt": "1\n"})
        builder.add_package(self.channel, "bigpkg", "1.0", files={
            f"share/big/{i // 100:03d}/{i:05d}.txt": f"{i}\n" for i in range(n_files)})
        self.n_files = n_files

    def touch_gc_stamp(self, d: Path) -> None:
        """A fresh GC stamp: the throttled background GC does not start during a table."""
        (d / self.ce.GC_STAMP).touch()

    def fake_envs(self, d: Path, count: int) -> None:
        """COUNT complete-looking environments (a conda-meta dir with the marker)."""
        now = time.time()
        for i in range(count):
            name = f"{i:020x}"
            meta = d / name / "conda-meta"
            meta.mkdir(parents=True)
            (d / name / self.ce.MARKER).write_text(json.dumps(
                {"name": name, "env": ["python", f"pkg{i}"], "channels": [], "created": now,
                 "size": 1000 + i, "conda_execute": self.ce.__version__}) + "\n")

    def fake_log(self, d: Path, lines: int, names: Sequence[str]) -> None:
        now = time.time()
        with open(d / self.ce.LOG_NAME, "w", encoding="utf-8") as f:
            for i in range(lines):
                f.write(self.ce.log_line(now - lines + i, names[i % len(names)],
                                         "/home/user/scripts/some_script.py", 10000 + i % 30000))


# --------------------------------------------------------------------------- sections


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       "?")
    except OSError:
        pass
    return (f"{time.strftime('%Y-%m-%d')}, {platform.system()} {platform.release()}, "
            f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()} ({REALPY})")


def uv_binary() -> Optional[str]:
    try:
        import uv
    except ImportError:
        return None
    return uv.find_uv_bin()


def every_python(b: Bench, rounds: int, warmup: int) -> None:
    """The release pyz (bytecode for every Python found) run by each Python, against a null
    launcher zipapp run by the same Python with its own __main__.pyc (the floor: our pyz has
    __main__.pyc for one Python only), plainly and with -I -S; and `python -m` from a pip
    install of each (a venv of that Python) against `python -m null_launcher` there."""
    s = str(b.script)
    rows = []
    for version, exe, _magic in b.pythons:
        null = b.null_pyz(f"null-{version}.pyz", exe, exe)
        venv = b.venv(f"venv-{version}", exe) / "bin" / "python"
        null_src = b.null_pyz(f"null-{version}-src.pyz", exe, None)
        cases = {"pyz": [exe, b.pyz, s], "null": [exe, null, s], "null src": [exe, null_src, s],
                 "pyz -I -S": [exe, "-I", "-S", b.pyz, s], "null -I -S": [exe, "-I", "-S", null, s],
                 "-m": [str(venv), "-m", "conda_execute", s],
                 "-m null": [str(venv), "-m", "null_launcher", s]}
        both = measure_cpu([(k, v, b.env) for k, v in cases.items()], rounds, warmup)
        load = module_load_us(b, [], exe)
        for i, unit in ((0, "wall"), (1, "CPU")):
            med = {k: v[i] for k, v in both.items()}
            pairs = (("pyz", "null"), ("pyz -I -S", "null -I -S"), ("-m", "-m null"))
            cells = [c for a, n in pairs for c in (ms(med[a]), ms(med[n]), f"{med[a] / med[n]:.3f}")]
            rows.append([version, unit, *cells[:3], ms(med["null src"]),
                         f"{med['pyz'] / med['null src']:.3f}", *cells[3:],
                         str(load) if i == 0 else ""])
    print("\n### 1. Warm run on every Python found (medians of whole processes)\n")
    print(table(["Python", "time", "python X.pyz ms", "null ms", "ratio", "null src ms",
                 "ratio", "-I -S X.pyz ms", "-I -S null ms", "ratio", "python -m (pip) ms",
                 "-m null ms", "ratio", "module load µs"], rows))
    print(f"\nOne pyz (bytecode for {len(b.pythons)} Pythons, __main__.pyc for "
          f"{platform.python_version()}); each row's cases interleaved, {rounds} rounds. "
          "`null`: a null launcher zipapp with __main__.pyc compiled by that Python; "
          "`null src`: the same with __main__.py only, what any one zipapp run by the "
          "Pythons it was not built with pays (the first compile() of a process, ~1-2 ms). "
          "`wall`: spawn to exit; `CPU`: user + system time of the process (the exec'd "
          "script included), which other load on the machine hardly changes. "
          "`module load`: __main__ reading, unmarshalling and running conda_execute's "
          "bytecode (median of 21 runs).")


def no_bytecode_python(b: Bench, samples: int) -> None:
    """A Python the pyz has no bytecode for (the newest found, left out of the build as
    `--pythons` would): its first run (empty user cache), later runs, the full pyz, null."""
    version, exe, magic = b.pythons[-1]
    others = {m: c for m, c in b.pycs.items() if m != magic}
    main_python = next((e for _, e, m in b.pythons if m != magic), None)
    main_pyc = b.builder.compile_with(main_python, b.builder.MAIN, "__main__.py").pyc \
        if main_python else None
    partial = b.pyz_file("conda-execute-partial.pyz", REALPY, others, main_pyc)
    null = b.null_pyz(f"null-{version}-source.pyz", exe, None)  # compiles __main__.py too
    s = str(b.script)
    warm_cache = dict(b.env, XDG_CACHE_HOME=str(b.tmp / "pyc-cache-warm"))
    subprocess.run([exe, partial, s], env=warm_cache, check=True, capture_output=True)
    times: Dict[str, List[float]] = {k: [] for k in ("first", "later", "full", "null")}
    for i in range(samples):
        jobs = [("first", [exe, partial, s],
                 dict(b.env, XDG_CACHE_HOME=str(b.tmp / f"pyc-cache-{i}"))),
                ("later", [exe, partial, s], warm_cache), ("full", [exe, b.pyz, s], b.env),
                ("null", [exe, null, s], b.env)]
        random.shuffle(jobs)
        for kind, cmd, env in jobs:
            times[kind].append(spawn(cmd, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n### 6. Python {version}, left out of the build ({samples} interleaved samples)\n")
    print(table(["run", "ms", "× null"], [
        ["first run: compiles the module, writes the user cache", ms(med["first"]),
         f"{med['first'] / med['null']:.2f}"],
        ["later runs: the module from the user cache", ms(med["later"]),
         f"{med['later'] / med['null']:.2f}"],
        ["the release pyz, bytecode for this Python included", ms(med["full"]),
         f"{med['full'] / med['null']:.2f}"],
        ["null launcher zipapp, source __main__.py only", ms(med["null"]), "1.00"]]))


def warm_runs(b: Bench, rounds: int, warmup: int) -> None:
    s = str(b.script)
    mod_env = dict(b.env, PYTHONPATH=str(b.source_dir))
    null_env = dict(b.env, PYTHONPATH=str(b.null_dir))
    venv_bin = b.venv_dir / "bin"
    pairs = [  # (label, command, env, null label, null command, null env)
        ("python3 conda-execute.pyz", [REALPY, b.pyz, s], b.env,
         "python3 null.pyz", [REALPY, b.null_pyz_main, s], b.env),
        ("python3 -m conda_execute", [REALPY, "-m", "conda_execute", s], mod_env,
         "python3 -m null_launcher", [REALPY, "-m", "null_launcher", s], null_env),
        ("conda-execute (console script)", [str(venv_bin / "conda-execute"), s], b.env,
         "null-launcher (console script)", [str(venv_bin / "null-launcher"), s], b.env),
        ("python3 -I -S conda-execute.pyz", [REALPY, "-I", "-S", b.pyz, s], b.env,
         "python3 -I -S null.pyz", [REALPY, "-I", "-S", b.null_pyz_main, s], b.env),
        ("./conda-execute.pyz (#!python3 -IS)", [b.pyz_fast, s], b.env,
         "./null.pyz (#!python3 -IS)", [b.null_pyz_fast, s], b.env),
    ]
    cases: List[Case] = []
    for label, cmd, env, null_label, null_cmd, null_env in pairs:
        cases += [(label, cmd, env), (null_label, null_cmd, null_env)]
    cases.append(("./conda-execute.pyz (#!/usr/bin/env -S python3 -I -S)", [b.pyz_env_s, s],
                  b.env_s))
    cases.append(("python3 conda-execute.pyz, source only (no .pyc)", [REALPY, b.pyz_src, s],
                  b.env))
    cases.append(("python3 -I -S null.pyz, source __main__.py only", [REALPY, "-I", "-S",
                                                                      b.null_pyz_src, s], b.env))
    cases.append(("ENV/bin/python script (no launcher)", [b.env_python, s], b.env))
    uv = uv_binary()
    if uv:
        uv_env = dict(b.env, UV_PYTHON=REALPY, UV_CACHE_DIR=str(b.tmp / "uv-cache"),
                      UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1")
        uv_cmd = [uv, "run", "--script", str(b.uv_script)]
        subprocess.run(uv_cmd, env=uv_env, check=True, capture_output=True)  # warm its cache
        cases.append(("uv run --script (no dependencies)", uv_cmd, uv_env))
    both = measure_cpu(cases, rounds, warmup)
    med = {k: v[0] for k, v in both.items()}
    cpu = {k: v[1] for k, v in both.items()}
    direct = med["ENV/bin/python script (no launcher)"]
    rows = []
    for label, _, _, null_label, _, _ in pairs:
        rows.append([label, ms(med[label]), null_label, ms(med[null_label]),
                     f"{med[label] / med[null_label]:.3f}",
                     f"{(med[label] - med[null_label]) * 1000:+.1f}",
                     f"{cpu[label] / cpu[null_label]:.3f}",
                     f"{(cpu[label] - cpu[null_label]) * 1000:+.1f}"])
    print(f"\n### 2. Warm run on Python {platform.python_version()}, every invocation "
          "(medians of whole processes)\n")
    print(table(["invocation", "ms", "null launcher started the same way", "ms",
                 "ratio", "Δ ms", "CPU ratio", "CPU Δ ms"], rows))
    print()
    fast = med["./conda-execute.pyz (#!python3 -IS)"]
    rows = [[label, ms(t), f"{t / fast:.2f}", f"{t / direct:.2f}"]
            for label, t in sorted(med.items(), key=lambda kv: kv[1])]
    print(table(["every row of the same run", "ms", "× fastest documented",
                 "× ENV/bin/python"], rows))
    print()
    if uv:
        uv_t = med["uv run --script (no dependencies)"]
        print(f"fastest documented invocation (#!{REALPY} -IS) vs uv run --script: "
              f"{ms(fast)} ms vs {ms(uv_t)} ms = {fast / uv_t:.2f}×; "
              f"python3 -I -S conda-execute.pyz: "
              f"{med['python3 -I -S conda-execute.pyz'] / uv_t:.2f}×; "
              f"python3 conda-execute.pyz: {med['python3 conda-execute.pyz'] / uv_t:.2f}×")
        version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout
        print(f"({version.strip()})")
    else:
        print("uv run --script: skipped (uv is not installed here: `pip install uv`)")


def imports(b: Bench) -> None:
    """What a warm run imports beyond the null launcher's, and what the .pyc saves."""

    def imported(cmd: List[str]) -> Dict[str, Tuple[int, int]]:
        proc = subprocess.run(cmd, env=b.env, capture_output=True, text=True)
        found = {}
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if m:
                found[m.group(4)] = (int(m.group(1)), int(m.group(2)))
        return found

    print("\n### 3. What the warm path imports (python3 -X importtime, one run)\n")
    s = str(b.script)
    for flags in ([], ["-I", "-S"]):
        ours = imported([REALPY, "-X", "importtime", *flags, b.pyz, s])
        null = imported([REALPY, "-X", "importtime", *flags, b.null_pyz_main, s])
        extra = [name for name in ours if name not in null]
        total = sum(ours[n][0] for n in extra)
        shown = ", ".join(f"{n} ({ours[n][0]} µs)" for n in extra)
        load = module_load_us(b, flags)
        total += load
        print(f"- `python3 {' '.join(flags)} conda-execute.pyz`: {len(ours)} modules "
              f"(null launcher: {len(null)}); beyond the null launcher's: {shown}, "
              f"conda_execute ({load} µs: loaded by __main__ by hand, unseen by importtime; "
              f"median of 21 runs without it); "
              f"{total / 1000:.1f} ms in all")
    src = (b.source_dir / "conda_execute.py").read_bytes()
    start = time.perf_counter()
    for _ in range(5):
        compile(src, "conda_execute.py", "exec", dont_inherit=True)
    per = (time.perf_counter() - start) / 5
    print(f"- compiling conda_execute.py ({src.count(NEWLINE)} lines) takes {ms(per)} ms "
          "(zipimport never caches bytecode); the pyz carries the module's bytecode for every "
          "Python found and its __main__ executes the one for the running Python's magic "
          "number, so no Python with a member compiles the module")


def module_load_us(b: Bench, flags: List[str], python: str = REALPY, runs: int = 21) -> int:
    """Median µs the pyz's __main__ takes on PYTHON to load conda_execute (read its bytecode,
    unmarshal, run the top level)."""
    builder = b.builder
    run = b"raise SystemExit(conda_execute.console_main())\n"
    assert builder.MAIN.endswith(run), "build_zipapp.MAIN changed: update module_load_us"
    main = (b"import time\nt = time.perf_counter()\n" + builder.MAIN[:-len(run)]
            + b"print(round((time.perf_counter() - t) * 1e6))\n")
    magic = importlib.util.MAGIC_NUMBER.hex() if python == REALPY else \
        next(m for _, exe, m in b.pythons if exe == python)
    members = {"__main__.py": main,
               "__main__.pyc": builder.compile_with(python, main, "__main__.py").pyc,
               f"conda_execute.{magic}.pyc": b.pycs[magic].pyc}
    path = b.tmp / f"load-timer-{magic}.pyz"
    with zipfile.ZipFile(path, "w") as zf:  # the pyz's layout, stored
        for member, data in members.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=builder.EPOCH), data)
    times = [int(subprocess.run([python, *flags, str(path)], env=b.env, capture_output=True,
                                text=True, check=True).stdout) for _ in range(runs)]
    return int(statistics.median(times))


def history(b: Bench, rounds: int, warmup: int, n_envs: int, n_lines: int) -> Path:
    s = str(b.script)
    b.touch_gc_stamp(b.prefix.parent)
    log_dir, log_env = b.env_dir_copy("envs-log")
    b.fake_log(log_dir, n_lines, [f"{i:020x}" for i in range(n_envs)] + [b.prefix.name])
    many_dir, many_env = b.env_dir_copy("envs-many")
    b.fake_envs(many_dir, n_envs)
    cases = [("fresh env dir", [REALPY, b.pyz, s], b.env),
             (f"usage log of {n_lines:,} lines", [REALPY, b.pyz, s], log_env),
             (f"{n_envs:,} environments", [REALPY, b.pyz, s], many_env)]
    med = measure(cases, rounds, warmup)
    base = med["fresh env dir"]
    print("\n### 4. Warm run (python3 conda-execute.pyz) against history\n")
    print(table(["env dir", "ms", "change"],
                [[k, ms(v), f"{(v / base - 1) * 100:+.1f}%"] for k, v in med.items()]))
    return many_dir


def management(b: Bench, many_dir: Path, rounds: int, warmup: int, n_envs: int) -> None:
    env = dict(b.env, CONDA_EXECUTE_ENV_DIR=str(many_dir.parent))
    s = str(b.script)
    cases = [(f"--list over {n_envs:,} envs", [REALPY, b.pyz, "--list"], env),
             (f"--gc --dry-run --older-than 0 over {n_envs:,} envs (all decided)",
              [REALPY, b.pyz, "--gc", "--dry-run", "--older-than", "0"], env),
             ("--dry-run SCRIPT", [REALPY, b.pyz, "--dry-run", s], b.env),
             ("--version", [REALPY, b.pyz, "--version"], b.env),
             ("warm run (for scale)", [REALPY, b.pyz, s], b.env)]
    listing = subprocess.run(cases[0][1], env=env, capture_output=True, text=True, check=True)
    assert len(listing.stdout.splitlines()) >= n_envs, "--list did not list the envs"
    med = measure(cases, rounds, warmup)
    print("\n### 5. Management commands (python3 conda-execute.pyz)\n")
    print(table(["command", "ms"], [[k, ms(v)] for k, v in med.items()]))


# Run by sh at the end of a cold run, in the same process (exec): writes the process's own CPU
# time so far (the kernel's se.sum_exec_runtime, ms; children not included) to $CE_BENCH_OUT,
# with shell builtins only.
COLD_SCRIPT = """# conda execute
# env: [{pkg}]
# run_with: [sh]
while read -r key _ value; do
  if [ "$key" = se.sum_exec_runtime ]; then echo "$value" > "$CE_BENCH_OUT"; break; fi
done < /proc/$$/sched
"""


FORMS = {  # a warm run of each block form ({url}: the test channel)
    "# conda execute": SCRIPT,
    "PEP 723": ("# /// script\n# requires-python = \">=3.8\"\n# dependencies = []\n"
                "# [tool.conda]\n# channels = [\"{url}\"]\n# ///\npass\n"),
    "conda-script": ("# /// conda-script\n# channels = [\"{url}\"]\n"
                     "# entrypoint = \"python ${{SCRIPT}}\"\n# [dependencies]\n"
                     "# python = \"*\"\n# /// end-conda-script\npass\n"),
}


def forms(b: Bench, rounds: int, warmup: int) -> None:
    """A warm run of each block form and of tool mode, on every Python, against a null
    launcher built the way the release pyz is (__main__.pyc for the building Python only)
    that execs the same environment's python."""
    argvs, prefixes = {}, {}
    for form, text in FORMS.items():
        path = b.tmp / f"form-{len(argvs)}.py"
        path.write_text(text.format(url=b.channel.as_uri()))
        argvs[form] = [str(path)]
        subprocess.run([REALPY, b.pyz, str(path)], env=b.env, check=True, capture_output=True)
        prefixes[form] = subprocess.run([REALPY, b.pyz, "--prefix", str(path)], env=b.env,
                                        check=True, capture_output=True, text=True
                                        ).stdout.strip()
    argvs["-s python -- python SCRIPT"] = ["-s", "python", "--", "python", str(b.script)]
    prefixes["-s python -- python SCRIPT"] = prefixes["# conda execute"]
    rows = []
    for version, exe, magic in b.pythons:
        cases, nulls = [], {}
        for form, argv in argvs.items():
            cases.append((form, [exe, b.pyz, *argv], b.env))
            python = os.path.join(prefixes[form], "bin", "python")
            if python not in nulls:
                own = REALPY if magic == importlib.util.MAGIC_NUMBER.hex() else None
                nulls[python] = b.null_pyz(f"null-form-{version}-{len(nulls)}.pyz", exe, own,
                                           python)
                cases.append((f"null {python}", [exe, nulls[python], str(b.script)], b.env))
        both = measure_cpu(cases, rounds, warmup)
        for form in argvs:
            null = both[f"null {os.path.join(prefixes[form], 'bin', 'python')}"]
            got = both[form]
            rows.append([version, form, ms(got[0]), ms(null[0]), f"{got[0] / null[0]:.3f}",
                         ms(got[1]), ms(null[1]), f"{got[1] / null[1]:.3f}"])
    print("\n### 8. Warm run of each block form on every Python found (medians of whole "
          "processes)\n")
    print(table(["Python", "form", "python X.pyz ms", "null ms", "ratio", "CPU ms",
                 "null CPU ms", "CPU ratio"], rows))
    print(f"\nEach Python's rows interleaved, {rounds} rounds. `null`: a null launcher zipapp "
          "built like the release pyz (__main__.pyc for the building Python only, so every "
          "other Python compiles its __main__.py, as it does ours), exec'ing the python of the "
          "same environment.")


#: The stand-in's personalities section 7 measures: program name (its basename picks the
#: personality) -> what it plays.
PERSONALITIES = {"conda": "conda 26", "micromamba": "micromamba 2", "mamba": "mamba 2"}


def cold(b: Bench, samples: int, n_files: int) -> None:
    """Cold runs (a fresh env dir each) against the bare create command they run plus a direct
    run of the script, for each stand-in personality (alone on PATH), a one-file env and an
    N_FILES-file env. Each cold run twice: the manager's kind probed (an empty user cache, so
    `EXE --version` runs) and remembered (the cache holds the entry of an earlier run). The
    script is COLD_SCRIPT, run by sh: the overhead is starting, parsing, the kind, locking,
    the marker and the log."""
    b.cold_packages(n_files)
    kinds = {"small": ("smallpkg", "1 file"), "big": ("bigpkg", f"{n_files:,} files")}
    remembered = b.tmp / "cold-xdg-remembered"  # XDG_CACHE_HOME of the 'remembered' runs
    remembered.mkdir()
    scripts: Dict[str, str] = {}
    for kind, (pkg, _) in kinds.items():
        path = b.tmp / f"cold-{kind}.sh"
        path.write_text(COLD_SCRIPT.format(pkg=pkg))
        scripts[kind] = str(path)
    envs: Dict[str, Dict[str, str]] = {}
    creates: Dict[Tuple[str, str], Tuple[List[str], str]] = {}  # create argv, its prefix
    for prog in PERSONALITIES:
        envs[prog] = dict(b.manager_env(prog), XDG_CACHE_HOME=str(remembered))
        for n, kind in enumerate(kinds):  # also fills the package cache and the kind cache
            setup = dict(envs[prog], CONDA_EXECUTE_ENV_DIR=str(b.tmp / f"cold-setup-{prog}-{kind}"))
            proc = subprocess.run([REALPY, b.pyz, "-v", scripts[kind]], env=setup,
                                  capture_output=True, text=True)
            found = re.search(r"running: (\S+ create .*)", proc.stderr)
            assert proc.returncode == 0 and found, proc.stderr
            cmd = found.group(1).split(" ")
            assert os.path.basename(cmd[0]) == prog, cmd  # the personality asked for
            how = "remembered from an earlier probe" if n else "probed with --version"
            assert how in proc.stderr, proc.stderr  # the kind cache works as the rows say
            prefix = re.search(r" -p (\S+)", found.group(1))
            assert prefix, found.group(1)
            creates[prog, kind] = (cmd, prefix.group(1))
    variants = [(f"{how}, {cache}", flags, cache)
                for how, flags in (("python3", []), ("python3 -I -S", ["-I", "-S"]))
                for cache in ("probed", "remembered")]
    times: Dict[Tuple[str, str, str], List[Tuple[float, float]]] = {}
    own: Dict[Tuple[str, str, str], List[float]] = {}  # own CPU seconds (COLD_SCRIPT)
    for i in range(samples):
        d = b.tmp / f"cold-{i}"  # this sample's env dirs, caches and bare prefixes
        jobs = [(("", kind, "sh"), ["/bin/sh", scripts[kind]], b.isolated) for kind in kinds]
        for (prog, kind), (cmd, prefix) in creates.items():
            tag = f"{prog}-{kind}"
            bare_prefix = d / f"bare-{tag}" / "env"
            bare_prefix.parent.mkdir(parents=True)
            jobs += [((prog, kind, "bare"), [str(bare_prefix) if a == prefix else a
                                             for a in cmd], envs[prog]),
                     ((prog, kind, "version"), [cmd[0], "--version"], envs[prog])]
            for j, (label, flags, cache) in enumerate(variants):
                xdg = remembered
                if cache == "probed":
                    xdg = d / f"xdg-{tag}-{j}"
                    xdg.mkdir()
                jobs.append(((prog, kind, label), [REALPY, *flags, b.pyz, scripts[kind]],
                             dict(envs[prog], XDG_CACHE_HOME=str(xdg),
                                  CONDA_EXECUTE_ENV_DIR=str(d / f"envs-{tag}-{j}"))))
        random.shuffle(jobs)
        out = b.tmp / "own-cpu.txt"
        for key, cmd, job_env in jobs:
            out.write_text("")
            times.setdefault(key, []).append(spawn_cpu(cmd, dict(job_env,
                                                                 CE_BENCH_OUT=str(out))))
            if out.read_text().strip():
                own.setdefault(key, []).append(float(out.read_text()) / 1000)
        shutil.rmtree(d)  # untimed: 10,000-file envs add up
    med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    own_cpu = {k: statistics.median(v) for k, v in own.items()}
    rows, summary = [], []
    for kind, (_, size) in kinds.items():
        sh = ("", kind, "sh")
        rows.append(["(none)", size, "direct: sh script (the script alone)", ms(med[sh]), "",
                     ms(cpu[sh]), "", ""])
    for prog, kind in creates:
        pkg, size = kinds[kind]
        sh, bare, version = ("", kind, "sh"), (prog, kind, "bare"), (prog, kind, "version")
        base, base_cpu = med[bare] + med[sh], cpu[bare] + cpu[sh]
        rows += [[PERSONALITIES[prog], size, f"bare: {prog} create -p ... --yes {pkg}",
                  ms(med[bare]), "", ms(cpu[bare]), "", ""],
                 ["", "", f"{prog} --version (the kind probe)", ms(med[version]), "",
                  ms(cpu[version]), "", ""]]
        overheads = []
        for label, _, _ in variants:
            key = (prog, kind, label)
            mine = f"{(own_cpu[key] - own_cpu[sh]) * 1000:.1f}" \
                if key in own_cpu and own_cpu.get(sh) else "n/a"
            overheads.append(med[key] - base)
            rows.append(["", "", f"cold run: {label.replace(', ', ' conda-execute.pyz, kind ')}",
                         ms(med[key]), f"{(med[key] - base) * 1000:+.1f}", ms(cpu[key]),
                         f"{(cpu[key] - base_cpu) * 1000:+.1f}", mine])
        summary.append([PERSONALITIES[prog], size, ms(med[version]),
                        *[f"{o * 1000:+.1f}" for o in overheads[:2]],
                        f"{(overheads[0] - overheads[1]) * 1000:+.1f}",
                        *[f"{o * 1000:+.1f}" for o in overheads[2:]],
                        f"{(overheads[2] - overheads[3]) * 1000:+.1f}"])
    print(f"\n### 7. Create overhead, stand-in {', '.join(PERSONALITIES.values())}: cold runs "
          f"against the bare create plus the script alone ({samples} interleaved samples, "
          "medians)\n")
    print(table(["manager", "env", "run", "ms", "overhead ms", "CPU ms", "CPU overhead ms",
                 "own CPU ms"], rows))
    print("\n(overhead: the cold run's time less the bare create's and the direct run's of "
          "the script; kind probed: an empty user cache (XDG_CACHE_HOME a new dir), so the "
          "run asks `EXE --version`, which the stand-in, a Python program, makes far slower "
          "than micromamba or conda; kind remembered: the cache holds the entry an earlier "
          "run wrote ($XDG_CACHE_HOME/conda-execute/managers), no --version; CPU: user + "
          "system of the process and the children it waited for; own CPU: the conda-execute "
          "process alone, children excluded, from /proc/PID/sched at the end of the run, less "
          "what sh takes to run the script alone: what conda-execute adds, starting Python "
          "included)\n")
    print(table(["manager", "env", "--version ms", "python3: probed", "remembered",
                 "probed − remembered", "-I -S: probed", "remembered",
                 "probed − remembered"], summary))
    print("\n(wall-time overhead in ms of each first run over the bare create plus the script "
          "alone, side by side: what remembering the kind saves against what one --version "
          "of that manager costs)")
    walls = {key: [w for w, _ in times[(*key, "bare")]] for key in creates}
    spread = ", ".join(f"{PERSONALITIES[p]} {kinds[k][1]} {(max(w) - min(w)) * 1000:.0f} ms"
                       for (p, k), w in walls.items())
    print(f"\n(the bare creates vary between samples by: {spread}; the overhead includes "
          "starting Python, which python3 alone takes ~15 ms longer here than python3 -I -S: "
          "see section 1)")


BUNDLE_SCRIPT = """# conda execute
# env: [python, bigpkg]
# channels: [{url}]
# run_with: [python]
pass
"""


def tree_bytes(path: Path) -> Tuple[int, int]:
    """(files, bytes) of the regular files under PATH."""
    sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return len(sizes), sum(sizes)


def bundles(b: Bench, samples: int, n_files: int) -> None:
    """--bundle with the stand-in's conda and micromamba (each alone on PATH): the bundle's
    size, the time to make it (from the script unlocked, so it locks first, and locked), and
    a first run from the bundle against first runs of the same script from the channel (with
    the same lock, and unlocked: a solve), a fresh env dir each, interleaved."""
    b.cold_packages(n_files)
    text = BUNDLE_SCRIPT.format(url=b.channel.as_uri())
    setups: Dict[str, Tuple[Dict[str, str], Path, Path, Path]] = {}
    sizes = []
    for prog in ("conda", "micromamba"):
        home = b.tmp / f"bundle-{prog}"
        env = b.manager_env(prog)
        src, plain = home / "src" / "script.py", home / "plain" / "script.py"
        for path in (src, plain):
            path.parent.mkdir(parents=True)
            path.write_text(text)
        out = home / "bundle"
        proc = subprocess.run([REALPY, b.pyz, "--bundle", str(src), "--output", str(out)],
                              env=dict(env, CONDA_EXECUTE_ENV_DIR=str(home / "envs-make")),
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert Path(str(src) + b.ce.LOCK_SUFFIX).is_file()
        runs = {"bundle": [str(out / "conda-execute.pyz"), str(out / src.name)],
                "channel": [b.pyz, str(src)], "solve": [b.pyz, str(plain)]}
        for name, argv in runs.items():  # each works; the package cache holds every archive
            proc = subprocess.run([REALPY, *argv], capture_output=True, text=True,
                                  env=dict(env, CONDA_EXECUTE_ENV_DIR=str(home / f"envs-{name}")))
            assert proc.returncode == 0, proc.stderr
        assert not Path(str(plain) + b.ce.LOCK_SUFFIX).exists()  # a run does not lock
        urls = {json.loads(p.read_text()).get("url", "")
                for p in (home / "envs-bundle").rglob("conda-meta/*.json")}
        bundled = (out / b.ce.BUNDLE_PACKAGES).as_uri()
        assert urls and all(u.startswith(bundled) for u in urls), urls  # from its own files
        archives, packages = tree_bytes(out / b.ce.BUNDLE_PACKAGES)
        files, total = tree_bytes(out)
        sizes.append([PERSONALITIES[prog], str(archives - 1), f"{packages:,}",
                      f"{(out / 'conda-execute.pyz').stat().st_size:,}", str(files),
                      f"{total:,}"])
        setups[prog] = (env, src, plain, out)
    times: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
    for i in range(samples):
        d = b.tmp / f"bundle-{i}"
        jobs = []
        for prog, (env, src, plain, out) in setups.items():
            p = d / prog
            fresh = p / "src" / src.name  # the script as written: --bundle locks it first
            fresh.parent.mkdir(parents=True)
            fresh.write_text(text)
            argvs = {"make": [b.pyz, "--bundle", str(fresh), "--output", str(p / "new")],
                     "make locked": [b.pyz, "--bundle", str(src), "--output", str(p / "again")],
                     "bundle": [str(out / "conda-execute.pyz"), str(out / src.name)],
                     "channel": [b.pyz, str(src)], "solve": [b.pyz, str(plain)]}
            jobs += [((prog, key), [REALPY, *argv],  # a fresh env dir each
                      dict(env, CONDA_EXECUTE_ENV_DIR=str(p / f"envs-{key.replace(' ', '-')}")))
                     for key, argv in argvs.items()]
        random.shuffle(jobs)
        for key, cmd, job_env in jobs:
            times.setdefault(key, []).append(spawn_cpu(cmd, job_env))
        shutil.rmtree(d)
    med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
    labels = {
        "make": "make: --bundle SCRIPT --output DIR, SCRIPT not locked (it locks first)",
        "make locked": "make: --bundle SCRIPT --output DIR, SCRIPT already locked",
        "bundle": "first run from the bundle: python3 DIR/conda-execute.pyz DIR/SCRIPT",
        "channel": "first run from the channel, same lock: python3 conda-execute.pyz SCRIPT",
        "solve": "first run from the channel, no lock (solved)",
    }
    rows = []
    for prog in setups:
        channel = med[prog, "channel"]
        for n, (key, label) in enumerate(labels.items()):
            rows.append([PERSONALITIES[prog] if n == 0 else "", label, ms(med[prog, key]),
                         ms(cpu[prog, key]), f"{med[prog, key] / channel:.2f}"])
    print(f"\n### 9. Bundles (--bundle), stand-in {PERSONALITIES['conda']} and "
          f"{PERSONALITIES['micromamba']} ({samples} interleaved samples, medians)\n")
    print(f"SCRIPT: `env: [python, bigpkg]` (bigpkg: {n_files:,} files), its channel the "
          "test channel (file://)\n")
    print(table(["manager", "archives", "packages/ bytes", "conda-execute.pyz bytes", "files",
                 "total bytes"], sizes))
    print()
    print(table(["manager", "", "ms", "CPU ms", "× channel, same lock"], rows))
    print("\n(each make writes a new DIR; each first run has a fresh env dir, the package "
          "cache (the stand-in's, shared) already holds every archive: a run from the bundle "
          "adds reading and hashing each archive against the lock, a run from the channel "
          "with the lock creates from the same list, without it the manager solves)")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (CI)")
    parser.add_argument("--rounds", type=int, help="measured rounds per table")
    parser.add_argument("--envs", type=int, help="fake environments (default 1000)")
    parser.add_argument("--log-lines", type=int, help="usage log lines (default 100000)")
    parser.add_argument("--cold", type=int, help="cold-run/create samples")
    parser.add_argument("--files", type=int, help="files in the big env (default 10000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--only", default="123456789", help="sections to run, e.g. 13 (default all)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 100)
    warmup = 2 if args.quick else 10
    n_envs = args.envs or (100 if args.quick else 1000)
    n_lines = args.log_lines or (10_000 if args.quick else 100_000)
    samples = args.cold or (1 if args.quick else 9)
    n_files = args.files or (1000 if args.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="ce-bench-"))
    cwd = os.getcwd()
    os.chdir(tmp)  # `python -m` searches the working directory first: not a checkout's module
    try:
        print(f"## conda-execute benchmarks{' (quick mode)' if args.quick else ''}\n")
        print(f"{machine()}\n")
        b = Bench(tmp, args.quick)
        b.build()
        b.create_env()
        b.null_launchers()
        print(f"rounds per table: {rounds} (after {warmup} warm-up rounds); pyz "
              f"{os.path.getsize(b.pyz):,} bytes with bytecode for Python "
              f"{', '.join(v for v, _, _ in b.pythons)}")
        if "1" in args.only:
            every_python(b, rounds, warmup)
        if "2" in args.only:
            warm_runs(b, rounds, warmup)
        if "3" in args.only:
            imports(b)
        if "4" in args.only or "5" in args.only:
            many = history(b, rounds, warmup, n_envs, n_lines)
            if "5" in args.only:
                management(b, many, max(3, rounds // 10), 1, n_envs)
        if "6" in args.only:
            no_bytecode_python(b, max(3, samples))
        if "7" in args.only:
            cold(b, samples, n_files)
        if "8" in args.only:
            forms(b, rounds, warmup)
        if "9" in args.only:
            bundles(b, samples, n_files)
        print("\nbenchmarks done")
    finally:
        os.chdir(cwd)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
