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

--precision fp8 (or both) adds (c): the service path with the DiT's linear layers in FP8
(service/fp8.py), at each frame count in the same run, and how far its final latents and frames
are from (b)'s (from (a)'s when (b) is not run). On the CPU, FP8 is PyTorch's slow emulation of
scaled_mm: its times say nothing about a GPU, its deviation does.
--gpus-per-job N (N > 1) also times one rank's share of a step among N on this machine and prints
the communication volume and a model of the N-GPU step, through bench/parallel_share.py.

Writes DIR/gpu-bench.json and DIR/gpu-bench.md. Run: python bench/gpu.py --out results
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
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

from service import fp8, memory_model  # noqa: E402
from service.generation import GenerationEngine  # noqa: E402
from service.params import GenerationParams  # noqa: E402

GIB = memory_model.GIB
PROMPT = "a red panda eating bamboo in the snow, cinematic"
SERVICE_PATHS = {"bf16": "service", "fp8": "service_fp8"}
# As bench/parallel_share.py measures a share: the median of this many forwards after one warm.
SHARE_REPEATS = 3


@dataclass
class Output:
    """What a run made: the video and the denoised latents it decoded."""

    video: np.ndarray
    latents: torch.Tensor


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


def run_plain(pipeline, args, frames: int, device: str) -> tuple[Output, dict]:
    """MochiPipeline as documented: memory savings on (where there is an accelerator)."""
    if device.startswith("cuda"):
        pipeline.enable_model_cpu_offload()
    pipeline.vae.enable_tiling()
    kept = []

    def run(clock: StepClock):
        def on_step(pipe, index, timestep, tensors):
            clock.mark()
            if index + 1 == args.steps:
                kept.append(tensors["latents"].detach().clone())
            return tensors

        kwargs = pipeline_kwargs(args, frames)
        generator = torch.Generator("cpu").manual_seed(args.seed)
        return pipeline(**kwargs, generator=generator, callback_on_step_end=on_step).frames[0]

    video, result = timed(device, run)
    return Output(video, kept[0].float().cpu()), result


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
    kept = []

    def run(clock: StepClock):
        video, _ = engine.generate(
            params, on_step=clock.mark, on_final_latents=lambda z: kept.append(z.detach().clone())
        )
        return video

    video, result = timed(device, run)
    result["predicted_peak_gib"] = plan.peak_gib if device.startswith("cuda") else None
    result["plan"] = plan.describe()
    result["dit_precision"] = engine.dit_precision
    return Output(video, kept[0].float().cpu()), result


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    mse = float(np.mean(difference**2))
    return {
        "mean_abs_diff": float(difference.mean()),
        "max_abs_diff": float(difference.max()),
        "psnr_db": float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf"),
        "same_shape": a.shape == b.shape,
    }


def compare_latents(a: torch.Tensor, b: torch.Tensor) -> dict:
    difference = (a.double() - b.double()).abs()
    return {
        "relative_l2": float(difference.norm() / a.double().norm()),
        "max_abs_diff": float(difference.max()),
    }


def comparison(entry: dict, outputs: dict[str, Output], baseline: str, path: str) -> dict | None:
    """`path` against `baseline` at one frame count: speed ratios (baseline / path), and how far
    apart the two videos and the two runs' final latents are."""
    first, second = entry.get(baseline), entry.get(path)
    if first is None or second is None or "error" in first or "error" in second:
        return None
    return {
        "against": baseline,
        "step_speedup": first["seconds_per_step"] / second["seconds_per_step"],
        "end_to_end_speedup": first["end_to_end_seconds"] / second["end_to_end_seconds"],
        "difference": compare(outputs[baseline].video, outputs[path].video),
        "latent_difference": compare_latents(outputs[baseline].latents, outputs[path].latents),
    }


def add_comparisons(entry: dict, outputs: dict[str, Output]) -> None:
    """b/a as before (keys at the top of the entry); FP8 under "fp8", against bf16's service
    path where it ran, else against plain."""
    service = comparison(entry, outputs, "plain", "service")
    if service is not None:
        entry.update(service)
    baseline = "service" if "service" in entry else "plain"
    fp8_figures = comparison(entry, outputs, baseline, SERVICE_PATHS["fp8"])
    if fp8_figures is None:
        return
    versus_plain = comparison(entry, outputs, "plain", SERVICE_PATHS["fp8"])
    if baseline != "plain" and versus_plain is not None:
        fp8_figures["step_speedup_vs_plain"] = versus_plain["step_speedup"]
    entry["fp8"] = fp8_figures


