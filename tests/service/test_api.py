"""The HTTP API over a real Redis: validation limits, auth, isolation, idempotency, admission."""

import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from service.api import create_app

VALID = {"prompt": "a cat", "num_frames": 7, "height": 64, "width": 64}


def submit(api, body=None, user="alice", **headers):
    return api.post("/v1/jobs", json=body or VALID, headers={**api.as_user(user), **headers})


def test_submit_returns_202_with_the_job(api):
    response = submit(api)
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert job["progress"] == {"step": 0, "total": 64}
    assert job["parameters"]["prompt"] == "a cat"
    assert job["attempts"] == 0 and job["video_url"] is None
    assert api.get(f"/v1/jobs/{job['id']}", headers=api.as_user("alice")).json() == job


@pytest.mark.parametrize(
    ("field", "value", "phrase"),
    [
        ("prompt", "", "at least 1"),
        ("prompt", "x" * 2001, "at most 2000"),
        ("num_frames", 8, "6k+1"),
        ("num_frames", 1, "greater than or equal to 7"),
        ("num_frames", 169, "less than or equal to 163"),
        ("height", 65, "multiple of 16"),
        ("height", 48, "greater than or equal to 64"),
        ("width", 864, "less than or equal to 848"),
        ("num_inference_steps", 1, "greater than or equal to 2"),
        ("num_inference_steps", 201, "less than or equal to 200"),
        ("guidance_scale", -0.1, "greater than or equal to 0"),
        ("guidance_scale", 20.5, "less than or equal to 20"),
        ("seed", -1, "greater than or equal to 0"),
        ("seed", "abc", "valid integer"),
        ("num_frames", 7.5, "valid integer"),
        ("colour", "red", "Extra inputs"),
    ],
)
def test_every_limit_is_a_clear_422_naming_the_field(api, redis_client, field, value, phrase):
    response = submit(api, {**VALID, field: value})
    assert response.status_code == 422
    problem = response.json()["fields"][0]
    assert problem["field"] == field
    assert phrase in problem["message"]
    assert redis_client.llen("mochi:queue") == 0


def test_limits_themselves_are_accepted(api):
    edge = {"prompt": "é" * 2000, "num_frames": 163, "height": 848, "width": 848}
    assert submit(api, {**edge, "num_inference_steps": 200, "guidance_scale": 20}).status_code
    assert submit(api, {**VALID, "num_frames": 163, "seed": 0, "guidance_scale": 0}).status_code


