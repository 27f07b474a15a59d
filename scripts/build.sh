#!/usr/bin/env bash
# Builds the package (`npm run build`): lib/ twice, as ES modules into <out>/ and as CommonJS into
# <out>/cjs/ (with a package.json {"type": "commonjs"} there, so Node and TypeScript read those .js
# and .d.ts files as CommonJS). package.json "exports" sends `import` to the first, `require` to
# the second.
#   bash scripts/build.sh [out]      out defaults to dist (emptied first)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
tsc=node_modules/typescript/bin/tsc
rm -rf "$out"
node "$tsc" -p tsconfig.build.json --outDir "$out"
node "$tsc" -p tsconfig.cjs.json --outDir "$out/cjs"
printf '{\n  "type": "commonjs"\n}\n' >"$out/cjs/package.json"
