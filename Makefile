# knowrec: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# Spark (the "spark" extra) runs on a Java runtime from Debian's packages when absent.
# torch is pinned and installed first: an unpinned torch would pull GBs of CUDA wheels.
$(STAMP): pyproject.toml
	command -v java >/dev/null || tools/apt-install Spark default-jre-headless
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,llm,model,gpu,spark]'
	$(BIN)/knowrec llm pull qwen2.5-coder-1.5b
	touch $(STAMP)

demo: setup
	$(BIN)/knowrec demo --out runs/demo

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_loaders.py
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) runs .pytest_cache
