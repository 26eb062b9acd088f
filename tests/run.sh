#!/usr/bin/env bash
# The test command (README, .ci/run): sets the environment up (idempotent, seconds when ready), checks
# the code with ruff, then runs every test, slow end-to-end ones included. Extra arguments go to
# pytest, e.g. `bash tests/run.sh -m "not slow"` for the quick ones or `-k store`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/benchmarks/setup_env.sh"
PY="${PSKD_VENV:-$REPO/.venv}/bin/python"
# One thread per process: the suite starts several processes on small shared machines.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1  # mmengine and fairseq checkpoints; ours load with weights_only=True
cd "$REPO"
"$PY" -m ruff check .
# PSKD_TEST_WORKERS=N runs N pytest-xdist workers (the Slurm tests together on one, their xdist_group). The default
# is 0, one process: on 2 cores two workers ran the end-to-end tests side by side and took longer, not shorter.
exec "$PY" -m pytest -n "${PSKD_TEST_WORKERS:-0}" --dist loadgroup "$@"
