#!/usr/bin/env bash
# Builds one of the repository's runnable apps (sample, bench, chaos) with tsc into <app>/dist/:
#   bash scripts/build-app.sh <app>
# It compiles into a fresh directory, then moves each file that changed into place (a rename), so
# a run going on meanwhile (another test file's, say) never loads a half-written file.
# tsc's messages go to stderr, so that the caller's stdout stays clean (the bench's JSON lines).
set -euo pipefail
cd "$(dirname "$0")/.."
app=$1
mkdir -p "$app/dist"
staging=$(mktemp -d "$app/dist/.build-XXXXXX")
trap 'rm -rf "$staging"' EXIT
npx tsc -p "$app/tsconfig.json" --outDir "$staging" >&2
(cd "$staging" && find . -type f) | while IFS= read -r file; do
  target=$app/dist/${file#./}
  if [[ $file == *.map ]]; then
    # Source maps name their source relative to themselves, and $staging is one level deeper.
    sed -i 's#"sources":\["\.\./#"sources":["#' "$staging/$file"
  fi
  cmp -s "$staging/$file" "$target" && continue
  mkdir -p "$(dirname "$target")"
  mv -f "$staging/$file" "$target"
done
