"""Shared fixtures: a local conda channel, fake conda roots, an isolated environment.

Real conda cannot be installed here, so ``tests/standin/conda_standin.py`` plays
``conda`` and ``micromamba`` (see its docstring and ``../shared/conda-facts.md``).

Fixtures
--------
``channel`` (session)
    :class:`Channel` with ``.path`` (Path) and ``.url`` (``file://...``) of the test
    channel built by ``tests/standin/channel.py``: ``python`` (this interpreter's
    X.Y.Z, build ``0_fake``), ``pip``, ``mylib`` 1.0, ``tool`` 1.0/2.0,
    ``toolplugin`` (needs ``tool <2``), ``activator``, ``placeholder``, ``broken``
    (needs the missing ``nosuchdep``).  Shared by the whole session: never modify it.

    Subdirs ``noarch``, ``linux-64``, ``linux-aarch64`` and ``osx-arm64``: ``python``,
    ``pip`` and ``mylib`` exist for each of the three platforms (same versions and builds;
    on other platforms than this machine's, ``bin/pythonX.Y`` is a stub executable of that
    platform that cannot run here, and ``pip`` has no code), every other package is
    ``noarch``, and ``linuxonly`` 1.0 exists for ``linux-64`` only (solving it for
    ``osx-arm64`` fails).  Installing a foreign ``python`` replaces the native one in the
    package cache (same name-version-build): give such a root its own ``pkgs_dir``.

``fresh_channel`` (function)
    A private copy of the channel that a test may change with
    ``fresh_channel.add_package(name, version, build="0", depends=(), files={...})``
    (re-indexes; ``noarch=False, subdir="osx-arm64"`` for a platform package).  The
    package cache is shared, but rattler re-validates entries by sha256, so even a rebuilt
    ``name-version-build`` with new content installs correctly.

``conda_root`` (function)
    :class:`CondaRoot`: a fresh fake conda installation ``ROOT`` in tmp, configured
    (``ROOT/standin.json``) with ``channel`` as its only default channel::

        ROOT/bin/conda, ROOT/bin/micromamba   # conda 26, micromamba 2.0.5
        ROOT/bin/mamba                        # mamba 2.x (micromamba's command line)
        ROOT/condabin/conda                   # only conda (what `conda init` puts on PATH)
        ROOT/mambabin/micromamba              # only micromamba
        ROOT/envs/                            # envs_dirs[0]
        ROOT/calls.jsonl                      # one JSON line per invocation

    Attributes: ``root``, ``conda``, ``micromamba``, ``condabin``, ``mambabin``,
    ``envs``, ``pkgs``, ``channels``.  Methods:

    * ``calls(subcommand=None, prog=None) -> list[dict]``: logged invocations
      (``argv`` incl. the program name, ``subcommand``, ``pid``, ``cwd``...).
    * ``env_with_conda_on_path(env)`` / ``env_with_micromamba_on_path(env)``: a copy
      of ``env`` with ``ROOT/condabin`` (or ``ROOT/mambabin``) first on ``PATH``.
    * ``env_with_conda_exe(env)``: a copy with ``CONDA_EXE=ROOT/bin/conda`` (PATH unchanged);
      ``env_with_mamba_exe(env)``: ``MAMBA_EXE`` and ``MAMBA_ROOT_PREFIX``.
    * ``run(*args, prog="conda", env=None, **kw)``: run the stand-in, text mode,
      captured -> ``subprocess.CompletedProcess``.

``conda_root_factory`` (function)
    ``conda_root_factory(channels=None, name="root", **settings) -> CondaRoot`` for tests
    that need another channel list (e.g. ``[fresh_channel.url]``), several roots, or other
    ``standin.json`` settings (``personality="micromamba"`` for a renamed executable,
    ``micromamba_version="1.5.8"``, ``custom_channels={...}``).

``backend`` (function, parametrized)
    :class:`Backend` for each of conda 26, micromamba 2.0.5, mamba 2.x and micromamba 1.5
    (:data:`BACKENDS`), in its own root: ``id``, ``prog``, ``root``, ``exe``, and
    ``env_on_path(env)`` (a PATH directory holding only that program). A test taking it runs
    once per back end (tests/test_backends.py: run, reuse, races, kills, GC, locks, PEP 723).

``isolated_env`` (function, autouse)
    Every test runs with ``HOME``, ``XDG_{CONFIG,CACHE,DATA,STATE}_HOME`` in tmp dirs,
    ``CONDARC``/``CONDA_*``/``MAMBA_*``/``_CE_*`` removed and no real conda
    directory on ``PATH``, and ``CONDA_EXECUTE_BOOTSTRAP=0`` (no download of micromamba from
    the internet when no conda is found) -- applied to ``os.environ`` itself (monkeypatched) and
    returned as a ``dict`` to pass as ``env=`` to subprocesses.  ``TMPDIR`` is left alone.

``pyz`` (session)
    Path of ``conda-execute.pyz`` built by ``build_zipapp.py`` once per test process.

``public_dir`` (function)
    A directory (0755, under the system temp dir) an unprivileged user can reach: for the
    tests that run as another user; removed afterwards.

Example (a product test)::

    def test_runs(conda_root, isolated_env, tmp_path):
        env = conda_root.env_with_conda_on_path(isolated_env)
        proc = subprocess.run([sys.executable, "-m", "conda_execute", script], env=env, ...)
        assert len(conda_root.calls("create")) == 1
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import pytest

TESTS_DIR = Path(__file__).resolve().parent
STANDIN = TESTS_DIR / "standin" / "conda_standin.py"


def _load_channel_builder() -> Any:
    """Import ``tests/standin/channel.py`` under a name that cannot clash."""
    name = "conda_standin_channel"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS_DIR / "standin" / "channel.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


channel_builder = _load_channel_builder()


@dataclass(frozen=True)
class Channel:
    """A local conda channel directory and its ``file://`` URL."""

    path: Path

    @property
    def url(self) -> str:
        """``file:///...`` URL of the channel."""
        return self.path.as_uri()

    def add_package(self, name: str, version: str, build: str = "0", **kwargs: Any) -> Path:
        """Add a package and re-index; see :func:`channel.add_package`."""
        return channel_builder.add_package(self.path, name, version, build, **kwargs)


