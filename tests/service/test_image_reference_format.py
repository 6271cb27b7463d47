"""service.image_refs.reference_problem follows Docker's reference grammar: what a container
runtime accepts passes, what it refuses ("invalid reference format") is named."""

from __future__ import annotations

import pytest

from service.image_refs import reference_problem

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "reference",
    [
        "redis:7.2.4",
        "rayproject/ray:2.49.2-py311-gpu",
        "My.Registry.io:5000/team/mochi-worker:0.1.0",  # a host may hold capitals
        f"localhost:5000/a/b__c/d.e-f@{DIGEST}",
        f"ghcr.io/acme/api:1.0@{DIGEST}",
        "docker.io/library/python:3.11-slim",
    ],
)
def test_references_a_runtime_accepts_pass(reference):
    assert reference_problem(reference) is None


@pytest.mark.parametrize(
    ("reference", "named"),
    [
        ("REGISTRY/mochi-api:0.1.0", "repository path 'REGISTRY/mochi-api' must be lower case"),
        ("ghcr.io/Acme/api:1", "repository path 'Acme/api'"),
        ("ghcr.io/acme/api:-1", "tag '-1' must be"),
        ("ghcr.io/acme/api:" + "t" * 129, "must be 1-128"),
        ("ghcr.io/acme/api@sha256:beef", "digest 'sha256:beef'"),
        ("-bad.host:5000/app:1", "registry host '-bad.host:5000'"),
    ],
)
def test_references_a_runtime_refuses_are_named(reference, named):
    assert named in (reference_problem(reference) or "")
