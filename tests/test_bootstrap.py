"""A bare machine: with no conda found, micromamba is downloaded (by default, announced),
checked and installed, from a loopback server; or the download is refused, with exit 69.

The served `.tar.bz2` holds a `bin/micromamba` that is a wrapper around the stand-in's
micromamba personality, so the whole path (download, extract, install, create, exec) is real.
Every refused archive must leave nothing behind: no cache dir, no temp file, no environment.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN = os.path.join(ROOT, "tests", "standin", "conda_standin.py")
sys.path.insert(0, ROOT)
from conftest import trickle  # noqa: E402
from test_project import readme_commands  # noqa: E402

import conda_execute  # noqa: E402

SCRIPT = """
    # conda execute
    # env:
    #  - {spec}
    import pathlib, sys
    pathlib.Path(sys.argv[1]).write_text("ran")
    print("ran in", sys.prefix)
"""


class Server:
    """A loopback HTTP server: ROUTES maps a path to bytes or a special behaviour."""

    def __init__(self):
        self.routes, self.hits, self.lock = {}, {}, threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                kind, data = route
                if kind == "trickle-headers":  # a header's byte every 0.1 s, never ending
                    trickle(self, b"HTTP/1.0 200 OK\r\nX-Slow: ", outer.release, 0.1)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-tar")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if kind == "ok":
                    self.wfile.write(data)
                elif kind == "truncated":  # half the promised bytes, then close
                    self.wfile.write(data[:len(data) // 2])
                    self.close_connection = True
                elif kind == "stall":  # a few bytes, then nothing until the test ends
                    self.wfile.write(data[:10])
                    self.wfile.flush()
                    outer.release.wait(60)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def add(self, path, data, kind="ok"):
        self.routes[path] = (kind, data)
        return self.url(path)

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def tar_bz2(members):
    """A .tar.bz2 from (name, kind, payload) with kind file/symlink/hardlink/dir."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 0, 0o755
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "dir": tarfile.DIRTYPE}[kind]
            info.linkname = payload.decode() if kind != "dir" else ""
            tf.addfile(info)
    return buf.getvalue()


def wrapper(conda_root):
    """bin/micromamba: a shell script running the stand-in's micromamba personality."""
    return (f'#!/bin/sh\nexec "{sys.executable}" -I "{STANDIN}" --standin-root '
            f'"{conda_root.root}" --standin-argv0 "$0" "$@"\n').encode()


def micromamba_archive(conda_root, extra=()):
    """A package shaped like the real one: info/ files beside bin/micromamba."""
    return tar_bz2([("info/index.json", "file", b'{"name": "micromamba"}'),
                    ("bin", "dir", b""), ("bin/micromamba", "file", wrapper(conda_root)),
                    *extra])


DEAD_URL = "http://127.0.0.1:9/no-server-here"  # a test that forgets a URL never goes out


class Bare:
    """A machine with no conda: PATH has none, HOME/XDG/TMPDIR are private to the test.

    As on a user's machine, nothing refuses the download (isolated_env's
    CONDA_EXECUTE_BOOTSTRAP=0 is removed); the URL defaults to a loopback port with no server.
    """

    def __init__(self, env, tmp_path, pyz):
        self.env = {k: v for k, v in env.items() if k != "CONDA_EXECUTE_BOOTSTRAP"}
        self.env["CONDA_EXECUTE_MICROMAMBA_URL"] = DEAD_URL
        self.tmp = tmp_path / "tmpdir"
        self.tmp.mkdir()
        self.env["TMPDIR"] = str(self.tmp)
        self.cache = os.path.join(self.env["XDG_CACHE_HOME"], "conda-execute")
        self.pyz, self.dir = pyz, tmp_path

    def script(self, name="s.py", spec="python"):
        path = self.dir / name
        path.write_text(textwrap.dedent(SCRIPT.format(spec=spec)).lstrip("\n"))
        return str(path)

    def run(self, *args, env=None, module=False, timeout=180):
        argv0 = [sys.executable, "-m", "conda_execute"] if module else [sys.executable, self.pyz]
        full = {**self.env, **(env or {})}
        if module:
            full["PYTHONPATH"] = ROOT
        return subprocess.run([*argv0, *args], capture_output=True, text=True, env=full,
                              timeout=timeout)

    def left_behind(self):
        """Everything under the cache dir and TMPDIR (both must be empty after a failure)."""
        found = [str(self.tmp / n) for n in os.listdir(self.tmp)]
        for top, dirs, files in os.walk(self.cache):
            found += [os.path.join(top, n) for n in dirs + files]
        if os.path.exists(self.cache):
            found.append(self.cache)
        return found


