#!/usr/bin/env bash
# The vocoder tier on a GPU in one command, from a bare machine without a package index.
#
#   scripts/gpu-bench.sh [--device cuda:0] [--out DIR] [--quick] [--wheels DIR] [--no-install]
#                        [-- more options of python -m bench.gpu_bench]
#
# 1. Installs, into build/gpu-bench-site (put first on PYTHONPATH; the machine's own packages
#    are left as they are), the wheels scripts/gpu-bench-wheels.sh downloaded beforehand
#    (--wheels, default dist/gpu-bench-wheels), and the project's vocoder, shared, tooling and
#    gateway distributions from this checkout, all with --no-deps and no index. The machine must
#    bring Python 3.12, a CUDA torch, numpy, safetensors, transformers and prometheus-client;
#    torchaudio is installed only where it has none.
# 2. Runs `python -m bench.gpu_bench`: full-size random packs of BiCodec, S3Gen, S3Gen Turbo and
#    SNAC 24 kHz; `bench vocoder` on each for voxserve, batch size 1 and the baseline loop at 1,
#    16, 64, 128 and 256 streams; gpu-bench.json, .md, .png and the services' logs into --out
#    (default bench/results/gpu-<stamp>). Meant to end within 8 minutes on an H100.
#
# The rehearsal on a CPU: scripts/gpu-bench.sh --device cpu --quick (tiny packs, levels 1 and 2);
# with --no-install it runs in the current environment (PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda:0
OUT=""
QUICK=()
WHEELS=dist/gpu-bench-wheels
INSTALL=1
EXTRA=()
PYTHON=${PYTHON:-python3}
SITE=build/gpu-bench-site

while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --quick) QUICK=(--quick); shift ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "gpu-bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-bench/results/gpu-$(date +%Y%m%d-%H%M%S)}

if [ "$INSTALL" = 1 ]; then
  if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "gpu-bench.sh: no wheels in $WHEELS; run scripts/gpu-bench-wheels.sh where an index is reachable" >&2
    exit 2
  fi
  started=$(date +%s)
  rm -rf "$SITE"
  PIP=("$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$WHEELS"
    --no-deps --target "$SITE")
  # Everything but torchaudio (it must match the machine's torch) and setuptools (only a build
  # backend here).
  mapfile -t wheels < <(ls "$WHEELS"/*.whl | grep -v -e /torchaudio- -e /setuptools-)
  "${PIP[@]}" "${wheels[@]}"
  if ! "$PYTHON" -c "import torchaudio" 2>/dev/null; then
    "${PIP[@]}" --upgrade "$WHEELS"/torchaudio-*.whl
    # Its compiled extension is built for one torch release; the mel transforms the vocoder uses
    # are pure Python, and without the library files torchaudio imports as such.
    rm -f "$SITE"/torchaudio/lib/*.so
  fi
  # The project's distributions share the voxserve namespace: one call installs them together.
  # Their build backend (setuptools) comes from the wheel directory too.
  "${PIP[@]}" --upgrade ./services/shared ./services/vocoder ./services/tooling ./gateway
  rm -rf services/*/build gateway/build
  echo "installed into $SITE in $(( $(date +%s) - started )) s"
  export PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi

"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PYTHON" -m bench.gpu_bench --device "$DEVICE" --out "$OUT" "${QUICK[@]}" "${EXTRA[@]}"
