#!/usr/bin/env bash
# Build (or check) the project's virtual environment: .venv/ in the repository root.
#
# Idempotent: when .venv/ was built by this very script and still imports the whole stack, it exits
# within seconds and changes nothing. The slow compiled packages (mmcv with ops, fairseq-fixed) are
# built once into a wheelhouse outside the repository and installed from there afterwards.
#
# Versions: every pip call here takes `-c constraints.txt` (the repository root), the only file that
# names exact versions; pyproject.toml declares the ranges, and the last step installs the project
# with its dependencies, so what this script installs and what `pip install -e .` asks for agree.
#
# Environment:
#   PSKD_VENV        where the virtual environment lives        (default: <repo>/.venv)
#   PSKD_WHEELHOUSE  cache of the wheels built here              (default: ~/.cache/pskd/wheelhouse)
#   PSKD_PYTHON      the Python 3.11 interpreter to build it from (default: python3.11, else python3)
#   PSKD_SKIP_DATA=1 do not install the Debian data packages
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PSKD_VENV:-$REPO/.venv}"
CONSTRAINTS="$REPO/constraints.txt"
# The version that constraints.txt pins for package $1 (a `name==version` line).
pinned() {
    local version; version="$(sed -n "s/^$1==\([^ #]*\).*/\1/p" "$CONSTRAINTS")"
    [ -n "$version" ] || { echo "setup: $CONSTRAINTS has no '$1==VERSION' line" >&2; exit 2; }
    echo "$version"
}
TORCH_VERSION="$(pinned torch)"
MMCV_VERSION="$(pinned mmcv)"
FAIRSEQ_VERSION="$(pinned fairseq-fixed)"
WHEELHOUSE="${PSKD_WHEELHOUSE:-$HOME/.cache/pskd/wheelhouse}/torch-$TORCH_VERSION"
DATA_PACKAGES=(dataset-fashion-mnist labelme-examples trans-de-en)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# The stamp names everything that decides what gets installed: this script, the pins and the ranges.
stamp_of() { cat "$REPO/benchmarks/setup_env.sh" "$CONSTRAINTS" "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1; }
STAMP_FILE="$VENV/.pskd-setup-stamp"

install_data_packages() {
    [ "${PSKD_SKIP_DATA:-0}" = 1 ] && return 0
    local missing=()
    for p in "${DATA_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian data packages: ${missing[*]}"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || log "WARNING: apt-get could not install ${missing[*]}; the demos that use them will say what is missing"
    else
        log "NOTE: the demo data comes from Debian packages ${missing[*]}:"
        log "      run 'sudo apt-get install ${missing[*]}' (or set the dataset paths in the configs, see docs/installation.md)"
    fi
}

# The whole stack imports, and every package that constraints.txt names is installed at its pin. Quietly: the
# imports' start-up chatter is theirs, not this script's. fairseq's import calls logging.basicConfig(level=DEBUG)
# (fairseq/models/wav2vec/wav2vec2_classification.py), so every later import logged its start-up (matplotlib's DEBUG
# lines, fairseq's tensorboardX INFO line); configuring the root logger first at WARNING makes that call a no-op.
# torch.jit's deprecation of its own script() is the one warning dropped; other warnings and errors still print.
stack_imports() {
    "$VENV/bin/python" - "$CONSTRAINTS" <<'PY'
import logging
import sys
import warnings
from importlib.metadata import version

from packaging.requirements import Requirement

logging.basicConfig(level=logging.WARNING)
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

import torch, torchvision, mmengine, mmcv, mmcv.ops, mmdet, fairseq, sacrebleu, pycocotools, matplotlib
import transformers, accelerate, tokenizers
import common, classification, detection, translation, huggingface

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        req = Requirement(line)
        assert req.specifier.contains(version(req.name), prereleases=True), (req, version(req.name))
PY
}

if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$(stamp_of)" ] && stack_imports >/dev/null 2>&1; then
    install_data_packages
    log "environment ready: $VENV"
    exit 0
fi

PYTHON="${PSKD_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"' \
    || { echo "setup: $PYTHON is not Python 3.11; set PSKD_PYTHON to a Python 3.11 interpreter" >&2; exit 2; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
# Every install is held to constraints.txt, so no step can move a pinned package (setuptools included).
PIP=("$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS")
mkdir -p "$WHEELHOUSE"

log "build tools"
"$VENV/bin/python" -m pip install -q --upgrade pip
"${PIP[@]}" setuptools wheel cython numpy

# torch first: anything that depends on it would otherwise resolve another build.
log "torch $TORCH_VERSION + torchvision"
"${PIP[@]}" torch torchvision
"${PIP[@]}" mmengine

build_mmcv_wheel() {
    local work; work="$(mktemp -d)"
    log "building mmcv $MMCV_VERSION with CPU ops from its sdist (10-25 minutes, once; cached in $WHEELHOUSE)"
    "$VENV/bin/python" -m pip download -q --no-deps --no-build-isolation --no-binary :all: -c "$CONSTRAINTS" mmcv \
        -d "$work"
    tar -xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-$MMCV_VERSION/setup.py"
    (cd "$work/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
        "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELHOUSE" .)
    rm -rf "$work"
}
ls "$WHEELHOUSE/mmcv-$MMCV_VERSION"-*.whl >/dev/null 2>&1 || build_mmcv_wheel
log "mmcv $MMCV_VERSION (from $WHEELHOUSE)"
"${PIP[@]}" "$WHEELHOUSE/mmcv-$MMCV_VERSION"-*.whl
"${PIP[@]}" mmdet

if ! ls "$WHEELHOUSE/fairseq_fixed-$FAIRSEQ_VERSION"-*.whl >/dev/null 2>&1; then
    log "building fairseq-fixed $FAIRSEQ_VERSION (about 4 minutes, once; cached in $WHEELHOUSE)"
    # No build isolation: otherwise pip builds it against a freshly downloaded torch.
    "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps -c "$CONSTRAINTS" -w "$WHEELHOUSE" fairseq-fixed
fi
log "fairseq-fixed $FAIRSEQ_VERSION (from $WHEELHOUSE)"
"${PIP[@]}" "$WHEELHOUSE/fairseq_fixed-$FAIRSEQ_VERSION"-*.whl

# pyproject.toml's dependencies (the ones above are already there and stay), the dev extra and the huggingface one.
log "the project itself (editable) with the rest of its dependencies"
# setuptools' editable build warns, in a banner of !!, that a folder named like a package may shadow it: here
# the folders are the packages, so the banner says nothing and is filtered
PYTHONWARNINGS="ignore:Editable installation" "${PIP[@]}" --no-build-isolation -e "$REPO[dev,huggingface]"
"$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; log "WARNING: pip check reports conflicts (above)"; }

stack_imports || { echo "setup: the environment does not import the whole stack at the versions of $CONSTRAINTS" \
    "(the error above)" >&2; exit 1; }
stamp_of > "$STAMP_FILE"
install_data_packages
log "environment ready: $VENV"
