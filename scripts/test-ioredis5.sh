#!/usr/bin/env bash
# `npm run test:ioredis5`: every Redis, BullMQ, near-cache and cluster suite again, on a real
# second install with ioredis 5 (not an alias: BullMQ loads `ioredis` itself, and child test
# processes load what is installed), after type-checking src/ against ioredis 5's types.
# The repository's files are copied to a scratch directory whose package.json asks for
# ioredis ^5.11; test/integration/ioredis-version.test.ts checks that 5 is what loads.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dir"
cd "$dir"
node -e '
  const fs = require("fs")
  const p = JSON.parse(fs.readFileSync("package.json", "utf8"))
  p.devDependencies.ioredis = "^5.11.1"
  fs.writeFileSync("package.json", JSON.stringify(p, null, 2) + "\n")'
rm -f package-lock.json
npm install --no-audit --no-fund --loglevel=error
echo "ioredis $(node -p 'require("ioredis/package.json").version') installed in $dir"
npx tsc --noEmit -p tsconfig.build.json
EXPECT_IOREDIS=5 npx vitest run test/integration/ioredis-version.test.ts test/integration/redis-*.test.ts test/integration/observability-*.test.ts
