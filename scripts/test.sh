#!/usr/bin/env bash
# The README's test command (`npm test`): sets up what is missing, then runs every suite.
# Extra arguments go to Vitest, e.g. `npm test -- test/unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/zookeeper.sh ensure
exec npx vitest run "$@"