def service_precisions(precision: str) -> list[str]:
    return ["bf16", "fp8"] if precision == "both" else [precision]


def service_engine(pipeline, args, device: str, precision: str) -> GenerationEngine:
    """The service's engine at one DiT precision. On the CPU, FP8 runs as PyTorch's emulation."""
    compile_transformer = device.startswith("cuda") and not args.no_compile
    memory = torch.cuda.get_device_properties(0).total_memory / GIB if device == "cuda" else 8.0
    model = "tiny" if args.tiny else "mochi"
    if compile_transformer:
        # Each precision compiles its own graphs; none of the last one's count against the
        # recompile limit.
        torch._dynamo.reset()
    return GenerationEngine.from_pipeline(
        pipeline, model, device, memory, compile_transformer, precision, device == "cpu"
    )


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
        "--rounds", type=int, default=5, help="CPU: alternate the paths this many times"
    )
    parser.add_argument(
        "--service-only", action="store_true", help="skip plain diffusers (a memory check)"
    )
    parser.add_argument(
        "--precision",
        choices=("bf16", "fp8", "both"),
        default="bf16",
        help="the service path's DiT linear layers; both: bf16 and fp8 side by side",
    )
    parser.add_argument(
        "--gpus-per-job",
        type=int,
        default=1,
        help="N > 1: also time one rank's share of N and model the N-GPU step",
    )
    parser.add_argument(
        "--link-gbps", type=float, default=350.0, help="model: all-to-all GB/s per GPU"
    )
    parser.add_argument("--latency-us", type=float, default=30.0, help="model: per collective")
    args = parser.parse_args()
    if args.tiny:
        args.frames = args.frames if args.frames != "31,85,163" else "7,13"
        args.height, args.width = (64, 64) if args.height == 480 else (args.height, args.width)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    refusal = fp8.device_refusal(device, allow_cpu=True) if args.precision != "bf16" else None
    if refusal:
        parser.error(f"--precision {args.precision}: {refusal}")
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {**vars(args), "out": str(args.out)}
    report = {"device": describe_device(device), "torch": torch.__version__, "args": settings}
    frame_counts = [int(f) for f in args.frames.split(",")]

    pipeline, warm_start = load_pipeline(args, device)
    if args.gpus_per_job > 1:
        check_gpus_per_job(parser, args.gpus_per_job, pipeline.transformer)
    report["plain_setup"] = (
        "docs: model cpu offload + vae tiling" if device == "cuda" else "docs: vae tiling"
    )
    report["warm_start"] = warm_start
    if device == "cpu":
        report["runs"] = alternate_on_cpu(pipeline, args, frame_counts, device)
    else:
        engine = run_on_gpu(pipeline, args, frame_counts, device, report)
        if args.cap_gib:
            report["capped"] = run_capped(engine, args, frame_counts, device)
    if args.gpus_per_job > 1:
        save(report, args.out)
        report["parallel"] = parallel_figures(args, frame_counts, device)
    save(report, args.out)
    print((args.out / "gpu-bench.md").read_text())


def run_on_gpu(pipeline, args, frame_counts, device, report) -> GenerationEngine:
    """Plain, then each precision's service path, every frame count; returns the last engine."""
    runs = report["runs"] = {frames: {} for frames in frame_counts}
    outputs: dict[str, dict[int, Output]] = {"plain": {}}
    for frames in [] if args.service_only else frame_counts:
        outputs["plain"][frames], result = guarded(run_plain, pipeline, args, frames, device)
        runs[frames]["plain"] = result
        save(report, args.out)
        print(f"plain   {frames:>4} frames: {summary(result)}", flush=True)
    pipeline.remove_all_hooks()
    pipeline.to(device)
    # FP8 swaps layers in place, so it runs after bf16, on the module itself (not bf16's
    # compiled wrapper); its memory peaks then hold no bf16 copy of those weights.
    transformer = pipeline.transformer
    for precision in service_precisions(args.precision):
        pipeline.transformer = transformer
        engine = service_engine(pipeline, args, device, precision)
        path = SERVICE_PATHS[precision]
        outputs[path] = run_service_path(engine, args, frame_counts, device, report, path)
    for frames, entry in runs.items():
        add_comparisons(entry, {path: made[frames] for path, made in outputs.items() if made})
    save(report, args.out)
    report["warm_start"]["first_job_compile_seconds"] = next(
        (
            result["compile_warm_up_seconds"]
            for entry in runs.values()
            for result in entry.values()
            if isinstance(result, dict) and "compile_warm_up_seconds" in result
        ),
        None,
    )
    return engine


