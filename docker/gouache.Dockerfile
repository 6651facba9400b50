# The services auth, storage, jobs, tiling and feedback, the edge's config renderer
# (python -m gouache.edge render, with gouache studio built in), the bootstrap commands and the
# operator (gouache-operator).
# No ML stack: inference has its own image (docker/inference.Dockerfile). The `safety` extra
# (ONNX Runtime on CPU and the NSFW classifier storage screens uploads with) is here.
#   docker build -f docker/gouache.Dockerfile -t ghcr.io/gouache/gouache:0.1.0 .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# gouache studio, the web app the edge serves at /, built from its lock file into the package.
FROM ${NODE_IMAGE} AS studio
WORKDIR /src/studio
COPY studio/package.json studio/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY studio ./
RUN npm run build

FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
COPY pyproject.toml ./
COPY libs libs
COPY services services
COPY operator operator
COPY --from=studio /src/libs/gouache/edge/studio_dist libs/gouache/edge/studio_dist
# Wheels of the project and every pinned dependency; nothing of the build stays behind.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[operator,safety]"

FROM ${PYTHON_IMAGE} AS runtime
ARG GOUACHE_VERSION=0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels "gouache[operator,safety]==${GOUACHE_VERSION}" \
    && groupadd --gid 10001 gouache \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gouache
WORKDIR /tmp
USER 10001:10001
# The chart names the command of each container (python -m services.<name>, gouache-operator).
CMD ["gouache", "--help"]
