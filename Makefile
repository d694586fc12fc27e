# Deep Learning at Scale with Distributed Frameworks
#   make lab     set everything up (first time: about 15 minutes), then open the course in JupyterLab
#   make test    set everything up, then run the whole test suite (quick mode)
# Other targets: test-fast, setup, doctor, data-full, bench, exercises, lint, clean. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
KERNEL := dl-at-scale

# Every command below, and every process mpirun starts, sees the venv's Intel MPI.
export PATH := $(BIN):$(PATH)
export LD_LIBRARY_PATH := $(VENV)/lib$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
export I_MPI_ROOT := $(VENV)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# OpenVINO's converter and NNCF (notebook 01) report usage unless told otherwise: these are the
# telemetry package's own switches, for every user of this install (see dlscale/dlboost.py).
export CI := true
export NNCF_CI := 1

# Horovod has no wheels: it is built once against the pinned TensorFlow and Intel MPI, and the
# wheel is kept outside the repository (keyed on those pins) so that no later set-up rebuilds it.
pin = $(shell sed -n 's/^$(1)==\([^ ]*\).*/\1/p' requirements.txt)
HOROVOD_VERSION := 0.28.1
HOROVOD_KEY := horovod-$(HOROVOD_VERSION)-tf$(call pin,tensorflow-cpu)-impi$(call pin,impi-rt)-cp311
WHEEL_ROOT ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/dl-at-scale/wheels
WHEEL_CACHE ?= $(WHEEL_ROOT)/$(HOROVOD_KEY)

STAMP_STACK := $(VENV)/.stack-installed
STAMP_HOROVOD := $(VENV)/.horovod-installed
STAMP_PACKAGE := $(VENV)/.dlscale-installed
KERNEL_SPEC := $(VENV)/share/jupyter/kernels/$(KERNEL)/kernel.json
LAB_OFFLINE := $(VENV)/etc/jupyter/jupyter_server_config.py
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json
STAMP_HUB := $(VENV)/.hub-installed
PROXY_VERSION := 5.3.0

comma := ,
step = @printf '\n\033[1m==> %s\033[0m\n' "$(1)"

.PHONY: help setup lab test test-fast doctor data-full bench exercises lint clean distclean hub hub-stack

help:
	@echo "make lab        set up (first run about 15 min, later runs seconds) and open JupyterLab"
	@echo "make test       set up, then run the whole test suite in quick mode"
	@echo "make test-fast  the helper units and one short mpirun per script (a few minutes)"
	@echo "make setup      only the set-up: venv, pinned stack, Horovod, helper package, kernel"
	@echo "make doctor     check the environment: CPU, TensorFlow/oneDNN, MPI, Horovod, daal4py"
	@echo "make hub        (root) a JupyterHub for a room: LEARNERS=16 CORES_PER_LEARNER=2 MEMORY_PER_LEARNER=7G"
	@echo "make data-full  download the full 70,000-image MNIST (needs internet; optional)"
	@echo "make bench      every benchmark entry; results/benchmarks_HOST.json, .md, .png (about 20 min)"
	@echo "make exercises  regenerate notebooks/ from solutions/"
	@echo "make clean      remove results and caches (keeps the venv); distclean also removes .venv"

setup: $(STAMP_STACK) $(STAMP_HOROVOD) $(STAMP_PACKAGE) $(KERNEL_SPEC) $(LAB_OFFLINE)

$(VENV)/bin/python:
	$(call step,[1/5] Creating the virtual environment in .venv with $(PYTHON))
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Install Python 3.11 (the README's \"Getting Python 3.11\" has a recipe for Ubuntu, Debian, uv, pyenv and conda) or run: make PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'), the course needs 3.11 (TensorFlow 2.15 supports 3.9-3.11). Run: make PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "error: $(PYTHON) has no venv/ensurepip module. Debian/Ubuntu: apt install python3.11-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP_STACK): requirements.txt | $(VENV)/bin/python
	$(call step,[2/5] Installing the pinned stack: TensorFlow 2.15$(comma) Intel MPI$(comma) daal4py$(comma) JupyterLab (about 2 GB))
	$(BIN)/pip install -r requirements.txt
	@touch $@

$(STAMP_HOROVOD): $(STAMP_STACK)
	@if ls $(WHEEL_CACHE)/horovod-$(HOROVOD_VERSION)-*.whl >/dev/null 2>&1; then \
	  printf '\n\033[1m==> [3/5] Horovod %s: reusing the wheel built earlier in %s\033[0m\n' "$(HOROVOD_VERSION)" "$(WHEEL_CACHE)"; \
	else \
	  printf '\n\033[1m==> [3/5] Building Horovod %s with MPI + Gloo against TensorFlow and Intel MPI.\n    This takes about 10 minutes on 2 cores, once: the wheel is kept in %s\033[0m\n' "$(HOROVOD_VERSION)" "$(WHEEL_CACHE)"; \
	  command -v cmake >/dev/null || { echo "error: cmake not found; Horovod's build needs it. Debian/Ubuntu: apt install cmake"; exit 1; }; \
	  command -v g++ >/dev/null || { echo "error: g++ not found; Horovod's build needs it. Debian/Ubuntu: apt install g++"; exit 1; }; \
	  build=$$(mktemp -d); \
	  HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1 \
	  HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS=-j$$(nproc) \
	    $(BIN)/pip wheel --no-build-isolation --no-deps --no-cache-dir -w $$build horovod==$(HOROVOD_VERSION); \
	  mkdir -p $(WHEEL_CACHE) && mv $$build/horovod-*.whl $(WHEEL_CACHE)/ && rmdir $$build; \
	fi
	$(BIN)/pip install --force-reinstall --no-deps $(WHEEL_CACHE)/horovod-$(HOROVOD_VERSION)-*.whl
	@$(BIN)/python -c 'import horovod.tensorflow as h; import sys; ok = h.mpi_built() and h.gloo_built(); print("Horovod built with TensorFlow + MPI + Gloo:", "yes" if ok else "NO"); sys.exit(not ok)'
	@touch $@