def run_service_path(engine, args, frame_counts, device, report, path) -> dict[int, Output]:
    outputs = {}
    for frames in frame_counts:
        warm = GenerationParams(
            prompt=PROMPT, num_frames=frames, height=args.height, width=args.width, seed=0
        )
        warm_seconds = engine.warm_up(warm) if engine.compiled else None
        outputs[frames], result = guarded(run_service, engine, args, frames, device)
        if warm_seconds is not None:
            result["compile_warm_up_seconds"] = warm_seconds
        report["runs"][frames][path] = result
        save(report, args.out)
        print(f"{path:<12} {frames:>4} frames: {summary(result)}", flush=True)
    return outputs


def check_gpus_per_job(parser, gpus: int, transformer) -> None:
    from service.parallel.mochi_plan import ParallelismRefused, check_world_size

    try:
        check_world_size(gpus, transformer.config.num_attention_heads)
    except ParallelismRefused as refused:
        parser.error(f"--gpus-per-job {gpus}: {refused}")


def parallel_figures(args, frame_counts, device) -> dict:
    """One rank's share of N, measured here at each frame count (torch's fake process group:
    the share's compute through the real code path, no communication), the bytes a rank sends
    per step at Mochi-1's full shapes, and parallel_share's model of the N-GPU step."""
    import parallel_share

    gpus = args.gpus_per_job
    model = "tiny" if args.tiny else "full"
    share_args = argparse.Namespace(
        model=model,
        device=device,
        height=args.height,
        width=args.width,
        repeats=SHARE_REPEATS,
        link_gbps=args.link_gbps,
        latency_us=args.latency_us,
    )
    runs = {}
    for frames in frame_counts:
        share_args.frames = frames
        whole_model = parallel_share.build(model, device)
        whole = parallel_share.seconds_per_forward(whole_model, share_args, SHARE_REPEATS)
        del whole_model
        share = parallel_share.share_seconds(share_args, gpus)
        runs[frames] = {
            "whole_forward_seconds": whole,
            "rank0_share_seconds": share,
            "share_fraction": share / whole,
            "ideal_fraction": 1 / gpus,
            "bytes_per_rank_per_step_full_480x848": parallel_share.bytes_per_rank_per_step(
                frames, gpus
            ),
        }
        if gpus == 2:  # two ranks with guidance on split the CFG batch instead
            cfg_share = parallel_share.cfg_share_seconds(share_args)
            runs[frames]["cfg_split_share_fraction"] = cfg_share / whole
            runs[frames]["cfg_split_bytes_per_rank_per_step_full_480x848"] = (
                parallel_share.cfg_bytes_per_rank_per_step(frames)
            )
        print(f"share of {gpus} {frames:>4} frames: {share:.4f} s of {whole:.4f} s", flush=True)
    # As parallel_share does: tiny-model shares on a CPU are overhead-bound and say nothing
    # about a GPU, so its model then assumes the ideal 1/N.
    largest = runs[max(frame_counts)]
    fractions = {} if args.tiny else {gpus: largest["share_fraction"]}
    cfg_fraction = 0.5 if args.tiny else largest.get("cfg_split_share_fraction", 0.5)
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        parallel_share.print_model(fractions, share_args, cfg_fraction)
    return {
        "gpus_per_job": gpus,
        "transformer": model,
        "runs": runs,
        "model_share_fraction": fractions.get(gpus, 1 / gpus),
        "model": table.getvalue().strip(),
    }


