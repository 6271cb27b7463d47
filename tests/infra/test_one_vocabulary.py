"""One vocabulary for infra, the doctor and the API: Kubernetes quantities and image references
each read by one module, and one largest job and one set of defaults, GenerationParams's. Each
agreement is shown at a boundary where a second reading would answer differently."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import yaml
from fastapi.testclient import TestClient

from doctor import images
from doctor.checks.input_values import refused_values
from doctor.checks.jobs import jobs_nobody_can_run
from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.sources import load_manifests
from doctor.state import JobsState
from infra import config, render
from policy import gaps
from service import auth, image_refs, quantities
from service.api import create_app
from service.config import Settings
from service.memory_model import MOCHI_1, plan_generation
from service.params import DEFAULTS, LARGEST_JOB, MAX_FRAMES, MAX_SIDE, SIDE_MULTIPLE

from .conftest import SETTINGS

DIGEST = "sha256:" + "0123456789abcdef" * 4
MOCHI = "genmo/mochi-1-preview"
GPU_MEMORY_SETTING = "MOCHI_WORKER_GPU_MEMORY_GIB"


def prod_values(**overrides: object) -> dict[str, str]:
    return render.with_overrides(render.stack_config("prod"), {**SETTINGS["prod"], **overrides})


def config_problems(**overrides: object) -> dict[str, config.ConfigProblem]:
    try:
        config.load(prod_values(**overrides).get)
    except config.InvalidConfig as invalid:
        return {problem.key: problem for problem in invalid.problems}
    return {}


# -- image references --------------------------------------------------------------------------

IMAGE_FORMS = [
    # reference, repository, tag, digest, registry, pinned by infra's rule
    ("mochi-api", "mochi-api", None, None, "", False),
    ("mochi-api:0.1.0", "mochi-api", "0.1.0", None, "", True),
    ("mochi-api:latest", "mochi-api", "latest", None, "", False),
    ("acme/mochi-api:0.1.0", "acme/mochi-api", "0.1.0", None, "", True),
    ("registry:5000/mochi-api:0.1.0", "registry:5000/mochi-api", "0.1.0", None, "registry:5000",
     True),
    ("registry:5000/mochi-api", "registry:5000/mochi-api", None, None, "registry:5000", False),
    (f"mochi-api@{DIGEST}", "mochi-api", None, DIGEST, "", True),
    (f"mochi-api:0.1.0@{DIGEST}", "mochi-api", "0.1.0", DIGEST, "", True),
    ("localhost/mochi-api", "localhost/mochi-api", None, None, "localhost", False),
]  # fmt: skip


@pytest.mark.parametrize(("reference", "repository", "tag", "digest", "registry", "_"), IMAGE_FORMS)
def test_image_reference_forms(reference, repository, tag, digest, registry, _):
    ref = image_refs.parse_image(reference)
    assert (ref.repository, ref.tag, ref.digest, ref.registry) == (
        repository,
        tag,
        digest,
        registry,
    )
    assert ref.short_name == "mochi-api"


@pytest.mark.parametrize(("reference", "_r", "_t", "_d", "_g", "pinned"), IMAGE_FORMS)
def test_infra_judges_each_form_as_the_parser_reads_it(reference, _r, _t, _d, _g, pinned):
    """A registry port is no tag: `registry:5000/mochi-api` is unpinned."""
    problem = config_problems(**{"mochi:apiImage": reference}).get("mochi:apiImage")
    assert (problem is None) == pinned, problem


def test_the_doctor_and_the_policy_pack_read_images_with_the_one_parser():
    assert images.parse_image is image_refs.parse_image
    assert gaps.parse_image is image_refs.parse_image


# -- quantities ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["64Gi", "64G", "5e-1", "1e3", "64GB", "1K", "1e3Gi", "4 Gi"])
def test_infra_and_the_doctor_refuse_the_same_quantities(value):
    deployment = {
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [{"resources": {"limits": {"cpu": value}}}]}}},
    }
    doctor_refuses = bool(list(refused_values(deployment)))
    infra_refuses = "mochi:apiCpu" in config_problems(**{"mochi:apiCpu": value})
    assert doctor_refuses == infra_refuses == (not quantities.is_quantity(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1Ki", 1024), ("7500M", 7_500_000_000), ("1.5Gi", 1_610_612_736), ("0.5", 1), (3, 3)],
)
def test_byte_count_is_exact_and_rounds_up(value, expected):
    assert quantities.byte_count(value) == expected


def test_the_object_store_is_rendered_in_the_bytes_of_the_quantity():
    objects = render.kubernetes_objects(
        render.run_stack("prod", **SETTINGS["prod"], **{"mochi:rayObjectStoreMemory": "7500M"})
    )
    [cluster] = [o for o in objects if o["kind"] == "RayCluster"]
    [group] = cluster["spec"]["workerGroupSpecs"]
    assert group["rayStartParams"]["object-store-memory"] == "7500000000"


def test_the_memory_model_and_params_import_no_kubernetes():
    """The API image has no `kubernetes`: what the API imports reads no quantity itself."""
    probe = (
        "import sys, service.memory_model, service.params, service.image_refs; "
        "print('kubernetes' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True)
    assert loaded.stdout.strip() == b"False"


# -- the largest job and the defaults -----------------------------------------------------------


def smallest_fitting_gpu(num_frames: int, height: int, width: int, guidance: float) -> int:
    """The fewest whole GiB of one GPU on which the memory model runs the job."""
    return next(
        gib
        for gib in range(1, 1000)
        if plan_generation(MOCHI_1, num_frames, height, width, guidance, gib).fits
    )


LARGEST_GPU = smallest_fitting_gpu(
    LARGEST_JOB.num_frames, LARGEST_JOB.height, LARGEST_JOB.width, LARGEST_JOB.guidance_scale
)
DEFAULT_GPU = smallest_fitting_gpu(
    DEFAULTS["num_frames"], DEFAULTS["height"], DEFAULTS["width"], DEFAULTS["guidance_scale"]
)


def test_the_largest_job_is_every_limit_the_api_admits():
    assert (LARGEST_JOB.num_frames, LARGEST_JOB.height, LARGEST_JOB.width) == (
        MAX_FRAMES,
        MAX_SIDE,
        MAX_SIDE,
    )
    # One GiB below the boundary the model's native 480x848 still fits: a reading of the largest
    # job as 480x848 would pass the GPU that the tests below refuse.
    assert plan_generation(MOCHI_1, MAX_FRAMES, 480, 848, 4.5, LARGEST_GPU - 1).fits


def rendered_prod(gpu_gib: int) -> list[dict]:
    registrations = render.run_stack("prod", **SETTINGS["prod"], **{"mochi:gpuMemoryGib": gpu_gib})
    return render.kubernetes_objects(registrations)


def worker_settings(objects: list[dict]) -> dict[str, str]:
    [data] = [
        o["data"] for o in objects if o["kind"] == "ConfigMap" and GPU_MEMORY_SETTING in o["data"]
    ]
    return data


def doctor_largest_job_findings(objects: list[dict], tmp_path) -> list:
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    return [f for f in diagnose(load_manifests([str(tmp_path)])).findings if f.code == "MEM004"]


@pytest.fixture
def api_for(redis_server, redis_client, tmp_path):
    """A TestClient over the real app and Redis, configured by `settings`, and its user's key."""
    key = {"Authorization": f"Bearer {auth.add_key(redis_client, 'alice')}"}
    output = tmp_path / "videos"
    output.mkdir()

    def client(settings: Settings) -> TestClient:
        local = replace(settings, redis_url=redis_server.url, output_dir=str(output))
        return TestClient(create_app(local), headers=key)

    return client