def test_body_over_64kb_is_413(api):
    response = api.post(
        "/v1/jobs",
        content=b'{"prompt": "' + b"x" * 70_000 + b'"}',
        headers={**api.as_user("alice"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_malformed_json_is_422_not_500(api):
    response = api.post(
        "/v1/jobs",
        content=b'{"prompt": ',
        headers={**api.as_user("alice"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_every_job_endpoint_needs_a_key(api):
    job_id = submit(api).json()["id"]
    for method, path in [
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("get", f"/v1/jobs/{job_id}"),
        ("post", f"/v1/jobs/{job_id}/cancel"),
        ("get", f"/v1/jobs/{job_id}/video"),
        ("post", "/generate"),
    ]:
        body = VALID if method == "post" else None
        assert api.request(method, path, json=body).status_code == 401
        wrong = {"Authorization": "Bearer mk_not-a-key"}
        assert api.request(method, path, json=body, headers=wrong).status_code == 401


def test_another_accounts_job_is_404_everywhere(api):
    job_id = submit(api, user="alice").json()["id"]
    bob = api.as_user("bob")
    assert api.get(f"/v1/jobs/{job_id}", headers=bob).status_code == 404
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=bob).status_code == 404
    assert api.get(f"/v1/jobs/{job_id}/video", headers=bob).status_code == 404
    assert api.get("/v1/jobs", headers=bob).json()["total"] == 0


def test_idempotent_retry_returns_the_same_job(api, redis_client):
    first = submit(api, **{"Idempotency-Key": "retry-1"}).json()
    again = submit(api, **{"Idempotency-Key": "retry-1"}).json()
    assert first["id"] == again["id"]
    assert redis_client.llen("mochi:queue") == 1
    other_account = submit(api, user="bob", **{"Idempotency-Key": "retry-1"}).json()
    assert other_account["id"] != first["id"]


def test_idempotency_key_with_another_body_is_a_422_naming_the_conflict(api, redis_client):
    first = submit(api, **{"Idempotency-Key": "order-7"}).json()
    reordered = {key: VALID[key] for key in reversed(VALID)}
    assert submit(api, reordered, **{"Idempotency-Key": "order-7"}).json()["id"] == first["id"]
    explicit_default = {**VALID, "num_inference_steps": 64}  # the same job, spelled out
    assert submit(api, explicit_default, **{"Idempotency-Key": "order-7"}).status_code == 202
    for path in ("/v1/jobs", "/generate"):
        conflict = api.post(
            path,
            json={**VALID, "prompt": "a dog"},
            headers={**api.as_user("alice"), "Idempotency-Key": "order-7"},
        )
        assert conflict.status_code == 422, conflict.text
        answer = conflict.json()
        assert answer["error"].startswith(
            "Idempotency-Key 'order-7' was used with a different body"
        )
        assert answer["job_id"] == first["id"] and answer["field"] == "Idempotency-Key"
    assert redis_client.llen("mochi:queue") == 1


def test_list_is_own_jobs_newest_first_paginated(api):
    ids = [submit(api).json()["id"] for _ in range(5)]
    submit(api, user="bob")
    page = api.get("/v1/jobs?limit=2", headers=api.as_user("alice")).json()
    assert page["total"] == 5 and page["next_offset"] == 2
    assert [job["id"] for job in page["jobs"]] == ids[::-1][:2]
    last = api.get("/v1/jobs?limit=2&offset=4", headers=api.as_user("alice")).json()
    assert [job["id"] for job in last["jobs"]] == ids[:1] and last["next_offset"] is None
    assert api.get("/v1/jobs?limit=0", headers=api.as_user("alice")).status_code == 422


def test_cancel_a_queued_job_at_once(api, redis_client):
    job_id = submit(api).json()["id"]
    response = api.post(f"/v1/jobs/{job_id}/cancel", headers=api.as_user("alice"))
    assert response.status_code == 202 and response.json()["status"] == "canceled"
    assert redis_client.llen("mochi:queue") == 0
    again = api.post(f"/v1/jobs/{job_id}/cancel", headers=api.as_user("alice"))
    assert again.status_code == 409


def test_video_of_an_unfinished_job_is_409(api):
    job_id = submit(api).json()["id"]
    assert api.get(f"/v1/jobs/{job_id}/video", headers=api.as_user("alice")).status_code == 409


@pytest.mark.parametrize("job_id", ["..%2F..%2Fetc%2Fpasswd", "x" * 10_000, "abc%00def", "ZZ"])
def test_hostile_job_ids_are_404(api, job_id):
    assert api.get(f"/v1/jobs/{job_id}", headers=api.as_user("alice")).status_code == 404


def test_legacy_generate_body_keeps_old_clients_working(api):
    body = {"prompt": "test", "account_id": "alice", "num_frames": 7}
    response = api.post("/generate", json=body, headers=api.as_user("alice"))
    assert response.status_code == 202
    assert response.json()["job_id"] == response.json()["id"]
    wrong = api.post("/generate", json={**body, "account_id": "bob"}, headers=api.as_user("alice"))
    assert wrong.status_code == 422 and "account_id" in wrong.json()["error"]


def test_job_no_worker_can_run_is_refused_with_the_estimate(settings, redis_client):
    from service import auth

    on_24gib_gpus = replace(settings, model="genmo/mochi-1-preview", worker_gpu_memory_gib=24.0)
    headers = {"Authorization": f"Bearer {auth.add_key(redis_client, 'carol')}"}
    big = {"prompt": "x", "num_frames": 163, "height": 848, "width": 848}
    small = {"prompt": "x", "num_frames": 31, "height": 480, "width": 848}
    with TestClient(create_app(on_24gib_gpus)) as client:
        response = client.post("/v1/jobs", json=big, headers=headers)
        assert response.status_code == 422
        assert response.json()["estimate_gib"] > 24 and "does not fit" in response.json()["error"]
        assert client.post("/v1/jobs", json=small, headers=headers).status_code == 202


def test_admission_plans_the_workers_precision(settings, redis_client):
    """163 frames at 480x848 on a 24 GiB GPU: 27.2 GiB in bf16 (refused), fits with the DiT's
    Linear weights in FP8."""
    from service import auth

    headers = {"Authorization": f"Bearer {auth.add_key(redis_client, 'carol')}"}
    job = {"prompt": "x", "num_frames": 163, "height": 480, "width": 848}
    bf16 = replace(settings, model="genmo/mochi-1-preview", worker_gpu_memory_gib=24.0)
    for workers, status in ((bf16, 422), (replace(bf16, dit_precision="fp8"), 202)):
        with TestClient(create_app(workers)) as client:
            assert client.post("/v1/jobs", json=job, headers=headers).status_code == status


def test_readyz_is_503_with_the_reason_until_a_worker_is_alive(api, redis_client):
    response = api.get("/readyz")
    assert response.status_code == 503 and "no worker" in response.json()["reason"]
    from service.jobstore import JobStore

    JobStore(redis_client).register_worker("w1", {"pid": 1})
    assert api.get("/readyz").json() == {"ready": True, "workers": 1, "not_progressing": []}
    assert api.get("/healthz").status_code == 200


def test_redis_down_is_503_with_retry_after(api, redis_server):
    redis_server.stop()
    response = submit(api)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert api.get("/readyz").status_code == 503
    assert api.get("/healthz").status_code == 200


def test_metrics_are_prometheus_text(api):
    submit(api)
    body = api.get("/metrics").text
    assert "mochi_jobs_submitted_total 1.0" in body and "mochi_queue_length 1.0" in body


def test_chunked_body_over_64kb_is_413(api):
    def chunks():
        for _ in range(20):
            yield b"x" * 8192

    response = api.post("/v1/jobs", content=chunks(), headers=api.as_user("alice"))
    assert response.status_code == 413


def test_unknown_route_is_a_json_404(api):
    response = api.get("/nowhere")
    assert response.status_code == 404 and response.json()["error"]


def test_unknown_and_expired_jobs_are_404_with_the_retention(settings, redis_client):
    from service import auth
    from service.jobstore import JobStore

    one_second = replace(settings, result_ttl_seconds=1)
    headers = {"Authorization": f"Bearer {auth.add_key(redis_client, 'alice')}"}
    with TestClient(create_app(one_second)) as client:
        job_id = client.post("/v1/jobs", json=VALID, headers=headers).json()["id"]
        store = JobStore.from_settings(redis_client, one_second)
        claim = store.claim("w1")
        assert claim.job_id == job_id and store.finish(claim, "w1", "failed", error="test")
        assert client.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "failed"
        time.sleep(1.2)
        gone = client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert gone.status_code == 404
        assert gone.json()["error"] == (
            f"no job '{job_id}': it never existed or expired (finished jobs are kept 1 second)"
        )
    never = api_missing_reason(settings)
    assert never.endswith("it never existed or expired (finished jobs are kept 7 days)")


def api_missing_reason(settings) -> str:
    from service import auth

    with TestClient(create_app(settings)) as client:
        key = auth.add_key(client.app.state.redis, "alice")
        answer = client.get("/v1/jobs/" + "0" * 32, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 404
        return answer.json()["error"]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (7 * 86400, "7 days"),
        (86400, "1 day"),
        (7200, "2 hours"),
        (5400, "90 minutes"),
        (45, "45 seconds"),
    ],
)
def test_retention_is_said_in_words(seconds, words):
    from service.routes.jobs import human_duration

    assert human_duration(seconds) == words


def test_metrics_count_what_the_sweeper_removed(api, redis_client):
    redis_client.hincrby("mochi:swept", "jobs", 3)
    redis_client.hincrby("mochi:swept", "partials", 2)
    body = api.get("/metrics").text
    assert 'mochi_swept_total{kind="jobs"} 3.0' in body
    assert 'mochi_swept_total{kind="partials"} 2.0' in body
    assert 'mochi_swept_total{kind="videos"} 0.0' in body
    assert 'mochi_swept_total{kind="attempts"} 0.0' in body


def test_swagger_ui_is_off_unless_enabled_and_the_openapi_document_stays(settings):
    with TestClient(create_app(settings)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").json()["paths"]["/v1/jobs"]
        assert "cdn" not in client.get("/web/").text.lower()
    with TestClient(create_app(replace(settings, docs_enabled=True))) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text


def test_bootstrap_keys_are_reconciled_at_each_start(settings, redis_client):
    from service import auth

    carol, dave = auth.new_key(), auth.new_key()
    created = auth.add_key(redis_client, "erin")  # `mochi keys create`: never reconciled away

    def answers(bootstrap: str) -> dict[str, int]:
        with TestClient(create_app(replace(settings, bootstrap_api_keys=bootstrap))) as client:
            return {
                name: client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code
                for name, key in (("carol", carol), ("dave", dave), ("erin", created))
            }

    assert answers(f"carol:{carol},dave:{dave}") == {"carol": 200, "dave": 200, "erin": 200}
    assert answers(f"carol:{carol}") == {"carol": 200, "dave": 401, "erin": 200}
    assert answers("") == {"carol": 401, "dave": 401, "erin": 200}
    assert [key.account for key in auth.stored_keys(redis_client)] == ["erin"]
