# flowcodec: `make demo` sets everything up and codes a bundled photo; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SAMPLE := tests/data/kodim23.png
DEMO   := build/demo
KODAK  ?= ../shared/data/kodak

.PHONY: install demo test bench fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned: the CPU wheel on disk; an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	@mkdir -p $(DEMO)
	$(VENV)/bin/flowcodec encode $(SAMPLE) -o $(DEMO)/sample.fcx --beta 0.005 --force
	$(VENV)/bin/flowcodec decode $(DEMO)/sample.fcx -o $(DEMO)/sample.png --force
	$(PY) -m flowcodec_cli.demo_report $(SAMPLE) $(DEMO)/sample.fcx $(DEMO)/sample.png

test: install
	$(PY) -m pytest -q

bench: install
	$(VENV)/bin/flowcodec bench $(KODAK) --report-dir docs --cache .bench_cache

clean:
	rm -rf build .bench_cache
