# The two README commands: `make run` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint clean

$(BIN)/googlenet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(BIN)/googlenet

# The main job: Table 1, then a 3-model ensemble trained on the built-in set, evaluated with the
# paper's 1/10/144-crop protocol (Table 3) and reported. About 12 minutes on 2 idle CPU cores.
DEMO := runs/demo
run: setup
	$(BIN)/googlenet summary
	$(BIN)/googlenet train-ensemble --config configs/demo.yaml --n 3 --out $(DEMO)/ensemble
	$(BIN)/googlenet evaluate --data builtin --checkpoint $(DEMO)/ensemble --crops 1 10 144 \
		--model-counts every --limit 300 --json $(DEMO)/table3.json
	$(BIN)/googlenet report $(DEMO)/ensemble --evaluation $(DEMO)/table3.json --data builtin \
		--out $(DEMO)/report
	@echo "report: $(DEMO)/report/index.md"

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs
