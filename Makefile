# The two README commands: `make run` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run detect test lint clean

$(BIN)/googlenet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(BIN)/googlenet

# The main job: Table 1, then a 2-model ensemble trained on a 5-class built-in set
# with the short-run recipe of configs/demo.yaml, evaluated with the paper's 1/10/144-crop protocol
# (Table 3) and reported. docs/demo.md: what it gives and how long it takes on each CPU kind.
DEMO := runs/demo
DEMO_DATA := $(DEMO)/data
# Expected wall time after set-up on 2 idle cores (docs/demo.md "Time"): fp32 where the CPU has no native
# bf16 (AVX2-only: 10.6 min measured on a Zen 3 EPYC, ~14.3 estimated for a slower Zen 1), bf16 autocast
# where it has (AVX512-BF16 / AMX; 7.9 min measured on a 2-core EPYC).
DEMO_MINUTES_FP32 := 11-15
DEMO_MINUTES_BF16 := 8
# $(call expect,TARGET,MINUTES_BF16,MINUTES_FP32,DOC): print the expected wall time on this CPU first.
expect = @$(BIN)/python -c "from googlenet.cpu import cpu_count, cpu_name, native_bf16; \
	bf16 = native_bf16(); minutes = '$(2)' if bf16 else '$(3)'; \
	print(f'make $(1): expect about {minutes} min with 2 idle cores of this CPU ({cpu_name()}, {cpu_count()} usable, ' \
	      + ('native bf16' if bf16 else 'no native bf16: fp32') + '); $(4)')"

run: setup
	$(call expect,run,$(DEMO_MINUTES_BF16),$(DEMO_MINUTES_FP32),docs/demo.md)
	$(BIN)/googlenet summary
	$(BIN)/googlenet data make-builtin $(DEMO_DATA) --classes 5 --train-per-class 500 --val-per-class 60
	$(BIN)/googlenet train-ensemble --config configs/demo.yaml --data $(DEMO_DATA) --n 2 --no-same-init \
		--out $(DEMO)/ensemble
	$(BIN)/googlenet evaluate --data $(DEMO_DATA) --checkpoint $(DEMO)/ensemble --crops 1 10 144 \
		--model-counts every --limit 300 --json $(DEMO)/table3.json
	$(BIN)/googlenet report $(DEMO)/ensemble --evaluation $(DEMO)/table3.json --data $(DEMO_DATA) \
		--out $(DEMO)/report
	@echo "report: $(DEMO)/report/index.md"

# The detection demo (section 8), after `make run`: a small built-in detection set, a 2-member
# detector fine-tuned from the main job's first member (members trained apart: their own initial
# head, data order and background draw), the ILSVRC mAP of 1 vs 2 members with its paired bootstrap
# interval, a report that draws the evaluation's own detections. Expected wall time on 2 idle cores
# (docs/detection.md "make detect"): fp32 where the CPU has no native bf16 (10.5 min measured with
# torch held to AVX2 kernels, ~12.6 estimated for a Zen 3 EPYC), bf16 where it has (8.5 min measured).
DET_DATA := $(DEMO)/detection_data
DETECT_MINUTES_FP32 := 11-13
DETECT_MINUTES_BF16 := 9
detect: setup
	@test -f $(DEMO)/ensemble/member_00/model.safetensors || { echo "make detect: run make run first"; exit 2; }
	$(call expect,detect,$(DETECT_MINUTES_BF16),$(DETECT_MINUTES_FP32),docs/detection.md)
	$(BIN)/googlenet data make-builtin-detection $(DET_DATA) --train-images 100 --val-images 50
	$(BIN)/googlenet train-detector --config configs/detector_demo.yaml --data $(DET_DATA) \
		--init-from $(DEMO)/ensemble/member_00 --members 2 --no-same-init --out $(DEMO)/detector
	$(BIN)/googlenet evaluate-detection --data $(DET_DATA) --detector $(DEMO)/detector --members 1 2 \
		--rule ilsvrc --json $(DEMO)/detection.json --detections-out $(DEMO)/detections.json
	$(BIN)/googlenet report $(DEMO)/detector --evaluation $(DEMO)/detection.json \
		--detections $(DEMO)/detections.json --out $(DEMO)/detector_report
	@echo "report: $(DEMO)/detector_report/index.md"

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs
