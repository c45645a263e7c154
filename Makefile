# `make lab` sets everything up and opens the notebooks; `make test` sets everything up and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: lab test data benchmark clean

# The virtual environment, rebuilt when the dependency list changes.
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

data: $(INSTALLED)
	$(BIN)/python -m vae_lib prepare-data mnist

lab: data
	$(BIN)/jupyter lab --LabApp.default_url=/lab/tree/notebooks

test: data
	VAE_SMOKE=1 $(BIN)/python -m pytest --nbval-lax tests notebooks

benchmark: data
	$(BIN)/python -m vae_lib benchmark

clean:
	rm -rf $(VENV) data/MNIST
