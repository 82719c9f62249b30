#!/usr/bin/env bash
# The package as a user installs it. `npm pack` (its `prepack` builds
# dist/ afresh) into a temp dir; the tarball must hold each entry point's .js and .d.ts,
# LICENSE, and the src/ its declaration maps point at, with no `@internal` left in a .d.ts.
# Then a scratch ESM project installs the tarball and its peers from the npm registry
# (effect@~3.22.4, @effect/platform, @effect/sql, ioredis 5, bullmq), another installs it with
# ioredis 6 and the overrides the README gives, and:
#   - under plain `node` (no tsx): runs a job on CacheStore.layerMemory +
#     RefreshQueue.layerMemory, read twice: a miss that fetches, then a hit;
#     imports effect-cacheback/redis and effect-cacheback/sql;
#   - under plain `node`, as CommonJS: require() of the package runs a job;
#   - with the repo's `tsc`: type-checks a consumer .ts (ESM) and .cts (CommonJS, nodenext)
#     against the packed .d.ts files.
# Exits non-zero on any failure; removes its temp dir. Needs the repo's node_modules
# (`npm ci`) for the build and for tsc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/check-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() { echo "check-pack: FAIL: $*" >&2; exit 1; }
step() { echo "check-pack: $*"; }

# 1. Pack.
step "npm pack (prepack builds dist/)"
npm pack --pack-destination "$work" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; fail "npm pack failed (log above)"; }
tarballs=("$work"/effect-cacheback-*.tgz)
[[ -f ${tarballs[0]} ]] || { cat "$work/pack.log" >&2; fail "npm pack wrote no effect-cacheback-*.tgz"; }
tarball=${tarballs[0]}
tar -tzf "$tarball" | sed 's#^package/##' | sort >"$work/files.txt"
step "$(basename "$tarball"): $(wc -l <"$work/files.txt") files"

