"""Scripts that travel (issue 22): locks for several platforms, the lock inside the script, and
bundles that run with no network. Through the built pyz, on every back end of the stand-in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import conda_execute

HERE = conda_execute.conda_platform()
DEADLINE = 180
SCRIPT = ("#!/usr/bin/env bash\n# conda execute\n# env: [tool]\n# channels: [{url}]\n"
          "tool\n")


CONSOLE = os.path.join(os.path.dirname(sys.executable), "conda-execute")


@pytest.fixture(params=["pyz", "console"])
def ce(request, backend, isolated_env, tmp_path, pyz):
    """conda-execute as users start it: the built pyz, and the console script (whose bundles
    carry a pyz made from the module)."""
    env = backend.env_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    argv0 = [sys.executable, pyz] if request.param == "pyz" else [CONSOLE]

    def run(*args, extra_env=None):
        return subprocess.run([*argv0, *args], capture_output=True, text=True,
                              env={**env, **(extra_env or {})}, timeout=DEADLINE)
    run.env, run.argv0 = env, argv0[1:] if request.param == "pyz" else argv0
    return run


def sections(text):
    """{platform: [URL lines]} of a lock's text (side file or embedded block)."""
    found, current = {}, None
    for line in text.splitlines():
        line = line.lstrip("# ").strip() if line.startswith("#") else line.strip()
        if line.startswith("platform: "):
            current = found.setdefault(line.split(": ", 1)[1], [])
        elif "://" in line and current is not None and not line.startswith("sha256:"):
            current.append(line)
    return found


def open_text(path):
    with open(path) as f:
        return f.read()


def one_line(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_lock_for_three_platforms_then_runs_use_their_list(ce, fresh_channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=fresh_channel.url))
    proc = ce("--lock", "--platform", "linux-64", "--platform", "osx-arm64",
              "--platform", "linux-aarch64", str(script))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "s.sh.conda-lock").read_text()
    lists = sections(text)
    assert sorted(lists) == sorted({HERE, "linux-64", "osx-arm64", "linux-aarch64"})
    for platform, urls in lists.items():
        assert any("/noarch/tool-2.0-0.tar.bz2#" in u for u in urls), (platform, urls)
        assert all(f"/{platform}/" in u or "/noarch/" in u for u in urls), (platform, urls)
    assert text.count("# sha256: ") >= sum(len(u) for u in lists.values())
    # a newer package in the channel changes nothing: the run uses its list, no solve
    fresh_channel.add_package("tool", "3.0", noarch=True,
                              files={"bin/tool": "#!/bin/sh\necho tool 3.0\n"})
    shutil.rmtree(tmp_path / "envs")
    run = ce(str(script))
    assert (run.returncode, run.stdout) == (0, "tool 2.0\n"), run.stderr
    # CONDA_SUBDIR picks that platform's list
    dry = ce("--dry-run", "--locked", str(script), extra_env={"CONDA_SUBDIR": "linux-aarch64"})
    assert dry.returncode == 0 and json.loads(dry.stdout)["lock"] == str(script) + ".conda-lock"
    made = ce("--prefix", "--locked", str(script), extra_env={"CONDA_SUBDIR": "linux-aarch64"})
    assert made.returncode == 0, made.stderr
    prefix = made.stdout.strip()
    assert os.sep + "linux-aarch64" + os.sep in prefix
    meta = os.path.join(prefix, "conda-meta")
    subdirs = {json.loads(open_text(os.path.join(meta, n)))["subdir"]
               for n in os.listdir(meta) if n.endswith(".json")}
    assert subdirs == {"noarch"}  # tool is noarch; the list used was linux-aarch64's


def test_each_platform_list_is_what_conda_create_file_takes(ce, channel, tmp_path, backend):
    script = tmp_path / "p.py"
    script.write_text(f"# conda execute\n# env: [python, mylib]\n# channels: [{channel.url}]\n")
    assert ce("--lock", "--platform", "osx-arm64", str(script)).returncode == 0
    text = (tmp_path / "p.py.conda-lock").read_text()
    osx = sections(text)["osx-arm64"]
    assert any("/osx-arm64/python-" in u for u in osx) and any("/osx-arm64/mylib-" in u
                                                               for u in osx)
    assert all(u.rsplit("#", 1)[1] and len(u.rsplit("#", 1)[1]) == 32 for u in osx)
    # README's recipe: the platform's part, as it is, for `conda create --file`
    part = text.split("# platform: osx-arm64\n", 1)[1].split("# platform:", 1)[0]
    listing = tmp_path / "osx.txt"
    listing.write_text(part)
    made = subprocess.run([str(backend.exe), "create", "-p", str(tmp_path / "byhand"), "--yes",
                           "--file", str(listing)], capture_output=True, text=True,
                          env=ce.env, timeout=DEADLINE)
    assert made.returncode == 0, made.stderr


