"""bench/gpu.py --tiny: the GPU benchmark's own code, run on the CPU with the tiny model."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


def test_tiny_run_compares_both_paths_and_writes_json_and_markdown(tmp_path):
    command = [sys.executable, str(BENCH), "--tiny", "--frames", "7", "--steps", "3"]
    command += ["--rounds", "1", "--out", str(tmp_path)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    report = json.loads((tmp_path / "gpu-bench.json").read_text())
    entry = report["runs"]["7"]
    assert entry["plain"]["seconds_per_step"] > 0 and entry["service"]["seconds_per_step"] > 0
    assert entry["step_speedup"] > 0
    # Same seed, same weights, both in fp32 on the CPU: the same video.
    assert entry["difference"]["same_shape"] and entry["difference"]["max_abs_diff"] == 0.0
    assert "**b/a**" in (tmp_path / "gpu-bench.md").read_text()
