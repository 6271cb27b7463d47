"""The one answer to "does this fit?", shared by the API, the worker, infra and the doctor.

Calibrated on shared/data/mochi-h200-calibration.json (H200, bf16): every figure below is a
least-squares fit of those measurements; tests/test_memory_model.py checks each measured point
is predicted within 10%. Pure Python on purpose: the API image has no torch (nor `kubernetes`);
every size here is a float of GiB, and callers read Kubernetes quantities with service.quantities.

A job may run on N ranks (context parallelism, Ulysses): each rank holds the whole pipeline on its
own GPU and 1/N of the DiT's tokens; rank 0 alone decodes. The plans below are per GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.config import DIT_PRECISIONS

GIB = 2**30
REFERENCE_PIXELS = 480 * 848  # resolution of every calibration measurement
TEMPORAL_COMPRESSION = 6
SPATIAL_TOKEN_SIZE = 16  # 8x VAE downsampling times the DiT's 2x2 patches

# Host RAM of one pipeline's weights while loading or when offloading (bf16 + loader staging).
HOST_PIPELINE_GIB = 29.5
HOST_PROCESS_OVERHEAD_GIB = 3.0
# MOCHI_DIT_PRECISION "fp8" stores the DiT's Linear weights in one byte each; "bf16" keeps the
# DiT as loaded.
FP8_BYTES = 1
# The CUDA context, allocator fragmentation and cuDNN workspaces take this off the card's size.
GPU_RESERVED_GIB = 1.5
GPU_USABLE_FRACTION = 0.97


@dataclass(frozen=True)
class ModelProfile:
    name: str
    transformer_params: int
    text_encoder_params: int
    vae_params: int
    # Elements of the DiT's nn.Linear weight matrices (biases excluded): what fp8 stores in 1 byte.
    transformer_linear_params: int
    # The DiT's attention heads: Ulysses splits them over the ranks, so N must divide them.
    attention_heads: int
    # DiT activation memory above its weights, per token and per batch element (CFG runs batch 2).
    activation_gib_per_token: float
    activation_base_gib: float
    # VAE decode peak above the VAE's weights at REFERENCE_PIXELS: base + per_frame x frames.
    vae_untiled_base_gib: float
    vae_untiled_gib_per_frame: float
    vae_tiled_base_gib: float
    vae_tiled_gib_per_frame: float
    # Host RAM of one pipeline while loading, or while offloaded to the host.
    host_pipeline_gib: float = HOST_PIPELINE_GIB
    bytes_per_param: int = 2

    def weights_gib(self, params: int) -> float:
        return params * self.bytes_per_param / GIB

    @property
    def transformer_gib(self) -> float:
        return self.weights_gib(self.transformer_params)

    @property
    def text_encoder_gib(self) -> float:
        return self.weights_gib(self.text_encoder_params)

    @property
    def vae_gib(self) -> float:
        return self.weights_gib(self.vae_params)

    @property
    def resident_gib(self) -> float:
        return self.resident_weights_gib()

    def dit_weights_gib(self, dit_precision: str = "bf16") -> float:
        """The transformer's weights with its Linear weights at `dit_precision`."""
        if dit_precision not in DIT_PRECISIONS:
            raise ValueError(
                f"dit_precision {dit_precision!r} must be one of {', '.join(DIT_PRECISIONS)}"
            )
        if dit_precision == "bf16":
            return self.transformer_gib
        rest = self.transformer_params - self.transformer_linear_params
        return (rest * self.bytes_per_param + self.transformer_linear_params * FP8_BYTES) / GIB

    def resident_weights_gib(self, dit_precision: str = "bf16") -> float:
        """Every component on the device: what each rank of a job holds, a whole pipeline."""
        return self.dit_weights_gib(dit_precision) + self.text_encoder_gib + self.vae_gib


MOCHI_1 = ModelProfile(
    name="genmo/mochi-1-preview",
    transformer_params=10_027_677_744,
    text_encoder_params=4_893_906_944,
    vae_params=459_748_611,
    transformer_linear_params=10_026_369_024,
    attention_heads=24,
    activation_gib_per_token=0.0000955,
    activation_base_gib=0.042,
    vae_untiled_base_gib=2.26,
    vae_untiled_gib_per_frame=0.688,
    vae_tiled_base_gib=1.17,
    vae_tiled_gib_per_frame=0.103,
)

