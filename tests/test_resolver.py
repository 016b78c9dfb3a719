"""Issue 23 item 4: the download deadline covers name lookup too.

A resolver that never answers comes from tests/stall_getaddrinfo.c, an LD_PRELOAD shim built
here with the system's C compiler: getaddrinfo() of a name ending in `.stall.test` records the
name (STALL_LOG) and never returns; every other name goes to the real resolver. Then

  * `conda-execute https://x.stall.test/script.py` with CONDA_EXECUTE_DOWNLOAD_TIMEOUT=2 must
    end within seconds, exit 2 with one line (`URL: download failed: timed out after 2 s
    looking up x.stall.test`), the same after a redirect from a loopback server;
  * the micromamba bootstrap from `https://x.stall.test/...` (micromamba-url) with
    bootstrap-timeout 2 must end with exit 74 and one error line after its announcement.

Without the bound, each run waits for the resolver forever: the subprocess timeout (30 s)
turns that into a failure that says so. Through the built pyz and `python -m conda_execute`.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIM_SOURCE = os.path.join(ROOT, "tests", "stall_getaddrinfo.c")
STALLED = "x.stall.test"
DEADLINE = 2  # seconds: CONDA_EXECUTE_DOWNLOAD_TIMEOUT, and bootstrap-timeout
LIMIT = 30  # seconds a run may take before the test calls it hung


@pytest.fixture(scope="session")
def stall_shim(tmp_path_factory):
    """tests/stall_getaddrinfo.c compiled (once) into a shared object; its path."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler (gcc or cc) to build the stalling resolver shim")
    out = tmp_path_factory.mktemp("stall") / "stall_getaddrinfo.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-o", str(out), SHIM_SOURCE, "-ldl"],
                   check=True, capture_output=True, timeout=120)
    return str(out)


def stalled_env(env, shim, log, **extra):
    """ENV without proxies (a proxy would do the lookup, not us), with the shim preloaded."""
    env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    env.update(LD_PRELOAD=shim, STALL_LOG=str(log), CONDA_EXECUTE_DOWNLOAD_TIMEOUT=str(DEADLINE))
    env.update(extra)
    return env


