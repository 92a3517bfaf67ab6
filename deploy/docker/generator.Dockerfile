# voxserve generator on an NVIDIA GPU: the CUDA build of vLLM (the host needs the NVIDIA driver
# and container toolkit). Build from the repository root:
#   docker build -f deploy/docker/generator.Dockerfile -t voxserve-generator:0.1.0 .
# Run with the model pack mounted read-only at /models/pack.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY services/shared ./services/shared
COPY services/generator ./services/generator
RUN pip install --no-cache-dir setuptools==80.9.0 wheel==0.45.1 \
 && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels ./services/shared ./services/generator

FROM ${PYTHON_IMAGE}
COPY --from=build /wheels /wheels
# vllm 0.32.0 is built against torch 2.13.0, the version the package pins.
RUN pip install --no-cache-dir torch==2.13.0 vllm==0.32.0 \
 && pip install --no-cache-dir /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin voxserve
ENV VOXSERVE_GENERATOR_HOST=0.0.0.0 \
    VOXSERVE_GENERATOR_PORT=50052 \
    VOXSERVE_GENERATOR_METRICS_PORT=9102 \
    VOXSERVE_GENERATOR_PACK=/models/pack \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 50052 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
  CMD ["voxserve-health", "--address", "127.0.0.1:50052"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["voxserve-generator"]
