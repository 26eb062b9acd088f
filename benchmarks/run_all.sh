#!/usr/bin/env bash
# The main job: set the environment up, then rebuild the paper's tables and figures on a profile.
#
#   bash benchmarks/run_all.sh [smoke|demo|paper] [--only ID[,ID]] [--seeds N] [--executor local|slurm]
#                              [--jobs N] [--dry-run] [--rehearse [networks]]  (default profile: demo)
#   --rehearse: every distinct run of the profile for a few steps on generated stand-in data, each killed at
#               its first checkpoint and resumed, into results/<profile>-rehearsal/ (benchmarks/pipeline/rehearsal.py);
#               --rehearse networks: one run per distinct network per adapter, with the runs it needs
#
# Profiles change sizes and data, never code paths:
#   smoke  CI-sized synthetic data, minutes;
#   demo   real small data this machine has offline (Debian packages), 2 CPU cores;
#   paper  the paper's data and schedules, on GPUs (docs/paper-profile.md: data paths, Slurm).
# The orchestration is Python (benchmarks/run_all.py, specs in benchmarks/tables/); results and
# REPORT.md go to results/<profile>/.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
    ""|smoke|demo|paper|-*) ;;
    *) echo "run_all.sh: unknown profile '$1'; use smoke, demo or paper" >&2; exit 2 ;;
esac
bash "$REPO/benchmarks/setup_env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$REPO"
exec "${PSKD_VENV:-$REPO/.venv}/bin/python" -m benchmarks.run_all "$@"
