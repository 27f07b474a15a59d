#!/usr/bin/env bash
# Proves that the packed tarball works in real apps: builds, packs, checks the tarball's file list,
# then for each Nest major installs the tarball into a scratch ESM app, compiles a tiny main.ts
# with tsc (strict, nodenext, decorator metadata, no skipLibCheck) and runs it with node. Also
# type-checks lib/ (tsconfig.build.json, no emit) against that app's @nestjs/* types. The apps
# install @nestjs/terminus of the same major and use the `zk-lock/health` subpath too.
#
#   scripts/pack-check.sh            boots each app with lazyConnect (no ZooKeeper needed)
#   ZK_CONNECT=host:port scripts/pack-check.sh
#                                    also acquires and releases /pack-check/lock, prints its fencing token
#
# Prints one result line per Nest major ("pack-check: nest <N> OK ..." or "... FAIL ..."), exits
# non-zero when anything failed. Temp dirs are removed on exit (PACK_CHECK_KEEP=1 keeps them).
#
# npm cache: PACK_CHECK_NPM_CACHE=<dir> installs with that cache (default: npm's own, ~/.npm).
# Installs use --prefer-offline: versions already in the cache are not revalidated with the
# registry (PACK_CHECK_ONLINE=1 revalidates, to pick up newer Nest releases).
# PACK_CHECK_NEST="12" checks only some majors (default "12 11").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
majors=(${PACK_CHECK_NEST:-12 11})
run_timeout=${PACK_CHECK_RUN_TIMEOUT:-60}

