# voxserve: `make demo` runs the three services on the embedded tiny pack; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
VARIANT ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.voxserve-$(VARIANT)-installed

SOURCES := services gateway bench

.PHONY: setup demo test test-all protos lint bench clean

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

clean:
	rm -rf $(VENV) .voxserve demo.wav
