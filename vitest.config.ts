import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

/**
 * Suites that measure wall-clock bounds (a read under a paused Redis): they run after the
 * others, alone, so that the other files' load cannot stretch what they measure.
 */
const timing = ["test/integration/redis-pause.test.ts"]

export default defineConfig({
  // Tests and examples import the package by its name, as users do.
  resolve: {
    alias: [
      { find: /^effect-cacheback$/, replacement: src("index.ts") },
      { find: /^effect-cacheback\/redis$/, replacement: src("redis/index.ts") },
      { find: /^effect-cacheback\/sql$/, replacement: src("sql/index.ts") },
      { find: /^effect-cacheback\/testing$/, replacement: src("testing/index.ts") }
    ]
  },
  test: {
    // Starts a local Redis Cluster on free ports when none is named (test/support/globalSetup.ts).
    globalSetup: ["test/support/globalSetup.ts"],
    // Integration suites share one Redis and one PostgreSQL; files run in parallel (more
    // workers than cores: most of a file's time is spent waiting on a server), each test
    // with its own prefix, queue name or table.
    maxWorkers: 4,
    minWorkers: 1,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: { name: "suites", include: ["test/**/*.test.ts", "examples/**/*.test.ts"], exclude: timing, sequence: { groupOrder: 0 } }
      },
      { extends: true, test: { name: "timing", include: timing, sequence: { groupOrder: 1 } } }
    ]
  }
})