work=$(mktemp -d "${TMPDIR:-/tmp}/zk-lock-pack-check.XXXXXX")
cleanup() {
  if [[ ${PACK_CHECK_KEEP:-} == 1 ]]; then
    echo "pack-check: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }'; }
# Runs a step with its output in a log file; on failure prints the log's tail to stderr.
step() {
  local log=$1
  shift
  local rc=0
  "$@" >"$log" 2>&1 || rc=$?
  ((rc != 0)) || return 0
  {
    echo "---- $* (exit $rc), last lines of $log:"
    tail -n 40 "$log" | grep -v 'Unknown user config' || true
    echo "----"
  } >&2
  return $rc
}

npm_flags=(--no-audit --no-fund --loglevel=warn)
[[ ${PACK_CHECK_ONLINE:-} == 1 ]] || npm_flags+=(--prefer-offline)
[[ -z ${PACK_CHECK_NPM_CACHE:-} ]] || npm_flags+=(--cache "$PACK_CHECK_NPM_CACHE")

t0=$(now)

# ---- 1. build and pack ----
# Build into a staging copy of the package, not the repo's dist/: tests running at the same time
# load dist/, and `npm run build` would delete it under them.
cd "$repo"
stage="$work/stage"
mkdir -p "$stage"
cp package.json "$stage/"
for f in README.md CHANGELOG.md LICENSE; do [[ ! -f $f ]] || cp "$f" "$stage/"; done
step "$work/build.log" ./node_modules/.bin/tsc -p tsconfig.build.json --outDir "$stage/dist" || {
  echo "pack-check: FAIL (build)"
  exit 1
}
if ! (cd "$stage" && npm pack --json --ignore-scripts --pack-destination "$work") >"$work/pack.json" 2>"$work/pack.log"; then
  cat "$work/pack.log" >&2
  echo "pack-check: FAIL (npm pack)"
  exit 1
fi
pack_json=$(<"$work/pack.json")

read -r pkg_name ts_version types_node_version < <(
  node -e '
    const p = require(process.argv[1]);
    const dev = p.devDependencies ?? {};
    console.log(p.name, dev.typescript, dev["@types/node"] ?? "*");
  ' "$repo/package.json"
)

# ---- 2. the tarball's file list ----
# Allowed: dist/**, package.json, README.md, CHANGELOG.md, LICENSE (npm adds README/LICENSE itself).
tarball=$(
  PACK_JSON=$pack_json node -e '
    const [info] = JSON.parse(process.env.PACK_JSON);
    const files = info.files.map((f) => f.path).sort();
    const allowed = /^(dist\/.+|package\.json|README\.md|CHANGELOG\.md|LICEN[CS]E(\.md|\.txt)?)$/;
    const bad = files.filter((f) => !allowed.test(f) || /(^|\/)(lib|test)\//.test(f) || /\.test\.|\.tsbuildinfo$/.test(f));
    const kb = (n) => (n / 1024).toFixed(1) + " kB";
    const outside = files.filter((f) => !f.startsWith("dist/"));
    const count = (re) => files.filter((f) => re.test(f)).length;
    console.error(
      `pack-check: ${info.filename}: ${files.length} files, ${kb(info.size)} packed, ${kb(info.unpackedSize)} unpacked` +
        ` (${count(/\.js$/)} .js, ${count(/\.d\.ts$/)} .d.ts, ${count(/\.map$/)} .map; outside dist/: ${outside.slice(0, 5).join(", ")}${outside.length > 5 ? `, ... ${outside.length} in all` : ""})`,
    );
    if (!files.includes("README.md")) console.error("pack-check: note: no README.md in the tarball");
    if (!files.some((f) => /^LICEN[CS]E/.test(f))) console.error("pack-check: note: no LICENSE in the tarball");
    if (process.env.PACK_CHECK_LIST === "1") for (const f of files) console.error("  " + f);
    if (bad.length) {
      console.error("pack-check: FAIL: files that should not be published:\n  " + bad.join("\n  "));
      process.exit(1);
    }
    // Every target of package.json "exports", "main" and "types" must be in the tarball.
    const pkg = JSON.parse(require("node:fs").readFileSync("package.json", "utf8"));
    const targets = new Set([pkg.main, pkg.types].filter(Boolean));
    const walk = (v) => (typeof v === "string" ? targets.add(v) : v && Object.values(v).forEach(walk));
    walk(pkg.exports);
    const missing = [...targets].map((t) => t.replace(/^\.\//, "")).filter((t) => !files.includes(t));
    if (missing.length) {
      console.error("pack-check: FAIL: package.json points at files missing from the tarball: " + missing.join(", "));
      process.exit(1);
    }
    console.log(info.filename);
  ' 2>&1 >"$work/tarball-name"
) || {
  echo "$tarball"
  exit 1
}
echo "$tarball"
tarball=$work/$(cat "$work/tarball-name")
echo "pack-check: build + pack $(secs "$t0" "$(now)")"

# ---- 3. one scratch app per Nest major ----
write_app() {
  local dir=$1 major=$2
  mkdir -p "$dir"
  node -e '
    const [dir, major, pkgName, tarball, ts, typesNode] = process.argv.slice(1);
    const nest = `^${major}`;
    const pkg = {
      name: `pack-check-nest${major}`,
      private: true,
      type: "module",
      dependencies: {
        "@nestjs/common": nest,
        "@nestjs/core": nest,
        "@nestjs/platform-express": nest,
        "@nestjs/terminus": nest, // for zk-lock/health (an optional peer dependency)
        "reflect-metadata": "*",
        rxjs: "^7",
        [pkgName]: `file:${tarball}`,
      },
      devDependencies: { typescript: ts, "@types/node": typesNode },
    };
    require("node:fs").writeFileSync(`${dir}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
  ' "$dir" "$major" "$pkg_name" "$tarball" "$ts_version" "$types_node_version"

  cat >"$dir/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "target": "es2023",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "strict": true,
    "experimentalDecorators": true,
    "emitDecoratorMetadata": true,
    "skipLibCheck": false,
    "types": ["node"],
    "outDir": "out",
    "rootDir": "src"
  },
  "include": ["src"]
}
EOF

  mkdir -p "$dir/src"
  sed "s/__PKG__/$pkg_name/g" >"$dir/src/main.ts" <<'EOF'
import 'reflect-metadata';
import { createRequire } from 'node:module';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { DistributedLock, LockService, ZkConnectionService, ZkLockModule } from '__PKG__';
import { ZkHealthIndicator } from '__PKG__/health';

const zkConnect = process.env.ZK_CONNECT;

/** Injects the library's services by type only: works only if decorator metadata survives packing. */
@Injectable()
class Worker {
  constructor(
    readonly locks: LockService,
    readonly connection: ZkConnectionService,
  ) {}

  /** A decorated service method: runs only while holding the lock. */
  @DistributedLock('/pack-check/decorated')
  async locked(): Promise<string> {
    return this.locks.current('/pack-check/decorated')!.node;
  }
}

@Module({
  // Without ZK_CONNECT the address is never used: lazyConnect means no connection at boot.
  imports: [ZkLockModule.forRoot({ connectionString: zkConnect || '127.0.0.1:2181', lazyConnect: true }), TerminusModule],
  providers: [Worker, ZkHealthIndicator],
})
class AppModule {}

const nestVersion = (createRequire(import.meta.url)('@nestjs/core/package.json') as { version: string }).version;
const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
try {
  const locks = app.get(LockService);
  const worker = app.get(Worker);
  if (!(locks instanceof LockService)) throw new Error('app.get(LockService) is not a LockService');
  if (worker.locks !== locks) throw new Error('Worker got another LockService than the module exports');
  if (!(worker.connection instanceof ZkConnectionService)) throw new Error('Worker got no ZkConnectionService');
  if (worker.connection.state !== 'idle') throw new Error(`lazyConnect: state is ${worker.connection.state}, not idle`);
  if (zkConnect) {
    const lock = await locks.acquire('/pack-check/lock', { timeout: 15_000 });
    try {
      console.log(`LOCK ${lock.path} fencingToken=${lock.fencingToken}`);
    } finally {
      await lock.release();
    }
    console.log(`DECORATED ${await worker.locked()}`);
  }
  if (typeof DistributedLock !== 'function') throw new Error('DistributedLock is not exported');
  // zk-lock/health: up once a lock was taken, down (idle, lazyConnect) without ZooKeeper.
  const { zookeeper } = app.get(ZkHealthIndicator).isHealthy();
  console.log(`HEALTH ${zookeeper.status} ${zookeeper.state}`);
  if (zookeeper.status !== (zkConnect ? 'up' : 'down')) throw new Error(`zk-lock/health: ${JSON.stringify(zookeeper)}`);
  console.log(
    `OK nest ${nestVersion}: LockService injected by type, @DistributedLock applied, zk-lock/health ${zookeeper.status}${zkConnect ? ', locks acquired and released' : ''}`,
  );
} finally {
  await app.close();
}
EOF
}

failed=0
for major in "${majors[@]}"; do
  dir=$work/nest$major
  write_app "$dir" "$major"
  cd "$dir"
  ta=$(now)
  if ! step "$dir/install.log" npm install "${npm_flags[@]}"; then
    echo "pack-check: nest $major FAIL (npm install)"
    failed=1
    continue
  fi
  tb=$(now)
  core=$(node -p 'require("@nestjs/core/package.json").version' 2>/dev/null || echo '?')
  if ! step "$dir/tsc.log" ./node_modules/.bin/tsc -p tsconfig.json; then
    echo "pack-check: nest $major FAIL (tsc, @nestjs/core@$core, typescript@$ts_version)"
    failed=1
    continue
  fi
  # lib/ itself must compile against this major's types too (the build's tsconfig, no emit).
  mkdir "$dir/lib-check"
  cp -r "$repo/lib" "$repo/tsconfig.json" "$repo/tsconfig.build.json" "$dir/lib-check/"
  if ! step "$dir/lib-tsc.log" ./node_modules/.bin/tsc -p lib-check/tsconfig.build.json --noEmit; then
    echo "pack-check: nest $major FAIL (tsc of lib/ against @nestjs/core@$core types)"
    failed=1
    continue
  fi
  tc=$(now)
  rc=0
  step "$dir/run.log" timeout "$run_timeout" node out/main.js || rc=$?
  if ((rc != 0)) || ! grep -q '^OK ' "$dir/run.log"; then
    ((rc != 124)) || echo "pack-check: node did not exit within ${run_timeout}s (app.close() left something running?)" >&2
    echo "pack-check: nest $major FAIL (node out/main.js, @nestjs/core@$core)"
    failed=1
    continue
  fi
  td=$(now)
  grep -E '^(LOCK|DECORATED|HEALTH) ' "$dir/run.log" | sed "s/^/pack-check: nest $major /" || true
  echo "pack-check: nest $major OK (@nestjs/core@$core, typescript@$ts_version; install $(secs "$ta" "$tb"), tsc app + lib $(secs "$tb" "$tc"), run $(secs "$tc" "$td"))"
done

echo "pack-check: total $(secs "$t0" "$(now)")"
exit $failed
