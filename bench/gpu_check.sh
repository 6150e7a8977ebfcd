#!/usr/bin/env bash
# The GPU check (docs/benchmarks.md): GPG against GRPO at the paper's per-GPU step on one CUDA GPU,
# `bench/bench_gpg_vs_grpo.py --setup paper`, on a machine that has torch and transformers but no network.
#
#   bash bench/gpu_check.sh --prepare [3.12]   here, where pip reaches PyPI: the wheels the GPU machine
#                                              lacks, for its Python, into wheels/ (git-ignored)
#   bash bench/gpu_check.sh [ARGS]             there: install wheels/ under /tmp, run the check; the log and
#                                              the JSON go to $OUT (here: bench/results/tmp/gpu-check)
#   bash bench/gpu_check.sh --dry-run [ARGS]   the same path on a CPU, scaled down (also where CUDA is absent)
#
# ARGS go to bench_gpg_vs_grpo.py, e.g. --steps 1 for a shorter run.
# wheels/ is git-ignored: a copy of the checkout for the GPU machine must take it along explicitly.
# PYTHON names the interpreter (default python3); --prepare's needs torch, setuptools and wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=wheels
LIMIT_MIB=64  # what travels to the GPU machine: the working tree and the carried wheels together
# What the trainer imports beyond the GPU machine's image (torch, transformers, peft, accelerate,
# einops, ...), at the versions the CPU stack runs. The image has typing-extensions and pluggy at
# versions not known here: pydantic needs typing-extensions >= 4.16, the project pluggy >= 1.5.
PURE=(hjson==3.1.0 pydantic==2.14.4 annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
      torchdata==0.11.0 pylatexenc==2.11 pluggy==1.7.0)
# Wheels tagged for one Python version (pydantic-core is compiled; openrlhf is pure Python, tagged cpXY):
# they must match the GPU machine's Python.
TAGGED=(openrlhf==0.11.2 pydantic-core==2.50.5)
DEEPSPEED=deepspeed==0.19.6

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

prepare() {
    local target=${1:-3.12} src
    [[ $target =~ ^3\.[0-9]+$ ]] || { echo "--prepare $target: expected a Python version such as 3.12" >&2; exit 2; }
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    src=$(mktemp -d)
    # DeepSpeed publishes only an sdist: a pure-Python wheel of it, its CUDA ops JIT-compiled where they run.
    "$PY" -m pip download -q --no-deps --no-binary :all: -d "$src" "$DEEPSPEED"
    DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" "$src"/deepspeed-*.tar.gz
    rm -rf "$src"
    "$PY" -m pip download -q --no-deps --only-binary :all: -d "$WHEELS" "${PURE[@]}"
    "$PY" -m pip download -q --no-deps --only-binary :all: --python-version "$target" --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d "$WHEELS" "${TAGGED[@]}"
    echo "$target" >"$WHEELS/python-version"
    check_size
}

check_size() {
    local wheels tree
    wheels=$(du -sb "$WHEELS" | cut -f1)
    tree=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } |
        du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
    echo "wheels/: $(mib "$wheels") MiB in $(ls "$WHEELS"/*.whl | wc -l) wheels for Python" \
        "$(cat "$WHEELS/python-version"); with the working tree ($(mib "$tree") MiB):" \
        "$(mib $((wheels + tree))) of $LIMIT_MIB MiB"
    if ((wheels + tree > LIMIT_MIB * 1048576)); then
        echo "too large to travel: the working tree and wheels/ must stay within $LIMIT_MIB MiB" >&2
        exit 1
    fi
}

check_python() {
    local want have
    want=$(cat "$WHEELS/python-version")
    have=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [[ $want != "$have" ]]; then
        echo "wheels/ was prepared for Python $want, but $PY here is Python $have: run" \
            "'bash bench/gpu_check.sh --prepare $have' where pip reaches PyPI and carry wheels/ again" >&2
        exit 2
    fi
}

# Imports resolve from the checkout, a shim (the installed names of plugins/, configs/, prompts/)
# and the wheels installed into a temporary folder; the caches live under /tmp.
environment() {
    local site=$SCRATCH/site shim=$SCRATCH/shim
    if [[ -d $WHEELS ]]; then
        check_python
        PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target "$site" "$WHEELS"/*.whl
    fi
    mkdir -p "$shim"
    ln -sfn "$PWD/plugins" "$shim/fadtq_plugins"
    ln -sfn "$PWD/configs" "$shim/fadtq_configs"
    ln -sfn "$PWD/prompts" "$shim/fadtq_prompts"
    export PYTHONPATH="$shim:$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    export FADTQ_CACHE=${FADTQ_CACHE:-/tmp/fadtq-cache}
    export TORCH_EXTENSIONS_DIR=$FADTQ_CACHE/torch_extensions OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
    local imports='from fadtq.training import cpu_compat; cpu_compat.apply()
import fadtq.training.strategy, fadtq.training.trainer'
    if ! "$PY" -c "$imports"; then
        echo "the trainer does not import here (the missing module is named above): add its wheel to PURE or TAGGED" \
            "in bench/gpu_check.sh and prepare again" >&2
        exit 2
    fi
}

# DeepSpeed JIT-compiles FusedAdam on its first use: once here, so that a failure shows before the runs
# and both runs find it built. Where it fails, the check runs with torch's AdamW instead.
build_fused_adam() {
    local out=$1 build='import torch; from deepspeed.ops.adam import FusedAdam
FusedAdam([torch.zeros(1, device="cuda", requires_grad=True)])'
    if ! "$PY" -c "$build" >"$out/fused_adam.log" 2>&1; then
        tail -5 "$out/fused_adam.log"
        echo "DeepSpeed could not compile FusedAdam (fused_adam.log):" \
            "the check runs with torch's AdamW (FADTQ_TORCH_ADAM=1)"
        export FADTQ_TORCH_ADAM=1
    fi
}

check() {
    local dry=$1 out=${OUT:-bench/results/tmp/gpu-check} result=bench/results/tmp/gpg_vs_grpo_paper_dry_run.json
    shift
    mkdir -p "$out"
    SCRATCH=$(mktemp -d /tmp/fadtq-gpu-check.XXXXXX)
    trap 'rm -rf "$SCRATCH"' EXIT
    environment
    if [[ $dry == 0 ]] && "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
        build_fused_adam "$out"
        result=bench/results/gpg_vs_grpo_paper.json
    else
        dry=1
    fi
    local args=(--setup paper "$@")
    if [[ $dry == 1 ]]; then args+=(--dry-run); fi
    "$PY" bench/bench_gpg_vs_grpo.py "${args[@]}" 2>&1 | tee "$out/gpu_check.log"
    cp "$result" "$out/"
    echo "gpu_check: done in $SECONDS s; log and $(basename "$result") in $out"
}

case ${1:-} in
    --prepare) prepare "${2:-}" ;;
    --dry-run) check 1 "${@:2}" ;;
    *) check 0 "$@" ;;
esac
