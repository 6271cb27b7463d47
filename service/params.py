"""Generation parameters, named as diffusers names them, with the limits the API enforces.

The limits, the defaults (DEFAULTS) and the largest job those limits admit (LARGEST_JOB) live here
once: the API admits by them, infra validates a stack against them, the doctor judges by them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PROMPT_CHARS = 2000
MIN_FRAMES, MAX_FRAMES, FRAME_STEP = 7, 163, 6
MIN_SIDE, MAX_SIDE, SIDE_MULTIPLE = 64, 848, 16
MIN_STEPS, MAX_STEPS = 2, 200
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 20.0
MAX_SEED = 2**63 - 1


class GenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, str_strip_whitespace=False)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    num_frames: int = Field(default=31, ge=MIN_FRAMES, le=MAX_FRAMES)
    height: int = Field(default=480, ge=MIN_SIDE, le=MAX_SIDE)
    width: int = Field(default=848, ge=MIN_SIDE, le=MAX_SIDE)
    # Mochi's sigma schedule divides by num_steps // 2: one step cannot run.
    num_inference_steps: int = Field(default=64, ge=MIN_STEPS, le=MAX_STEPS)
    guidance_scale: float = Field(
        default=4.5, ge=MIN_GUIDANCE, le=MAX_GUIDANCE, allow_inf_nan=False
    )
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if any((ord(c) < 32 and c not in "\t\n\r") or 127 <= ord(c) < 160 for c in value):
            raise ValueError("must not contain control characters (tab and newline are fine)")
        if value.strip() == "" and value != "":
            raise ValueError("must contain a non-blank character")
        return value

    @field_validator("num_frames")
    @classmethod
    def _frames_form(cls, value: int) -> int:
        if (value - 1) % FRAME_STEP != 0:
            raise ValueError(
                f"must be of the form 6k+1 in [{MIN_FRAMES}, {MAX_FRAMES}] (7, 13, 19, ...)"
            )
        return value

    @field_validator("height", "width")
    @classmethod
    def _side_multiple(cls, value: int) -> int:
        if value % SIDE_MULTIPLE != 0:
            raise ValueError(f"must be a multiple of {SIDE_MULTIPLE} in [{MIN_SIDE}, {MAX_SIDE}]")
        return value


# What a job that leaves a parameter out runs with: {"num_frames": 31, "height": 480, ...}.
DEFAULTS = {
    name: field.default
    for name, field in GenerationParams.model_fields.items()
    if not field.is_required()
}
# Every size at its limit (height and width are limited each on its own, so 848x848): the job
# that needs the most memory of all the API admits.
LARGEST_JOB = GenerationParams(
    prompt="the largest job the API admits",
    num_frames=MAX_FRAMES,
    height=MAX_SIDE,
    width=MAX_SIDE,
    num_inference_steps=MAX_STEPS,
    guidance_scale=MAX_GUIDANCE,
)