@pytest.fixture
def conda_root(conda_root_factory, channel):
    """The stand-in reads the bootstrapped root's .condarc (channels: conda-forge) as micromamba
    does; offline, conda-forge is mapped to the test channel (conda's custom_channels)."""
    return conda_root_factory(custom_channels={"conda-forge": channel.url})


@pytest.fixture
def bare(isolated_env, tmp_path, pyz):
    return Bare(isolated_env, tmp_path, pyz)


def test_bootstrap_by_default_downloads_installs_and_runs_the_script(bare, server, conda_root,
                                                                      tmp_path):
    url = server.add("/mm/linux-64/latest", micromamba_archive(conda_root))
    marker = tmp_path / "ran"
    script = bare.script()
    proc = bare.run(script, str(marker), env={"CONDA_EXECUTE_MICROMAMBA_URL": url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ran in ") and marker.read_text() == "ran"
    # announced in one line: what, from where, into where, how to refuse
    announced = [ln for ln in proc.stderr.splitlines() if "downloading micromamba" in ln]
    assert announced == [f"conda-execute: no conda, mamba or micromamba found; downloading "
                         f"micromamba from {url} into {bare.cache} (once; to refuse: "
                         "--no-bootstrap, CONDA_EXECUTE_BOOTSTRAP=0 or 'bootstrap: false' in a "
                         "condarc)"], proc.stderr
    assert server.hits == {"/mm/linux-64/latest": 1}

    exe = os.path.join(bare.cache, "bin", "micromamba")
    assert stat.S_IMODE(os.stat(exe).st_mode) == 0o755
    assert Path(exe).read_bytes() == wrapper(conda_root)
    for d in (bare.cache, os.path.join(bare.cache, "bin")):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    rootp = os.path.join(bare.cache, "root")
    assert Path(rootp, ".condarc").read_text() == "channels:\n  - conda-forge\n"
    assert sorted(os.listdir(bare.cache)) == ["bin", "root"]  # no lock, no temp files
    assert os.listdir(os.path.join(bare.cache, "bin")) == ["micromamba"]
    # the archive sha256 is printed, so users can pin it
    assert hashlib.sha256(micromamba_archive(conda_root)).hexdigest() in proc.stderr

    creates = conda_root.calls("create")
    assert len(creates) == 1
    argv = creates[0]["argv"]
    assert argv[:3] == ["micromamba", "create", "-r"] and argv[3] == rootp
    env_dir = os.path.join(bare.env["HOME"], ".conda", "tmp_envs")
    assert argv[argv.index("-p") + 1].startswith(env_dir + os.sep)

    # from then on it is used without --bootstrap and without downloading again
    marker.unlink()
    again = bare.run(bare.script("t.py", "python >=3"), str(marker))
    assert again.returncode == 0, again.stderr
    assert marker.read_text() == "ran" and "downloading" not in again.stderr
    assert server.hits == {"/mm/linux-64/latest": 1}
    assert len(conda_root.calls("create")) == 2


@pytest.mark.parametrize("how", ["env", "condarc"])
def test_bootstrap_enabled_by_env_var_or_condarc_with_a_pin(how, bare, server, conda_root,
                                                            tmp_path):
    data = micromamba_archive(conda_root)
    url = server.add("/micromamba.tar.bz2", data)
    pin = hashlib.sha256(data).hexdigest()
    env = {}
    if how == "env":
        env = {"CONDA_EXECUTE_BOOTSTRAP": "1", "CONDA_EXECUTE_MICROMAMBA_URL": url,
               "CONDA_EXECUTE_MICROMAMBA_SHA256": pin.upper()}
    else:
        del bare.env["CONDA_EXECUTE_MICROMAMBA_URL"]  # the condarc's URL, then
        rc = os.path.join(bare.env["HOME"], ".condarc")
        with open(rc, "w") as f:
            f.write(f"channels: [conda-forge]\nconda-execute:\n  bootstrap: true\n"
                    f"  micromamba-url: {url}\n  micromamba-sha256: {pin}\n")
    marker = tmp_path / "ran"
    proc = bare.run(bare.script(), str(marker), env=env, module=True)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "ran"
    assert server.hits == {"/micromamba.tar.bz2": 1}


def test_eight_concurrent_first_runs_download_once(bare, server, conda_root, tmp_path):
    url = server.add("/mm", micromamba_archive(conda_root))
    specs = ["python", "python >=3", "python >=3.0", "python >=2", "python >=3.1",
             "python >=3.2", "python >=3.3", "python >=3.4"]
    env = {**bare.env, "CONDA_EXECUTE_MICROMAMBA_URL": url}
    procs = []
    for i, spec in enumerate(specs):
        script = bare.script(f"s{i}.py", spec)
        procs.append(subprocess.Popen([sys.executable, bare.pyz, script,
                                       str(tmp_path / f"ran{i}")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err
    assert all((tmp_path / f"ran{i}").read_text() == "ran" for i in range(8))
    assert server.hits == {"/mm": 1}
    assert sum("downloading micromamba" in err for _, err in results) == 1
    assert len(conda_root.calls("create")) == 8
    assert sorted(os.listdir(bare.cache)) == ["bin", "root"]


def _corrupt(data):
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 64]) + \
        data[middle + 64:]


BAD = {
    # name: (archive maker, served as, extra env, expected text in the error)
    "corrupt": (lambda r: _corrupt(micromamba_archive(r)), "ok", {}, "not a readable .tar.bz2"),
    "not-bzip2": (lambda r: b"<html>not a tarball</html>", "ok", {}, "not a readable .tar.bz2"),
    "wrong-sha256": (micromamba_archive, "ok", {"CONDA_EXECUTE_MICROMAMBA_SHA256": "0" * 64},
                     "sha256 mismatch"),
    "truncated": (micromamba_archive, "truncated", {}, "truncated"),
    "404": (None, "ok", {}, "HTTP 404"),
    "dotdot": (lambda r: micromamba_archive(r, [("../evil", "file", b"x")]), "ok", {},
               "unsafe member path '../evil'"),
    "dotdot-inside": (lambda r: micromamba_archive(r, [("bin/../../evil", "file", b"x")]), "ok",
                      {}, "unsafe member path"),
    "absolute": (lambda r: tar_bz2([("/bin/micromamba", "file", wrapper(r))]), "ok", {},
                 "unsafe member path '/bin/micromamba'"),
    "symlink": (lambda r: tar_bz2([("bin/micromamba", "symlink", b"/bin/sh")]), "ok", {},
                "bin/micromamba is a link or not a regular file"),
    "hardlink": (lambda r: tar_bz2([("info/x", "file", wrapper(r)),
                                    ("bin/micromamba", "hardlink", b"info/x")]), "ok", {},
                 "bin/micromamba is a link or not a regular file"),
    "twice": (lambda r: micromamba_archive(r, [("./bin/micromamba", "file", b"#!/bin/sh\n")]),
              "ok", {}, "more than one bin/micromamba"),
    "missing": (lambda r: tar_bz2([("info/index.json", "file", b"{}")]), "ok", {},
                "no bin/micromamba in it"),
    "does-not-run": (lambda r: tar_bz2([("bin/micromamba", "file", b"#!/bin/sh\nexit 3\n")]),
                     "ok", {}, "the extracted micromamba does not run"),
    "timeout": (micromamba_archive, "stall", {"CONDA_EXECUTE_BOOTSTRAP_TIMEOUT": "0.5"},
                "timed out"),
    "trickled-headers": (micromamba_archive, "trickle-headers",  # held it forever, 1 s a read
                         {"CONDA_EXECUTE_BOOTSTRAP_TIMEOUT": "0.3"}, "timed out after 3 s"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_download_is_refused_and_leaves_nothing(case, bare, server, conda_root, tmp_path):
    make, kind, env, expected = BAD[case]
    url = server.add("/mm", make(conda_root), kind) if make else server.url("/nothing-here")
    marker = tmp_path / "ran"
    proc = bare.run(bare.script(), str(marker), env={"CONDA_EXECUTE_MICROMAMBA_URL": url, **env})
    assert proc.returncode == conda_execute.EXIT_BOOTSTRAP_FAILED == 74, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and len(proc.stderr.splitlines()) <= 2, proc.stderr
    assert errors[0].startswith(f"conda-execute: error: cannot bootstrap micromamba from {url}: ")
    assert expected in errors[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not marker.exists()
    assert bare.left_behind() == []
    assert conda_root.calls("create") == []
    envs = os.path.join(bare.env["HOME"], ".conda", "tmp_envs", conda_execute.conda_platform())
    assert [n for n in os.listdir(envs) if os.path.isdir(os.path.join(envs, n))] == []


@pytest.mark.parametrize("url", ["http://example.invalid/micromamba.tar.bz2",
                                 "ftp://127.0.0.1/micromamba.tar.bz2"])
def test_insecure_transport_is_refused_before_any_download(url, bare, tmp_path):
    proc = bare.run("-q", "--bootstrap", bare.script(), str(tmp_path / "ran"),
                    env={"CONDA_EXECUTE_MICROMAMBA_URL": url})
    assert proc.returncode == 74
    assert proc.stderr.startswith("conda-execute: error: cannot bootstrap micromamba: refusing")
    assert proc.stderr.count("\n") == 1 and bare.left_behind() == []


def test_bad_pin_is_a_usage_error(bare, tmp_path):
    proc = bare.run("--bootstrap", bare.script(), str(tmp_path / "ran"),
                    env={"CONDA_EXECUTE_MICROMAMBA_SHA256": "abc"})
    assert proc.returncode == 2
    assert "micromamba-sha256 must be 64 hex digits" in proc.stderr
    assert bare.left_behind() == []


REFUSALS = {
    # how: (command line, environment, condarc text, what the message says refused it, how to allow)
    "option": (["--no-bootstrap"], {}, "", "--no-bootstrap", "run without --no-bootstrap"),
    "variable": ([], {"CONDA_EXECUTE_BOOTSTRAP": "0"}, "", "CONDA_EXECUTE_BOOTSTRAP=0",
                 "unset CONDA_EXECUTE_BOOTSTRAP or add --bootstrap"),
    "condarc": ([], {}, "conda-execute:\n  bootstrap: false\n", "'bootstrap: false' at {rc}:2",
                "remove 'bootstrap: false' at {rc}:2 or add --bootstrap"),
}


@pytest.mark.parametrize("how", sorted(REFUSALS))
def test_refused_download_exits_69_saying_what_was_searched_and_how_to_allow_it(
        how, bare, server, tmp_path):
    args, env, condarc, refused_by, allow = REFUSALS[how]
    rc = os.path.join(bare.env["HOME"], ".condarc")
    if condarc:
        with open(rc, "w") as f:
            f.write(condarc)
    url = server.add("/mm", b"unused")
    proc = bare.run(*args, bare.script(), str(tmp_path / "ran"),
                    env={"CONDA_EXECUTE_MICROMAMBA_URL": url, **env})
    assert proc.returncode == conda_execute.EXIT_NO_CONDA == 69
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    message = proc.stderr
    searched = ("(searched --conda, CONDA_EXECUTE_CONDA, CONDA_EXE, MAMBA_EXE, conda, mamba, "
                f"micromamba on PATH, and {bare.cache}/bin/micromamba)")
    for needle in ("conda-execute: error: no conda, mamba or micromamba found " + searched,
                   "downloading micromamba was refused by " + refused_by.format(rc=rc),
                   "install Miniforge", "CONDA_EXE=/path/to/conda",
                   "allow the download: " + allow.format(rc=rc)):
        assert needle in message, message
    assert server.hits == {} and bare.left_behind() == []
    assert not (tmp_path / "ran").exists()


def test_bootstrap_option_overrides_a_refusal_in_the_environment(bare, server, conda_root,
                                                                 tmp_path):
    url = server.add("/mm", micromamba_archive(conda_root))
    marker = tmp_path / "ran"
    proc = bare.run("--bootstrap", bare.script(), str(marker),
                    env={"CONDA_EXECUTE_MICROMAMBA_URL": url, "CONDA_EXECUTE_BOOTSTRAP": "0"})
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "ran" and server.hits == {"/mm": 1}
    both = bare.run("--bootstrap", "--no-bootstrap", bare.script(), str(marker))
    assert both.returncode == 2
    assert both.stderr == "conda-execute: error: use --bootstrap or --no-bootstrap, not both\n"


def fresh_clone(dest):
    """A git clone of this checkout, with the working tree's version of each tracked file."""
    if not os.path.exists(os.path.join(ROOT, ".git")) and not os.environ.get("CI"):
        pytest.skip("not a git checkout")
    subprocess.run(["git", "clone", "-q", ROOT, str(dest)], check=True, capture_output=True)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                             capture_output=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        here, there = os.path.join(ROOT, name), dest / name
        if os.path.exists(here):
            there.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(here, there)
        elif there.exists():
            there.unlink()
    return dest


def test_readme_first_command_on_a_fresh_clone_without_conda(bare, server, conda_root, tmp_path):
    """The README's first line, verbatim, on a bare machine: it builds the pyz, bootstraps
    micromamba (from a loopback server, set in the condarc as a mirror would be) and runs the
    example."""
    first = readme_commands()[0]
    assert first.startswith("python build_zipapp.py && "), first
    clone = fresh_clone(tmp_path / "clone")
    url = server.add("/mm/latest", micromamba_archive(conda_root))
    with open(os.path.join(bare.env["HOME"], ".condarc"), "w") as f:
        f.write(f"conda-execute:\n  micromamba-url: {url}\n")
    bindir = tmp_path / "python-bin"  # `python` is this Python, whatever the machine calls it
    bindir.mkdir()
    os.symlink(sys.executable, bindir / "python")
    env = {k: v for k, v in bare.env.items() if k != "CONDA_EXECUTE_MICROMAMBA_URL"}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(first, shell=True, cwd=clone, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (clone / "dist" / "conda-execute.pyz").is_file()
    prefix = next(ln for ln in proc.stdout.splitlines() if ln.startswith("hello from "))[11:]
    assert os.path.dirname(prefix) == os.path.join(bare.env["HOME"], ".conda", "tmp_envs",
                                                   conda_execute.conda_platform())
    assert proc.stdout.endswith("arguments: ['a', 'b']\n"), proc.stdout
    assert f"downloading micromamba from {url}" in proc.stderr
    assert server.hits == {"/mm/latest": 1}
    assert [c["prog"] for c in conda_root.calls("create")] == ["micromamba"]


@pytest.mark.parametrize("system,machine,expected", [
    ("linux", "x86_64", "linux-64"), ("linux", "aarch64", "linux-aarch64"),
    ("linux", "ppc64le", "linux-ppc64le"), ("darwin", "x86_64", "osx-64"),
    ("darwin", "arm64", "osx-arm64"), ("linux", "armv7l", None), ("sunos5", "i86pc", None)])
def test_platform_names_in_the_default_url(system, machine, expected, monkeypatch):
    monkeypatch.setattr(conda_execute.sys, "platform", system)
    monkeypatch.setattr(conda_execute.os, "uname",
                        lambda: os.uname_result(("x", "h", "r", "v", machine)))
    cfg = conda_execute.Config("/envs", 25.0, "", False)
    if expected is None:
        with pytest.raises(conda_execute.UsageError) as info:
            conda_execute.micromamba_url(cfg)
        assert info.value.code == 74 and "no static build" in str(info.value)
        # a configured URL without {platform} needs no platform name
        assert conda_execute.micromamba_url(cfg._replace(micromamba_url="file:///m")) == \
            "file:///m"
    else:
        assert conda_execute.micromamba_url(cfg) == \
            f"https://micro.mamba.pm/api/micromamba/{expected}/latest"