def test_bad_platforms_write_nothing(ce, channel, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(f"# conda execute\n# env: [python, linuxonly]\n"
                      f"# channels: [{channel.url}]\n")
    bad = ce("--lock", "--platform", "plan9-64", str(script))
    assert "--platform 'plan9-64': not a conda platform" in one_line(bad, 2)
    unsolvable = ce("--lock", "--platform", "osx-arm64", str(script))
    line = one_line(unsolvable, 70)
    assert "--platform osx-arm64: the specs have no solution there" in line, unsolvable.stderr
    assert not (tmp_path / "s.py.conda-lock").exists()
    assert not [n for n in os.listdir(tmp_path / "envs" / HERE) if n.startswith(".solve-")]


def test_a_lock_without_this_platform_warns_or_fails_with_locked(ce, channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=channel.url))
    assert ce("--lock", str(script)).returncode == 0
    other = {"CONDA_SUBDIR": "osx-arm64" if HERE != "osx-arm64" else "linux-64"}
    locked = ce("--dry-run", "--locked", str(script), extra_env=other)
    assert f"has no list for {other['CONDA_SUBDIR']}" in one_line(locked, 2)
    assert one_line(locked, 2).startswith(f"{script}.conda-lock:2: ")
    warned = ce("--dry-run", str(script), extra_env=other)
    assert warned.returncode == 0 and "has no list for" in warned.stderr
    assert json.loads(warned.stdout)["lock"] is None


def test_embedded_lock_travels_with_the_script(ce, fresh_channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=fresh_channel.url) + "echo done\n")
    script.chmod(0o750)
    proc = ce("--lock", "--embed", "--platform", "osx-arm64", str(script))
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "s.sh.conda-lock").exists()
    text = script.read_text()
    head = SCRIPT.format(url=fresh_channel.url)[:-len("tool\n")]
    assert text.startswith(head + "# /// conda-execute-lock\n# conda-execute-lock: 2\n")
    assert text.endswith("# ///\ntool\necho done\n") and sorted(sections(text)) == \
        sorted({HERE, "osx-arm64"})
    assert script.stat().st_mode & 0o777 == 0o750
    dry = json.loads(ce("--dry-run", "--locked", str(script)).stdout)
    assert dry["lock"] == str(script)
    # the script alone recreates the same environment, from its lock
    fresh_channel.add_package("tool", "3.0", noarch=True,
                              files={"bin/tool": "#!/bin/sh\necho tool 3.0\n"})
    shutil.rmtree(tmp_path / "envs")
    run = ce(str(script))
    assert (run.returncode, run.stdout) == (0, "tool 2.0\ndone\n"), run.stderr
    assert os.listdir(tmp_path / "envs" / HERE).count(dry["name"]) == 1
    # a second --lock --embed replaces the block in place
    before = script.read_text()
    assert ce("--lock", "--embed", "--platform", "osx-arm64", str(script)).returncode == 0
    assert script.read_text() == before
    # a hand edit of the metadata makes it stale: a warning, or an error with --locked
    script.write_text(before.replace("# env: [tool]", "# env: [tool, mylib]"))
    stale = ce("--dry-run", "--locked", str(script))
    assert "was made from other metadata" in one_line(stale, 2)
    # --lock --upgrade rewrites it (now with mylib)
    up = ce("--lock", "--upgrade", "--embed", str(script))
    assert up.returncode == 0, up.stderr
    assert "/tool-3.0-0.tar.bz2#" in script.read_text()
    # a side file and an embedded lock: one line, exit 2
    (tmp_path / "s.sh.conda-lock").write_text("x\n")
    both = ce("--dry-run", str(script))
    assert "keep one of them" in one_line(both, 2)
    refused = ce("--lock", "--embed", str(script))
    assert "there is a lock file" in one_line(refused, 2)


