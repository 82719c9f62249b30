import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

export default defineConfig({
  // Tests and examples import the package by its name, as users do.
  resolve: {
    alias: [
      { find: /^effect-cacheback$/, replacement: src("index.ts") },
      { find: /^effect-cacheback\/redis$/, replacement: src("redis/index.ts") },
      { find: /^effect-cacheback\/sql$/, replacement: src("sql/index.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    // Integration suites share one Redis and one PostgreSQL; files run in parallel but each
    // test uses its own prefix, queue name or table.
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
