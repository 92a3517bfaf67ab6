# voxserve gateway: CPU only, no torch and no vLLM. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t voxserve-gateway:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY services/shared ./services/shared
COPY gateway ./gateway
RUN pip install --no-cache-dir setuptools==80.9.0 wheel==0.45.1 \
 && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels ./services/shared ./gateway

FROM ${PYTHON_IMAGE}
# The gateway's distribution and what it declares: no torch, no vLLM, no transformers.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin voxserve \
 && install -d -o 10001 -g 10001 /var/lib/voxserve
# The SQLite voice store's directory, the gateway's own: a volume mounted there starts out so.
ENV VOXSERVE_GATEWAY_HOST=0.0.0.0 \
    VOXSERVE_GATEWAY_PORT=50051 \
    VOXSERVE_GATEWAY_METRICS_PORT=9101 \
    VOXSERVE_GATEWAY_HTTP_PORT=8080 \
    VOXSERVE_GATEWAY_VOICE_STORE=/var/lib/voxserve/voices.sqlite3 \
    PYTHONUNBUFFERED=1
USER 10001
# gRPC, Prometheus metrics, HTTP (OpenAI-style API, WebSocket, playground page)
EXPOSE 50051 9101 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["voxserve-health", "--address", "127.0.0.1:50051"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["voxserve-gateway"]