@pytest.mark.parametrize("name, prefix, block", [
    ("p.py", "# ", "# /// script\n# [tool.conda]\n# dependencies = ['tool']\n"
                   "# channels = ['{url}']\n# ///\n"),
    ("c.js", "// ", "// /// conda-script\n// channels = ['{url}']\n"
                    "// entrypoint = 'tool'\n// [dependencies]\n// tool = '*'\n"
                    "// /// end-conda-script\n"),
])
def test_embedded_lock_in_each_format(ce, channel, tmp_path, name, prefix, block):
    script = tmp_path / name
    script.write_text(block.format(url=channel.url) + "// code\n" * (name == "c.js"))
    assert ce("--lock", "--embed", str(script)).returncode == 0
    text = script.read_text()
    assert f"{prefix}/// conda-execute-lock\n{prefix}conda-execute-lock: 2\n" in text
    dry = ce("--dry-run", "--locked", str(script))
    assert dry.returncode == 0 and json.loads(dry.stdout)["lock"] == str(script), dry.stderr


def test_bundle_runs_offline_from_its_own_files(ce, backend, fresh_channel, tmp_path, pyz):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("the offline proof needs `unshare -n` as root (CI and this machine have it)")
    script = tmp_path / "src" / "s.sh"
    script.parent.mkdir()
    script.write_text(SCRIPT.format(url=fresh_channel.url))
    script.chmod(0o755)
    out = tmp_path / "bundle"
    proc = ce("--bundle", str(script), "--output", str(out), "--platform", "osx-arm64")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out)) == ["conda-execute.pyz", "packages", "s.sh",
                                      "s.sh.conda-lock"]
    assert (out / "packages" / "noarch" / "tool-2.0-0.tar.bz2").is_file()
    again = ce("--bundle", str(script), "--output", str(out))
    assert "it exists" in one_line(again, 2)
    # move the bundle, move the channel away, cut the network: it still runs
    moved = tmp_path / "elsewhere" / "b"
    moved.parent.mkdir()
    out.rename(moved)
    fresh_channel.path.rename(tmp_path / "channel-gone")
    env = dict(ce.env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "target-envs"))
    offline = subprocess.run(["unshare", "-n", sys.executable, str(moved / "conda-execute.pyz"),
                              str(moved / "s.sh")], capture_output=True, text=True, env=env,
                             timeout=DEADLINE)
    assert (offline.returncode, offline.stdout) == (0, "tool 2.0\n"), offline.stderr
    # an edited archive: exit 74, nothing half-made
    shutil.rmtree(tmp_path / "target-envs")
    archive = moved / "packages" / "noarch" / "tool-2.0-0.tar.bz2"
    archive.write_bytes(archive.read_bytes() + b"x")
    bad = subprocess.run(["unshare", "-n", sys.executable, str(moved / "conda-execute.pyz"),
                          str(moved / "s.sh")], capture_output=True, text=True, env=env,
                         timeout=DEADLINE)
    assert "does not match the lock's sha256" in one_line(bad, 74)
    made = tmp_path / "target-envs" / HERE
    assert not [n for n in os.listdir(made) if len(n) == 20] if made.exists() else True


def micromamba_package(conda_root, where):
    """A package shaped like micromamba's (info/, bin/micromamba) whose binary runs the
    stand-in's micromamba personality: what --with-micromamba downloads, per platform."""
    import io
    import tarfile

    wrapper = (conda_root.root / "bin" / "micromamba").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tf:
        for name, data in (("info/index.json", b'{"name": "micromamba"}'),
                           ("bin/micromamba", wrapper)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tf.addfile(info, io.BytesIO(data))
    for platform in (HERE, "osx-arm64"):
        (where / f"{platform}.tar.bz2").write_bytes(buf.getvalue())
    return f"file://{where}/{{platform}}.tar.bz2"


def test_bundle_with_micromamba_and_as_a_tarball(ce, conda_root, fresh_channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=fresh_channel.url))
    (tmp_path / "mm").mkdir()
    url = micromamba_package(conda_root, tmp_path / "mm")
    made = ce("--bundle", "--with-micromamba", str(script), "--output", str(tmp_path / "b.tar.gz"),
              "--platform", "osx-arm64", extra_env={"CONDA_EXECUTE_MICROMAMBA_URL": url})
    assert made.returncode == 0, made.stderr
    assert not [n for n in os.listdir(tmp_path) if ".partial-" in n]
    target = tmp_path / "target"
    target.mkdir()
    top = target / "b"
    out = ce("--unbundle", str(tmp_path / "b.tar.gz"), "--output", str(top))
    assert out.returncode == 0, out.stderr
    assert os.access(top / "conda-execute.pyz", os.X_OK)
    assert (top / "micromamba" / HERE / "micromamba").is_file()
    assert (top / "micromamba" / "osx-arm64" / "micromamba").is_file()
    # no manager anywhere, no network, no channel: the bundled micromamba creates the env
    fresh_channel.path.rename(tmp_path / "channel-gone")
    env = {k: v for k, v in ce.env.items() if k not in ("CONDA_EXE", "MAMBA_EXE")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not (os.path.isfile(os.path.join(p, "conda")) or
                                          os.path.isfile(os.path.join(p, "micromamba")) or
                                          os.path.isfile(os.path.join(p, "mamba"))))
    env.update(CONDA_EXECUTE_ENV_DIR=str(tmp_path / "target-envs"), CONDA_EXECUTE_BOOTSTRAP="0")
    run = subprocess.run(["unshare", "-n", sys.executable, str(top / "conda-execute.pyz"),
                          str(top / "s.sh")], capture_output=True, text=True, env=env,
                         timeout=DEADLINE)
    assert (run.returncode, run.stdout) == (0, "tool 2.0\n"), run.stderr
    assert "micromamba" in run.stderr  # "creating environment ... with micromamba"


