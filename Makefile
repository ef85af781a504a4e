# flowcodec: `make demo` sets everything up and codes a bundled photo; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SAMPLE := tests/data/kodim23.png
DEMO   := build/demo
KODAK  ?= ../shared/data/kodak
STEREO ?= ../shared/data/stereo/middlebury_trainingQ

.PHONY: install demo test bench bench-stereo resources fuzz fuzz-short clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned: the CPU wheel on disk; an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	# the cluster extra (Dask) too, so that make test runs the tests of batch on a LocalCluster,
	# and the metrics extra (SSIMULACRA2), so that its tests run rather than skip
	$(PIP) install -q -e '.[test,cluster,metrics]'
	touch $@

install: $(VENV)/.installed

demo: install
	@mkdir -p $(DEMO)
	$(VENV)/bin/flowcodec encode $(SAMPLE) -o $(DEMO)/sample.fcx -q 75 -v --force
	$(VENV)/bin/flowcodec decode $(DEMO)/sample.fcx -o $(DEMO)/sample.png --force
	$(PY) -m flowcodec_cli.evaluation.demo_report $(SAMPLE) $(DEMO)/sample.fcx $(DEMO)/sample.png

test: install
	$(PY) -m pytest -q

# bench's extras (matplotlib for rd.png, imagecodecs for JPEG XL, ssimulacra2 for SSIMULACRA2);
# bench skips each if missing.
$(VENV)/.bench-installed: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e '.[test,bench,metrics]'
	touch $@

bench: install $(VENV)/.bench-installed
	$(VENV)/bin/flowcodec bench $(KODAK) --report-dir docs --cache .bench_cache

# the side-information models on held-out stereo pairs -> docs/stereo.md, docs/stereo.json
bench-stereo: install
	$(VENV)/bin/flowcodec bench $(STEREO) --stereo --report-dir docs --threads 2

# peak RSS of encode/decode on 4000x3000 and 8000x6000 photos, and the tile-seam cost
resources: install
	$(PY) -m flowcodec_cli.evaluation.resources --source $(KODAK) --out docs/resources.json

FUZZ_PARSER_RUNS  ?= 1000000
FUZZ_DECODER_RUNS ?= 10000

fuzz: install
	$(PIP) install -q atheris
	cd tests/fuzz && ../../$(PY) run_fuzz.py parser -runs=$(FUZZ_PARSER_RUNS) -print_final_stats=1
	cd tests/fuzz && ../../$(PY) run_fuzz.py decoder -runs=$(FUZZ_DECODER_RUNS) -print_final_stats=1

fuzz-short:
	$(MAKE) fuzz FUZZ_PARSER_RUNS=20000 FUZZ_DECODER_RUNS=100

clean:
	rm -rf build .bench_cache