def run_tool(how, pyz, env, *args):
    """conda-execute ARGS (HOW: pyz or module); (process, seconds). A run still going after
    LIMIT seconds fails the test: the lookup was not bounded."""
    argv0 = [sys.executable, pyz] if how == "pyz" else [sys.executable, "-m", "conda_execute"]
    if how == "module":
        env = dict(env, PYTHONPATH=ROOT)
    start = time.monotonic()
    try:
        proc = subprocess.run([*argv0, *args], env=env, capture_output=True, text=True,
                              timeout=LIMIT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        so_far = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        pytest.fail(f"still running after {LIMIT} s with a resolver that never answers and a "
                    f"{DEADLINE} s deadline: name lookup is not bounded by the deadline "
                    f"(stderr so far: {so_far!r})")
    return proc, time.monotonic() - start


def looked_up(log):
    return log.read_text().split() if log.exists() else []


def assert_lookup_timeout_line(line, host=STALLED, seconds=DEADLINE):
    """The one error line: the deadline, the name lookup and the host named."""
    assert "download failed: " in line, line
    assert f"timed out after {seconds:g} s" in line, line
    assert re.search(r"looking up|name lookup|resolv", line), line
    assert host in line.split("download failed: ", 1)[1], line


# --------------------------------------------------------------------------- the shim itself


def test_the_shim_stalls_the_stalled_names_only(stall_shim, isolated_env, tmp_path):
    """Under the shim socket.getaddrinfo of x.stall.test is still waiting after 3 s, while
    localhost resolves: the tests below fail for the right reason."""
    log = tmp_path / "lookups"
    code = textwrap.dedent("""
        import socket, sys, threading
        result = {}
        def look(name):
            try:
                result[name] = socket.getaddrinfo(name, 443)[0][4][0]
            except OSError as e:
                result[name] = repr(e)
        for name in sys.argv[1:]:
            t = threading.Thread(target=look, args=(name,), daemon=True)
            t.start()
            t.join(3)
            print(name, "STALLED" if t.is_alive() else result[name], flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code, STALLED, "localhost", "a.b.stall.test"],
                          env=stalled_env(isolated_env, stall_shim, log), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{STALLED} STALLED" and lines[2] == "a.b.stall.test STALLED", lines
    assert lines[1].split()[1] in ("127.0.0.1", "::1"), lines
    assert looked_up(log) == [STALLED, "a.b.stall.test"]


# --------------------------------------------------------------------------- a script URL


@pytest.mark.parametrize("how", ["pyz", "module"])
def test_script_url_with_a_stalled_resolver_ends_at_the_deadline(how, pyz, stall_shim,
                                                                 isolated_env, tmp_path):
    log = tmp_path / "lookups"
    url = f"https://{STALLED}/script.py"
    proc, took = run_tool(how, pyz, stalled_env(isolated_env, stall_shim, log), url)
    assert looked_up(log) == [STALLED], "the lookup never reached the stalled resolver"
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{url}: download failed: "), lines[0]
    assert_lookup_timeout_line(lines[0])
    assert DEADLINE - 0.5 < took < DEADLINE + 10, f"took {took:.1f} s for a {DEADLINE} s deadline"


class Redirector:
    """A loopback server: /s.py redirects to https://x.stall.test/s.py; /ok.py is a script."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/ok.py":
                    body = b"# conda execute\n# env: [python]\nprint('hi')\n"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(302)
                self.send_header("Location", f"https://{STALLED}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path, host="127.0.0.1"):
        return f"http://{host}:{self.httpd.server_port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def redirector():
    server = Redirector()
    yield server
    server.close()


@pytest.mark.parametrize("how", ["pyz", "module"])
def test_a_redirect_to_a_stalled_name_ends_at_the_deadline(how, pyz, stall_shim, isolated_env,
                                                           tmp_path, redirector):
    log = tmp_path / "lookups"
    url = redirector.url("/s.py")
    proc, took = run_tool(how, pyz, stalled_env(isolated_env, stall_shim, log), url)
    assert looked_up(log) == [STALLED]
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"{url}: download failed: "), line
    assert_lookup_timeout_line(line)
    assert took < DEADLINE + 10, f"took {took:.1f} s"


@pytest.mark.parametrize("how", ["pyz", "module"])
def test_names_that_answer_still_download_under_the_shim(how, pyz, stall_shim, isolated_env,
                                                         tmp_path, redirector):
    """localhost (a name: the real resolver, through the bounded lookup) and 127.0.0.1."""
    log = tmp_path / "lookups"
    for host in ("localhost", "127.0.0.1"):
        proc, _ = run_tool(how, pyz, stalled_env(isolated_env, stall_shim, log), "--env-dir",
                           str(tmp_path / "envs"), "--dry-run", redirector.url("/ok.py", host))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["env"] == ["python"]
    assert looked_up(log) == []


# --------------------------------------------------------------------------- the bootstrap


@pytest.mark.parametrize("how", ["pyz", "module"])
def test_micromamba_download_with_a_stalled_resolver_ends_at_its_timeout(how, pyz, stall_shim,
                                                                          isolated_env, tmp_path):
    """No conda: micromamba is downloaded from micromamba-url, whose name never resolves;
    bootstrap-timeout 2 s bounds the lookup (its deadline, 10 times that, is never reached)."""
    log = tmp_path / "lookups"
    url = f"https://{STALLED}/api/micromamba/linux-64/latest"
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    env = stalled_env({k: v for k, v in isolated_env.items() if k != "CONDA_EXECUTE_BOOTSTRAP"},
                      stall_shim, log, CONDA_EXECUTE_MICROMAMBA_URL=url,
                      CONDA_EXECUTE_BOOTSTRAP_TIMEOUT=str(DEADLINE), TMPDIR=str(tmp))
    script = tmp_path / "s.py"
    script.write_text("# conda execute\n# env: [python]\nprint('ran')\n")
    proc, took = run_tool(how, pyz, env, "--env-dir", str(tmp_path / "envs"), "--bootstrap",
                          str(script))
    assert looked_up(log) == [STALLED], "the download never asked the stalled resolver"
    assert proc.returncode == 74 and proc.stdout == "", (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "downloading micromamba from" in lines[0], proc.stderr
    assert lines[1].startswith(f"conda-execute: error: cannot bootstrap micromamba from {url}: "
                               "download failed: "), lines[1]
    assert_lookup_timeout_line(lines[1])
    assert took < DEADLINE + 10, f"took {took:.1f} s"
    cache = os.path.join(env["XDG_CACHE_HOME"], "conda-execute")
    assert not os.path.exists(os.path.join(cache, "bin", "micromamba"))
    assert os.listdir(tmp) == []  # nothing left behind
