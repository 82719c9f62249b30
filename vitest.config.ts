import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    // Integration suites share one Redis and one PostgreSQL; files run in parallel but each
    // test uses its own prefix, queue name or table.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
