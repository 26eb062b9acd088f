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
# Two pytest workers (PSKD_TEST_WORKERS; 0 runs in this process): most of the suite's time is spent waiting on the
# subprocesses, checkpoints and Slurm jobs of its end-to-end tests. The Slurm tests share one cluster: they run on one
# worker (their xdist_group). Arguments given after these win (e.g. -n 0).
exec "$PY" -m pytest -n "${PSKD_TEST_WORKERS:-2}" --dist loadgroup "$@"
