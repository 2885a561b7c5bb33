# The README's commands. Each bootstraps what it needs: a virtual environment with the
# pinned packages, then the Fashion-MNIST data.
#   make repro   the main job: the default profile's `dvc repro` (+ the reports as HTML)
#   make regenerate  every distillation run again, through DVC's experiment queue (resumable)
#   make test    every tier (unit, pipeline, reliability) + nbval over every notebook, then a check that the
#                README's generated blocks are current and (clean checkout) that dvc.lock matches the
#                committed results; make test-quick: the unit tier alone
#   make readme  the README's generated blocks (T1, claims, reliability counts) written from their sources
#   make bench   KD paths and sharing, per-host synthesis / KD cost (today's path and the chosen one), the
#                public Fast-5 configuration, its growth, the hot spots on this machine
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cdemi-installed
FMNIST := data/fashion_mnist
# the reliability counts of the last whole, passing `make test` (ignored by git; `make readme` shows them)
COUNTS := results/.reliability_counts.json
export DVC_NO_ANALYTICS := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro regenerate test test-quick readme data chromium html venv lab bench profile-paper

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=python3.X"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

# Fashion-MNIST: Debian's package where apt-get is usable as root, else torchvision's download;
# then the verified, decompressed files are exported into data/fashion_mnist.
data: $(STAMP)
	@if ! $(BIN)/python -c "from cdemi.data import fashion_mnist as f; f.locate('$(FMNIST)')" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's dataset-fashion-mnist"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	  fi; \
	fi
	$(BIN)/python -m cdemi.data fashion_mnist $(FMNIST) --root $(FMNIST) --download

# Headless Chromium for the HTML-export test: Debian's package where apt-get is usable as root,
# else a message saying what to install (the test then fails with the same advice).
chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "chromium not found and apt-get not usable as root: install Chromium (Debian: apt-get install chromium), else tests/pipeline/test_html_export.py fails"; \
	  fi; \
	fi

# the main job: every stage with one progress bar (DVC's output in dvc-repro.log), then the
# executed reports as offline HTML
repro: data
	$(BIN)/python -m cdemi.tools.repro
	$(MAKE) --no-print-directory html

# the full regeneration: every distill@ stage again through DVC's experiment queue, one worker per core
# for one-thread runs, each result landed in the workspace as it finishes; resumable (README, "The main job")
regenerate: data
	$(BIN)/python -m cdemi.tools.regenerate --copy-paths $(FMNIST)

# the suite writes its reliability counts to $(COUNTS), never into a tracked file, and lists its 15 slowest
# tests (the suite must stay under 20 minutes on 2 cores); the last step
# fails while a generated block of the README differs from its source (then: make readme)
test: data chromium
	CDEMI_RELIABILITY_COUNTS=$(COUNTS) $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env \
	  -p no:cacheprovider --durations=15
	$(BIN)/python -m cdemi.tools.readme README.md --reliability $(COUNTS) --check
	@# on a clean checkout, every committed result must be what dvc.lock records (a fresh clone's
	@# `make repro` then reruns nothing); skipped while the working tree has uncommitted changes
	@if [ -z "$$(git status --porcelain 2>/dev/null)" ]; then \
	  $(BIN)/dvc status --quiet || { $(BIN)/dvc status; \
	    echo "dvc.lock does not match the committed files of the stages above: rerun them (dvc repro -s STAGE) and commit"; exit 1; }; \
	  echo "pipeline: dvc.lock matches the committed results"; \
	else echo "pipeline status not checked: the working tree has uncommitted changes"; fi

# the quick tier while working: the unit tests alone (tests/unit, marker `unit`), under 2 minutes
test-quick: data
	$(BIN)/python -m pytest -m unit tests -p no:cacheprovider

# the README's generated blocks from their sources: T1 and the claims from results/, the reliability
# counts from the last whole, passing `make test`
readme: $(STAMP)
	$(BIN)/python -m cdemi.tools.readme README.md --reliability $(COUNTS)

lab: data
	$(BIN)/jupyter lab --notebook-dir=.

# the executed reports as self-contained HTML (offline: images embedded, maths as MathML): a page without
# code per report, its twin with code under reports/html/code/, and reports/html/index.html linking them all
html: $(STAMP)
	$(BIN)/python -m cdemi.tools.html reports reports/html

# per-host synthesis and KD cost, its growth with IPC, batch and pool, and the profiler's hot spots
# on this machine (figures, not tests)
bench: data
	$(BIN)/python benchmarks/kd_paths.py
	$(BIN)/python benchmarks/hosts.py
	$(BIN)/python benchmarks/hosts.py --runs fast_plain_mnv2_s0 cmi_plain_mnv2_s0 --paths today chosen --threads 1 \
	  --out results/benchmarks/hosts.json
	$(BIN)/python benchmarks/fast5.py --seeds 0 1 2
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/hotspots.py

profile-paper:
	cp profiles/paper.yaml params.yaml
