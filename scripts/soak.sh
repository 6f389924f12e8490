#!/usr/bin/env bash
# soak.sh [DURATION] — the long reliability run (make soak DURATION=10m):
# simulated cameras, churning readers and admin edits against the real
# daemon for DURATION (a Go duration, at least 30s; default 10m). It reports
# the daemon's threads, open fds and RSS at the start and the end and fails
# if they grew, then scans every log it captured for test secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-${DURATION:-10m}}
logdir=$(mktemp -d /tmp/camwarden-soak.XXXXXX)
echo "soak: $dur; logs in $logdir"
rc=0
CAMWARDEN_SOAK_DURATION=$dur CAMWARDEN_TEST_LOGDIR=$logdir \
	${GO:-go} test -count=1 -timeout 0 -run '^TestSoak$' -v ./reliability/ >"$logdir/go-test.out" 2>&1 &
pid=$!
tail -n +1 --pid="$pid" -f "$logdir/go-test.out" | grep --line-buffered -vE '^\s+20[0-9]{2}-[0-9]{2}-[0-9]{2}T' || true
wait "$pid" || rc=$?
scripts/scan-secrets.sh "$logdir" || rc=1
if [[ $rc -eq 0 ]]; then
	echo "soak: PASS"
else
	echo "soak: FAIL (exit $rc); logs in $logdir"
fi
exit "$rc"