def test_unbundle_refuses_what_is_not_plain_files_under_its_folder(ce, tmp_path):
    import io
    import tarfile

    before = None
    for bad in ("../evil", "/etc/evil", "b/../../evil", "other/x"):
        archive = tmp_path / "b.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo(bad)
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
        proc = ce("--unbundle", str(archive))
        assert "refusing to extract" in one_line(proc, 74), bad
        before = before or sorted(os.listdir(tmp_path))
        assert sorted(os.listdir(tmp_path)) == before and "b" not in before
        assert not (tmp_path.parent / "evil").exists()
    link = tmp_path / "l.tar.gz"
    with tarfile.open(link, "w:gz") as tf:
        info = tarfile.TarInfo("l/x")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    assert "refusing to extract" in one_line(ce("--unbundle", str(link)), 74)
    assert not (tmp_path / "l").exists()


def test_bundling_fails_whole_with_one_line(ce, channel, tmp_path):
    """An unreachable channel, and no space left: one line, nothing at DIR, no partial."""
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=channel.url))
    assert ce("--lock", str(script)).returncode == 0
    lock = tmp_path / "s.sh.conda-lock"
    text = lock.read_text()
    lock.write_text(text.replace(channel.url, "https://127.0.0.1:9/gone"))
    dead = ce("--bundle", str(script), "--output", str(tmp_path / "b"))
    assert "cannot bundle https://127.0.0.1:9/gone" in one_line(dead, 74)
    assert not [n for n in os.listdir(tmp_path) if n.startswith("b")]
    lock.write_text(text)
    small = tmp_path / "small"
    small.mkdir()
    mount = f"mount -t tmpfs -o size=8k tmpfs '{small}'"
    argv = ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh",
            *([sys.executable] if ce.argv0[0].endswith(".pyz") else []), *ce.argv0,
            "--bundle", str(script), "--output", str(small / "b")]
    full = subprocess.run(argv, capture_output=True, text=True, env=ce.env, timeout=DEADLINE)
    assert "cannot write the bundle: No space left on device" in one_line(full, 73)


def test_edits_keep_an_embedded_lock_and_say_it_is_stale(ce, channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=channel.url))
    assert ce("--lock", "--embed", str(script)).returncode == 0
    locked = script.read_text()
    block = locked[locked.index("# /// conda-execute-lock"):locked.index("# ///\n") + 6]
    added = ce("--add", "mylib", str(script))
    assert added.returncode == 0 and "no longer applies" in added.stderr, added.stderr
    text = script.read_text()
    assert block in text and "# env: [tool, mylib]" in text
    assert "was made from other metadata" in one_line(ce("--dry-run", "--locked", str(script)), 2)
    removed = ce("--remove", "mylib", str(script))
    assert removed.returncode == 0 and script.read_text() == locked
    assert ce("--dry-run", "--locked", str(script)).returncode == 0


def conda_exec_block(lock_text):
    """conda-exec's embedded lock (rattler-lock v6, conda-exec's layout) holding the same
    packages as a lock of ours, for this platform."""
    entries = sections_with_sha(lock_text)[HERE]
    urls = [u for u, _ in entries]
    lines = ["# conda-exec-lock-input-sha256: " + "0" * 64, "version: 6", "environments:",
             "  default:", "    channels:", "      - url: file:///x/", "    packages:",
             f"      {HERE}:"]
    lines += [f"        - conda: {u.split('#')[0]}" for u in urls]
    lines += ["packages:"]
    for url, sha in entries:
        lines += [f"  - conda: {url.split('#')[0]}", f"    sha256: {sha}",
                  f"    md5: {url.split('#')[1]}", "    depends: []"]
    return "# /// conda-exec-lock\n" + "".join(f"# {ln}\n" for ln in lines) + "# ///\n"


