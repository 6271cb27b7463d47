"""Hostile input: the whole HTTP API fuzzed from its own OpenAPI spec (schemathesis, over the
ASGI app and a real Redis), then the classic malformed requests one by one. Each is answered
with a documented status, never a 500, and a refused request stores nothing."""

from __future__ import annotations

import json

import hypothesis
import pytest
import redis
import schemathesis
from hypothesis import strategies as st
from schemathesis import checks as sc
from schemathesis.generation.modes import GenerationMode

from service import auth
from service.api import MAX_BODY_BYTES, create_app
from service.config import Settings
from service.processes import RedisServer, free_port

VALID = {"prompt": "a hostile test", "num_frames": 7, "height": 64, "width": 64}


@pytest.fixture(scope="module")
def fuzz_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("fuzz-redis"), free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fuzz_key(fuzz_redis) -> str:
    return auth.add_key(redis.Redis.from_url(fuzz_redis.url), "fuzzer")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_redis, tmp_path_factory, fuzz_key):
    output = tmp_path_factory.mktemp("fuzz-videos")
    # Limits out of reach, so every fuzzed request meets validation, not the rate limiter.
    settings = Settings(
        redis_url=fuzz_redis.url,
        output_dir=str(output),
        rate_limit_per_minute=1_000_000,
        max_queued_per_account=1_000_000,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))


# Collected from the spec itself, so a route added later is fuzzed without touching this file.
OPERATIONS = [
    (method.upper(), path)
    for path, methods in create_app(Settings()).openapi()["paths"].items()
    for method in methods
]


def no_internal_error(ctx, response, case):
    """500 is a bug. A 503 is the designed answer of /readyz or of Redis being down, and the
    conformance checks hold it to being documented (schemathesis' own check refuses any 5xx)."""
    if response.status_code == 500 or response.status_code > 503:
        raise AssertionError(f"{response.status_code}: {response.text[:300]}")


CHECKS = [
    no_internal_error,
    sc.status_code_conformance,
    sc.content_type_conformance,
    sc.response_headers_conformance,
    sc.response_schema_conformance,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_fuzzed_requests_never_500_and_every_answer_is_documented(
    fuzz_schema, fuzz_key, method, path, mode
):
    """Valid and invalid cases of every operation; with the fuzzer's own Authorization header
    half the time (auth itself fuzzed), a valid key otherwise (to reach the handlers)."""
    strategy = fuzz_schema[path][method].as_strategy(mode)

    @hypothesis.given(case=strategy, valid_key=st.booleans())
    @hypothesis.settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case, valid_key):
        headers = {"Authorization": f"Bearer {fuzz_key}"} if valid_key else None
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        fuzz()
    except hypothesis.errors.Unsatisfiable:
        # Nothing in the spec constrains this operation's inputs (a free-form path string, an
        # optional header): no invalid case exists to send, which is not a failure.
        assert mode is GenerationMode.NEGATIVE


# --- the classic malformed requests ---------------------------------------------------------


def post_raw(api, body: bytes, user="alice", content_type="application/json", **headers):
    headers = {**api.as_user(user), "Content-Type": content_type, **headers}
    return api.post("/v1/jobs", content=body, headers=headers)


def assert_clear_refusal(response, status: int | tuple[int, ...]) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert len(response.content) < 4096, "an error must not echo a huge input back"
    return body


@pytest.fixture
def nothing_stored(api, redis_client, kit):
    before = kit.stored_state(redis_client)
    yield
    assert kit.stored_state(redis_client) == before


def nested(depth: int) -> bytes:
    return b'{"prompt": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("over the size limit", json.dumps({"prompt": "x" * MAX_BODY_BYTES}).encode(), 413),
        ("nested 100 deep", nested(100), 422),
        ("nested 20,000 deep (past the JSON parser's recursion)", nested(20_000), (400, 422)),
        ("invalid UTF-8", b'{"prompt": "caf\xe9 \xff\xfe"}', (400, 422)),
        ("lone surrogate escape", b'{"prompt": "\\ud800"}', (400, 422)),
        ("raw control character in a string", b'{"prompt": "a\x01b"}', 422),
        ("escaped control characters", b'{"prompt": "ring \\u0007 bell \\u001b[2J"}', 422),
        ("NUL in the prompt", b'{"prompt": "a\\u0000b"}', 422),
        ("2,001 characters", json.dumps({"prompt": "\u00e9" * 2001}).encode(), 422),
        ("not JSON", b"prompt=a cat", 422),
        ("empty body", b"", 422),
        ("a JSON list", b'["a cat"]', 422),
        ("NaN guidance", b'{"prompt": "a", "guidance_scale": NaN}', 422),
        ("Infinity guidance", b'{"prompt": "a", "guidance_scale": Infinity}', 422),
        ("duplicate keys smuggling", b'{"prompt": "a", "prompt": ""}', 422),
    ],
)
def test_malformed_bodies_are_a_clear_4xx_and_store_nothing(
    api, nothing_stored, name, body, status
):
    assert_clear_refusal(post_raw(api, body), status)


