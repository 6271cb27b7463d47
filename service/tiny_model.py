"""A tiny random Mochi pipeline built in code: no download, a few ms per step on a CPU.

Same classes as the real model (MochiTransformer3DModel, AutoencoderKLMochi, T5EncoderModel,
a fast tokenizer), so every code path of the service runs on it; its videos are noise.
"""

from __future__ import annotations

import string

import torch
from diffusers import (
    AutoencoderKLMochi,
    FlowMatchEulerDiscreteScheduler,
    MochiPipeline,
    MochiTransformer3DModel,
)
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

TEXT_WIDTH = 32
MAX_SEQUENCE_LENGTH = 32
SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]


def build_tokenizer(max_length: int = MAX_SEQUENCE_LENGTH) -> PreTrainedTokenizerFast:
    """Character-level tokenizer: different prompts give different token ids."""
    alphabet = string.ascii_lowercase + string.digits + string.punctuation + " "
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + list(alphabet))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_text_encoder(vocab_size: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=vocab_size,
        d_model=TEXT_WIDTH,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def build_transformer() -> MochiTransformer3DModel:
    return MochiTransformer3DModel(
        patch_size=2,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=2,
        pooled_projection_dim=16,
        in_channels=12,
        qk_norm="rms_norm",
        text_embed_dim=TEXT_WIDTH,
        time_embed_dim=4,
        activation_fn="swiglu",
        max_sequence_length=MAX_SEQUENCE_LENGTH,
    )


def build_vae() -> AutoencoderKLMochi:
    return AutoencoderKLMochi(
        latent_channels=12,
        out_channels=3,
        encoder_block_out_channels=(32, 32, 32, 32),
        decoder_block_out_channels=(32, 32, 32, 32),
        layers_per_block=(1, 1, 1, 1, 1),
    )


def build_tiny_pipeline(seed: int = 0) -> MochiPipeline:
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    pipeline = MochiPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=build_vae(),
        text_encoder=build_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        transformer=build_transformer(),
    )
    pipeline.set_progress_bar_config(disable=True)
    return eval_mode(pipeline)


def eval_mode(pipeline: MochiPipeline) -> MochiPipeline:
    """Modules built from a config start in training mode (dropout on); loaded ones do not."""
    for module in (pipeline.transformer, pipeline.text_encoder, pipeline.vae):
        module.eval()
    return pipeline
