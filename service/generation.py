"""One loaded Mochi pipeline and the service's way of running a job on it.

Loaded once per worker and reused; per job the memory model picks CPU offload and VAE tiling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from service import fp8, memory_model
from service.config import DIT_PRECISIONS, check_one_of
from service.fp8 import PrecisionRefused as PrecisionRefused  # what load() raises
from service.params import GenerationParams

log = logging.getLogger(__name__)
MOCHI_SOURCE = "genmo/mochi-1-preview"


class JobStopped(Exception):
    """Raised from the step callback to leave the denoising loop at once (cancel, lost lease)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Pipelines built in this process: a worker that reloaded per job would show it here.
pipeline_loads = 0


def load_pipeline(model: str, cache_dir: str = "", device: str = "cpu"):
    """`tiny` is built in code; anything else is a Hub id or a local diffusers directory."""
    global pipeline_loads
    pipeline_loads += 1
    if model == "tiny":
        from service.tiny_model import build_tiny_pipeline

        return build_tiny_pipeline()
    from diffusers import MochiPipeline

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return MochiPipeline.from_pretrained(
        model,
        variant=None if Path(model).is_dir() else "bf16",
        torch_dtype=dtype,
        cache_dir=cache_dir or None,
    )


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_memory_gib(device: str, host_memory_gib: float) -> float:
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(device).total_memory / memory_model.GIB
    return host_memory_gib


def check_precision(dit_precision: str, device: str, allow_cpu_fp8: bool = False) -> None:
    """The value by Settings' own rule (a SettingsError, which is a ValueError), then whether
    this device runs fp8 (PrecisionRefused)."""
    check_one_of("dit_precision", dit_precision, DIT_PRECISIONS)
    if dit_precision == "fp8":
        fp8.check_device(device, allow_cpu_fp8)


