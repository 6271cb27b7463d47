"""What the memory model needs from a deployment's settings, read leniently: the doctor judges
input the service would refuse, and the input-value checks report such values themselves."""

from __future__ import annotations

from service.config import DIT_PRECISIONS


def plan_parallelism(gpus_per_job, dit_precision) -> dict:
    """plan_generation's gpus_per_job and dit_precision; a value the service would refuse
    counts as its default."""
    try:
        ranks = max(1, int(str(gpus_per_job or 1)))
    except ValueError:
        ranks = 1
    precision = dit_precision if dit_precision in DIT_PRECISIONS else "bf16"
    return {"gpus_per_job": ranks, "dit_precision": precision}
