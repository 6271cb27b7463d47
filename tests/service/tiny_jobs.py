"""A job the tiny model runs in seconds, shared by the tests that compare two ways of running it."""

from service.params import GenerationParams

# 13 frames at 80x112: 3 latent frames of 5x7 patches, 105 video tokens (split 53 + 52 on two
# ranks); the prompt's tokens all fall in rank 0's half of the text, the empty negative prompt's
# too.
FOX_JOB = GenerationParams(
    prompt="a red fox",
    negative_prompt="",
    num_frames=13,
    height=80,
    width=112,
    num_inference_steps=4,
    guidance_scale=4.5,
    seed=7,
)