@dataclass
class GenerationEngine:
    pipeline: object
    model: str
    device: str
    device_memory_gib: float
    load_seconds: float
    compiled: bool = False
    dit_precision: str = "bf16"
    # Ranks this engine's transformer is split over (service.parallel.group sets it).
    gpus_per_job: int = 1
    _offloaded: bool | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        model: str,
        cache_dir: str = "",
        host_memory_gib: float = 8.0,
        compile_transformer: bool = False,
        gpu_memory_gib: float = 0.0,
        dit_precision: str = "bf16",
    ) -> GenerationEngine:
        """Load once per worker. gpu_memory_gib overrides the card's size (0: ask the card).
        dit_precision "fp8" is refused (PrecisionRefused) before any weight is read where this
        worker cannot run it."""
        started = time.perf_counter()
        device = default_device()
        check_precision(dit_precision, device)
        pipeline = load_pipeline(model, cache_dir, device)
        memory = gpu_memory_gib or device_memory_gib(device, host_memory_gib)
        engine = cls.from_pipeline(
            pipeline, model, device, memory, compile_transformer, dit_precision
        )
        engine.load_seconds = time.perf_counter() - started
        return engine

    @classmethod
    def from_pipeline(
        cls,
        pipeline,
        model: str,
        device: str,
        memory_gib: float,
        compile_transformer: bool,
        dit_precision: str = "bf16",
        allow_cpu_fp8: bool = False,
    ) -> GenerationEngine:
        """allow_cpu_fp8: run fp8 through PyTorch's CPU emulation (tests and benchmarks only)."""
        check_precision(dit_precision, device, allow_cpu_fp8)
        pipeline.set_progress_bar_config(disable=True)
        engine = cls(pipeline, model, device, memory_gib, 0.0, dit_precision=dit_precision)
        if dit_precision == "fp8":
            # Before compiling, so that the compiled graph is the FP8 one.
            fp8.convert_transformer(pipeline.transformer, device, allow_cpu_fp8)
        if compile_transformer:
            # Compiled once per worker; warm_up() pays the compile before the first job.
            # Static shapes: each job shape compiles once (up to dynamo's cache limit, then
            # eager); a dynamic-shape graph would be slower on every step.
            pipeline.transformer = torch.compile(pipeline.transformer, dynamic=False)
            engine.compiled = True
        return engine

    def warm_up(self, params: GenerationParams, generate: Callable | None = None) -> float:
        """Run a job's shape for two steps (the fewest Mochi's schedule takes) so that
        compilation happens before any job; returns its seconds. `generate`: what runs a job
        when this engine is one rank of a group (the group's, so that every rank compiles)."""
        started = time.perf_counter()
        (generate or self.generate)(params.model_copy(update={"num_inference_steps": 2}))
        return time.perf_counter() - started

    @property
    def profile(self) -> memory_model.ModelProfile:
        return memory_model.profile_for(self.model)

    def plan(self, params: GenerationParams) -> memory_model.Plan:
        return memory_model.plan_generation(
            self.profile,
            params.num_frames,
            params.height,
            params.width,
            params.guidance_scale,
            self.device_memory_gib,
            self.gpus_per_job,
            self.dit_precision,
        )

    def _apply(self, plan: memory_model.Plan) -> None:
        if self._offloaded != plan.cpu_offload:
            if plan.cpu_offload and self.device.startswith("cuda"):
                self.pipeline.enable_model_cpu_offload(device=self.device)
            else:
                if self._offloaded:
                    self.pipeline.remove_all_hooks()
                self.pipeline.to(self.device)
            self._offloaded = plan.cpu_offload
        if plan.vae_tiling:
            self.pipeline.vae.enable_tiling()
        else:
            self.pipeline.vae.disable_tiling()

    def generate(
        self,
        params: GenerationParams,
        on_step: Callable[[int, int], None] | None = None,
        on_final_latents: Callable[[torch.Tensor], None] | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Frames (T, H, W, 3) in [0, 1] and the job's metrics. `on_step(step, total)` runs
        after every denoising step and may raise JobStopped; `on_final_latents` receives the
        denoised latents before the decode (to compare precisions without the VAE between)."""
        plan = self.plan(params)
        if not plan.fits:
            raise MemoryError("job does not fit this worker: " + plan.describe())
        self._apply(plan)
        step_times: list[float] = []
        last = [time.perf_counter()]

        def callback(pipe, step_index, timestep, callback_kwargs):
            now = time.perf_counter()
            step_times.append(now - last[0])
            last[0] = now
            if on_step is not None:
                on_step(step_index + 1, params.num_inference_steps)
            if on_final_latents is not None and step_index + 1 == params.num_inference_steps:
                on_final_latents(callback_kwargs["latents"])
            return callback_kwargs

        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.device)
        generator = None
        if params.seed is not None:
            generator = torch.Generator("cpu").manual_seed(params.seed)
        started = time.perf_counter()
        output = self.pipeline(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt,
            num_frames=params.num_frames,
            height=params.height,
            width=params.width,
            num_inference_steps=params.num_inference_steps,
            guidance_scale=params.guidance_scale,
            generator=generator,
            output_type="np",
            callback_on_step_end=callback,
            **self._sequence_length(),
        )
        metrics = {
            "generate_seconds": time.perf_counter() - started,
            "mean_step_seconds": float(np.mean(step_times)) if step_times else 0.0,
            "predicted_peak_gib": plan.peak_gib,
            "cpu_offload": float(plan.cpu_offload),
            "vae_tiling": float(plan.vae_tiling),
        }
        if self.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated(self.device) / memory_model.GIB
            metrics["peak_gpu_gib"] = peak
        return output.frames[0], metrics

    def _sequence_length(self) -> dict[str, int]:
        if self.model == "tiny":
            from service.tiny_model import MAX_SEQUENCE_LENGTH

            return {"max_sequence_length": MAX_SEQUENCE_LENGTH}
        return {}
