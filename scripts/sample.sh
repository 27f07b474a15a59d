#!/usr/bin/env bash
# The README's "run the sample" command (`npm run sample`): many processes, one log file, one lock.
#
#   npm run sample                                # 8 workers x 25 lines, local ZooKeeper
#   npm run sample -- --workers 100 --lines 10
#   npm run sample -- --no-lock                   # the corruption the lock prevents
#   npm run sample -- --http                      # 2 HTTP app instances, 200 requests to a locked route
#   npm run sample -- --http --requests 1000 --concurrency 32
#   npm run sample -- --jobs                      # 3 instances: a @Cron job on one of them, a leader, 2 handovers
#   ZK_CONNECT=127.0.0.1:2181 npm run sample      # against your own ZooKeeper
#
# Sets up what is missing, builds sample/ (with the parts of lib/ and test/support/ it uses) into
# sample/dist/, and runs it. Arguments go to sample/main.ts (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund

wants_help=false
for arg in "$@"; do
  case $arg in -h | --help) wants_help=true ;; esac
done
if [[ -z ${ZK_CONNECT:-} ]] && ! $wants_help; then
  bash scripts/zookeeper.sh ensure
  # The compiled test/support/zookeeper.js lives in sample/dist/ and cannot find scripts/ from
  # there: hand it the classpath.
  ZK_CLASSPATH=$(bash scripts/zookeeper.sh classpath)
  export ZK_CLASSPATH
fi

# Build (atomically: see scripts/build-app.sh) and run.
bash scripts/build-app.sh sample
exec node sample/dist/sample/main.js "$@"
