# Two commands a newcomer runs: `make demo` and `make test`. Both create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := mlcycle/data/sample
OUT := demo-out

.PHONY: demo test docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	@bash scripts/demo.sh $(BIN)/mlcycle $(OUT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider

docs: $(VENV)/.installed
	$(BIN)/python scripts/docgen.py

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