def test_body_without_content_length_is_cut_at_the_limit(api, nothing_stored):
    def chunks():
        yield b'{"prompt": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    response = api.post(
        "/v1/jobs",
        content=chunks(),
        headers={**api.as_user("alice"), "Content-Type": "application/json"},
    )
    assert_clear_refusal(response, 413)


def test_2000_character_unicode_prompts_are_accepted_intact(api, redis_client):
    for prompt in ("\u00e9" * 2000, "\U0001f3a5" * 2000, "\u0627\u0644" * 1000, "a\u0301" * 1000):
        response = api.post(
            "/v1/jobs", json={**VALID, "prompt": prompt}, headers=api.as_user("alice")
        )
        assert response.status_code == 202, response.text[:300]
        job_id = response.json()["id"]
        stored = json.loads(redis_client.hget(f"mochi:job:{job_id}", "params"))
        assert stored["prompt"] == prompt


def test_newlines_and_tabs_are_not_control_characters_to_refuse(api):
    response = api.post(
        "/v1/jobs", json={**VALID, "prompt": "a cat\n\ton a mat\r\n"}, headers=api.as_user("alice")
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "job_id",
    [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "..%2f..%2fredis%2fappendonly.aof",
        "%2E%2E%2F%2E%2E%2F",
        "%2Fetc%2Fpasswd",
        "abc%00def",
        "0123456789abcdef0123456789abcde%00",
        "a" * 10_240,
        "0123456789ABCDEF0123456789ABCDEF",
        "*",
        "mochi:queue",
        "%20" * 32,
    ],
)
@pytest.mark.parametrize("suffix", ["", "/video", "/cancel"])
def test_hostile_job_ids_are_404_on_every_job_route(api, nothing_stored, job_id, suffix):
    path = f"/v1/jobs/{job_id}{suffix}"
    method = api.post if suffix == "/cancel" else api.get
    response = method(path, headers=api.as_user("alice"))
    body = assert_clear_refusal(response, 404)
    assert "passwd" not in response.text or len(body["error"]) < 200


def test_dot_dot_segments_never_reach_a_file(api, nothing_stored):
    for path in ("/v1/jobs/../../etc/passwd", "/v1/jobs/..%2F..%2Fetc%2Fpasswd/video"):
        response = api.get(path, headers=api.as_user("alice"))
        assert response.status_code == 404
        assert "root:" not in response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_frames", -7),
        ("num_frames", 0),
        ("num_frames", 10**30),
        ("num_frames", 7.5),
        ("num_frames", "seven"),
        ("num_frames", [7]),
        ("height", -64),
        ("height", 0),
        ("width", 2**63),
        ("width", 64.5),
        ("num_inference_steps", -1),
        ("num_inference_steps", 0),
        ("num_inference_steps", 10**12),
        ("num_inference_steps", 2.5),
        ("guidance_scale", -1),
        ("guidance_scale", 1e308),
        ("guidance_scale", "high"),
        ("seed", -1),
        ("seed", 2**64),
        ("seed", 1.5),
        ("seed", {"a": 1}),
        ("prompt", 123),
        ("prompt", None),
        ("prompt", ["a", "cat"]),
        ("negative_prompt", 1),
    ],
)
def test_bad_parameters_are_a_422_naming_the_field(api, nothing_stored, field, value):
    response = api.post("/v1/jobs", json={**VALID, field: value}, headers=api.as_user("alice"))
    body = assert_clear_refusal(response, 422)
    assert body["fields"][0]["field"].split(".")[0] == field


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=0",
        "limit=101",
        "limit=99999999999999999999999999",
        "limit=1.5",
        "limit=ten",
        "offset=-1",
        "offset=99999999999999999999",
        "offset=0.5",
        "offset=%00",
    ],
)
def test_bad_list_parameters_are_a_422(api, nothing_stored, query):
    response = api.get(f"/v1/jobs?{query}", headers=api.as_user("alice"))
    body = assert_clear_refusal(response, 422)
    assert body["fields"][0]["field"].split(".")[-1] in ("limit", "offset")


@pytest.mark.parametrize(
    "key", ["", "x" * 201, "tab\there", "bell\x07", "\x7f", "\u0085next-line", "\u200b" * 3]
)
def test_bad_idempotency_keys_are_a_422(api, nothing_stored, key):
    encoded = key.encode("utf-8")
    response = api.post(
        "/v1/jobs",
        json=VALID,
        headers=[
            (b"authorization", f"Bearer {api.keys['alice']}".encode()),
            (b"idempotency-key", encoded),
        ],
    )
    assert_clear_refusal(response, 422)


def test_hostile_authorization_headers_are_401(api, nothing_stored):
    for value in [b"", b"Bearer", b"Bearer ", b"Basic YWxpY2U6", b"Bearer \xff\xfe", b"x" * 8000]:
        response = api.get("/v1/jobs", headers=[(b"authorization", value)])
        assert_clear_refusal(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_legacy_endpoint_refuses_another_account_and_stores_nothing(api, nothing_stored):
    response = api.post(
        "/generate", json={**VALID, "account_id": "bob"}, headers=api.as_user("alice")
    )
    assert_clear_refusal(response, 422)
