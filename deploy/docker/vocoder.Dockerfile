# voxserve vocoder on an NVIDIA GPU (CUDA torch from PyPI; the host needs the NVIDIA driver and
# container toolkit). Build from the repository root:
#   docker build -f deploy/docker/vocoder.Dockerfile -t voxserve-vocoder:0.1.0 .
# Run with the model pack mounted read-only at /models/pack.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY services/shared ./services/shared
COPY services/vocoder ./services/vocoder
RUN pip install --no-cache-dir setuptools==80.9.0 wheel==0.45.1 \
 && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels ./services/shared ./services/vocoder

FROM ${PYTHON_IMAGE}
COPY --from=build /wheels /wheels
# torch's Linux wheels on PyPI are CUDA builds; its CUDA libraries come as pip packages.
# torchaudio gives BiCodec enrolment its mel transform, which is pure Python. Its compiled
# extension is built for an older torch (there is no torchaudio for torch 2.13) and may not load
# beside this one; with the extension files removed torchaudio imports as pure Python. 2.11.0 is
# the version the enrolment was checked against; installed first, it satisfies the vocoder's pin.
RUN pip install --no-cache-dir torch==2.13.0 \
 && pip install --no-cache-dir --no-deps torchaudio==2.11.0 \
 && pip install --no-cache-dir /wheels/*.whl \
 && rm -f "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"/torchaudio/lib/*.so \
 && python -c "import torchaudio.transforms" \
 && rm -rf /wheels \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin voxserve
ENV VOXSERVE_VOCODER_HOST=0.0.0.0 \
    VOXSERVE_VOCODER_PORT=50053 \
    VOXSERVE_VOCODER_METRICS_PORT=9103 \
    VOXSERVE_VOCODER_PACK=/models/pack \
    VOXSERVE_VOCODER_DEVICE=cuda:0 \
    VOXSERVE_VOCODER_DTYPE=float16 \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 50053 9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["voxserve-health", "--address", "127.0.0.1:50053"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["voxserve-vocoder"]
