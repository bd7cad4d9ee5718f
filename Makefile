# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bench install clean topics

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## the platform on the embedded broker and Valkey, with the simulator
	$(BIN)/antifraud up

test: lint  ## ruff, then the whole suite against real embedded servers, two test processes (a file each)
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)  ## ruff's checks (pyproject [tool.ruff]): seconds
	$(BIN)/ruff check .

test-fast: $(STAMP)  ## pure and in-process tests only (no broker, no Valkey, no processes): seconds
	$(BIN)/pytest -m "not integration" -q

bench: $(STAMP)
	$(BIN)/antifraud bench

topics: $(STAMP)
	$(BIN)/antifraud topics list

clean:
	rm -rf $(VENV) run .pytest_cache
