"""MP4 files: written to a temporary name then renamed, so a reader never sees half a video."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FPS = 30


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """diffusers' `output_type="np"` frames (T, H, W, 3) in [0, 1] to bytes."""
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def write_mp4_atomically(frames: np.ndarray, path: Path, fps: int = FPS) -> Path:
    """Encode on local disk, then copy into place: errors writing the (shared) destination
    surface as plain OSErrors with their errno (no space, permission denied)."""
    with tempfile.TemporaryDirectory(prefix="mochi-encode-") as scratch:
        encoded = Path(scratch) / "video.mp4"
        encode_mp4(frames, encoded, fps)
        partial = path.with_name(path.name + ".partial")
        try:
            with open(encoded, "rb") as source, open(partial, "wb") as target:
                shutil.copyfileobj(source, target)
                target.flush()
                os.fsync(target.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return path


def encode_mp4(frames: np.ndarray, path: Path, fps: int = FPS) -> None:
    frames = to_uint8(frames)
    _, height, width, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        quality=8,
        macro_block_size=1,
        output_params=["-f", "mp4"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()


def count_frames(path: Path) -> int:
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    return frames
