"""One rank's share of a denoising step, and a model of the step across N GPUs.

Measured: the transformer forward of one job shape, whole (one rank) and as rank 0 of N under
`enable_context_parallel`, on this machine. The N-rank share runs in one process on torch's fake
process group, whose collectives return at once with tensors of the right shapes: the share's
compute through the real code path, with no communication.

Model (labelled as such in the output): per-step time with N GPUs = the measured one-GPU service
step (bench/results, H200) x the measured share fraction + Ulysses communication time, from the
bytes each rank sends per step at full Mochi-1 shapes over an assumed all-to-all bandwidth, plus a
per-collective latency; no overlap of communication with compute is assumed.

    .venv/bin/python bench/parallel_share.py                      # tiny model, CPU
    .venv/bin/python bench/parallel_share.py --model full --device cuda --frames 85
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
from diffusers import MochiTransformer3DModel

from service import memory_model
from service.parallel.mochi_plan import enable_context_parallel
from service.tiny_model import build_transformer

RESULTS = Path(__file__).parent / "results" / "gpu-h200-2026-11-26.json"
FULL = {
    "heads": 24,
    "head_dim": 128,
    "layers": 48,
    "text_tokens": 256,
    "bytes": 2,
    "latent_channels": 12,
}
# Per attention layer and batch element: q, k, v and the output each cross one all-to-all, and
# each all-to-all is preceded by an all-gather of the ranks' local lengths.
COLLECTIVES_PER_LAYER = 8
CFG_BATCH = 2


def build(model: str, device: str) -> torch.nn.Module:
    if model == "tiny":
        transformer = build_transformer()
    else:
        transformer = MochiTransformer3DModel().to(torch.bfloat16)  # Mochi-1's shapes
    return transformer.to(device).eval()


def inputs(transformer, frames: int, height: int, width: int, device: str, batch=CFG_BATCH):
    config = transformer.config
    dtype = next(transformer.parameters()).dtype
    latent_shape = (batch, config.in_channels, memory_model.latent_frames(frames))
    latent_shape += (height // 8, width // 8)
    text_tokens = config.max_sequence_length
    latents = torch.randn(latent_shape, device=device, dtype=dtype)
    text = torch.randn(batch, text_tokens, config.text_embed_dim, device=device, dtype=dtype)
    mask = torch.ones(batch, text_tokens, dtype=torch.long, device=device)
    return latents, text, torch.full((batch,), 500, device=device), mask


def seconds_per_forward(transformer, args, repeats: int, batch_size: int = CFG_BATCH) -> float:
    batch = inputs(transformer, args.frames, args.height, args.width, args.device, batch_size)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            transformer(*batch, return_dict=False)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def share_seconds(args, world_size: int) -> float:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world_size)
    try:
        transformer = build(args.model, args.device)
        enable_context_parallel(transformer, torch.device(args.device))
        return seconds_per_forward(transformer, args, args.repeats)
    finally:
        dist.destroy_process_group()


def cfg_share_seconds(args) -> float:
    """One CFG element over the whole sequence: a rank's work when 2 ranks split the batch."""
    return seconds_per_forward(build(args.model, args.device), args, args.repeats, batch_size=1)


