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
    for heading in ("### 1. Warm run on every Python found", "### 2. Warm run on Python",
                    "### 3. What the warm path imports", "### 4. Warm run",
                    "### 5. Management commands", "### 6. Python 3.", "### 7. Create overhead",
                    "### 8. Warm run of each block form", "### 9. Bundles"):
        assert heading in out, heading
    assert "| python3 conda-execute.pyz " in out and "| python3 null.pyz " in out
    assert "conda_execute (" in out  # the import list names the module and its cost
    from conftest import other_pythons

    table = out.split("### 1.")[1].split("### 2.")[0]
    rows = [line for line in table.splitlines() if line.startswith("| 3.")]
    versions = {r.split("|")[1].strip() for r in rows}
    assert len(rows) == 2 * len(versions) >= 2 * min(len(other_pythons()), 2)  # wall, CPU
    if os.environ.get("CI") == "true":  # every Python CI has is measured
        assert {r.split("|")[1].strip().rsplit(".", 1)[0] for r in rows} >= {
            "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"}, rows
    forms = out.split("### 8.")[1]
    for form in ("| # conda execute ", "| PEP 723 ", "| conda-script ", "| -s python -- "):
        assert form in forms, form
    cold = out.split("### 7.")[1].split("### 8.")[0]
    for manager in ("| conda 26 ", "| micromamba 2 ", "| mamba 2 "):
        assert manager in cold, manager
    for run in ("kind probed ", "kind remembered "):
        assert cold.count(run) == 3 * 2 * 2, run  # managers, envs, python3 and -I -S
    bundle = out.split("### 9.")[1]
    for row in ("| conda 26 ", "| micromamba 2 ", "first run from the bundle",
                "first run from the channel, same lock", "SCRIPT not locked"):
        assert row in bundle, row
    assert out.rstrip().endswith("benchmarks done")
