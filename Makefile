# `make lab` sets everything up and opens the notebooks; `make test` sets everything up and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: lab test lint data browser benchmark benchmark-quality reproduce sweep student lock clean

# The virtual environment, with the exact versions of requirements.lock; rebuilt when the lock changes.
$(INSTALLED): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e '.[test]'
	touch $@

# Regenerate requirements.lock from pyproject.toml (its dependencies, the test extra and the torch pins) with uv,
# and its copy for Binder and JupyterHub (repo2docker reads binder/requirements.txt).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 -o requirements.lock
	head -n 2 binder/requirements.txt > binder/requirements.txt.partial
	cat requirements.lock >> binder/requirements.txt.partial
	mv binder/requirements.txt.partial binder/requirements.txt

data: $(INSTALLED)
	$(BIN)/python -m vae_lib prepare-data mnist

lab: data
	$(BIN)/jupyter lab --LabApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# The browser test must run in CI, so Debian's chromium is installed when missing wherever that is possible: with
# CI=true (CI runs as root) or as root, whether or not the runner sets CI.
browser:
	@if { [ "$$CI" = "true" ] || [ "$$(id -u)" = 0 ]; } && ! command -v chromium >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

lint: $(INSTALLED)
	$(BIN)/ruff check vae_lib tests
	$(BIN)/ruff format --check vae_lib tests

test: data browser lint
	VAE_SMOKE=1 $(BIN)/python -m pytest --nbval-lax tests notebooks

# Speed figures; REFERENCE=<a clone of the reference implementation> also times an epoch of its trainer.
benchmark: data
	$(BIN)/python -m vae_lib benchmark $(if $(REFERENCE),--reference "$(REFERENCE)")

# The shipped recipes raced against the -fast ones to the same test reconstruction (about two hours on 2 cores).
benchmark-quality: data
	$(BIN)/python -m vae_lib benchmark --time-to-quality 2d 8d

# Retrain both shipped models from scratch with their recorded settings and print their test metrics.
reproduce: data
	$(BIN)/python -m vae_lib reproduce 2d 8d

# Train (or finish) the KL-weight sweep of notebook 06 and ship its models to outputs/checkpoints/.
sweep: data
	$(BIN)/python -m vae_lib sweep

# The student notebooks (solutions replaced by `raise NotImplementedError`) from the instructor notebooks, after
# setting each saved progress bar's text to its final state.
student: $(INSTALLED)
	$(BIN)/python -m vae_lib settle-progress-bars
	$(BIN)/python -m vae_lib student-notebooks

clean:
	rm -rf $(VENV) data/MNIST