@dataclass
class CondaRoot:
    """A fake conda installation whose ``conda``/``micromamba`` are the stand-in."""

    root: Path
    channels: List[str] = field(default_factory=list)

    @property
    def conda(self) -> Path:
        """``ROOT/bin/conda``."""
        return self.root / "bin" / "conda"

    @property
    def micromamba(self) -> Path:
        """``ROOT/bin/micromamba``."""
        return self.root / "bin" / "micromamba"

    @property
    def condabin(self) -> Path:
        """Directory holding only ``conda``."""
        return self.root / "condabin"

    @property
    def mambabin(self) -> Path:
        """Directory holding only ``micromamba``."""
        return self.root / "mambabin"

    @property
    def envs(self) -> Path:
        """``ROOT/envs`` (the first envs dir)."""
        return self.root / "envs"

    @property
    def pkgs(self) -> Path:
        """The package cache used by this root."""
        return Path(json.loads((self.root / "standin.json").read_text())["pkgs_dir"])

    def calls(
        self, subcommand: Optional[str] = None, prog: Optional[str] = None
    ) -> List[Dict[str, Any]]:
        """Logged invocations, optionally only one subcommand (``create``, ``run``...)."""
        log = self.root / "calls.jsonl"
        records = (
            [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        )
        for rec in records:
            rec["subcommand"] = next((a for a in rec["argv"][1:] if not a.startswith("-")), None)
        return [
            r
            for r in records
            if (subcommand is None or r["subcommand"] == subcommand)
            and (prog is None or r["prog"] == prog)
        ]

    def _prepend_path(self, env: Mapping[str, str], directory: Path) -> Dict[str, str]:
        new = dict(env)
        new["PATH"] = os.pathsep.join([str(directory), *filter(None, [env.get("PATH", "")])])
        return new

    def env_with_conda_on_path(self, env: Mapping[str, str]) -> Dict[str, str]:
        """Copy of ``env`` with ``ROOT/condabin`` first on PATH."""
        return self._prepend_path(env, self.condabin)

    def env_with_micromamba_on_path(self, env: Mapping[str, str]) -> Dict[str, str]:
        """Copy of ``env`` with ``ROOT/mambabin`` first on PATH."""
        return self._prepend_path(env, self.mambabin)

    def env_with_conda_exe(self, env: Mapping[str, str]) -> Dict[str, str]:
        """Copy of ``env`` with ``CONDA_EXE`` pointing at the stand-in."""
        return {**env, "CONDA_EXE": str(self.conda)}

    def env_with_mamba_exe(self, env: Mapping[str, str]) -> Dict[str, str]:
        """Copy of ``env`` with ``MAMBA_EXE``/``MAMBA_ROOT_PREFIX`` set for micromamba."""
        return {**env, "MAMBA_EXE": str(self.micromamba), "MAMBA_ROOT_PREFIX": str(self.root)}

    def run(
        self,
        *args: str,
        prog: str = "conda",
        env: Optional[Mapping[str, str]] = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run the stand-in (captured, text) and return the completed process."""
        exe = self.root / "bin" / prog
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 120)
        return subprocess.run(
            [str(exe), *args], env=dict(env) if env is not None else None, **kwargs
        )


def make_conda_root(
    root: Path, channels: Sequence[str], pkgs_dir: Path, **settings: Any
) -> CondaRoot:
    """Create a fake conda root at ``root`` (wrappers, config, envs/, conda-meta/).

    ``settings`` go into ``standin.json`` (``personality``, ``micromamba_version``,
    ``custom_channels``...: see the stand-in's docstring).
    """
    for sub in ("bin", "condabin", "mambabin", "envs", "conda-meta", "etc/conda"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "conda-meta" / "history").write_text("")
    config = {
        "channels": list(channels),
        "pkgs_dir": str(pkgs_dir),
        "envs_dirs": [str(root / "envs")],
        **settings,
    }
    (root / "standin.json").write_text(json.dumps(config, indent=2))
    script = (
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -I "{STANDIN}" '
        f'--standin-root "{root}" --standin-argv0 "$0" "$@"\n'
    )
    for rel in ("bin/conda", "bin/micromamba", "bin/mamba", "condabin/conda",
                "mambabin/micromamba"):
        path = root / rel
        path.write_text(script)
        path.chmod(0o755)
    return CondaRoot(root=root, channels=list(channels))


@pytest.fixture(scope="session")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Channel:
    """The session's read-only test channel."""
    return Channel(channel_builder.build_test_channel(tmp_path_factory.mktemp("channel")))


@pytest.fixture(scope="session")
def pkgs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package cache shared by all fake roots of this session (rattler locks it)."""
    return tmp_path_factory.mktemp("pkgs")


@pytest.fixture
def fresh_channel(channel: Channel, tmp_path: Path) -> Channel:
    """A private, modifiable copy of the test channel."""
    dest = tmp_path / "fresh-channel"
    shutil.copytree(channel.path, dest)
    return Channel(dest)


@pytest.fixture
def conda_root_factory(
    tmp_path: Path, channel: Channel, pkgs_dir: Path
) -> Callable[..., CondaRoot]:
    """Make fake conda roots: ``factory(channels=None, name="root")``."""

    def factory(
        channels: Optional[Sequence[str]] = None, name: str = "root", **settings: Any
    ) -> CondaRoot:
        return make_conda_root(
            tmp_path / name, [channel.url] if channels is None else channels, pkgs_dir,
            **settings
        )

    return factory


@pytest.fixture
def conda_root(conda_root_factory: Callable[..., CondaRoot]) -> CondaRoot:
    """A fresh fake conda root using the session test channel."""
    return conda_root_factory()


def _has_conda(directory: str) -> bool:
    return any(
        os.access(os.path.join(directory, n), os.X_OK) for n in ("conda", "mamba", "micromamba")
    )


def isolated_environ(base: Mapping[str, str], tmp: Path) -> Dict[str, str]:
    """``base`` with HOME/XDG dirs under ``tmp``, no conda variables, no conda on PATH."""
    env = {
        k: v
        for k, v in base.items()
        if not (
            k.startswith(("CONDA_", "MAMBA_", "_CE_")) or k in ("CONDARC", "MAMBARC", "CONDA_EXE")
        )
    }
    home = tmp / "home"
    dirs = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    env["PATH"] = os.pathsep.join(
        p for p in base.get("PATH", "").split(os.pathsep) if p and not _has_conda(p)
    )
    # With no conda found, conda-execute downloads micromamba from the internet by default:
    # refused here, so no test ever goes out (bootstrap tests allow it from a loopback server).
    env["CONDA_EXECUTE_BOOTSTRAP"] = "0"
    return env


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dict[str, str]]:
    """Isolate ``os.environ`` (HOME, XDG, CONDA_*, PATH) and return it as a dict."""
    env = isolated_environ(os.environ, tmp_path / "isolated")
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield dict(env)


@pytest.fixture
def public_dir() -> Iterator[str]:
    """A directory an unprivileged user can reach (pytest's tmp dirs are private to root)."""
    path = tempfile.mkdtemp(prefix="ce-public-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The zipapp, built once per test process the way users build it (build_zipapp.py)."""
    out = tmp_path_factory.mktemp("dist") / "conda-execute.pyz"
    subprocess.run([sys.executable, str(TESTS_DIR.parent / "build_zipapp.py"), "--output", str(out)],
                   check=True, capture_output=True)
    return str(out)


def in_ci() -> bool:
    """CI runs with CI=true: there a missing prerequisite fails instead of skipping."""
    return os.environ.get("CI", "").lower() == "true"


def require(present: object, what: str) -> None:
    """A test's prerequisite: if missing, fail in CI and skip elsewhere (never a quiet pass)."""
    if not present:
        (pytest.fail if in_ci() else pytest.skip)(f"missing prerequisite: {what}")


def _python_version(exe: str) -> tuple:
    out = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True)
    return tuple(int(p) for p in out.stdout.split()) if out.returncode == 0 else ()


def other_pythons():
    """Every Python 3.8+ interpreter this machine has: 3.8 and one newer at least (in CI; a
    machine with fewer skips the tests that use them)."""
    found = _pythons_here()
    versions = sorted(_python_version(exe) for exe in found)
    require(len(found) > 1 and versions[0] == (3, 8),
            f"Python 3.8 and a newer one (found {versions})")
    return found


def _pythons_here():
    found = {os.path.realpath(sys.executable)}
    for version in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"):
        exe = shutil.which(f"python{version}")
        if exe and "/shims/" not in exe:  # a pyenv shim fails for versions not selected
            found.add(os.path.realpath(exe))
    import pwd  # the real home: the isolated_env fixture points HOME at a temporary dir

    pyenv = os.path.join(os.environ.get("PYENV_ROOT") or os.path.join(
        pwd.getpwuid(os.getuid()).pw_dir, ".pyenv"), "versions")
    for d in sorted(os.listdir(pyenv)) if os.path.isdir(pyenv) else []:
        major_minor = tuple(int(p) for p in d.split(".")[:2] if p.isdigit())
        exe = os.path.join(pyenv, d, "bin", "python3")
        if len(major_minor) == 2 and major_minor >= (3, 8) and os.path.exists(exe):
            found.add(os.path.realpath(exe))
    return sorted(found)


# --------------------------------------------------------------------------- back ends

#: The back ends the behaviour tests run on: id -> (program name, standin.json settings).
#: conda 26 (conda's command line), micromamba 2.0.5 and mamba 2.x (libmamba's), and
#: micromamba 1.5 (libmamba 1.5's messages). mamba 1.x speaks conda's command line: its kind
#: detection is tested in test_backends.py.
BACKENDS = {
    "conda": ("conda", {}),
    "micromamba": ("micromamba", {}),
    "mamba2": ("mamba", {}),
    "micromamba1.5": ("micromamba", {"micromamba_version": "1.5.8"}),
}


@dataclass
class Backend:
    """One package manager personality in its own fake root, alone on a PATH directory."""

    id: str
    prog: str
    root: CondaRoot

    @property
    def exe(self) -> Path:
        """The program in ``ROOT/bin``."""
        return self.root.root / "bin" / self.prog

    @property
    def bindir(self) -> Path:
        """A directory holding only this program (what PATH finds)."""
        return self.root.root / f"only-{self.prog}"

    def env_on_path(self, env: Mapping[str, str]) -> Dict[str, str]:
        """Copy of ``env`` with :attr:`bindir` first on PATH."""
        return self.root._prepend_path(env, self.bindir)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, conda_root_factory: Callable[..., CondaRoot]
            ) -> Backend:
    """Each back end in turn (see :data:`BACKENDS`), with the session's test channel."""
    prog, settings = BACKENDS[request.param]
    root = conda_root_factory(name=f"root-{request.param}", **settings)
    only = root.root / f"only-{prog}"
    only.mkdir()
    shutil.copy(root.root / "bin" / prog, only / prog)
    return Backend(request.param, prog, root)
def trickle(handler: Any, head: bytes, release: Any, every: float) -> None:
    """From an http.server HANDLER: send HEAD raw, then a byte every EVERY seconds until
    RELEASE (a threading.Event) is set or the client has gone; then close."""
    handler.wfile.write(head)
    try:
        while not release.wait(every):
            handler.wfile.write(b"a")
    except OSError:  # the client gave up
        pass
    handler.close_connection = True
