#!/usr/bin/env bash
# The README's "run the sample" command (`npm run sample`): many processes, one log file, one lock.
#
#   npm run sample                                # 8 workers x 25 lines, local ZooKeeper
#   npm run sample -- --workers 100 --lines 10
#   npm run sample -- --no-lock                   # the corruption the lock prevents
#   npm run sample -- --http                      # 2 HTTP app instances, 200 requests to a locked route
#   npm run sample -- --http --requests 1000 --concurrency 32
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

# Build into a fresh directory, then move each file that changed into sample/dist/ (a rename): a
# run that is going on meanwhile (say, another test file's) never loads a half-written file.
mkdir -p sample/dist
staging=$(mktemp -d sample/dist/.build-XXXXXX)
trap 'rm -rf "$staging"' EXIT
npx tsc -p sample/tsconfig.json --outDir "$staging"
(cd "$staging" && find . -type f) | while IFS= read -r file; do
  target=sample/dist/${file#./}
  if [[ $file == *.map ]]; then
    # Source maps name their source relative to themselves, and $staging is one level deeper.
    sed -i 's#"sources":\["\.\./#"sources":["#' "$staging/$file"
  fi
  cmp -s "$staging/$file" "$target" && continue
  mkdir -p "$(dirname "$target")"
  mv -f "$staging/$file" "$target"
done
rm -rf "$staging"
trap - EXIT
exec node sample/dist/sample/main.js "$@"
