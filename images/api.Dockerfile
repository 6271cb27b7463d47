# The HTTP API: slim Python 3.11, no Ray, no torch. Build from the repo root:
#   docker build -f images/api.Dockerfile -t REGISTRY/mochi-api:0.1.0 .
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --gid 1000 mochi && useradd --uid 1000 --gid 1000 --create-home mochi

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY service/ service/
# Only what the API imports, at the project's pinned versions; the project itself without deps.
RUN pip install -c constraints.txt fastapi uvicorn redis hiredis pydantic prometheus-client \
        pyyaml httpx rich \
    && pip install --no-deps .

USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["mochi"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
