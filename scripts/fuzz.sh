#!/usr/bin/env bash
# Runs every Go fuzz target in the module for FUZZTIME each (default 60s).
# make fuzz: the full run; make fuzz-smoke and make test: 20000 executions
# each. The smoke uses a count, not a duration, because Go 1.26's fuzz
# coordinator can report "context deadline exceeded" as a failure when a
# duration ends mid-execution (golang/go#75804, fixed in Go 1.27); a count
# never takes that path.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
status=0
# files in a corpus directory (0 when it does not exist yet)
count() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }
while IFS=: read -r file _ line; do
  name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
  pkg=$(dirname "$file")
  echo "== fuzz $pkg $name ($FUZZTIME)"
  corpus="$pkg/testdata/fuzz/$name"
  before=$(count "$corpus")
  for try in 1 2; do
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
      break
    fi
    cat /tmp/fuzz-$$.log
    if [ "$(count "$corpus")" -gt "$before" ]; then
      echo "FAIL: $pkg $name found a crasher, saved under $corpus: commit it as a regression test and fix the bug"
      status=1
      break
    fi
    # No input was saved: the fuzzing engine itself failed, typically the
    # duration race above (golang/go#75804). Try once more.
    if [ "$try" = 2 ]; then
      echo "FAIL: $pkg $name failed twice without a crasher"
      status=1
    fi
  done
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . | grep -v node_modules | sort)
rm -f /tmp/fuzz-$$.log
exit $status
