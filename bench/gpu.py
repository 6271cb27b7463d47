"""Generation speed and memory: plain diffusers MochiPipeline vs the service's path, side by side.

On a GPU, with random weights at full size (time and memory do not depend on weight values) or
with real weights (--model DIR), for each frame count at --height x --width:
  (a) plain: MochiPipeline as the diffusers docs show it (model CPU offload + VAE tiling);
  (b) service: service.generation.GenerationEngine (memory planner: resident weights and
      untiled decode when they fit; torch.compile of the transformer, warmed before the first
      measured job).
Seconds per denoising step (CUDA events, median of steps after the first), decode seconds,
peak GPU memory (and the memory model's prediction), end-to-end seconds, the ratio b/a, and how
far apart the two videos are. --cap-gib re-runs the service path as if the card had that much
memory (an 80 GB H100 on an H200), counting out-of-memory failures.
--tiny runs the same code on the CPU with the tiny model (no offload there; no compile).

Writes DIR/gpu-bench.json and DIR/gpu-bench.md. Run: python bench/gpu.py --out results
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import memory_model  # noqa: E402
from service.generation import GenerationEngine  # noqa: E402
from service.params import GenerationParams  # noqa: E402

GIB = memory_model.GIB
PROMPT = "a red panda eating bamboo in the snow, cinematic"


@dataclass
class StepClock:
    """Step boundaries as CUDA events (no host sync inside the loop) or host times on CPU."""

    cuda: bool
    marks: list = field(default_factory=list)

    def mark(self, *_args):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def seconds_between(self) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            return [
                a.elapsed_time(b) / 1000 for a, b in zip(self.marks, self.marks[1:], strict=False)
            ]
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


def build_random_mochi(device: str):
    """Full-size Mochi-1 with random weights, built on the device in bf16 (no fp32 staging)."""
    from diffusers import (
        AutoencoderKLMochi,
        FlowMatchEulerDiscreteScheduler,
        MochiPipeline,
        MochiTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    from service.tiny_model import build_tokenizer, eval_mode

    t5_xxl = T5Config(
        vocab_size=32128,
        d_model=4096,
        d_kv=64,
        d_ff=10240,
        num_layers=24,
        num_heads=64,
        feed_forward_proj="gated-gelu",
        is_gated_act=True,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            transformer = MochiTransformer3DModel()
            vae = AutoencoderKLMochi()
            text_encoder = T5EncoderModel(t5_xxl)
    finally:
        torch.set_default_dtype(previous)
    pipeline = MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_tokenizer(max_length=256),
        transformer=transformer,
    )
    return eval_mode(pipeline)


def load_pipeline(args, device: str):
    started = time.perf_counter()
    if args.tiny:
        from service.tiny_model import build_tiny_pipeline

        pipeline, how = build_tiny_pipeline(), "tiny model built in code"
    elif args.model:
        from diffusers import MochiPipeline

        pipeline = MochiPipeline.from_pretrained(args.model, torch_dtype=torch.bfloat16)
        how = f"weights read from {args.model}"
    else:
        pipeline, how = build_random_mochi(device), "random weights initialised on the GPU"
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.to(device)
    sync(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, {
        "load": how,
        "load_seconds": loaded,
        "to_device_seconds": time.perf_counter() - started,
    }


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / GIB if device.startswith("cuda") else None


def pipeline_kwargs(args, frames: int) -> dict:
    kwargs = {
        "prompt": PROMPT,
        "num_frames": frames,
        "height": args.height,
        "width": args.width,
        "num_inference_steps": args.steps,
        "guidance_scale": 4.5,
        "output_type": "np",
    }
    if args.tiny:
        from service.tiny_model import MAX_SEQUENCE_LENGTH

        kwargs["max_sequence_length"] = MAX_SEQUENCE_LENGTH
    return kwargs


def timed(device: str, run) -> tuple[np.ndarray, dict]:
    clock = StepClock(device.startswith("cuda"))
    reset_peak(device)
    started = time.perf_counter()
    frames = run(clock)
    sync(device)
    total = time.perf_counter() - started
    clock.mark()  # end of decode
    # Marks fall at the end of each step, so the gaps are steps 2..N (the first, which pays
    # one-time costs, is left out) and, last, the VAE decode.
    gaps = clock.seconds_between()
    steps, decode = gaps[:-1], gaps[-1]
    return frames, {
        "seconds_per_step": statistics.median(steps),
        "step_seconds": steps,
        "decode_seconds": decode,
        "end_to_end_seconds": total,
        "peak_gpu_gib": peak_gib(device),
    }


def run_plain(pipeline, args, frames: int, device: str) -> tuple[np.ndarray, dict]:
    """MochiPipeline as documented: memory savings on (where there is an accelerator)."""
    if device.startswith("cuda"):
        pipeline.enable_model_cpu_offload()
    pipeline.vae.enable_tiling()

    def run(clock: StepClock):
        def on_step(pipe, index, timestep, tensors):
            clock.mark()
            return tensors

        kwargs = pipeline_kwargs(args, frames)
        generator = torch.Generator("cpu").manual_seed(args.seed)
        return pipeline(**kwargs, generator=generator, callback_on_step_end=on_step).frames[0]

    return timed(device, run)


def run_service(engine: GenerationEngine, args, frames: int, device: str):
    params = GenerationParams(
        prompt=PROMPT,
        num_frames=frames,
        height=args.height,
        width=args.width,
        num_inference_steps=args.steps,
        guidance_scale=4.5,
        seed=args.seed,
    )
    plan = engine.plan(params)

    def run(clock: StepClock):
        video, _ = engine.generate(params, on_step=clock.mark)
        return video

    video, result = timed(device, run)
    result["predicted_peak_gib"] = plan.peak_gib if device.startswith("cuda") else None
    result["plan"] = plan.describe()
    return video, result


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    mse = float(np.mean(difference**2))
    return {
        "mean_abs_diff": float(difference.mean()),
        "max_abs_diff": float(difference.max()),
        "psnr_db": float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf"),
        "same_shape": a.shape == b.shape,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model on the CPU")
    parser.add_argument("--model", help="a local diffusers MochiPipeline directory")
    parser.add_argument("--frames", default="31,85,163")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=848)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument(
        "--cap-gib", type=float, default=0.0, help="also run as if the GPU had this"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--rounds", type=int, default=5, help="CPU: alternate the two paths this many times"
    )
    parser.add_argument(
        "--service-only", action="store_true", help="skip plain diffusers (a memory check)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.frames = args.frames if args.frames != "31,85,163" else "7,13"
        args.height, args.width = (64, 64) if args.height == 480 else (args.height, args.width)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {**vars(args), "out": str(args.out)}
    report = {"device": describe_device(device), "torch": torch.__version__, "args": settings}
    frame_counts = [int(f) for f in args.frames.split(",")]

    pipeline, warm_start = load_pipeline(args, device)
    report["plain_setup"] = (
        "docs: model cpu offload + vae tiling" if device == "cuda" else "docs: vae tiling"
    )
    report["warm_start"] = warm_start
    if device == "cpu":
        report["runs"] = alternate_on_cpu(pipeline, args, frame_counts, device)
        save(report, args.out)
        print((args.out / "gpu-bench.md").read_text())
        return
    plain_videos, report["runs"] = {}, {frames: {} for frames in frame_counts}
    for frames in [] if args.service_only else frame_counts:
        plain_videos[frames], result = guarded(run_plain, pipeline, args, frames, device)
        report["runs"][frames]["plain"] = result
        save(report, args.out)
        print(f"plain   {frames:>4} frames: {summary(result)}", flush=True)
    if device.startswith("cuda"):
        pipeline.remove_all_hooks()
        pipeline.to(device)
    compile_transformer = device.startswith("cuda") and not args.no_compile
    memory = torch.cuda.get_device_properties(0).total_memory / GIB if device == "cuda" else 8.0
    model = "tiny" if args.tiny else "mochi"
    engine = GenerationEngine.from_pipeline(pipeline, model, device, memory, compile_transformer)
    for frames in frame_counts:
        warm = GenerationParams(
            prompt=PROMPT, num_frames=frames, height=args.height, width=args.width, seed=0
        )
        if engine.compiled:
            warm_seconds = engine.warm_up(warm)
            report["runs"][frames]["compile_warm_up_seconds"] = warm_seconds
        video, result = guarded(run_service, engine, args, frames, device)
        entry = report["runs"][frames]
        entry["service"] = result
        plain = entry.get("plain", {"error": "not run"})
        if "error" not in plain and "error" not in result:
            entry["step_speedup"] = plain["seconds_per_step"] / result["seconds_per_step"]
            entry["end_to_end_speedup"] = plain["end_to_end_seconds"] / result["end_to_end_seconds"]
            entry["difference"] = compare(plain_videos[frames], video)
        save(report, args.out)
        print(f"service {frames:>4} frames: {summary(result)}", flush=True)
    report["warm_start"]["first_job_compile_seconds"] = next(
        (run.get("compile_warm_up_seconds") for run in report["runs"].values()), None
    )
    if args.cap_gib and device.startswith("cuda"):
        report["capped"] = run_capped(engine, args, frame_counts, device)
    save(report, args.out)
    print((args.out / "gpu-bench.md").read_text())


def alternate_on_cpu(pipeline, args, frame_counts, device) -> dict:
    """On the CPU both paths share one pipeline at no switching cost, so they alternate and
    each figure is the median of its rounds: a shared machine drifts more than they differ."""
    engine = GenerationEngine.from_pipeline(pipeline, "tiny", device, 8.0, False)
    runs = {}
    for frames in frame_counts:
        rounds = {"plain": [], "service": []}
        for _ in range(args.rounds):
            plain_video, plain = run_plain(pipeline, args, frames, device)
            service_video, service = run_service(engine, args, frames, device)
            rounds["plain"].append(plain)
            rounds["service"].append(service)
        entry = {path: _median_result(results) for path, results in rounds.items()}
        entry["step_speedup"] = (
            entry["plain"]["seconds_per_step"] / entry["service"]["seconds_per_step"]
        )
        entry["end_to_end_speedup"] = (
            entry["plain"]["end_to_end_seconds"] / entry["service"]["end_to_end_seconds"]
        )
        entry["difference"] = compare(plain_video, service_video)
        runs[frames] = entry
        print(
            f"{frames:>4} frames over {args.rounds} rounds: step b/a {entry['step_speedup']:.2f}x",
            flush=True,
        )
    return runs


def _median_result(results: list[dict]) -> dict:
    median = dict(results[0])
    for name in ("seconds_per_step", "decode_seconds", "end_to_end_seconds"):
        median[name] = statistics.median(result[name] for result in results)
    return median


def run_capped(engine, args, frame_counts, device) -> dict:
    """The service path on a card of cap_gib: the planner sees that size, the allocator is held
    to it, so a wrong plan fails with out-of-memory here as it would on that card."""
    total = torch.cuda.get_device_properties(0).total_memory / GIB
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib / total))
    engine.device_memory_gib = args.cap_gib
    results = {}
    for frames in frame_counts:
        _, result = guarded(run_service, engine, args, frames, device)
        results[frames] = result
        print(f"capped {args.cap_gib:g} GiB {frames:>4} frames: {summary(result)}", flush=True)
    torch.cuda.set_per_process_memory_fraction(1.0)
    return {"cap_gib": args.cap_gib, "runs": results}


def guarded(function, *args):
    """An out-of-memory failure is a result to report, not the end of the benchmark."""
    try:
        return function(*args)
    except torch.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        return None, {"error": f"out of memory: {str(error).splitlines()[0]}"}


def summary(result: dict) -> str:
    if "error" in result:
        return result["error"]
    peak = result.get("peak_gpu_gib")
    memory = f", peak {peak:.1f} GiB" if peak is not None else ""
    predicted = result.get("predicted_peak_gib")
    memory += f" (model {predicted:.1f})" if predicted is not None else ""
    return (
        f"{result['seconds_per_step']:.3f} s/step, decode {result['decode_seconds']:.2f} s, "
        f"end-to-end {result['end_to_end_seconds']:.1f} s{memory}"
    )


def describe_device(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def save(report: dict, out: Path) -> None:
    (out / "gpu-bench.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpu-bench.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        f"Device: {report['device']}, torch {report['torch']}, "
        f"{report['args']['height']}x{report['args']['width']}, {report['args']['steps']} steps",
        "",
        "| frames | path | s/step | decode s | end-to-end s | peak GiB | model GiB | plan |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for frames, entry in report["runs"].items():
        for path in ("plain", "service"):
            result = entry.get(path)
            if result is None:
                continue
            if "error" in result:
                lines.append(f"| {frames} | {path} | {result['error']} | | | | | |")
                continue
            lines.append(
                f"| {frames} | {path} | {result['seconds_per_step']:.3f} | "
                f"{result['decode_seconds']:.2f} | {result['end_to_end_seconds']:.1f} | "
                f"{_fmt(result['peak_gpu_gib'])} | {_fmt(result.get('predicted_peak_gib'))} | "
                f"{result.get('plan', report['plain_setup'])} |"
            )
        if "step_speedup" in entry:
            diff = entry["difference"]
            lines.append(
                f"| {frames} | **b/a** | **{entry['step_speedup']:.2f}x** | | "
                f"**{entry['end_to_end_speedup']:.2f}x** | | | mean |a-b| "
                f"{diff['mean_abs_diff']:.4f}, max {diff['max_abs_diff']:.3f}, "
                f"PSNR {diff['psnr_db']:.1f} dB |"
            )
    capped = report.get("capped")
    if capped:
        lines += ["", f"Service path held to {capped['cap_gib']:g} GiB:", ""]
        for frames, result in capped["runs"].items():
            lines.append(f"- {frames} frames: {summary(result)}")
    lines += ["", "Warm start: " + json.dumps(report["warm_start"], default=str)]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "-"


if __name__ == "__main__":
    main()
