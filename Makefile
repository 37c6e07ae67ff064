# The two Quick start commands: `make demo` and `make test`. Each creates or refreshes .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := sklearn,torch,hf,keras,postgres,s3,ray,dev

.PHONY: venv demo test lint typecheck unit prometheus postgres bench bench-monitor bench-tracking bench-scale-out clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python >= 3.11 is required (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

# The life of a model: train, register, optimize, serve, drift, retrain, canary, rollback.
DEMO_HOME := .shipyard/demo
demo: venv
	$(BIN)/python examples/lifecycle.py $(DEMO_HOME)
	$(BIN)/shipyard --home $(DEMO_HOME) models show digits@production
	$(BIN)/shipyard --home $(DEMO_HOME) runs list
	$(BIN)/shipyard --home $(DEMO_HOME) rollout history digits

lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: venv
	$(BIN)/mypy

# promtool and prometheus for tests/test_deploy.py (Debian package, when run as root).
prometheus:
	bash scripts/install-prometheus.sh

# PostgreSQL's server binaries for tests/test_database_postgres.py (Debian package, as root).
postgres:
	bash scripts/install-postgres.sh

unit: venv prometheus postgres
	$(BIN)/pytest

test: lint typecheck unit

bench: venv
	$(BIN)/python benchmarks/registry.py

# Drift evaluation beside Evidently (in its own .venv-evidently, made on first use; never a
# dependency of Shipyard) and numpy, and serving throughput with monitoring on and off.
bench-monitor: venv
	$(BIN)/python benchmarks/monitor.py --json bench-results/monitor.json
bench-tracking: venv
	$(BIN)/python benchmarks/tracking.py --json bench-results/tracking.json
bench-scale-out: venv postgres
	$(BIN)/python benchmarks/scale_out.py --json bench-results/scale_out.json

clean:
	rm -rf $(VENV) .shipyard .mypy_cache .ruff_cache .pytest_cache