def cfg_bytes_per_rank_per_step(frames: int) -> float:
    """The CFG split's one all-gather: a rank's noise prediction (latent channels x latent
    frames x 60 x 106 at 480x848) goes to the other rank."""
    latent = FULL["latent_channels"] * memory_model.latent_frames(frames) * (480 // 8) * (848 // 8)
    return latent * FULL["bytes"]


def bytes_per_rank_per_step(frames: int, world_size: int) -> float:
    """What one rank sends per step: all-to-alls of its (video + text) share of q, k, v and the
    output, (N-1)/N of each leaving the rank, for both CFG branches and every layer."""
    tokens = memory_model.dit_tokens(frames, 480, 848) + FULL["text_tokens"]
    share = tokens / world_size * FULL["heads"] * FULL["head_dim"] * FULL["bytes"]
    per_layer = 4 * share * (world_size - 1) / world_size * CFG_BATCH
    return per_layer * FULL["layers"]


def measured_single_gpu() -> dict[int, float]:
    runs = json.loads(RESULTS.read_text())["runs"]
    return {int(frames): run["service"]["seconds_per_step"] for frames, run in runs.items()}


def print_model(share_fraction: dict[int, float], args, cfg_fraction: float = 0.5) -> None:
    single = measured_single_gpu()
    print(
        f"\nMODEL (not measured): step = H200 one-GPU service step x share fraction + "
        f"bytes / {args.link_gbps:g} GB/s + {COLLECTIVES_PER_LAYER * CFG_BATCH * FULL['layers']}"
        f" collectives x {args.latency_us:g} us"
    )
    print("| frames | N | GB sent/rank/step | comm s | 1-GPU s/step | predicted s/step | speedup |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    collectives = COLLECTIVES_PER_LAYER * CFG_BATCH * FULL["layers"]
    for frames in (31, 85, 163):
        for world_size in (2, 4, 8):
            sent = bytes_per_rank_per_step(frames, world_size)
            comm = sent / (args.link_gbps * 1e9) + collectives * args.latency_us * 1e-6
            step = single[frames] * share_fraction.get(world_size, 1 / world_size) + comm
            speedup = single[frames] / step
            print(
                f"| {frames} | {world_size} | {sent / 1e9:.2f} | {comm:.3f} | "
                f"{single[frames]:.3f} | {step:.3f} | {speedup:.2f}x "
                f"({speedup / world_size:.2f} N) |"
            )
        sent = cfg_bytes_per_rank_per_step(frames)
        comm = sent / (args.link_gbps * 1e9) + args.latency_us * 1e-6
        step = single[frames] * cfg_fraction + comm
        speedup = single[frames] / step
        print(
            f"| {frames} | 2, CFG split | {sent / 1e9:.4f} | {comm:.4f} | {single[frames]:.3f} "
            f"| {step:.3f} | {speedup:.2f}x ({speedup / 2:.2f} N) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=31)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=848)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--gpus", type=int, nargs="+", help="default: 2 for tiny (2 heads), 2 4 8 for full"
    )
    parser.add_argument(
        "--link-gbps",
        type=float,
        default=350.0,
        help="assumed all-to-all bandwidth per GPU, GB/s (NVLink 4 through NVSwitch)",
    )
    parser.add_argument("--latency-us", type=float, default=30.0)
    args = parser.parse_args()

    args.gpus = args.gpus or ([2] if args.model == "tiny" else [2, 4, 8])
    tokens = memory_model.dit_tokens(args.frames, args.height, args.width)
    whole = seconds_per_forward(build(args.model, args.device), args, args.repeats)
    print(
        f"MEASURED on {args.device}, {args.model} transformer, {args.frames} frames at "
        f"{args.height}x{args.width} ({tokens} video tokens), CFG batch {CFG_BATCH}:"
    )
    print(f"  whole step (1 rank): {whole:.4f} s")
    fractions = {}
    for world_size in args.gpus:
        share = share_seconds(args, world_size)
        fractions[world_size] = share / whole
        print(
            f"  rank 0 share of {world_size}: {share:.4f} s = {share / whole:.3f} of the step "
            f"(ideal {1 / world_size:.3f})"
        )
    cfg_share = cfg_share_seconds(args)
    print(
        f"  rank share of 2 splitting the CFG batch: {cfg_share:.4f} s = "
        f"{cfg_share / whole:.3f} of the step (ideal 0.500)"
    )
    # Tiny-model shares on a CPU are overhead-bound; they say nothing about an H200.
    if args.model == "full":
        print_model(fractions, args, cfg_share / whole)
    else:
        print_model({}, args)


if __name__ == "__main__":
    main()
