#!/usr/bin/env bash
# The benchmark (`npm run bench`): what it measures and why, in docs/benchmarks.md.
#
#   npm run bench                                         # every workload, local ZooKeeper
#   npm run bench -- --workload w2 --clients 4,64 --seconds 10
#   npm run bench -- --workload leader                    # job and leader handovers, skipped ticks
#   npm run bench -- --connect 127.0.0.1:2181 --json out.jsonl
#   npm run -s bench > out.jsonl                          # -s: no npm banner among the JSON lines
#
# Sets up what is missing, builds bench/ (with the parts of lib/ and test/support/ it uses) into
# bench/dist/, and runs it with node --expose-gc. Arguments go to bench/main.ts (see --help).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "$root/node_modules" ] || (cd "$root" && npm ci --no-audit --no-fund >&2)

local_zk=true
for arg in "$@"; do
  case $arg in --connect | --connect=* | -h | --help) local_zk=false ;; esac
done
if $local_zk; then
  bash "$root/scripts/zookeeper.sh" ensure
  # The compiled test/support/zookeeper.js lives in bench/dist/ and cannot find scripts/ from
  # there: hand it the classpath.
  ZK_CLASSPATH=$(bash "$root/scripts/zookeeper.sh" classpath)
  export ZK_CLASSPATH
fi

# Build (atomically, tsc's messages on stderr: see scripts/build-app.sh) and run.
bash "$root/scripts/build-app.sh" bench
exec node --expose-gc "$root/bench/dist/bench/main.js" "$@"
