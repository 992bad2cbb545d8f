# Set-up and checks. `make demo` and `make test` work on a fresh clone: they create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/coffee-flat.jpg

.PHONY: demo test bench clean

$(BIN)/enhance: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/enhance
	$(BIN)/enhance tune $(EXAMPLE) --op tonemap --force

test: $(BIN)/enhance
	$(BIN)/python -m pytest -q
	$(BIN)/mypy enhance nima cli.py

bench: $(BIN)/enhance
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/restore.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache
