"""The file sweeper: removes files in the output directory that no job owns any more.

Workers write `<job id>-a<attempt>.mp4`, through `<name>.partial` (service.video). Once older
than the grace period, a file is removed when it is a `.partial` (a copy that never finished),
a video of a job whose record is gone (retention expired it), or an attempt's file the job's
record does not name (an attempt that lost its lease after writing). A file of the attempt that
is running now, and the video a record names, are never removed; nor is any other name.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.jobstore import SWEPT_KINDS, JobStore, parse_video_name
from service.records import ACTIVE_STATES

log = logging.getLogger(__name__)
# Job records read per Redis round trip.
BATCH = 500


@dataclass(frozen=True)
class VideoFile:
    path: Path
    job_id: str
    attempt: int
    partial: bool


def orphan_kind(file: VideoFile, owner: dict[str, Any] | None) -> str | None:
    """Which counter removing this file adds to; None when a job still owns it."""
    if owner is not None:
        running = owner["status"] in ACTIVE_STATES
        if running and file.attempt >= owner["attempts"]:
            return None  # being written, or about to be recorded
    if file.partial:
        return "partials"
    if owner is None:
        return "videos"
    if owner["video"] == file.path.name:
        return None
    return "attempts"


def old_files(output_dir: Path, grace_seconds: float, now: float) -> list[VideoFile]:
    """The service's files in output_dir last written more than grace_seconds ago."""
    found = []
    with os.scandir(output_dir) as entries:
        for entry in entries:
            name = parse_video_name(entry.name)
            if name is None or not entry.is_file(follow_symlinks=False):
                continue
            try:
                modified = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
            if now - modified > grace_seconds:
                found.append(VideoFile(Path(entry.path), *name))
    return found


def sweep(store: JobStore, output_dir: Path, grace_seconds: float) -> dict[str, int]:
    """Remove the orphans among files older than grace_seconds; returns and counts (in
    service.keys.SWEPT) what went: `jobs` counts expired jobs whose files were removed."""
    files = old_files(output_dir, grace_seconds, time.time())
    removed: Counter[str] = Counter()
    expired_jobs: set[str] = set()
    for start in range(0, len(files), BATCH):
        batch = files[start : start + BATCH]
        owners = store.file_owners(sorted({file.job_id for file in batch}))
        for file in batch:
            owner = owners[file.job_id]
            kind = orphan_kind(file, owner)
            if kind is None or not _remove(file.path):
                continue
            removed[kind] += 1
            if owner is None:
                expired_jobs.add(file.job_id)
    removed["jobs"] = len(expired_jobs)
    counts = {kind: removed[kind] for kind in SWEPT_KINDS}
    if any(counts.values()):
        store.count_swept(counts)
        log.info("swept %s from %s", counts, output_dir)
    return counts


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:  # another sweeper, or the worker, was first
        return False
    return True
