# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test processes: the suite waits on real servers and subprocesses much of the time, so three
# share two cores well (measured: 10 minutes, against 15-20 one test at a time). TEST_WORKERS=0: serially.
TEST_WORKERS ?= 3
# Keep the embedded default's data inside the checkout unless told otherwise.
export SWITCHBOARD_HOME ?= $(CURDIR)/.switchboard

.PHONY: run test install lock bytecode lint typecheck bench clean postgres chromium docs

# Installs with uv (seconds, where pip takes over a minute), held to the versions in
# requirements.lock (`make lock` renews it); pip does it if uv cannot be had. Bytecode is
# compiled at install (uv's --compile-bytecode; pip does it anyway): where
# PYTHONDONTWRITEBYTECODE is set, as on this machine, every process would otherwise compile
# every module it imports (twice the start-up CPU of a CLI command).
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11+) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "uv>=0.5" 2>&1 | grep -v "is ignored" || true
	if test -x $(BIN)/uv; then \
		$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c requirements.lock -e ".[dev]"; \
	else \
		$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e ".[dev]" 2>&1 | grep -v "is ignored" || true; \
	fi
	$(BIN)/python -c "import switchboard, prefect"
	touch $(STAMP)

install: $(STAMP)

# Renew requirements.lock from pyproject.toml's lower bounds (the newest versions the registry has).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --custom-compile-command "make lock" -q -o requirements.lock

# Switchboard's own modules, compiled once for every process the command starts (see above).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 bot deployments flows nodes storage switchboard bench tests > /dev/null

run: $(STAMP) bytecode
	$(BIN)/switchboard validate examples/branching.yaml
	$(BIN)/switchboard run examples/branching.yaml -i count=7

postgres:
	@bash scripts/ensure-postgres.sh

chromium:
	@bash scripts/ensure-chromium.sh

# mypy (one core for most of a minute) runs beside the tests; its report follows theirs.
test: $(STAMP) bytecode postgres chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & typing=$$!; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15; tests=$$?; \
	wait $$typing; typed=$$?; echo "mypy:"; cat $(VENV)/mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.compile
	$(BIN)/python -m bench.overhead

# docs/nodes.md is generated from the node registry (a test checks it is current).
docs: $(STAMP)
	$(BIN)/switchboard nodes --markdown > docs/nodes.md

clean:
	rm -rf $(VENV) .switchboard .pytest_cache .mypy_cache .ruff_cache
