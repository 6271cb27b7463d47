"""FP8 linear layers for the DiT (service/fp8.py), on the CPU through PyTorch's own scaled_mm.

Where the tolerances come from. float8_e4m3fn keeps 3 mantissa bits, so rounding a normal value
to the nearest e4m3 moves it by at most half a unit in the last place: u = 2^-4 of its magnitude.
Each row is scaled so that its largest magnitude becomes 448 (e4m3's largest finite value); a
scaled value below e4m3's smallest normal, 2^-6, lands on the subnormal grid of spacing 2^-9 and
moves by at most 2^-10 (times the row's scale). With e = u|v| + 2^-10 s for every element v of
scale s, the exact product of the quantized operands differs from x.w by at most
sum_k (e_x (|w| + e_w) + |x| e_w), elementwise over the output; the bf16 output and bf16 bias
add 2^-8 of their magnitude each (bf16 keeps 8 significant bits). That bound holds for every
output element. Typically, rounding errors of random sign average out: each operand carries a
relative RMS error of about 2^-4 / (1.5 sqrt 3) = 2.4%, the product about 3.4%, so one layer's
output is off by about 3.4% of its norm, and the whole transformer (where each block adds its
output to an exact residual stream) by no more.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from service import fp8, generation
from service.fp8 import Fp8Linear, PrecisionRefused
from service.generation import GenerationEngine
from service.tiny_model import build_tiny_pipeline, build_transformer
from tests.service.tiny_jobs import FOX_JOB as JOB

U = 2.0**-4  # e4m3 unit roundoff
SUBNORMAL_HALF_SPACING = 2.0**-10
BF16_ROUNDOFF = 2.0**-8
# One FP8 layer's typical relative error is about 3.4% (module docstring); 5% leaves room.
LAYER_RELATIVE_TOLERANCE = 0.05
TRANSFORMER_RELATIVE_TOLERANCE = 0.05
# Each step's velocity carries the transformer's error (<= 5%) and the Euler update adds a
# fraction of it to latents that hold the rest exactly; over a short schedule the latents drift
# by less than twice one step's error.
LATENT_RELATIVE_TOLERANCE = 0.10
CPU_REFUSAL = (
    "FP8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper); this worker has no CUDA "
    "GPU (device cpu): set MOCHI_DIT_PRECISION=bf16"
)


def rounding_bound(inputs: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """The elementwise bound of the module docstring, in float64."""
    x = inputs.reshape(-1, linear.in_features).double()
    w = linear.weight.detach().double()
    x_scale = x.abs().amax(dim=1, keepdim=True) / fp8.E4M3_MAX
    w_scale = w.abs().amax(dim=1, keepdim=True) / fp8.E4M3_MAX
    x_error = U * x.abs() + SUBNORMAL_HALF_SPACING * x_scale
    w_error = U * w.abs() + SUBNORMAL_HALF_SPACING * w_scale
    product = x_error @ (w.abs() + w_error).T + x.abs() @ w_error.T
    exact = (x @ w.T + linear.bias.detach().double()).abs()
    rounding = BF16_ROUNDOFF * (exact + product + linear.bias.detach().double().abs())
    # fp32 division and accumulation: far below the rest, covered by a thousandth.
    return (product + rounding) * 1.001


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_linear_matches_nn_linear_within_the_e4m3_rounding_bound(dtype):
    torch.manual_seed(0)
    linear = nn.Linear(64, 48).to(dtype)
    # Tokens of very different sizes and one outlier channel: what per-row scales are for.
    inputs = torch.randn(3, 40, 64) * torch.logspace(-3, 2, 40)[None, :, None]
    inputs[..., 5] *= 30
    inputs = inputs.to(dtype)
    exact = inputs.double() @ linear.weight.detach().double().T + linear.bias.detach().double()

    out = Fp8Linear.from_linear(linear)(inputs)

    assert out.dtype == dtype and out.shape == (3, 40, 48)
    error = (out.double() - exact).reshape(-1, 48)
    assert torch.all(error.abs() <= rounding_bound(inputs, linear))
    # Against nn.Linear's own output, per token row and relative to the row: small tokens are
    # as exact as large ones, which one scale for the whole tensor would not give.
    reference = linear(inputs).double().reshape(-1, 48)
    relative = (out.double().reshape(-1, 48) - reference).norm(dim=1) / reference.norm(dim=1)
    assert relative.max() < LAYER_RELATIVE_TOLERANCE
    assert relative.mean() > 1e-3  # it really went through 8 bits


def test_a_row_of_zeros_stays_zeros_and_finite():
    linear = nn.Linear(32, 16, bias=False)
    out = Fp8Linear.from_linear(linear)(torch.zeros(4, 32))
    assert torch.equal(out, torch.zeros(4, 16))


def test_swapped_tiny_transformer_stays_close_and_holds_float8_weights():
    torch.manual_seed(0)
    transformer = build_transformer().eval()
    original = copy.deepcopy(transformer)
    inputs = tiny_inputs(transformer)
    with torch.no_grad():
        expected = original(*inputs, return_dict=False)[0]

    names = fp8.convert_transformer(transformer, "cpu", allow_cpu=True)

    blocks_linears = {
        name: module
        for name, module in original.named_modules()
        if isinstance(module, nn.Linear) and name.startswith("transformer_blocks.")
    }
    aligned = {
        name
        for name, module in blocks_linears.items()
        if module.in_features % 16 == 0 and module.out_features % 16 == 0
    }
    assert set(names) == aligned and len(names) == 19
    # The tiny model's feed-forward (16 -> 84, 42 -> 16) does not align and stays as it was.
    unaligned = set(blocks_linears) - aligned
    assert unaligned and all(".ff" in name for name in unaligned)
    assert all(type(transformer.get_submodule(name)) is nn.Linear for name in unaligned)
    for kept in ("proj_out", "norm_out.linear", "time_embed.caption_proj"):
        assert type(transformer.get_submodule(kept)) is nn.Linear
    swapped = [transformer.get_submodule(name) for name in names]
    assert all(isinstance(layer, Fp8Linear) for layer in swapped)
    assert all(layer.weight.dtype == torch.float8_e4m3fn for layer in swapped)
    # The footprint: one byte a weight, against four in fp32 and two in bf16; the scales add
    # one float32 per output channel.
    fp8_bytes = sum(layer.weight.numel() * layer.weight.element_size() for layer in swapped)
    fp32_bytes = sum(blocks_linears[name].weight.numel() * 4 for name in names)
    bf16_bytes = sum(blocks_linears[name].weight.numel() * 2 for name in names)
    assert fp8_bytes * 4 == fp32_bytes and fp8_bytes * 2 == bf16_bytes
    assert next(transformer.parameters()).dtype == torch.float32  # the model's dtype is kept

    with torch.no_grad():
        out = transformer(*inputs, return_dict=False)[0]
    relative = ((out - expected).norm() / expected.norm()).item()
    assert 1e-4 < relative < TRANSFORMER_RELATIVE_TOLERANCE


def tiny_inputs(transformer):
    config = transformer.config
    latents = torch.randn(2, config.in_channels, 3, 8, 8)
    text = torch.randn(2, config.max_sequence_length, config.text_embed_dim)
    mask = torch.ones(2, config.max_sequence_length, dtype=torch.long)
    return latents, text, torch.full((2,), 500), mask


@pytest.mark.parametrize(
    ("capability", "name", "refused"),
    [((8, 0), "NVIDIA A100-SXM4-80GB", True), ((8, 6), "NVIDIA GeForce RTX 3090", True)]
    + [((8, 9), "NVIDIA L4", False), ((9, 0), "NVIDIA H200", False)],
)
def test_gpus_below_compute_capability_8_9_are_refused_in_one_sentence(capability, name, refused):
    reason = fp8.gpu_refusal(capability, name)
    if not refused:
        assert reason is None
        return
    major, minor = capability
    assert reason == (
        "FP8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper); "
        f"this GPU is {major}.{minor} ({name}): set MOCHI_DIT_PRECISION=bf16"
    )


def test_a_rocm_build_is_refused_naming_the_build_and_e4m3fnuz(monkeypatch):
    """Before any device query: this machine need not have the GPU the build is for."""
    monkeypatch.setattr(torch.version, "hip", "6.2.41133-dd7f95766")
    assert fp8.device_refusal("cuda:0") == (
        "FP8 here runs on NVIDIA GPUs only: this PyTorch is a ROCm build "
        "(HIP 6.2.41133-dd7f95766), and AMD's MI300 computes FP8 in float8_e4m3fnuz, which this "
        "service does not support: set MOCHI_DIT_PRECISION=bf16"
    )
    with pytest.raises(PrecisionRefused, match="ROCm build .* float8_e4m3fnuz"):
        fp8.check_device("cuda")
    assert fp8.device_refusal("cpu", allow_cpu=True) is None  # the CPU emulation is the same


def test_the_cpu_is_refused_without_allow_cpu_and_nothing_is_swapped():
    transformer = build_transformer()
    with pytest.raises(PrecisionRefused) as refused:
        fp8.convert_transformer(transformer, "cpu")
    assert str(refused.value) == CPU_REFUSAL
    assert not any(isinstance(module, Fp8Linear) for module in transformer.modules())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_engine_load_refuses_fp8_on_this_cpu_machine_before_loading_anything():
    loads = generation.pipeline_loads
    with pytest.raises(PrecisionRefused) as refused:
        GenerationEngine.load("tiny", dit_precision="fp8")
    assert str(refused.value) == CPU_REFUSAL
    assert isinstance(refused.value, ValueError)
    assert generation.pipeline_loads == loads


def test_engine_load_names_the_field_and_the_choices_for_an_unknown_precision():
    with pytest.raises(ValueError, match=r"dit_precision='fp16' must be one of bf16, fp8"):
        GenerationEngine.load("tiny", dit_precision="fp16")


def test_a_full_tiny_job_in_fp8_runs_to_frames_close_to_bf16():
    results = {}
    for precision in ("bf16", "fp8"):
        engine = GenerationEngine.from_pipeline(
            build_tiny_pipeline(), "tiny", "cpu", 8.0, False, precision, allow_cpu_fp8=True
        )
        latents = []
        frames, metrics = engine.generate(JOB, on_final_latents=latents.append)
        assert engine.dit_precision == precision and len(latents) == 1
        results[precision] = frames, latents[0].double()
    frames, latents = results["fp8"]
    assert frames.shape == (13, 80, 112, 3) and np.isfinite(frames).all()
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    bf16_latents = results["bf16"][1]
    relative = ((latents - bf16_latents).norm() / bf16_latents.norm()).item()
    assert 1e-4 < relative < LATENT_RELATIVE_TOLERANCE


BENCH = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


def test_gpu_bench_puts_fp8_beside_bf16_and_models_a_job_on_two_gpus(tmp_path):
    command = [sys.executable, str(BENCH), "--tiny", "--frames", "7", "--steps", "3"]
    command += ["--rounds", "1", "--precision", "both", "--gpus-per-job", "2"]
    subprocess.run(command + ["--out", str(tmp_path)], check=True, capture_output=True, timeout=300)
    report = json.loads((tmp_path / "gpu-bench.json").read_text())
    entry = report["runs"]["7"]
    assert entry["service"]["dit_precision"] == "bf16"
    assert entry["service_fp8"]["dit_precision"] == "fp8"
    assert entry["fp8"]["against"] == "service" and entry["fp8"]["step_speedup"] > 0
    assert 1e-4 < entry["fp8"]["latent_difference"]["relative_l2"] < LATENT_RELATIVE_TOLERANCE
    share = report["parallel"]["runs"]["7"]
    assert share["rank0_share_seconds"] > 0 and share["bytes_per_rank_per_step_full_480x848"] > 0
    markdown = (tmp_path / "gpu-bench.md").read_text()
    assert "**bf16/fp8**" in markdown and "MODEL (not measured)" in markdown


def test_gpu_bench_refuses_more_gpus_per_job_than_the_heads_divide(tmp_path):
    command = [sys.executable, str(BENCH), "--tiny", "--frames", "7", "--gpus-per-job", "4"]
    run = subprocess.run(command + ["--out", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "--gpus-per-job 4: gpus per job 4 does not divide the transformer's 2" in run.stderr
