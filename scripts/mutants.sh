#!/usr/bin/env bash
# The mutation checks (`npm run test:mutants`): each key test is run against a deliberately broken
# lock (a mutant of test/mutants/port-mutants.ts, applied by the test fixtures to every connection
# they make when ZK_MUTANT names it, also in the child processes) and must FAIL there. First the
# same tests run on the real lock and must pass, so a failure below is the mutant's doing.
#
#   npm run test:mutants                 # every mutant
#   npm run test:mutants -- herd flat-token
#
# Prints one line per (mutant, test): "caught" or "NOT CAUGHT"; exits 1 if any test passed on its
# mutant (or did not run). The chaos run's mutant check is separate (npm run chaos -- --mutant).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund
bash scripts/zookeeper.sh ensure

# mutant | test file | the test's name (a prefix of its own title, without describe blocks)
CHECKS=(
  "no-exclusion|test/integration/lock.test.ts|16 sessions x 50 acquisitions"
  "no-exclusion|test/integration/contract.test.ts|excludes: while one holds"
  "no-exclusion|test/e2e/jobs-apps.test.ts|every tick runs exactly once, always on the same instance while it lives"
  "no-exclusion|test/e2e/jobs-apps.test.ts|exactly one leader among three"
  "no-exclusion|test/integration/jobs-processes.test.ts|every tick runs once, on the holder"
  "no-exclusion|test/integration/jobs-processes.test.ts|leadership: exactly one leader"
  "no-exclusion|test/integration/processes.test.ts|never hold the lock at the same time"
  "no-exclusion|test/integration/processes.test.ts|never run the same locked route at the same time"
  "no-exclusion|test/e2e/declarative-http.test.ts|two apps (two sessions) never run the locked handler at the same time"
  "herd|test/integration/lock.test.ts|20 queued waiters each watch only their predecessor"
  "herd|test/integration/kinds.test.ts|no herd: a write release wakes exactly the readers it unblocks"
  "late-release|test/e2e/declarative-http.test.ts|the lock is released before the response is sent"
  "late-release|test/integration/lock.test.ts|works with await using"
  "flat-token|test/integration/lock.test.ts|strictly increase across holders and across re-creation of the lock directory"
  "deaf-loss|test/integration/faults.test.ts|aborts the handle with a lock-lost error"
  "deaf-loss|test/integration/contract.test.ts|signals the loss when its session expires"
  "deaf-loss|test/integration/faults.test.ts|a cut-off holder learns it lost the lock"
  "no-exclusion|test/integration/kinds.test.ts|8 readers and 2 writers in separate sessions"
  "no-exclusion|test/integration/kinds.test.ts|N = 3, 10 contenders in separate sessions"
  "no-exclusion|test/integration/coalesce.test.ts|two processes, each with 16 coalescing callers"
  "no-exclusion|test/e2e/declarative-kinds.test.ts|mode read/write on service methods across two apps"
  "no-exclusion|test/e2e/declarative-services.test.ts|is serialized across apps and callers"
  "herd|test/integration/kinds.test.ts|notifications per acquisition stay at two"
  "late-release|test/integration/lock.test.ts|withLock releases when the function throws"
  "late-release|test/e2e/declarative-http.test.ts|releases when the handler ends with"
  "deaf-loss|test/integration/faults.test.ts|a lease holder and a reader lose their locks"
)

wanted=("$@")
selected=()
for check in "${CHECKS[@]}"; do
  mutant=${check%%|*}
  if ((${#wanted[@]} == 0)) || [[ " ${wanted[*]} " == *" $mutant "* ]]; then selected+=("$check"); fi
done
if ((${#selected[@]} == 0)); then
  echo "mutants.sh: no check for: ${wanted[*]}" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs the checks of one mutant ("real": none) in one Vitest run; writes its JSON report.
run() {
  local mutant=$1 files=() names=() check rest file name
  for check in "${selected[@]}"; do
    [[ $mutant == real || ${check%%|*} == "$mutant" ]] || continue
    rest=${check#*|}
    file=${rest%%|*}
    name=${rest#*|}
    [[ " ${files[*]} " == *" $file "* ]] || files+=("$file")
    names+=("$name")
  done
  local pattern
  pattern=$(node -e 'console.log(process.argv.slice(1).map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"))' "${names[@]}")
  local env=()
  [[ $mutant == real ]] || env=(ZK_MUTANT="$mutant")
  env "${env[@]}" npx vitest run "${files[@]}" -t "$pattern" --reporter=json --outputFile="$work/$mutant.json" \
    >"$work/$mutant.log" 2>&1 || true
}

# Reads a run's report: one line per selected check of `mutant` ("real": all), per matching test.
verdict() {
  node - "$1" "$work/$1.json" "${selected[@]}" <<'EOF'
const fs = require('node:fs');
const [mutant, report, ...checks] = process.argv.slice(2);
let results = [];
try {
  const json = JSON.parse(fs.readFileSync(report, 'utf8'));
  results = json.testResults.flatMap((file) =>
    file.assertionResults.map((test) => ({ ...test, file: file.name.slice(file.name.indexOf('test/')) })),
  );
} catch (error) {
  console.log(`${mutant}: no report (${error.message}): the run failed to start`);
  process.exit(1);
}
let bad = 0;
for (const check of checks) {
  const [checkMutant, file, name] = check.split('|');
  if (mutant !== 'real' && checkMutant !== mutant) continue;
  const matching = results.filter((test) => test.file === file && test.title.startsWith(name));
  const ran = matching.filter((test) => test.status === 'passed' || test.status === 'failed');
  if (ran.length === 0) {
    console.log(`${mutant.padEnd(12)} NOT RUN      ${file} > ${name}`);
    bad += 1;
    continue;
  }
  for (const test of ran) {
    const title = [...test.ancestorTitles, test.title].join(' > ');
    if (mutant === 'real') {
      const ok = test.status === 'passed';
      if (!ok) bad += 1;
      console.log(`${'real lock'.padEnd(12)} ${ok ? 'passes    ' : 'FAILS     '}   ${file} > ${title}`);
      if (!ok) console.log(`    ${String(test.failureMessages?.[0] ?? '').split('\n')[0]}`);
    } else {
      const caught = test.status === 'failed';
      if (!caught) bad += 1;
      const why = caught ? `  (${String(test.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 100)})` : '';
      console.log(`${mutant.padEnd(12)} ${caught ? 'caught    ' : 'NOT CAUGHT'}   ${file} > ${title}${why}`);
    }
  }
}
process.exit(bad === 0 ? 0 : 1);
EOF
}

status=0
started=$SECONDS
echo "== the key tests on the real lock (must pass)"
run real
verdict real || status=1
if ((status != 0)); then
  echo "mutants.sh: the key tests fail on the real lock; the mutation checks would mean nothing. Log:" >&2
  tail -n 60 "$work/real.log" >&2
  exit 1
fi

mutants=()
for check in "${selected[@]}"; do
  mutant=${check%%|*}
  [[ " ${mutants[*]} " == *" $mutant "* ]] || mutants+=("$mutant")
done
echo "== the same tests on each mutant (must fail)"
for mutant in "${mutants[@]}"; do
  run "$mutant"
  verdict "$mutant" || status=1
done
echo "== $((SECONDS - started)) s; $([[ $status == 0 ]] && echo 'every mutant caught' || echo 'SOME MUTANT NOT CAUGHT')"
exit "$status"
