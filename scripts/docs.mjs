// `npm run docs`: @effect/docgen over src/, the pages written to docs/.
//
// docgen 0.5 reads the package's name and `homepage` from ./package.json and refuses to run
// without a homepage, which this package does not have yet (it has no public repository).
// Rather than publish a made-up URL, it runs in a scratch directory whose package.json
// carries the name and an empty homepage; src/, docs/, docgen.json and node_modules/ are
// links to this checkout's, so the pages land in docs/ and the examples compile against
// src/. Once package.json has a homepage, `docgen` alone does the same.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "..")
const { name } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const work = fs.mkdtempSync(path.join(os.tmpdir(), "docgen-"))
let status = 1
try {
  fs.writeFileSync(path.join(work, "package.json"), JSON.stringify({ name, homepage: "", type: "module" }))
  fs.mkdirSync(path.join(root, "docs"), { recursive: true })
  for (const entry of ["src", "docs", "docgen.json", "node_modules"]) {
    fs.symlinkSync(path.join(root, entry), path.join(work, entry))
  }
  const bin = path.join(root, "node_modules", ".bin")
  status = spawnSync("docgen", process.argv.slice(2), {
    cwd: work,
    stdio: "inherit",
    env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` }
  }).status ?? 1
} finally {
  fs.rmSync(work, { recursive: true, force: true })
  // docgen's scratch copy of the examples, which it leaves behind when one fails.
  fs.rmSync(path.join(root, "docs", "examples"), { recursive: true, force: true })
}
process.exit(status)