VAE_DECODE_FIELDS = (
    "vae_untiled_base_gib",
    "vae_untiled_gib_per_frame",
    "vae_tiled_base_gib",
    "vae_tiled_gib_per_frame",
)


def narrower(
    profile: ModelProfile, dit_width_ratio: float, vae_width_ratio: float, **own
) -> ModelProfile:
    """`profile`'s architecture with narrower layers: the DiT's activations per token and the
    VAE's decode memory shrink with the widths; `own`: the narrower model's counts and the rest
    that is its own."""
    decode = {name: getattr(profile, name) * vae_width_ratio for name in VAE_DECODE_FIELDS}
    per_token = profile.activation_gib_per_token * dit_width_ratio
    return replace(profile, activation_gib_per_token=per_token, **decode, **own)


# The tiny model's widths: DiT hidden 3072 -> 16, VAE decoder channels 768 -> 32. Parameter and
# head counts are those of service.tiny_model (a test keeps them true), as Mochi-1's are those of
# diffusers' MochiTransformer3DModel default config.
TINY = narrower(
    MOCHI_1,
    dit_width_ratio=16 / 3072,
    vae_width_ratio=32 / 768,
    name="tiny",
    transformer_params=20_280,
    text_encoder_params=18_880,
    vae_params=623_523,
    transformer_linear_params=18_912,
    attention_heads=2,
    activation_base_gib=0.0,
    host_pipeline_gib=(20_280 + 18_880 + 623_523) * 4 / GIB,
    bytes_per_param=4,
)

PROFILES = {"mochi": MOCHI_1, "tiny": TINY}


def profile_for(model_source: str) -> ModelProfile:
    """The profile of a model source: `tiny`, or anything else is full-size Mochi-1."""
    return TINY if model_source == "tiny" else MOCHI_1


def latent_frames(num_frames: int) -> int:
    return (num_frames - 1) // TEMPORAL_COMPRESSION + 1


