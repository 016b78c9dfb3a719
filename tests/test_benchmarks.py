"""The benchmarks run (quick mode) and print their tables: numbers only, no thresholds."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_warm_quick_runs_and_prints_its_tables():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_warm.py"),
                           "--quick"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = proc.stdout
    print(out)
    for heading in ("### 1. Warm run", "### 2. What the warm path imports", "### 3. Warm run",
                    "### 4. Management commands", "### 5. Create overhead"):
        assert heading in out, heading
    assert "| python3 conda-execute.pyz " in out and "| python3 null.pyz " in out
    assert "conda_execute (" in out  # the import list names the module and its cost
    assert out.rstrip().endswith("benchmarks done")
