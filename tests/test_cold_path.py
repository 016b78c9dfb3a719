"""The cold path walks no tree: the marker holds no size; --list measures it once, lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "# conda execute\n# env: [python]\n# run_with: [python]\nprint('ran')\n"


def test_creating_records_no_size_and_list_measures_and_records_it(pyz, conda_root,
                                                                   isolated_env, tmp_path):
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)

    def run(*args):
        proc = subprocess.run([sys.executable, pyz, *args], env=env, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert run(str(script)) == "ran\n"
    prefix = run("--prefix", str(script)).strip()
    marker_path = os.path.join(prefix, "conda-meta", "conda-execute")
    with open(marker_path) as f:
        marker = json.load(f)
    assert "size" not in marker and marker["env"] == ["python"]
    (listed,) = [json.loads(line) for line in run("--list", "--json").splitlines()]
    size = listed["size"]
    assert isinstance(size, int) and size > 0
    with open(marker_path) as f:
        assert json.load(f) == dict(marker, size=size)  # recorded, the rest kept
    # Recorded: a file added later does not change it (no second walk), and the table shows it.
    with open(os.path.join(prefix, "big"), "wb") as f:
        f.write(b"x" * 5_000_000)
    (listed,) = [json.loads(line) for line in run("--list", "--json").splitlines()]
    assert listed["size"] == size
    table = run("--list").splitlines()
    assert len(table) == 2 and ("KiB" in table[1] or "MiB" in table[1])


def test_list_does_not_record_a_size_while_the_env_is_locked_for_creation(
        pyz, conda_root, isolated_env, tmp_path):
    """An env held exclusively (being recreated) gets its size shown, never written."""
    env = conda_root.env_with_conda_on_path(isolated_env)
    env["CONDA_EXECUTE_ENV_DIR"] = str(tmp_path / "envs")
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    assert subprocess.run([sys.executable, pyz, str(script)], env=env,
                          capture_output=True).returncode == 0
    prefix = subprocess.run([sys.executable, pyz, "--prefix", str(script)], env=env,
                            capture_output=True, text=True).stdout.strip()
    hold = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, prefix + ".lock"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        out = subprocess.run([sys.executable, pyz, "--list", "--json"], env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["size"] > 0
    finally:
        holder.communicate("")
    with open(os.path.join(prefix, "conda-meta", "conda-execute")) as f:
        assert "size" not in json.load(f)
