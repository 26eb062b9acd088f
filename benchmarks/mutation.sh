#!/usr/bin/env bash
# Mutation testing of the PS-KD core and the adapters' PS-KD glue with mutmut 3 (docs/mutation.md). Not run by
# CI: it takes long and one worker at a time is all a small shared machine should give it.
#
#   bash benchmarks/mutation.sh                     # every file of [tool.mutmut] only_mutate, from scratch
#   bash benchmarks/mutation.sh 'common.schedules*' # only these mutants (mutmut's name globs)
#   bash benchmarks/mutation.sh --summary           # only the table of the last run
#
# What is mutated, and which tests run against it, is pyproject.toml's [tool.mutmut]: the fast tests that import
# the code in the test process (tests that start other Python processes would test the unmutated code). The run
# starts from a fresh mutants/ unless PSKD_MUTATION_KEEP=1 (then mutmut re-tests only what changed).
# Environment: PSKD_VENV (default <repo>/.venv), PSKD_MUTATION_CHILDREN (worker processes, default 1).
# Prints, per file, killed / total and the score (killed: a test failed, or the mutant ran past its time
# limit), then the names of the survivors; `mutmut show NAME` (from the repository root) shows one.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PSKD_VENV:-$REPO/.venv}"
cd "$REPO"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
export PATH="$VENV/bin:$PATH"

if [ "${1:-}" != "--summary" ]; then
    [ "${PSKD_MUTATION_KEEP:-0}" = 1 ] || rm -rf mutants
    start=$(date +%s)
    mutmut run --max-children "${PSKD_MUTATION_CHILDREN:-1}" "$@" || true
    echo "mutmut run: $(( $(date +%s) - start )) s"
fi

"$VENV/bin/python" - <<'PY'
import json
import tomllib
from pathlib import Path

KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # mutmut.stats.status_by_exit_code: killed, timeout, type check
files = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
survivors, total_killed, total_all = [], 0, 0
print(f"{'file':32} {'killed':>7} {'total':>6} {'score':>7} {'time':>7}  other")
for name in files:
    meta = Path("mutants") / (name + ".meta")
    if not meta.exists():
        print(f"{name:32} {'-':>7} {'-':>6} {'-':>7}  (not run)")
        continue
    data = json.loads(meta.read_text())
    codes = data["exit_code_by_key"]
    seconds = f"{sum(data['durations_by_key'].values()):.0f} s"  # the tests' time per mutant, summed
    killed = sum(code in KILLED for code in codes.values())
    others = {}
    for key, code in codes.items():
        if code not in KILLED:
            status = {0: "survived", None: "not checked", 33: "no tests", 5: "no tests"}.get(code, f"exit {code}")
            others[status] = others.get(status, 0) + 1
            survivors.append((key, status))
    score = f"{100 * killed / len(codes):.1f}%" if codes else "-"
    print(f"{name:32} {killed:>7} {len(codes):>6} {score:>7} {seconds:>7}  {', '.join(f'{n} {s}' for s, n in others.items())}")
    total_killed, total_all = total_killed + killed, total_all + len(codes)
if total_all:
    print(f"{'all':32} {total_killed:>7} {total_all:>6} {100 * total_killed / total_all:.1f}%")
for key, status in survivors:
    if status == "not checked":
        continue
    print(f"  {status}: {key}")
PY
