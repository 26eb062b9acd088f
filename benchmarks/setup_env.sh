#!/usr/bin/env bash
# Build (or check) the project's virtual environment: .venv/ in the repository root.
#
# Idempotent: when .venv/ was built by this very script and still imports the whole stack, it exits
# within seconds and changes nothing. The slow compiled packages (mmcv with ops, fairseq-fixed) are
# built once into a wheelhouse outside the repository and installed from there afterwards.
#
# Environment:
#   PSKD_VENV        where the virtual environment lives        (default: <repo>/.venv)
#   PSKD_WHEELHOUSE  cache of the wheels built here              (default: ~/.cache/pskd/wheelhouse)
#   PSKD_PYTHON      the Python 3.11 interpreter to build it from (default: python3.11, else python3)
#   PSKD_SKIP_DATA=1 do not install the Debian data packages
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PSKD_VENV:-$REPO/.venv}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
WHEELHOUSE="${PSKD_WHEELHOUSE:-$HOME/.cache/pskd/wheelhouse}/torch-$TORCH_VERSION"
SETUPTOOLS_PIN='setuptools>=77.0.3,<81'
DATA_PACKAGES=(dataset-fashion-mnist labelme-examples trans-de-en)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# The stamp names everything that decides what gets installed: this script and the pinned list.
stamp_of() { cat "$REPO/benchmarks/setup_env.sh" "$REPO/benchmarks/requirements.txt" "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1; }
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
        log "      run 'sudo apt-get install ${missing[*]}' (or set the dataset paths in the configs, see README)"
    fi
}

stack_imports() {
    "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import torch, torchvision, mmengine, mmcv, mmcv.ops, mmdet, fairseq, sacrebleu, pycocotools, matplotlib
import common, classification, detection, translation
assert torch.__version__.startswith("2.14.1"), torch.__version__
PY
}

if [ -f "$STAMP_FILE" ] && [ "$(cat "$STAMP_FILE")" = "$(stamp_of)" ] && stack_imports; then
    install_data_packages
    log "environment ready: $VENV"
    exit 0
fi

PYTHON="${PSKD_PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"' \
    || { echo "setup: $PYTHON is not Python 3.11; set PSKD_PYTHON to a Python 3.11 interpreter" >&2; exit 2; }

[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install -q)
mkdir -p "$WHEELHOUSE"

log "build tools"
"${PIP[@]}" --upgrade pip "$SETUPTOOLS_PIN" wheel cython 'numpy<2.3'

# torch first: anything that depends on it would otherwise resolve another build.
log "torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
"${PIP[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" mmengine==0.10.7 "$SETUPTOOLS_PIN"

build_mmcv_wheel() {
    local work; work="$(mktemp -d)"
    log "building mmcv 2.1.0 with CPU ops from its sdist (10-25 minutes, once; cached in $WHEELHOUSE)"
    "$VENV/bin/python" -m pip download -q --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0 -d "$work"
    tar -xzf "$work"/mmcv-2.1.0.tar.gz -C "$work"
    # torch 2.14's headers need C++20; mmcv 2.1.0 hard-codes C++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-2.1.0/setup.py"
    (cd "$work/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
        "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELHOUSE" .)
    rm -rf "$work"
}
ls "$WHEELHOUSE"/mmcv-2.1.0-*.whl >/dev/null 2>&1 || build_mmcv_wheel
log "mmcv 2.1.0 (from $WHEELHOUSE)"
"${PIP[@]}" "$WHEELHOUSE"/mmcv-2.1.0-*.whl "$SETUPTOOLS_PIN"
"${PIP[@]}" mmdet==3.3.0 "$SETUPTOOLS_PIN"

if ! ls "$WHEELHOUSE"/fairseq_fixed-0.12.3.1-*.whl >/dev/null 2>&1; then
    log "building fairseq-fixed 0.12.3.1 (about 4 minutes, once; cached in $WHEELHOUSE)"
    # No build isolation: otherwise pip builds it against a freshly downloaded torch.
    "$VENV/bin/python" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELHOUSE" fairseq-fixed==0.12.3.1
fi
log "fairseq-fixed 0.12.3.1 (from $WHEELHOUSE)"
"${PIP[@]}" "$WHEELHOUSE"/fairseq_fixed-0.12.3.1-*.whl "$SETUPTOOLS_PIN"

log "the rest of the pinned list and the project itself (editable)"
"${PIP[@]}" -r "$REPO/benchmarks/requirements.txt" "$SETUPTOOLS_PIN"
"${PIP[@]}" --no-deps --no-build-isolation -e "$REPO"
"$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; log "WARNING: pip check reports conflicts (above)"; }

stack_imports || { echo "setup: the environment does not import the whole stack; see the messages above" >&2; exit 1; }
stamp_of > "$STAMP_FILE"
install_data_packages
log "environment ready: $VENV"
