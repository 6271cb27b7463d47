"""How long a job may go without progress, and the clock that says when it went too long.

A job is stopped when no denoising step came for its stall limit, or when it ran past the
per-job deadline. The stall limit is `stall_timeout_seconds`, or, when that is 0, derived from
the step-time estimate below (never under STALL_FLOOR_SECONDS): STALL_MARGIN times the slowest
phase without a step callback, one DiT step or the VAE decode after the last step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from service import memory_model
from service.config import STALL_FLOOR_SECONDS, Settings
from service.params import GenerationParams

# Least-squares fit of shared/data/mochi-h200-calibration.json (H200, bf16, eager): one DiT
# forward takes batch x (LINEAR x tokens + QUADRATIC x tokens^2) seconds (attention is quadratic);
# 0.48 / 1.49 / 3.69 s at 9,540 / 23,850 / 44,520 tokens for batch 1, twice that for batch 2.
STEP_SECONDS_PER_TOKEN = 4.08e-5
STEP_SECONDS_PER_TOKEN_SQUARED = 9.46e-10
# Tiled VAE decode (the slower mode) at REFERENCE_PIXELS: 1.5 / 3.5 / 6.7 s at 31 / 85 / 163
# frames, linear in frames, scaled by the frame's pixels.
DECODE_BASE_SECONDS = 0.3
DECODE_SECONDS_PER_FRAME = 0.04
# Headroom over the estimate for a slower card, CPU offload moves, a first compile of a shape.
STALL_MARGIN = 10.0


def estimated_step_seconds(profile: memory_model.ModelProfile, params: GenerationParams) -> float:
    """One denoising step on an H200, scaled by transformer size for other profiles."""
    tokens = memory_model.dit_tokens(params.num_frames, params.height, params.width)
    batch = memory_model.cfg_batch(params.guidance_scale)
    seconds = batch * (STEP_SECONDS_PER_TOKEN * tokens + STEP_SECONDS_PER_TOKEN_SQUARED * tokens**2)
    return seconds * profile.transformer_params / memory_model.MOCHI_1.transformer_params


def estimated_decode_seconds(profile: memory_model.ModelProfile, params: GenerationParams) -> float:
    pixel_ratio = params.height * params.width / memory_model.REFERENCE_PIXELS
    seconds = (DECODE_BASE_SECONDS + DECODE_SECONDS_PER_FRAME * params.num_frames) * pixel_ratio
    return seconds * profile.vae_params / memory_model.MOCHI_1.vae_params


@dataclass(frozen=True)
class Limits:
    stall_after: float  # seconds without a step before the job is stopped
    stall_derived: bool  # stall_after came from the estimate, not from the setting
    job_timeout: float  # seconds an attempt may run in all (0: no deadline)


def limits_for(
    settings: Settings, profile: memory_model.ModelProfile, params: GenerationParams
) -> Limits:
    if settings.stall_timeout_seconds > 0:
        return Limits(settings.stall_timeout_seconds, False, settings.job_timeout_seconds)
    step = estimated_step_seconds(profile, params)
    slowest = max(step, estimated_decode_seconds(profile, params))
    stall = max(STALL_FLOOR_SECONDS, STALL_MARGIN * slowest)
    return Limits(stall, True, settings.job_timeout_seconds)


class Watch:
    """The progress clock of one attempt: started at the claim, wound at every step."""

    def __init__(self, limits: Limits, clock=time.monotonic):
        self.limits = limits
        self._clock = clock
        self.started = self.progressed_at = clock()

    def progressed(self) -> None:
        self.progressed_at = self._clock()

    def seconds_since_progress(self) -> float:
        return self._clock() - self.progressed_at

    def overdue(self) -> str | None:
        """Why the attempt must stop now, naming the limit and its value; None while on time."""
        now, limits = self._clock(), self.limits
        if limits.job_timeout and now - self.started > limits.job_timeout:
            return (
                f"running for {now - self.started:.1f} s, "
                f"past job_timeout_seconds={limits.job_timeout:g}"
            )
        quiet = now - self.progressed_at
        if quiet > limits.stall_after:
            if limits.stall_derived:
                limit = (
                    f"the {limits.stall_after:g} s stall limit derived from the step-time "
                    "estimate (stall_timeout_seconds=0)"
                )
            else:
                limit = f"stall_timeout_seconds={limits.stall_after:g}"
            return f"no denoising step for {quiet:.1f} s, over {limit}"
        return None