def dit_tokens(num_frames: int, height: int, width: int) -> int:
    return (
        latent_frames(num_frames) * (height // SPATIAL_TOKEN_SIZE) * (width // SPATIAL_TOKEN_SIZE)
    )


def cfg_batch(guidance_scale: float) -> int:
    """diffusers runs the conditional and unconditional branch together when guidance > 1."""
    return 2 if guidance_scale > 1.0 else 1


@dataclass(frozen=True)
class JobShape:
    """The video a job makes, which is what of the job its memory depends on besides guidance
    (the DiT's batch: cfg_batch)."""

    num_frames: int
    height: int
    width: int

    @property
    def dit_tokens(self) -> int:
        return dit_tokens(self.num_frames, self.height, self.width)

    @property
    def pixel_ratio(self) -> float:
        return (self.height * self.width) / REFERENCE_PIXELS


def dit_activation_gib(
    profile: ModelProfile, shape: JobShape, batch: int, gpus_per_job: int = 1
) -> float:
    """One rank's DiT activations: its 1/N of the tokens; the base does not shrink with N."""
    per_rank = profile.activation_gib_per_token * shape.dit_tokens * batch / gpus_per_job
    return profile.activation_base_gib + per_rank


def dit_forward_peak_gib(
    profile: ModelProfile,
    shape: JobShape,
    batch: int,
    gpus_per_job: int = 1,
    dit_precision: str = "bf16",
) -> float:
    """Peak of one rank's DiT forward with only the transformer resident."""
    activation = dit_activation_gib(profile, shape, batch, gpus_per_job)
    return profile.dit_weights_gib(dit_precision) + activation


def vae_decode_extra_gib(profile: ModelProfile, shape: JobShape, tiled: bool) -> float:
    if tiled:
        base, per_frame = profile.vae_tiled_base_gib, profile.vae_tiled_gib_per_frame
    else:
        base, per_frame = profile.vae_untiled_base_gib, profile.vae_untiled_gib_per_frame
    return (base + per_frame * shape.num_frames) * shape.pixel_ratio


def vae_decode_peak_gib(profile: ModelProfile, shape: JobShape, tiled: bool) -> float:
    """Peak of decoding one video with only the VAE resident."""
    return profile.vae_gib + vae_decode_extra_gib(profile, shape, tiled)


def staging_peak_gib(params: int) -> float:
    """Peak while building a module: loaders stage an fp32 copy before casting to bf16."""
    return params * 4 / GIB


def usable_gpu_gib(gpu_memory_gib: float) -> float:
    return gpu_memory_gib * GPU_USABLE_FRACTION - GPU_RESERVED_GIB


@dataclass(frozen=True)
class Plan:
    """How one job runs on each of its devices, and the predicted peak of the fullest one.

    With gpus_per_job N > 1 that is rank 0's GPU: it holds a DiT share like every rank, and
    decodes the video too.
    """

    fits: bool
    cpu_offload: bool
    vae_tiling: bool
    peak_gib: float
    usable_gib: float
    gpus_per_job: int = 1
    dit_precision: str = "bf16"

    def describe(self) -> str:
        mode = "cpu offload" if self.cpu_offload else "all weights resident"
        if self.dit_precision != "bf16":
            mode += f", {self.dit_precision} DiT"
        decode = "tiled" if self.vae_tiling else "untiled"
        verdict = "fits" if self.fits else "does not fit"
        where = f"{self.usable_gib:.1f} GiB usable"
        if self.gpus_per_job > 1:
            where += f" per GPU of {self.gpus_per_job} (rank 0 decodes)"
        return (
            f"{mode}, {decode} VAE decode: predicted peak {self.peak_gib:.1f} GiB, "
            f"{verdict} in {where}"
        )


def predicted_peak_gib(
    profile: ModelProfile,
    shape: JobShape,
    guidance_scale: float,
    cpu_offload: bool,
    vae_tiling: bool,
    gpus_per_job: int = 1,
    dit_precision: str = "bf16",
    rank: int = 0,
) -> float:
    """Peak device memory of one rank of the job; rank 0 alone decodes the video."""
    activation = dit_activation_gib(profile, shape, cfg_batch(guidance_scale), gpus_per_job)
    decode_extra = 0.0
    if rank == 0:
        decode_extra = vae_decode_extra_gib(profile, shape, vae_tiling)
    if cpu_offload:
        # Model offload keeps one component on the device at a time.
        return max(
            profile.text_encoder_gib,
            profile.dit_weights_gib(dit_precision) + activation,
            profile.vae_gib + decode_extra,
        )
    return profile.resident_weights_gib(dit_precision) + max(activation, decode_extra)


def plan_generation(
    profile: ModelProfile,
    num_frames: int,
    height: int,
    width: int,
    guidance_scale: float,
    gpu_memory_gib: float,
    gpus_per_job: int = 1,
    dit_precision: str = "bf16",
) -> Plan:
    """The fastest way to run a job that fits: resident beats offload, untiled beats tiled.

    `gpu_memory_gib` is one GPU's; with `gpus_per_job` ranks every GPU must hold its rank's peak,
    and rank 0's (DiT share, then the decode) is the highest.
    """
    shape = JobShape(num_frames, height, width)
    usable = usable_gpu_gib(gpu_memory_gib)
    candidates = [(False, False), (False, True), (True, False), (True, True)]
    plan = None
    for cpu_offload, vae_tiling in candidates:
        peak = predicted_peak_gib(
            profile, shape, guidance_scale, cpu_offload, vae_tiling, gpus_per_job, dit_precision
        )
        plan = Plan(
            peak <= usable, cpu_offload, vae_tiling, peak, usable, gpus_per_job, dit_precision
        )
        if plan.fits:
            return plan
    return plan


def worker_host_memory_gib(
    pipelines: int, object_store_gib: float, profile: ModelProfile = MOCHI_1
) -> float:
    """Host RAM a Ray worker pod needs: pipeline weights + object store (/dev/shm) + process."""
    return pipelines * profile.host_pipeline_gib + object_store_gib + HOST_PROCESS_OVERHEAD_GIB