# 2. What the tarball must hold.
required=(
  package.json README.md LICENSE CHANGELOG.md
  dist/index.js dist/index.d.ts dist/index.d.ts.map
  dist/redis/index.js dist/redis/index.d.ts
  dist/sql/index.js dist/sql/index.d.ts
  dist/testing/index.js dist/testing/index.d.ts
  src/index.ts src/redis/index.ts src/sql/index.ts
)
missing=()
for f in "${required[@]}"; do grep -qxF "$f" "$work/files.txt" || missing+=("$f"); done
((${#missing[@]} == 0)) || fail "the tarball lacks: ${missing[*]} (did prepack build dist/? is it in \"files\"?)"
step "tarball holds ${required[*]}"
# Nothing but the package: no tests, benchmarks, scripts, examples, changesets or scratch files.
stray=$(grep -vE '^(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist/.*|src/.*)$' "$work/files.txt" || true)
[[ -z $stray ]] || fail "the tarball holds files a user does not need: ${stray//$'\n'/ }"
stray=$(grep -E '(^|/)(test|tests|bench|examples|scripts|\.changeset)/|\.test\.|(^|/)_' "$work/files.txt" || true)
[[ -z $stray ]] || fail "the tarball holds test or scratch files: ${stray//$'\n'/ }"
step "tarball holds nothing else (no tests, benchmarks, scripts, scratch files)"

mkdir "$work/pkg"
tar -xzf "$tarball" -C "$work/pkg"
internal=$(grep -rl "@internal" --include='*.d.ts' "$work/pkg/package/dist" || true)
[[ -z $internal ]] || fail "@internal left in: ${internal//$work\/pkg\/package\//} (is stripInternal on in tsconfig.build.json?)"
step "no @internal in dist/**/*.d.ts"
# Each declaration map must point at a source file that the tarball ships.
(cd "$work/pkg/package" && node -e '
  const fs = require("fs"), path = require("path")
  const maps = fs.readdirSync("dist", { recursive: true }).filter((f) => f.endsWith(".d.ts.map"))
  if (maps.length === 0) { console.error("no .d.ts.map in dist/ (is declarationMap on?)"); process.exit(1) }
  for (const m of maps) {
    const file = path.join("dist", m)
    for (const s of JSON.parse(fs.readFileSync(file, "utf8")).sources) {
      const src = path.join(path.dirname(file), s)
      if (!fs.existsSync(src)) { console.error(`${file} points at ${src}, not in the tarball`); process.exit(1) }
    }
  }
  console.log(`check-pack: ${maps.length} declaration maps point at shipped src/ files`)
') || fail "declaration maps"
# The main entry must not load the optional peers (the README's Install section says so).
(cd "$work/pkg/package" && node -e '
  const fs = require("fs"), path = require("path")
  const optional = /(?:from\s*|import\s*\(\s*)["\x27](ioredis|bullmq|@effect\/sql)(?:\/[^"\x27]*)?["\x27]/
  const bad = fs.readdirSync("dist", { recursive: true })
    .filter((f) => f.endsWith(".js") && !/^(redis|sql)[\\/]/.test(f))
    .flatMap((f) => { const m = optional.exec(fs.readFileSync(path.join("dist", f), "utf8")); return m ? [`dist/${f} imports ${m[1]}`] : [] })
  if (bad.length) { console.error(bad.join("\n")); process.exit(1) }
  console.log("check-pack: the main entry (dist/ outside redis/, sql/) imports no ioredis, bullmq or @effect/sql")
') || fail "the main entry loads an optional peer"

# 3. A scratch ESM project that installs the tarball.
app="$work/app"
mkdir "$app"
cat >"$app/package.json" <<'EOF'
{ "name": "check-pack-app", "private": true, "type": "module" }
EOF
step "npm install the tarball + effect@~3.22.4 @effect/platform@^0.97.2 @effect/sql@^0.52.1 ioredis@^5.11 bullmq@^6.7"
(cd "$app" && npm install --no-audit --no-fund --prefer-offline --ignore-scripts --loglevel=error \
  "$tarball" "effect@~3.22.4" "@effect/platform@^0.97.2" "@effect/sql@^0.52.1" "ioredis@^5.11" "bullmq@^6.7" \
  >"$work/install.log" 2>&1) || { cat "$work/install.log" >&2; fail "npm install in the scratch project failed (log above)"; }

# 3b. ioredis 6 (npm's latest) beside @effect/sql 0.52, whose @effect/experimental declares an
# optional peer ioredis ^5: it installs only with the overrides the README's Install gives.
app6="$work/app6"
mkdir "$app6"
cat >"$app6/package.json" <<'EOF'
{ "name": "check-pack-app6", "private": true, "type": "module",
  "overrides": { "@effect/experimental": { "ioredis": "$ioredis" } } }
EOF
step "npm install the tarball + ioredis@^6 + @effect/sql@^0.52.1, with the README's overrides"
(cd "$app6" && npm install --no-audit --no-fund --prefer-offline --ignore-scripts --loglevel=error \
  "$tarball" "effect@~3.22.4" "@effect/platform@^0.97.2" "@effect/sql@^0.52.1" "ioredis@^6" "bullmq@^6.7" \
  >"$work/install6.log" 2>&1) || { cat "$work/install6.log" >&2; fail "npm install with ioredis 6 and the overrides failed (log above)"; }
(cd "$app6" && node --input-type=module -e '
  import { createRequire } from "node:module"
  const version = createRequire(import.meta.url)("ioredis/package.json").version
  const { RedisCacheStore } = await import("effect-cacheback/redis")
  if (!version.startsWith("6.") || typeof RedisCacheStore.layer !== "function") process.exit(1)
  console.log(`check-pack: ok   ioredis ${version} installs beside @effect/sql with the overrides; effect-cacheback/redis imports`)
') || fail "ioredis 6 beside @effect/sql"

cat >"$app/check.mjs" <<'EOF'
import { Effect, Layer } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"

let failed = false
const check = (ok, what) => {
  console.log(`check-pack: ${ok ? "ok  " : "FAIL"} ${what}`)
  if (!ok) failed = true
}

let fetches = 0
const double = Job.make({ name: "double", fetch: (n) => Effect.sync(() => (fetches++, n * 2)) })
const layer = Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), RefreshQueue.layerMemory({ concurrency: 1 }))
const [first, second] = await Effect.runPromise(
  Effect.all([Job.lookup(double, 21), Job.lookup(double, 21)]).pipe(Effect.provide(layer))
)
check(first.status === "miss" && first.value === 42, `node: first read is a miss that fetches 42 (got ${first.status} ${first.value})`)
check(second.status === "hit" && second.value === 42, `node: second read is a hit of 42 (got ${second.status} ${second.value})`)
check(fetches === 1, `node: one fetch for two reads (got ${fetches})`)

for (const [entry, names] of [
  ["effect-cacheback/redis", ["RedisCacheStore", "BullRefreshQueue", "RefreshWorker"]],
  ["effect-cacheback/sql", ["QueryJob"]]
]) {
  try {
    const mod = await import(entry)
    const absent = names.filter((n) => typeof mod[n] !== "object" || mod[n] === null || Object.keys(mod[n]).length === 0)
    check(absent.length === 0, `node: import "${entry}" gives ${names.join(", ")}${absent.length ? ` (absent: ${absent.join(", ")})` : ""}`)
  } catch (e) {
    check(false, `node: import "${entry}" threw ${e?.stack ?? e}`)
  }
}
process.exit(failed ? 1 : 0)
EOF
(cd "$app" && node check.mjs) || fail "the scratch project's node program (output above)"

# CommonJS callers: require() of the ESM build (Node 20.19+ loads it unflagged; engines says so).
cat >"$app/check.cjs" <<'EOF'
const { Effect, Layer } = require("effect")
const { CacheStore, Job, RefreshQueue } = require("effect-cacheback")
const { RedisCacheStore } = require("effect-cacheback/redis")
const double = Job.make({ name: "double", fetch: (n) => Effect.succeed(n * 2) })
const layer = Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), RefreshQueue.layerMemory({ concurrency: 1 }))
Effect.runPromise(Effect.provide(Job.get(double, 21), layer)).then((value) => {
  const ok = value === 42 && typeof RedisCacheStore.layer === "function"
  console.log(`check-pack: ${ok ? "ok  " : "FAIL"} node, CommonJS: require() of the package, a read of 42 (got ${value})`)
  process.exit(ok ? 0 : 1)
})
EOF
(cd "$app" && node check.cjs) || fail "a CommonJS caller (output above)"

# 4. Types as a consumer sees them: the exports map's "types", the packed .d.ts files.
tsc="$root/node_modules/.bin/tsc"
[[ -x $tsc ]] || fail "no $tsc: run npm ci first"
cat >"$app/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "module": "NodeNext", "moduleResolution": "NodeNext", "target": "ES2022", "lib": ["ES2022"],
    "strict": true, "noEmit": true, "skipLibCheck": true, "types": []
  },
  "files": ["check.ts", "check.cts"]
}
EOF
cat >"$app/check.ts" <<'EOF'
import { Effect, Layer } from "effect"
import { CacheStore, Job, RefreshQueue } from "effect-cacheback"
import { BullRefreshQueue, RedisCacheStore, RefreshWorker } from "effect-cacheback/redis"
import { QueryJob } from "effect-cacheback/sql"

const double = Job.make({ name: "double", fetch: (n: number) => Effect.succeed(n * 2) })
const layer = Layer.mergeAll(CacheStore.layerMemory({ capacity: 100 }), RefreshQueue.layerMemory({ concurrency: 1 }))
export const status: Effect.Effect<"hit" | "stale" | "miss", unknown, never> = Job.lookup(double, 21).pipe(
  Effect.map((lookup) => lookup.status),
  Effect.provide(layer)
)
export const value: Effect.Effect<number, unknown, never> = Job.get(double, 21).pipe(Effect.provide(layer))
export const namespaces = [RedisCacheStore, BullRefreshQueue, RefreshWorker, QueryJob] as const
EOF
# A CommonJS consumer (.cts) under nodenext: its require() type-checks, as it runs above.
cat >"$app/check.cts" <<'EOF'
import Effect = require("effect/Effect")
import cacheback = require("effect-cacheback")
const double = cacheback.Job.make({ name: "double", fetch: (n: number) => Effect.succeed(n * 2) })
export const read = cacheback.Job.get(double, 21)
EOF
(cd "$app" && "$tsc" -p tsconfig.json) || fail "a consumer's .ts does not type-check against the packed .d.ts (errors above)"
step "tsc: an ESM consumer's .ts and a CommonJS consumer's .cts (nodenext) type-check against the packed .d.ts"

step "passed in $((SECONDS - start)) s"
