#!/usr/bin/env bash
# Run the browser tests N times in a row and count the passes (target: 20 of 20).
#
# Usage: scripts/browser_repeat.sh [N] [extra pytest args...]
# Each run is a fresh pytest process (fresh JupyterLab server, workspace and browser).
# Logs of failed runs (of all runs with KEEP_LOGS=1) are kept in $LOG_DIR (default: a
# new temporary folder);
# screenshots go to $ADAPTIVE_LAB_SCREENSHOTS if set. Exit status: 0 only if all passed.
set -u
N="${1:-20}"
shift || true
case "$N" in ''|*[!0-9]*) echo "usage: $0 [N] [pytest args...]; N must be a number" >&2; exit 2;; esac
cd "$(dirname "$0")/.." || exit 2
PYTHON="${PYTHON:-python}"
LOG_DIR="${LOG_DIR:-$(mktemp -d -t browser-repeat.XXXXXX)}"
mkdir -p "$LOG_DIR"
passed=0
failed=0
skipped=0
for i in $(seq 1 "$N"); do
    log="$LOG_DIR/run-$i.log"
    start=$(date +%s%N)
    "$PYTHON" -m pytest tests/browser -q -p no:cacheprovider -m browser -rfEs "$@" >"$log" 2>&1
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
    summary=$(grep -E '(passed|failed|skipped|error)' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ] && grep -q ' passed' <<<"$summary" && ! grep -qE 'skipped|failed|error' <<<"$summary"; then
        passed=$((passed + 1))
        status=PASS
        [ "${KEEP_LOGS:-0}" = "1" ] || rm -f "$log"
    elif [ "$rc" -eq 0 ]; then
        skipped=$((skipped + 1))
        status=SKIP
    else
        failed=$((failed + 1))
        status=FAIL
    fi
    echo "run $i/$N: $status in ${secs}s: $summary"
done
echo "browser tests: $passed/$N runs passed, $failed failed, $skipped skipped (logs of non-passing runs: $LOG_DIR)"
[ "$passed" -eq "$N" ]
