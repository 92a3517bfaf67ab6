# voxserve: `make demo` runs the three services on the embedded tiny pack; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
VARIANT ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.voxserve-$(VARIANT)-installed

SOURCES := services gateway bench

.PHONY: setup demo test test-all protos lint bench clean upstream-decoders gpu-bench-wheels

setup: $(STAMP)

MEMBER_PROJECTS := services/shared/pyproject.toml services/generator/pyproject.toml \
	services/vocoder/pyproject.toml gateway/pyproject.toml services/tooling/pyproject.toml

$(STAMP): pyproject.toml $(MEMBER_PROJECTS) scripts/setup-venv.sh
	VENV=$(VENV) PYTHON=$(PYTHON) VARIANT=$(VARIANT) bash scripts/setup-venv.sh
	touch $@

demo: setup
	$(BIN)/voxserve demo -o demo.wav

test: setup lint
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

protos: setup
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=services/shared/src --pyi_out=services/shared/src \
		--grpc_python_out=services/shared/src \
		protos/voxserve/v1/speech.proto protos/voxserve/v1/generator.proto protos/voxserve/v1/vocoder.proto

lint: setup
	$(BIN)/ruff check $(SOURCES) tests
	$(BIN)/ruff format --check $(SOURCES) tests
	$(BIN)/mypy $(SOURCES)

# `bench decoders` times Chatterbox's own S3Gen too when this is on PYTHONPATH. chatterbox-tts pins
# torch 2.6, so it and what its S3Gen imports go beside the environment's torch with --no-deps.
UPSTREAM ?= build/upstream
upstream-decoders: setup
	$(BIN)/pip install --quiet --no-deps --target $(UPSTREAM) chatterbox-tts==0.1.7 resemble-perth==1.0.1 \
		librosa==0.11.0 lazy_loader==0.6 joblib==1.6.0 decorator==5.3.2 msgpack==1.2.4 pooch==1.9.0 \
		scipy==1.17.1 s3tokenizer==0.3.0 onnx==1.23.2 ml_dtypes==0.7.0 omegaconf==2.4.0 conformer==0.3.2 \
		diffusers==0.42.1
	@echo "then: PYTHONPATH=$(UPSTREAM) $(BIN)/python -m bench decoders --size full"

# The wheels scripts/gpu-bench.sh installs on a GPU machine without a package index.
gpu-bench-wheels: setup
	bash scripts/gpu-bench-wheels.sh

clean:
	rm -rf $(VENV) .voxserve demo.wav
