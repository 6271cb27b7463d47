"""Context parallelism for diffusers' MochiTransformer3DModel, through diffusers' own framework.

What is split: the video tokens along the sequence, once, at the first block (the sequence is
frame-major, so a rank holds a contiguous run of frames' patches), with the RoPE table split the
same way, and gathered again at `proj_out`. The text tokens are split along the sequence too, after
`time_embed` (whose caption pooling needs the whole prompt), with their mask split alike; every
per-token layer of the text stream (norms, feed-forward, projections) then runs on a rank's share.

Why text is split and not replicated: Mochi's attention is joint. Video and text queries attend to
the keys of both, so a text token must appear exactly once among the keys. Splitting makes that
hold without duplicated work or an extra broadcast per layer. Mochi drops the masked (padding) text
tokens before attention rather than masking them, which keeps SDPA on its mask-free (flash)
kernels; a rank does the same with its share, so ranks hold unequal numbers of tokens (rank 0 often
all of a short prompt's, another none). Diffusers' "Ulysses anything" attention takes unequal local
lengths, and it also splits a video sequence that N does not divide (85 frames at 480x848 is
23850 tokens), so it is the mode used. Attention heads must still divide evenly: padded heads
would be wasted work on every rank, so such an N is refused.

What diffusers cannot express: its `_cp_plan` hooks split and gather tensors, and its attention
dispatch runs Ulysses, but `MochiAttnProcessor2_0` calls SDPA itself, so the plan alone would
attend within each rank's share only. `MochiContextParallelAttnProcessor` is Mochi's processor
with the attention call routed through `dispatch_attention_fn(parallel_config=...)`; everything
collective happens inside diffusers.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.hooks.context_parallel import apply_context_parallel, remove_context_parallel
from diffusers.models._modeling_parallel import (
    ContextParallelConfig,
    ContextParallelInput,
    ParallelConfig,
    gather_size_by_comm,
)
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.attention_processor import MochiAttention, MochiAttnProcessor2_0

_SEQUENCE = ContextParallelInput(split_dim=1, expected_dims=3)
_ROPE = ContextParallelInput(split_dim=0, expected_dims=3, split_output=True)

MOCHI_CP_PLAN = {
    # time_embed returns (temb, encoder_hidden_states): split the text after caption pooling.
    "time_embed": {1: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
    # rope returns (cos, sin), each (video tokens, heads, head_dim / 2).
    "rope": {0: _ROPE, 1: _ROPE},
    # Later blocks receive the shares the block before them returned.
    "transformer_blocks.0": {"hidden_states": _SEQUENCE},
    # Every block is handed the whole mask by the model's forward.
    "transformer_blocks.*": {
        "encoder_attention_mask": ContextParallelInput(split_dim=1, expected_dims=2)
    },
}
# Gathered by SequenceGatherHook, not a ContextParallelOutput: diffusers gathers unequal shares
# with dist.all_gather of unequal sizes, which NCCL accepts and gloo refuses.
GATHERED_MODULE, GATHER_DIM = "proj_out", 1


class ParallelismRefused(ValueError):
    """A world size this model cannot be split over."""


def check_world_size(world_size: int, num_attention_heads: int) -> None:
    if world_size < 1:
        raise ParallelismRefused(f"gpus per job must be at least 1, got {world_size}")
    if num_attention_heads % world_size != 0:
        raise ParallelismRefused(
            f"gpus per job {world_size} does not divide the transformer's "
            f"{num_attention_heads} attention heads; use a divisor of {num_attention_heads}"
        )


def enable_context_parallel(transformer, device: torch.device) -> ParallelConfig:
    """Split `transformer` over the initialized default process group (Ulysses, every rank).

    Does the context-parallel part of `ModelMixin.enable_parallelism` with diffusers' own pieces
    (config setup, the plan's hooks, the processors' parallel config). That method itself picks
    the device as `rank % torch.accelerator.device_count()`, which divides by zero on a CPU, so
    the same path is used everywhere and the CPU test exercises what runs on GPUs.
    """
    # torch.compile's wrapper traces at its next call: the hooks go on the module it wraps.
    transformer = getattr(transformer, "_orig_mod", transformer)
    world_size = dist.get_world_size()
    check_world_size(world_size, transformer.config.num_attention_heads)
    cp_config = ContextParallelConfig(ulysses_degree=world_size, ulysses_anything=True)
    mesh = dist.device_mesh.init_device_mesh(
        device.type, (1, world_size), mesh_dim_names=cp_config.mesh_dim_names
    )
    config = ParallelConfig(context_parallel_config=cp_config)
    config.setup(dist.get_rank(), world_size, device, mesh=mesh)
    for module in transformer.modules():
        if isinstance(module, MochiAttention):
            processor = MochiContextParallelAttnProcessor()
            processor._parallel_config = config
            module.processor = processor
    apply_context_parallel(transformer, cp_config, MOCHI_CP_PLAN)
    gather = SequenceGatherHook(GATHER_DIM, cp_config._flattened_mesh.get_group())
    registry = HookRegistry.check_if_exists_or_initialize(getattr(transformer, GATHERED_MODULE))
    registry.register_hook(gather, "cp_output---" + GATHERED_MODULE)
    transformer._parallel_config = config
    return config


def disable_context_parallel(transformer) -> None:
    """Undo enable_context_parallel: the plan's hooks, the gather, Mochi's own processors."""
    remove_context_parallel(transformer, MOCHI_CP_PLAN)
    HookRegistry.check_if_exists_or_initialize(getattr(transformer, GATHERED_MODULE)).remove_hook(
        "cp_output---" + GATHERED_MODULE, recurse=False
    )
    for module in transformer.modules():
        if isinstance(module, MochiAttention):
            module.processor = MochiAttnProcessor2_0()
    transformer._parallel_config = None


class SequenceGatherHook(ModelHook):
    """Gathers every rank's share of a module's output along `dim`, shares of any lengths:
    padded to the longest, all-gathered, trimmed."""

    def __init__(self, dim: int, group: dist.ProcessGroup):
        super().__init__()
        self.dim, self.group = dim, group

    def post_forward(self, module, output: torch.Tensor) -> torch.Tensor:
        sizes = gather_size_by_comm(output.size(self.dim), self.group)
        padding = [0, 0] * (output.dim() - 1 - self.dim) + [0, max(sizes) - output.size(self.dim)]
        padded = F.pad(output, padding).contiguous()
        shares = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(shares, padded, group=self.group)
        pairs = zip(shares, sizes, strict=True)
        return torch.cat([share.narrow(self.dim, 0, size) for share, size in pairs], dim=self.dim)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x_even, x_odd = x[..., 0::2].float(), x[..., 1::2].float()
    rotated = (x_even * cos - x_odd * sin, x_even * sin + x_odd * cos)
    return torch.stack([part.to(x.dtype) for part in rotated], dim=-1).flatten(-2)


def _heads(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    return tensor.unflatten(2, (heads, -1))


class MochiContextParallelAttnProcessor:
    """MochiAttnProcessor2_0 with its attention through diffusers' dispatch (and so Ulysses).

    Tensors are (batch, tokens, heads, head_dim) throughout, the dispatcher's layout. Without a
    parallel config it computes what Mochi's own processor computes.
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self,
        attn: MochiAttention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        query, key, value = self._video_qkv(attn, hidden_states, image_rotary_emb)
        text_query, text_key, text_value = self._text_qkv(attn, encoder_hidden_states)
        video_tokens = query.size(1)
        video_out, text_out = [], []
        # Per batch element, as Mochi does: each prompt keeps only its own unmasked tokens.
        for index in range(query.size(0)):
            valid = torch.nonzero(attention_mask[index].flatten(), as_tuple=False).flatten()
            joint = [
                torch.cat([video[index : index + 1], text[index : index + 1, valid]], dim=1)
                for video, text in ((query, text_query), (key, text_key), (value, text_value))
            ]
            out = dispatch_attention_fn(
                *joint, backend=self._attention_backend, parallel_config=self._parallel_config
            )
            video_out.append(out[:, :video_tokens])
            text = out.new_zeros((1, *text_query.shape[1:]))
            text[:, valid] = out[:, video_tokens:]
            text_out.append(text)
        hidden_states = attn.to_out[1](attn.to_out[0](torch.cat(video_out).flatten(2, 3)))
        encoder_hidden_states = torch.cat(text_out).flatten(2, 3)
        if hasattr(attn, "to_add_out"):
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        return hidden_states, encoder_hidden_states

    @staticmethod
    def _video_qkv(attn, hidden_states, image_rotary_emb):
        query = _heads(attn.to_q(hidden_states), attn.heads)
        key = _heads(attn.to_k(hidden_states), attn.heads)
        value = _heads(attn.to_v(hidden_states), attn.heads)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query, key = (_rotate(x, *image_rotary_emb) for x in (query, key))
        return query, key, value

    @staticmethod
    def _text_qkv(attn, encoder_hidden_states):
        query = _heads(attn.add_q_proj(encoder_hidden_states), attn.heads)
        key = _heads(attn.add_k_proj(encoder_hidden_states), attn.heads)
        value = _heads(attn.add_v_proj(encoder_hidden_states), attn.heads)
        if attn.norm_added_q is not None:
            query = attn.norm_added_q(query)
        if attn.norm_added_k is not None:
            key = attn.norm_added_k(key)
        return query, key, value
