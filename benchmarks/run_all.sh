#!/usr/bin/env bash
# The main job: set the environment up, then rebuild the paper's tables and figures on a profile.
#
#   bash benchmarks/run_all.sh [smoke|demo|paper]     (default: demo)
#
# Profiles change sizes and data, never code paths:
#   smoke  CI-sized, minutes;
#   demo   real small data this machine has offline (Debian packages), 2 CPU cores;
#   paper  the paper's data and schedules, on GPUs (see README: data paths and multi-GPU launchers).
# Results go to results/<profile>/ (records, tables, figures, benchmark figures).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="${1:-${PSKD_PROFILE:-demo}}"
case "$PROFILE" in
    smoke|demo|paper) ;;
    *) echo "run_all.sh: unknown profile '$PROFILE'; use smoke, demo or paper" >&2; exit 2 ;;
esac
bash "$REPO/benchmarks/setup_env.sh"
PY="${PSKD_VENV:-$REPO/.venv}/bin/python"
OUT="$REPO/results/$PROFILE"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$REPO"

echo "== [$PROFILE] common/: prediction store, DDP memory and metric figures"
QUICK=()
[ "$PROFILE" = smoke ] && QUICK=(--quick)
"$PY" -m benchmarks.bench_common "${QUICK[@]}" --out "$OUT/bench_common.json"

echo
echo "== [$PROFILE] done: results in $OUT"
