"""The OpenAPI document names the API's shapes (the job, the job page, the error, readiness), and
what the API answers over a real Redis is exactly those shapes: validated against the document's
own schemas with jsonschema."""

from __future__ import annotations

from datetime import datetime

from jsonschema import Draft202012Validator

from service.jobstore import JobStore, video_name

VALID = {"prompt": "a documented cat", "num_frames": 7, "height": 64, "width": 64}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def answer_schema(operation: dict, status: str) -> dict:
    return operation["responses"][status]["content"]["application/json"]["schema"]


def conforms(document: dict, name: str, body) -> None:
    schema = {**ref(name), "components": document["components"]}
    problems = [error.message for error in Draft202012Validator(schema).iter_errors(body)]
    assert problems == [], (name, body, problems)


def test_the_document_names_the_job_the_job_page_and_the_error(api):
    document = api.get("/openapi.json").json()
    assert {"Job", "JobPage", "ErrorBody", "ErrorField"} <= set(document["components"]["schemas"])
    paths = document["paths"]
    assert answer_schema(paths["/v1/jobs/{job_id}"]["get"], "200") == ref("Job")
    assert answer_schema(paths["/v1/jobs"]["get"], "200") == ref("JobPage")
    assert answer_schema(paths["/v1/jobs"]["post"], "202") == ref("Job")
    assert answer_schema(paths["/v1/jobs/{job_id}/cancel"]["post"], "202") == ref("Job")
    assert answer_schema(paths["/generate"]["post"], "202") == ref("LegacyJob")
    assert answer_schema(paths["/readyz"]["get"], "200") == ref("Ready")
    assert answer_schema(paths["/readyz"]["get"], "503") == ref("NotReady")
    page = document["components"]["schemas"]["JobPage"]["properties"]
    assert page["jobs"] == {"items": ref("Job"), "title": "Jobs", "type": "array"}
    errors = {
        (path, method, status): answer_schema(operation, status)
        for path, methods in paths.items()
        for method, operation in methods.items()
        for status in operation["responses"]
        if status[0] in "45" and path != "/readyz"
    }
    assert len(errors) > 40 and set(map(str, errors.values())) == {str(ref("ErrorBody"))}
    retry = paths["/v1/jobs"]["post"]["responses"]["429"]["headers"]
    assert "Retry-After" in retry


def test_a_job_is_exactly_the_documented_job_in_every_state(api, redis_client):
    document = api.get("/openapi.json").json()
    job_schema = document["components"]["schemas"]["Job"]
    alice = api.as_user("alice")
    queued = api.post("/v1/jobs", json=VALID, headers=alice).json()
    conforms(document, "Job", queued)
    assert set(queued) == set(job_schema["properties"]) == set(job_schema["required"])

    store = JobStore(redis_client)
    claim = store.claim("w-doc")
    assert claim.job_id == queued["id"]
    video = video_name(claim.job_id, claim.attempt)
    assert store.finish(claim, "w-doc", "succeeded", video=video, metrics={"generate_seconds": 1.5})
    done = api.get(f"/v1/jobs/{queued['id']}", headers=alice).json()
    conforms(document, "Job", done)
    assert done["video_url"] == f"/v1/jobs/{queued['id']}/video" and done["worker"] == "w-doc"
    assert done["metrics"] == {"generate_seconds": 1.5}
    for stamp in ("created_at", "started_at", "finished_at"):
        assert datetime.fromisoformat(done[stamp]).utcoffset().total_seconds() == 0

    page = api.get("/v1/jobs?limit=1", headers=alice).json()
    conforms(document, "JobPage", page)
    assert page["jobs"] == [done] and page["next_offset"] is None
    legacy = api.post("/generate", json=VALID, headers=alice).json()
    conforms(document, "LegacyJob", legacy)
    assert set(legacy) - set(queued) == {"job_id"}


def test_every_refusal_is_the_documented_error(api):
    document = api.get("/openapi.json").json()
    alice = api.as_user("alice")
    job_id = api.post("/v1/jobs", json=VALID, headers=alice).json()["id"]
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    idempotent = {**alice, "Idempotency-Key": "doc-1"}
    assert api.post("/v1/jobs", json=VALID, headers=idempotent).status_code == 202
    refusals = {
        401: api.get("/v1/jobs", headers={"Authorization": "Bearer mk_unknown"}),
        404: api.get("/v1/jobs/" + "0" * 32, headers=alice),
        409: api.post(f"/v1/jobs/{job_id}/cancel", headers=alice),
        413: api.post("/v1/jobs", content=b"x" * 70_000, headers=alice),
        422: api.post("/v1/jobs", json={**VALID, "num_frames": 8}, headers=alice),
        "conflict": api.post("/v1/jobs", json={**VALID, "prompt": "another"}, headers=idempotent),
    }
    for name, response in refusals.items():
        assert response.status_code == (422 if name == "conflict" else name), response.text
        conforms(document, "ErrorBody", response.json())
    assert refusals[422].json()["fields"][0]["field"] == "num_frames"
    assert refusals["conflict"].json()["field"] == "Idempotency-Key"
    assert refusals[401].headers["www-authenticate"] == "Bearer"


def test_probes_answer_their_documented_shapes(api, redis_client):
    document = api.get("/openapi.json").json()
    conforms(document, "Health", api.get("/healthz").json())
    conforms(document, "VersionInfo", api.get("/version").json())
    no_worker = api.get("/readyz")
    assert no_worker.status_code == 503
    conforms(document, "NotReady", no_worker.json())

    store = JobStore(redis_client)
    stalled = {"job": "a" * 32, "progress_at": store.server_time() - 300, "stall_after": 60.0}
    store.register_worker("w-stuck", stalled)
    every_worker_stalled = api.get("/readyz")
    assert every_worker_stalled.status_code == 503
    conforms(document, "NotReady", every_worker_stalled.json())
    assert every_worker_stalled.json()["not_progressing"][0]["worker"] == "w-stuck"
    store.register_worker("w-idle", {"job": "", "progress_at": store.server_time()})
    ready = api.get("/readyz")
    assert ready.status_code == 200
    conforms(document, "Ready", ready.json())
