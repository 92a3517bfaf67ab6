#!/usr/bin/env bash
# Downloads the wheels scripts/gpu-bench.sh installs on a GPU machine without a package index.
#
# Such a machine brings Python 3.12, a CUDA torch, grpcio, protobuf, safetensors, numpy,
# transformers and prometheus-client. The vocoder, the random-pack writers and the benchmark
# harness need a few more distributions: these wheels, pinned to the versions the development
# environment runs, for CPython 3.12 on x86-64 Linux: 27 wheels, 37 MB together, of which
# matplotlib and what it needs (the harness's plots) are 25 MB. Run it where pip can reach an
# index:
#
#   scripts/gpu-bench-wheels.sh [DEST]        # DEST defaults to dist/gpu-bench-wheels
#
# GPU_BENCH_PYTHON_VERSION (3.12) and GPU_BENCH_GLIBC (28: the newest manylinux_2_N accepted)
# retarget it.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${1:-dist/gpu-bench-wheels}
PYTHON_VERSION=${GPU_BENCH_PYTHON_VERSION:-3.12}
GLIBC=${GPU_BENCH_GLIBC:-28}
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=${PYTHON:-python3}; fi

WHEELS=(
  # The generated gRPC and protobuf code checks the runtime it meets: at least these.
  grpcio==1.85.4 protobuf==7.36.2 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1
  # The services' logging and settings.
  structlog==26.1.0 pyyaml==6.0.4
  # Codecs: SNAC's model code (and einops, which it imports), S3Gen enrolment's resampler,
  # BiCodec's mel front end (installed only where the machine has no torchaudio).
  snac==1.2.1 einops==0.8.2 soxr==1.1.0 torchaudio==2.11.0
  # The harness: plots, and the HTTP client its runner imports.
  matplotlib==3.11.2 contourpy==1.3.3 cycler==0.12.1 fonttools==4.69.1 kiwisolver==1.5.1
  pillow==13.0.0 pyparsing==3.3.3 python-dateutil==4.0.0 tzdata==2026.6
  httpx==0.29.0 httpcore==1.0.9 h11==0.16.0 anyio==4.16.0 idna==3.21 certifi==2026.10.19.post1
  typing_extensions==4.16.0
  # The build backend of the project's own distributions, installed from source there.
  setuptools==78.1.1
)

# pip takes each manylinux tag as named (no older glibc implied), so every one up to GLIBC.
PLATFORMS=(--platform manylinux2014_x86_64)
for minor in $(seq 17 "$GLIBC"); do PLATFORMS+=(--platform "manylinux_2_${minor}_x86_64"); done

mkdir -p "$DEST"
"$PYTHON" -m pip download --quiet --dest "$DEST" --no-deps --only-binary=:all: \
  --python-version "$PYTHON_VERSION" --implementation cp "${PLATFORMS[@]}" "${WHEELS[@]}"
ls -1 "$DEST"/*.whl | sed 's|.*/||'
du -ch "$DEST"/*.whl | tail -1