def test_infra_the_doctor_and_the_api_agree_on_the_largest_job(tmp_path, api_for):
    job = LARGEST_JOB.model_dump(exclude_none=True)
    fits = rendered_prod(LARGEST_GPU)  # infra accepts the GPU on which the largest job fits
    assert doctor_largest_job_findings(fits, tmp_path) == []
    with api_for(Settings.from_env(worker_settings(fits))) as api:
        assert api.post("/v1/jobs", json=job).status_code == 202
        above = {**job, "height": MAX_SIDE + SIDE_MULTIPLE}
        assert api.post("/v1/jobs", json=above).status_code == 422

    problem = config_problems(**{"mochi:gpuMemoryGib": LARGEST_GPU - 1})["mochi:gpuMemoryGib"]
    assert f"({MAX_FRAMES} frames at {MAX_SIDE}x{MAX_SIDE}) does not fit" in problem.message
    # Infra renders nothing for that GPU, so the doctor and the API read the render above with
    # one GiB less in the settings the workers and the API share.
    smaller = worker_settings(fits)
    smaller[GPU_MEMORY_SETTING] = str(LARGEST_GPU - 1)
    [finding] = doctor_largest_job_findings(fits, tmp_path)
    assert f"a {MAX_FRAMES}-frame {MAX_SIDE}x{MAX_SIDE} {MOCHI} job" in finding.message
    with api_for(Settings.from_env(smaller)) as api:
        refused = api.post("/v1/jobs", json=job)
        assert refused.status_code == 422 and "does not fit" in refused.text


def queued_job_verdicts(params: dict, gpu_gib: float) -> list:
    """JOB003's hits for one queued job with these params on one live worker."""
    inventory = Inventory()
    inventory.live.jobs = JobsState(
        server_time=1000.0,
        workers_seen={"worker-1": 1000.0},
        workers={"worker-1": {"device_memory_gib": gpu_gib, "model": MOCHI}},
        jobs=[{"id": "job-1", "status": "queued", "params": params}],
    )
    return list(jobs_nobody_can_run(inventory))


def test_the_doctor_and_the_api_give_a_job_without_sizes_the_same_defaults(api_for):
    for gpu_gib, fits in ((DEFAULT_GPU, True), (DEFAULT_GPU - 1, False)):
        assert (queued_job_verdicts({"prompt": "p"}, gpu_gib) == []) == fits
        assert (queued_job_verdicts({"prompt": "p", **DEFAULTS}, gpu_gib) == []) == fits
        settings = Settings(model=MOCHI, worker_gpu_memory_gib=float(gpu_gib))
        with api_for(settings) as api:
            answer = api.post("/v1/jobs", json={"prompt": "p"})
            assert answer.status_code == (202 if fits else 422), answer.text
