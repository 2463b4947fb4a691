# The two commands of the README: `make demo` and `make test`. Everything they need is
# installed here, into the repository: a venv in .venv/ and Azurite in .tools/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
AZURITE_VERSION := 3.37.0
# A stamp per version, so a change of AZURITE_VERSION reinstalls it.
AZURITE := .tools/.azurite-$(AZURITE_VERSION)

.PHONY: demo test lint typecheck unit bench docs clean reliability browser airflow-env

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(AZURITE):
	mkdir -p .tools
	npm install --prefix .tools --no-audit --no-fund --silent --save-exact azurite@$(AZURITE_VERSION)
	.tools/node_modules/.bin/azurite-blob --version
	touch $(AZURITE)

# Headless Chromium and its driver, for the evidence report's browser test (tests/browser/):
# Debian's packages, installed only when missing (with sudo when not root). Without apt-get
# the test skips, except under CI=true, where it fails (and so does this target).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	elif [ "$$CI" = true ]; then echo "no chromium and no apt-get to install it" >&2; exit 1; \
	else echo "warning: no chromium and no apt-get: the browser test will skip" >&2; fi

# The Apache Airflow 3.3.2 environment of the Airflow tests (tests/airflow/): a separate venv
# (Airflow's pins are not .venv's) made by tools/airflow/env.sh only when missing or stale (it
# keeps a stamp of its inputs: 0.4 s when up to date). Without it the Airflow tests skip,
# except under CI=true, where env.sh (and so this target) fails.
AIRFLOW_PY := .venv-airflow/bin/python
airflow-env:
	tools/airflow/env.sh

demo: $(STAMP) $(AZURITE)
	$(BIN)/amlretrain demo

lint: $(STAMP)
	$(BIN)/ruff check amlretrain tests bench
	$(BIN)/ruff format --check amlretrain tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict amlretrain
	@if [ -x $(AIRFLOW_PY) ]; then $(AIRFLOW_PY) -m mypy --strict --follow-imports=silent amlretrain/airflow/*.py; \
	elif [ "$$CI" = true ]; then echo "no $(AIRFLOW_PY): amlretrain/airflow not type-checked" >&2; exit 1; \
	else echo "warning: no $(AIRFLOW_PY): amlretrain/airflow not type-checked (make airflow-env)" >&2; fi

test: $(STAMP) $(AZURITE) browser airflow-env lint typecheck
	$(BIN)/pytest --record-mode=none -n 4 --dist loadscope
	@if [ -x $(AIRFLOW_PY) ]; then $(AIRFLOW_PY) -m pytest tests/airflow; \
	elif [ "$$CI" = true ]; then echo "no $(AIRFLOW_PY): the Airflow tests cannot run" >&2; exit 1; \
	else echo "warning: no $(AIRFLOW_PY): the Airflow tests did not run (tools/airflow/env.sh)" >&2; fi

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP) $(AZURITE)
	$(BIN)/python -m bench

# The documentation site (mkdocs.yml), strict: a broken link or docstring fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .venv-airflow .tools build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis site

# The full fault matrix (every retrain step x every fault) and the full crash-consistency
# matrix (the CLI killed, interrupted, starved and raced at every exchange) against the
# emulator; each rewrites its own table in docs/reliability.md (both run, then the target
# fails if either found a failing case). `make test` runs a subset (tests/reliability/).
reliability: $(STAMP) $(AZURITE)
	$(BIN)/python -m tests.reliability.matrix --full --out docs/reliability.md; fault=$$?; \
	$(BIN)/python -m tests.reliability.crash --full --out docs/reliability.md; crash=$$?; \
	test $$fault -eq 0 && test $$crash -eq 0
