"""FP8 linear layers for the Mochi DiT, through PyTorch's own scaled matmul.

A swapped layer holds its weight as float8_e4m3fn, quantized once with one scale per output
channel; each call quantizes its input with one scale per token row (dynamic), and
`torch.nn.functional.scaled_mm` multiplies the two with float32 accumulation, applying both scales
and the bias before writing bf16. Row-wise scales on both sides keep one large token or output
channel from coarsening the resolution of all the others, as a single per-tensor scale would.

NVIDIA GPUs only: the e4m3 type AMD's MI300 computes in is float8_e4m3fnuz (another exponent
bias, no negative zero), which nothing here quantizes to, so a ROCm build is refused up front.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max
MIN_COMPUTE_CAPABILITY = (8, 9)
# scaled_mm needs the contraction (in_features) and output (out_features) sizes in multiples of 16.
ALIGNMENT = 16
ROW_WISE = F.ScalingType.RowWise
# Hopper's FP8 tensor cores keep partial sums in reduced precision unless the kernel promotes them
# to fp32 along the way; fast accumulation skips that promotion. A video takes 64 steps through 48
# blocks, so rounding that grows with K (3072 to 8192 here) is not worth a few percent of GEMM time.
USE_FAST_ACCUM = False
ADVICE = "set MOCHI_DIT_PRECISION=bf16"


class PrecisionRefused(ValueError):
    """This worker cannot run the DiT at the precision asked for."""


def gpu_refusal(capability: tuple[int, int], name: str) -> str | None:
    """The one sentence that refuses FP8 on a GPU too old for it; None where it runs."""
    if tuple(capability) >= MIN_COMPUTE_CAPABILITY:
        return None
    major, minor = capability
    return (
        "FP8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper); "
        f"this GPU is {major}.{minor} ({name}): {ADVICE}"
    )


def rocm_refusal(hip_version: str | None) -> str | None:
    """The one sentence that refuses FP8 on a ROCm build of PyTorch; None on any other."""
    if hip_version is None:
        return None
    return (
        f"FP8 here runs on NVIDIA GPUs only: this PyTorch is a ROCm build (HIP {hip_version}), "
        "and AMD's MI300 computes FP8 in float8_e4m3fnuz, which this service does not support: "
        f"{ADVICE}"
    )


def device_refusal(device: str, allow_cpu: bool = False) -> str | None:
    """Why FP8 cannot run on `device`, or None. `allow_cpu` admits PyTorch's CPU emulation of
    scaled_mm, which is slow and exists for tests and the benchmark, never for the service."""
    if device.startswith("cuda"):  # a ROCm build's AMD GPUs are "cuda" devices too
        return rocm_refusal(torch.version.hip) or gpu_refusal(
            torch.cuda.get_device_capability(device), torch.cuda.get_device_name(device)
        )
    if allow_cpu and device == "cpu":
        return None
    return (
        "FP8 needs a GPU of compute capability 8.9 or newer (Ada, Hopper); "
        f"this worker has no CUDA GPU (device {device}): {ADVICE}"
    )


def check_device(device: str, allow_cpu: bool = False) -> None:
    reason = device_refusal(device, allow_cpu)
    if reason is not None:
        raise PrecisionRefused(reason)


def quantize_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-D tensor as e4m3 values and the float32 (rows, 1) scales that decode them: each row's
    largest magnitude maps to e4m3's largest finite value, 448."""
    values = matrix.float()
    largest = values.abs().amax(dim=1, keepdim=True)
    # A row of zeros keeps a finite scale (and quantizes to zeros) instead of dividing by zero.
    scale = largest.clamp(min=torch.finfo(torch.float32).tiny) / E4M3_MAX
    # e4m3fn has no infinity: a value past 448 after rounding would become NaN, so clamp first.
    quantized = (values / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return quantized, scale


class Fp8Linear(nn.Module):
    """An nn.Linear's computation with an e4m3 weight (per output channel scales) and e4m3
    activations (per row scales, computed each call); returns the input's dtype."""

    def __init__(self, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        # Buffers, not parameters: diffusers reads a model's dtype from its parameters, and the
        # transformer's dtype must stay bf16 (the latents' dtype) when these layers are float8.
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, work_device: str | None = None) -> Fp8Linear:
        """Quantized on `work_device` (a GPU does it in a blink), stored where `linear` was."""
        home = linear.weight.device
        weight, scale = quantize_rows(linear.weight.detach().to(work_device or home))
        bias = None
        if linear.bias is not None:
            # scaled_mm adds a bf16 bias to a bf16 output in its epilogue.
            bias = linear.bias.detach().to(home, torch.bfloat16)
        # scaled_mm wants the weight's scales as a contiguous (1, out_features) row.
        return cls(weight.to(home), scale.t().contiguous().to(home), bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows, scale = quantize_rows(inputs.reshape(-1, self.in_features))
        # (tokens, in) row-major times (in, out) column-major: the layout FP8 kernels take.
        out = F.scaled_mm(
            rows,
            self.weight.t(),
            scale,
            ROW_WISE,
            self.weight_scale,
            ROW_WISE,
            bias=self.bias,
            output_dtype=torch.bfloat16,
            use_fast_accum=USE_FAST_ACCUM,
        )
        return out.to(inputs.dtype).reshape(*inputs.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, e4m3 row-wise"


def fp8_layer_names(transformer: nn.Module) -> list[str]:
    """The Linear layers of the transformer blocks whose sizes scaled_mm takes.

    Swapped: inside every block, the attention projections (q, k, v, out, for video and text),
    both feed-forwards, and the adaptive-norm modulation layers: 99% of Mochi-1's 10.0 B weights
    and nearly all of its FLOPs. The modulation layers see one row per batch element, so FP8
    saves their memory (27% of the weights) rather than time.
    Kept as loaded: `time_embed` (timestep MLP, caption pooler and projection: once per step on
    at most 256 rows, 0.8% of the weights, and every block's modulation derives from it),
    `patch_embed` (a Conv2d), and `norm_out` + `proj_out`, the final modulation and projection
    (0.2%), whose error would land on the predicted velocity with no later layer to absorb it.
    """
    return [
        name
        for name, module in transformer.named_modules()
        if name.startswith("transformer_blocks.")
        and isinstance(module, nn.Linear)
        and module.in_features % ALIGNMENT == 0
        and module.out_features % ALIGNMENT == 0
    ]


def convert_transformer(transformer: nn.Module, device: str, allow_cpu: bool = False) -> list[str]:
    """Swap the layers fp8_layer_names picks for Fp8Linear, in place; returns their names.
    `device` is where the DiT will run (checked first, and where the quantizing happens)."""
    check_device(device, allow_cpu)
    names = fp8_layer_names(transformer)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = transformer.get_submodule(parent_name)
        setattr(parent, child, Fp8Linear.from_linear(getattr(parent, child), device))
    return names
