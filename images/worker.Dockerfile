# Ray head, GPU workers, supervisor and model prefill: Ray 2.60.0 on Python 3.11 with CUDA
# (the same Ray and Python the project pins), plus torch, diffusers and this project.
#   docker build -f images/worker.Dockerfile -t REGISTRY/mochi-worker:0.1.0 .
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

FROM rayproject/ray:2.60.0-py311-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The image's `ray` user is uid 1000; make its group gid 1000 to match the pods' fsGroup.
USER root
RUN groupadd --gid 1000 mochi && usermod --gid 1000 ray
USER 1000:1000

WORKDIR /home/ray/mochi
COPY --chown=1000:1000 constraints.txt ./
COPY --from=wheel /wheels/ /wheels/
# torch first (its CUDA wheels), then the wheel with every dependency pinned by constraints;
# ray[default]==2.60.0 is already in the base image, so pip keeps it.
RUN pip install --user torch==2.13.0 \
    && pip install --user -c constraints.txt /wheels/*.whl

ENV PATH=/home/ray/.local/bin:$PATH
CMD ["mochi", "--help"]
