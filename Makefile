# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create the virtual environment .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export FADTQ_CACHE ?= $(CURDIR)/.cache/fadtq

.PHONY: demo test venv bench clean judge-server

venv: $(STAMP)

$(STAMP): requirements/cpu.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps openrlhf==0.11.2
	$(PY) -m pip install -q -r requirements/cpu.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m fadtq.demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

# An OpenAI-compatible judge on 127.0.0.1:$(JUDGE_PORT): vLLM in .venv-judge (installed on first use),
# the tiny offline judge unless JUDGE_MODEL names a folder or a hub id (Qwen/Qwen3-8B on a GPU).
JUDGE_PORT ?= 8000
JUDGE_MODEL ?= tiny
judge-server: $(STAMP)
	$(PY) -m fadtq.judges.server --port $(JUDGE_PORT) --model $(JUDGE_MODEL)

clean:
	rm -rf $(VENV) .venv-judge .cache build *.egg-info
