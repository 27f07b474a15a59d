#!/usr/bin/env bash
# The README's test command (`npm test`): sets up what is missing, then runs every suite.
# Extra arguments go to Vitest, e.g. `npm test -- test/unit`. Quiet by default (no log lines of
# the library or Nest): ZK_LOCK_TEST_LOGS=debug (or warn, log, ...) shows them (test/setup/quiet-logs.ts).
# The JSON report stays where Vitest says it wrote it, for a look after the run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/zookeeper.sh ensure

report=node_modules/.cache/nestjs-zk-lock/test-report.json
mkdir -p "$(dirname "$report")"
rm -f "$report"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# One plain closing line, whatever the runner printed above it.
node -e '
  const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`Tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" 2>/dev/null || echo "Tests: no report (Vitest exited with $status before writing one)"
exit "$status"
