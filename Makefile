# `make lab` sets everything up and opens the notebooks; `make test` sets everything up and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: lab test data browser benchmark reproduce student clean

# The virtual environment, rebuilt when the dependency list changes.
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

data: $(INSTALLED)
	$(BIN)/python -m vae_lib prepare-data mnist

lab: data
	$(BIN)/jupyter lab --LabApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# In CI (CI=true) the browser test must run, so Debian's chromium is installed when missing (CI runs as root).
browser:
	@if [ "$$CI" = "true" ] && ! command -v chromium >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

test: data browser
	VAE_SMOKE=1 $(BIN)/python -m pytest --nbval-lax tests notebooks

benchmark: data
	$(BIN)/python -m vae_lib benchmark

# Retrain both shipped models from scratch with their recorded settings and print their test metrics.
reproduce: data
	$(BIN)/python -m vae_lib reproduce 2d 8d

# The student notebooks (solutions replaced by `raise NotImplementedError`) from the instructor notebooks.
student: $(INSTALLED)
	$(BIN)/python -m vae_lib student-notebooks

clean:
	rm -rf $(VENV) data/MNIST
