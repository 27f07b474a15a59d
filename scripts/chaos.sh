#!/usr/bin/env bash
# The chaos run (`npm run chaos`): workers under one lock while members, connections, sessions and
# processes fail; then the fenced store's log is verified. See chaos/README.md.
#
#   npm run chaos                                  # 2 minutes of faults, 4 workers, a random seed
#   npm run chaos -- --minutes 10                  # the long run
#   npm run chaos -- --seconds 60 --seed 42 --workers 6
#
# Sets up what is missing, builds chaos/ (with the parts of lib/, sample/ and test/support/ it
# uses) into chaos/dist/, and runs it. Arguments go to chaos/main.ts (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund

wants_help=false
for arg in "$@"; do
  case $arg in -h | --help) wants_help=true ;; esac
done
if ! $wants_help; then
  bash scripts/zookeeper.sh ensure
  # The compiled test/support/zookeeper.js lives in chaos/dist/ and cannot find scripts/ from
  # there: hand it the classpath.
  ZK_CLASSPATH=$(bash scripts/zookeeper.sh classpath)
  export ZK_CLASSPATH
fi

# Build (atomically: see scripts/build-app.sh) and run.
bash scripts/build-app.sh chaos
exec node --enable-source-maps chaos/dist/chaos/main.js "$@"
