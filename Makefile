# Two entry points (see README): `make lab` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[lab,test]"
	touch $(STAMP)

# The real aedes broker the tests drive: Node packages pinned by the lock file (npm ci); without
# npm the aedes tests skip (and fail under REALIP_REQUIRE_REAL=1)
NODE_STAMP := realip/lab/node/node_modules/.installed
$(NODE_STAMP): realip/lab/node/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd realip/lab/node && npm ci --no-audit --no-fund --silent && touch node_modules/.installed; \
	else echo "npm not found: the aedes tests will skip"; fi

# (root — containers, Binder-like images — needs --allow-root)
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

lint: $(STAMP)
	$(BIN)/ruff check realip tests benchmarks tools
	$(BIN)/mypy

test: lint $(NODE_STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_proxy_protocol.py
	$(BIN)/python benchmarks/bench_resolve.py
	$(BIN)/python benchmarks/bench_widget_step.py
	$(BIN)/python benchmarks/bench_lab.py
	$(BIN)/python benchmarks/bench_soak.py
	$(BIN)/python benchmarks/bench_audit.py
	$(BIN)/python benchmarks/bench_aio.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
