# The HTTP API: slim Python 3.11, no Ray, no torch. Build from the repo root:
#   docker build -f images/api.Dockerfile -t REGISTRY/mochi-api:0.1.0 .
# tests/packaging builds this wheel and runs these pip lines in a fresh virtual environment.

# The project's wheel, from every folder it packages (runbooks/ is the doctor's package data).
FROM python:3.11.14-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service/ service/
COPY doctor/ doctor/
COPY infra/ infra/
COPY runbooks/ runbooks/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 1000 mochi && useradd --uid 1000 --gid 1000 --create-home mochi

WORKDIR /app
COPY constraints.txt ./
COPY --from=wheel /wheels/ /wheels/
# Only what the API imports (and kubernetes, which the wheel's `doctor` command needs), at the
# project's pinned versions; then the wheel without deps.
RUN pip install -c constraints.txt fastapi uvicorn redis hiredis pydantic prometheus-client \
        pyyaml httpx rich kubernetes \
    && pip install --no-deps /wheels/*.whl

USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["mochi"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
