"""Job array benchmark: N simultaneous first runs of one script against one create + N warm runs.

    python benchmarks/bench_job_array.py [N]      (default 500)

Runs the built pyz with the test stand-in conda (tests/standin) in a temporary dir and prints
the wall times; asserts one create, N successes and N usage-log lines. No timed assertions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402

SCRIPT = "# conda execute\n# env: [python]\nimport sys\nsys.exit(3)\n"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        pyz = tmp / "conda-execute.pyz"
        subprocess.run([sys.executable, str(ROOT / "build_zipapp.py"), "--output", str(pyz)],
                       check=True, capture_output=True)
        channel = conftest.channel_builder.build_test_channel(tmp / "channel")
        env = {}
        for label in ("array", "serial"):
            root = conftest.make_conda_root(tmp / f"root-{label}", [channel.as_uri()], tmp / "pkgs")
            env = root.env_with_conda_on_path(conftest.isolated_environ(os.environ, tmp / label))
            env["CONDA_EXECUTE_ENV_DIR"] = str(tmp / f"envs-{label}")
            script = tmp / "job.py"
            script.write_text(SCRIPT)
            cmd = [sys.executable, str(pyz), str(script)]
            start = time.monotonic()
            if label == "array":
                procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL) for _ in range(n)]
                codes = [p.wait() for p in procs]
            else:
                codes = [subprocess.run(cmd, env=env, capture_output=True).returncode]
                created = time.monotonic() - start
                codes += [subprocess.run(cmd, env=env, capture_output=True).returncode
                          for _ in range(n)]
            wall = time.monotonic() - start
            creates = len(root.calls("create"))
            log = next((tmp / f"envs-{label}").glob("*/usage.jsonl"))
            lines = len(log.read_text().splitlines())
            assert creates == 1 and codes.count(3) == len(codes), (creates, set(codes))
            if label == "array":
                assert lines == n, lines
                print(f"{n} simultaneous first runs: {wall:.1f} s wall, 1 create, "
                      f"{codes.count(3)} successes, {lines} log lines")
            else:
                print(f"one create + {n} warm runs one after another: {wall:.1f} s wall "
                      f"(the create {created:.1f} s)")


if __name__ == "__main__":
    main()