$(STAMP_PACKAGE): pyproject.toml $(STAMP_STACK)
	$(call step,[4/5] Installing the course's helper package dlscale (editable))
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	@touch $@

$(KERNEL_SPEC): $(STAMP_PACKAGE)
	$(call step,[5/5] Registering the Jupyter kernel '$(KERNEL)' with MPI's PATH$(comma) LD_LIBRARY_PATH and I_MPI_ROOT)
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
	  --display-name "Python 3.11 (DL at Scale)" \
	  --env PATH '$(BIN):$${PATH}' --env LD_LIBRARY_PATH '$(VENV)/lib' --env I_MPI_ROOT '$(VENV)' \
	  --env CI true --env NNCF_CI 1

# JupyterLab fetches news and checks for updates on the internet unless told not to: an offline
# room would be asked "get notified about official Jupyter news?" and then wait on the network.
$(LAB_OFFLINE): $(STAMP_STACK)
	@mkdir -p $(@D) $(dir $(LAB_SETTINGS))
	@printf '%s\n' "# Written by the course's Makefile: JupyterLab fetches nothing from the internet." \
	  "c.LabApp.news_url = None  # (JSON's null is not taken for None here: a Python file)" \
	  'c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"' > $@
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
	  > $(LAB_SETTINGS)
	@echo "JupyterLab: news and update checks off (nothing fetched from the internet)"

lab: setup
	$(call step,Starting JupyterLab on 127.0.0.1: open the URL with the token printed below)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --ServerApp.root_dir=$(CURDIR) \
	  --LabApp.default_url=/lab/tree/notebooks/00_getting_started.ipynb $(if $(filter 0,$(shell id -u)),--allow-root)

# A room of learners (docs/INSTRUCTOR.md): as root, a shared install in HUB_PREFIX, one account per
# learner (passwords printed once; or ACCOUNTS=file.csv of name[,password] lines), and JupyterHub
# on HUB_IP:HUB_PORT (loopback unless an address is given; beyond loopback it serves HTTPS, with
# HUB_CERT and HUB_KEY or a self-signed certificate). SLURM=1: each learner's JupyterLab is a
# Slurm job on the mini cluster (multinode/minicluster.sh up first).
LEARNERS ?= 0
HUB_IP ?= 127.0.0.1
HUB_PORT ?= 8000
HUB_PREFIX ?= /opt/dl-at-scale
IDLE_MINUTES ?= 60
hub: setup
	$(BIN)/python -m dlscale.hub up --prefix $(HUB_PREFIX) --python $(or $(HUB_PYTHON),$(PYTHON)) \
	  $(if $(ACCOUNTS),--accounts $(ACCOUNTS),--learners $(LEARNERS)) --ip $(HUB_IP) --port $(HUB_PORT) \
	  --cores-per-learner $(or $(CORES_PER_LEARNER),0) --memory-per-learner '$(MEMORY_PER_LEARNER)' \
	  --idle-minutes $(IDLE_MINUTES) $(if $(HUB_CERT),--certificate $(HUB_CERT) $(HUB_KEY)) $(if $(filter-out 0 no false,$(SLURM)),--slurm)

# The shared install's part that only the hub needs (run by `make hub` in HUB_PREFIX/course).
hub-stack: setup $(STAMP_HUB)

$(STAMP_HUB): hub/requirements.txt $(STAMP_STACK)
	$(call step,JupyterHub$(comma) its idle culler and configurable-http-proxy $(PROXY_VERSION) (npm) into the venv)
	$(BIN)/pip install -r hub/requirements.txt
	@command -v npm >/dev/null || { echo "error: npm not found: the hub's proxy is a Node.js program. Debian/Ubuntu: apt-get install nodejs npm"; exit 1; }
	npm install --prefix $(VENV)/proxy --no-audit --no-fund --loglevel=error configurable-http-proxy@$(PROXY_VERSION)
	@touch $@

# The full 70,000-image MNIST, for the notebooks' full runs (needs internet; the course works without it).
data-full: setup
	$(BIN)/python -c "import keras; keras.datasets.mnist.load_data()"
	$(BIN)/python -c "import dlscale; dlscale.load_mnist()"

doctor: setup
	$(BIN)/python -m dlscale.doctor

# The whole suite: doctor first, then helper units, scripts under mpirun, notebooks under nbval.
test: setup
	$(BIN)/python -m dlscale.doctor
	$(call step,Running the test suite in quick mode (DLSCALE_QUICK=1))
	DLSCALE_QUICK=1 $(BIN)/python -m pytest tests solutions --nbval --nbval-kernel-name $(KERNEL) \
	  --nbval-sanitize-with tests/sanitize.cfg -p no:cacheprovider

# A few minutes: the helper units and one short mpirun per script (no notebooks, benchmarks or
# browser). For the edit-run loop; `make test` is what CI runs.
test-fast: setup
	DLSCALE_QUICK=1 $(BIN)/python -m pytest tests -m "not slow" -p no:cacheprovider

# Every benchmark entry the notebooks define, recorded with this machine's facts in results/.
# DLSCALE_QUICK=1 make bench runs them at smoke sizes.
bench: setup
	$(BIN)/python -m dlscale.bench

exercises: setup
	$(BIN)/python -m dlscale.exercises

lint: setup
	$(BIN)/python -m ruff check dlscale scripts tests tools solutions

clean:
	rm -rf results checkpoints tests/artifacts .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} + -o -name .ipynb_checkpoints -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv dlscale.egg-info