def sections_with_sha(text):
    found, current, sha = {}, None, ""
    for line in text.splitlines():
        if line.startswith("# platform: "):
            current = found.setdefault(line.split(": ", 1)[1], [])
        elif line.startswith("# sha256: "):
            sha = line.split(": ", 1)[1]
        elif "://" in line and current is not None:
            current.append((line.strip(), sha))
    return found


def test_a_script_carrying_conda_execs_lock_runs_from_it(ce, fresh_channel, tmp_path):
    block = ("# /// script\n# [tool.conda]\n# dependencies = ['tool']\n"
             f"# channels = ['{fresh_channel.url}']\n# ///\n")
    probe = tmp_path / "probe.py"
    probe.write_text(block)
    assert ce("--lock", str(probe)).returncode == 0
    script = tmp_path / "p.py"
    script.write_text(block + "\n" + conda_exec_block((tmp_path / "probe.py.conda-lock")
                                                      .read_text()) +
                      "import subprocess\nsubprocess.run(['tool'])\n")
    fresh_channel.add_package("tool", "3.0", noarch=True,
                              files={"bin/tool": "#!/bin/sh\necho tool 3.0\n"})
    dry = ce("--dry-run", "--locked", str(script))
    assert dry.returncode == 0 and json.loads(dry.stdout)["lock"] == str(script), dry.stderr
    run = ce(str(script))
    assert (run.returncode, run.stdout) == (0, "tool 2.0\n"), run.stderr
    # what cannot be read is refused with one line at its line
    bad = script.read_text().replace("# version: 6", "# version: 7")
    script.write_text(bad)
    line = bad.splitlines().index("# version: 7") + 1
    refused = ce("--dry-run", str(script))
    assert one_line(refused, 2).startswith(f"{script}:{line}: conda-exec lock: lock format "
                                           "version 7, not 6")
    # one that does not pin what the metadata names: a warning and a solve (--locked: error)
    other = block.replace("['tool']", "['tool', 'mylib']")
    script.write_text(bad.replace("# version: 7", "# version: 6").replace(block, other))
    assert "does not pin 'mylib'" in one_line(ce("--dry-run", "--locked", str(script)), 2)
    warned = ce("--dry-run", str(script))
    assert warned.returncode == 0 and "does not pin 'mylib'" in warned.stderr


def test_a_bundled_script_runs_through_its_own_shebang(ce, channel, tmp_path):
    """DIR/SCRIPT run directly: its shebang names conda-execute (the console script here),
    which finds the bundle beside it; offline."""
    script = tmp_path / "src" / "s.sh"
    script.parent.mkdir()
    script.write_text("#!/usr/bin/env conda-execute\n" + SCRIPT.format(url=channel.url)
                      .split("\n", 1)[1])
    script.chmod(0o755)
    assert ce("--bundle", str(script), "--output", str(tmp_path / "b")).returncode == 0
    env = dict(ce.env, CONDA_EXECUTE_ENV_DIR=str(tmp_path / "target-envs"))
    env["PATH"] = os.path.dirname(CONSOLE) + os.pathsep + env["PATH"]
    run = subprocess.run(["unshare", "-n", str(tmp_path / "b" / "s.sh")], capture_output=True,
                         text=True, env=env, timeout=DEADLINE)
    assert (run.returncode, run.stdout) == (0, "tool 2.0\n"), run.stderr
    assert "/b/packages/" in open_text(next(
        os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "target-envs")
        for f in fs if f.startswith("tool-2.0") and f.endswith(".json")))


def test_gc_removes_what_a_killed_lock_or_solve_left(ce, channel, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text(SCRIPT.format(url=channel.url))
    assert ce("--lock", str(script)).returncode == 0
    d = tmp_path / "envs" / HERE
    name = next(n for n in os.listdir(d) if len(n) == 20)
    (d / f"{name}.explicit").write_text("@EXPLICIT\n")
    (d / f"{'0' * 20}.explicit").write_text("@EXPLICIT\n")  # its env and lock are gone
    (d / ".solve-osx-arm64-999999999").mkdir()
    (d / ".solve-osx-arm64-999999999" / ".mambarc").write_text("platform: osx-arm64")
    mine = d / f".solve-osx-arm64-{os.getpid()}"  # a live process's: kept
    mine.mkdir()
    assert ce("--gc").returncode == 0
    assert sorted(n for n in os.listdir(d) if n.startswith(".solve-") or
                  n.endswith(".explicit")) == [mine.name]
