# Ray head, GPU workers, supervisor and model prefill: Ray 2.60.0 on Python 3.11 with CUDA
# (the same Ray and Python the project pins), plus torch, diffusers and this project.
#   docker build -f images/worker.Dockerfile -t REGISTRY/mochi-worker:0.1.0 .
FROM rayproject/ray:2.60.0-py311-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The image's `ray` user is uid 1000; make its group gid 1000 to match the pods' fsGroup.
USER root
RUN groupadd --gid 1000 mochi && usermod --gid 1000 ray
USER 1000:1000

WORKDIR /home/ray/mochi
COPY --chown=1000:1000 pyproject.toml constraints.txt README.md ./
COPY --chown=1000:1000 service/ service/
# torch first (its CUDA wheels), then the project with every dependency pinned by constraints;
# ray[default]==2.60.0 is already in the base image, so pip keeps it.
RUN pip install --user torch==2.13.0 \
    && pip install --user -c constraints.txt .

ENV PATH=/home/ray/.local/bin:$PATH
CMD ["mochi", "--help"]
