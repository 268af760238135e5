"""The benchmark keeps working: its tiny version (2 users, 2 submissions, 2 courses) runs
both sides end to end and reports every figure. The full run is `make bench`, not a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration

if os.geteuid() != 0:
    pytest.skip(
        "the benchmark runs coursehub with one uid per person: needs root",
        allow_module_level=True,
    )

EXPECTED = {
    "start_main",
    "start_2",
    "one_user",
    "storm_2_ready",
    "storm_2_fail",
    "storm_2_cpu",
    "mem_one_rss",
    "mem_one_pss",
    "mem_2_rss",
    "mem_2_pss",
    "autograde_api",
    "autograde_cli",
    "proxy_p50",
    "proxy_p95",
}


@pytest.mark.timeout(570)
def test_tiny_benchmark_reports_every_figure_for_both_sides(tmp_path):
    out = tmp_path / "tiny.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
    assert "| figure |" in proc.stdout  # the Markdown table
    data = json.loads(out.read_text())
    assert data["details"]["errors"] == []
    figures = {f["key"]: f for f in data["figures"]}
    assert set(figures) >= EXPECTED, sorted(EXPECTED - set(figures))
    for key, f in figures.items():
        for side in ("coursehub", "baseline"):
            values = f["samples"][side]
            assert values, f"{key}: no value for {side}"
            if key.endswith("_fail"):
                assert values == [0], f"{key}: {side} had failures: {data['details']['storms']}"
            elif key.endswith("_cpu"):
                assert all(0 <= v <= 200 * (os.cpu_count() or 1) for v in values), (key, values)
            else:
                assert all(v > 0 for v in values), (key, side, values)
    assert 50 < figures["mem_one_pss"]["stats"]["coursehub"]["median"] < 2000  # MiB
    assert figures["proxy_p50"]["stats"]["baseline"]["median"] < 1000  # ms