def alternate_on_cpu(pipeline, args, frame_counts, device) -> dict:
    """On the CPU the paths share one pipeline at no switching cost (FP8 on a copy of the
    transformer), so they alternate and each figure is the median of its rounds: a shared
    machine drifts more than they differ."""
    engines = {}
    for precision in service_precisions(args.precision):
        source = pipeline if precision == "bf16" else with_own_transformer(pipeline)
        engines[SERVICE_PATHS[precision]] = service_engine(source, args, device, precision)
    runs = {}
    for frames in frame_counts:
        rounds, outputs = {"plain": [], **{path: [] for path in engines}}, {}
        for _ in range(args.rounds):
            outputs["plain"], plain = run_plain(pipeline, args, frames, device)
            rounds["plain"].append(plain)
            for path, engine in engines.items():
                outputs[path], result = run_service(engine, args, frames, device)
                rounds[path].append(result)
        entry = {path: _median_result(results) for path, results in rounds.items()}
        add_comparisons(entry, outputs)
        runs[frames] = entry
        line = f"{frames:>4} frames over {args.rounds} rounds:"
        if "step_speedup" in entry:
            line += f" step b/a {entry['step_speedup']:.2f}x"
        if "fp8" in entry:
            latents = entry["fp8"]["latent_difference"]["relative_l2"]
            line += f"; fp8 latents {latents:.2%} from {entry['fp8']['against']}'s (L2)"
        print(line, flush=True)
    return runs


def with_own_transformer(pipeline):
    """The same pipeline but for a copy of its transformer (and scheduler), for FP8 to swap."""
    components = {**pipeline.components}
    for name in ("transformer", "scheduler"):
        components[name] = copy.deepcopy(components[name])
    copied = type(pipeline)(**components)
    copied.set_progress_bar_config(disable=True)
    return copied


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
        for path in ("plain", *SERVICE_PATHS.values()):
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
            lines.append(
                f"| {frames} | **b/a** | **{entry['step_speedup']:.2f}x** | | "
                f"**{entry['end_to_end_speedup']:.2f}x** | | | "
                f"{_difference(entry['difference'])} |"
            )
        if "fp8" in entry:
            lines.append(_fp8_row(frames, entry["fp8"]))
    capped = report.get("capped")
    if capped:
        lines += ["", f"Service path held to {capped['cap_gib']:g} GiB:", ""]
        for frames, result in capped["runs"].items():
            lines.append(f"- {frames} frames: {summary(result)}")
    if "parallel" in report:
        lines += ["", *_parallel_lines(report["parallel"])]
    lines += ["", "Warm start: " + json.dumps(report["warm_start"], default=str)]
    return "\n".join(lines) + "\n"


def _difference(diff: dict) -> str:
    return (
        f"mean |a-b| {diff['mean_abs_diff']:.4f}, max {diff['max_abs_diff']:.3f}, "
        f"PSNR {diff['psnr_db']:.1f} dB"
    )


def _fp8_row(frames, figures: dict) -> str:
    against = "bf16" if figures["against"] == "service" else "plain"
    versus_plain = figures.get("step_speedup_vs_plain")
    plain = f" ({versus_plain:.2f}x plain)" if versus_plain is not None else ""
    latents = figures["latent_difference"]
    return (
        f"| {frames} | **{against}/fp8** | **{figures['step_speedup']:.2f}x**{plain} | | "
        f"**{figures['end_to_end_speedup']:.2f}x** | | | frames: "
        f"{_difference(figures['difference'])}; latents: {latents['relative_l2']:.2%} (L2), "
        f"max {latents['max_abs_diff']:.3f} |"
    )


def _parallel_lines(parallel: dict) -> list[str]:
    gpus = parallel["gpus_per_job"]
    lines = [
        f"One rank's share of {gpus} GPUs, MEASURED here ({parallel['transformer']} transformer, "
        "fake process group: compute only, no communication):",
        "",
        f"| frames | whole forward s | rank-0 share s | fraction (ideal {1 / gpus:.3f}) | "
        "GB sent per rank per step (Mochi-1, 480x848) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for frames, run in parallel["runs"].items():
        lines.append(
            f"| {frames} | {run['whole_forward_seconds']:.4f} | {run['rank0_share_seconds']:.4f} "
            f"| {run['share_fraction']:.3f} | "
            f"{run['bytes_per_rank_per_step_full_480x848'] / 1e9:.2f} |"
        )
    lines += [
        "",
        f"Share fraction in the model below: {parallel['model_share_fraction']:.3f} for "
        f"N = {gpus}, ideal 1/N for the other N.",
        "",
        parallel["model"],
    ]
    return lines


def _fmt(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else "-"


if __name__ == "__main__":
    main()
