"""Memory, live: the GPU memory jobs used (from the pool's per-job metrics) against the memory
model's prediction and the worker's GPU."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.inventory import Inventory
from doctor.live_state import live_workers
from doctor.registry import Hit, check
from service.memory_model import usable_gpu_gib

OVER_PREDICTION = 1.15  # measured peaks within 15% of the model are calibration noise


@check(
    code="MEM006",
    severity=Severity.WARNING,
    category=Category.MEMORY,
    summary="Jobs use more GPU memory than the memory model predicts",
    fix="Recalibrate the memory model on this GPU (data/), or lower MOCHI_WORKER_GPU_MEMORY_GIB so "
    "the model plans with headroom (offload, tiling).",
    needs_live=True,
)
def gpu_memory_against_model(inventory: Inventory):
    state = inventory.live.jobs
    if state is None:
        return
    workers = {**state.workers, **live_workers(inventory)}
    for job in state.jobs:
        metrics = job.get("metrics") or {}
        peak, predicted = metrics.get("peak_gpu_gib"), metrics.get("predicted_peak_gib")
        if not peak or not predicted:
            continue
        memory = (workers.get(job.get("worker")) or {}).get("device_memory_gib")
        usable = usable_gpu_gib(float(memory)) if memory else None
        if usable and peak > usable:
            severity, why = "error", f"above the {usable:.1f} GiB usable on its GPU"
        elif peak > predicted * OVER_PREDICTION:
            severity, why = None, f"{peak / predicted:.0%} of the predicted {predicted:.1f} GiB"
        else:
            continue
        yield Hit(
            f"job/{job.get('id')}",
            f"job {job.get('id')} on {job.get('worker') or '?'} peaked at {peak:.1f} GiB of GPU "
            f"memory, {why}: the next larger job can run out of memory",
            f"metrics.peak_gpu_gib {peak:.2f}, predicted_peak_gib {predicted:.2f}, worker "
            f"device_memory_gib {memory}",
            severity=severity,
        )
