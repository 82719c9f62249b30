/**
 * Every ```ts block of README.md compiles.
 *
 * Each block is a module of its own, type-checked against this project's tsconfig (its
 * `paths` map `effect-cacheback`, `/redis` and `/sql` to src/), all in one compiler
 * program. A README reads top to bottom, so a block may go on from the ones before it: a
 * name it uses but neither imports nor declares comes from the closest earlier block that
 * does ("Testing your policies" tests the quick start's job), else from
 * test/fixtures/readme-prelude.ts, declared stand-ins for what the README leaves to the
 * reader. Unused locals are allowed: a block's `const { status } = …` shows what a call
 * returns.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))
const readme = path.join(root, "README.md")
const fixtures = path.join(root, "test", "fixtures")
const prelude = path.join(fixtures, "readme-prelude.ts")

interface Block {
  /** The README line of the block's first line of code. */
  readonly line: number
  readonly code: string
}

/** The ```ts blocks of a markdown text. */
const blocksOf = (markdown: string): ReadonlyArray<Block> => {
  const lines = markdown.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ts\s*$/.test(lines[i]!)) continue
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line))
    if (end === -1) throw new Error(`README.md:${i + 1}: a \`\`\`ts block that never closes`)
    blocks.push({ line: i + 2, code: lines.slice(i + 1, end).join("\n") })
    i = end
  }
  return blocks
}

/** Names a module binds at its top level, and those of them it exports itself. */
const topLevel = (source: ts.SourceFile) => {
  const bound = new Set<string>()
  const exported = new Set<string>()
  const bind = (name: ts.BindingName, isExported: boolean) => {
    if (ts.isIdentifier(name)) {
      bound.add(name.text)
      if (isExported) exported.add(name.text)
    } else {
      for (const element of name.elements) if (!ts.isOmittedExpression(element)) bind(element.name, isExported)
    }
  }
  for (const statement of source.statements) {
    const isExported = ts.canHaveModifiers(statement) &&
      (ts.getModifiers(statement) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
    if (ts.isImportDeclaration(statement)) {
      const clause = statement.importClause
      if (clause?.name) bind(clause.name, false)
      const named = clause?.namedBindings
      if (named && ts.isNamespaceImport(named)) bind(named.name, false)
      if (named && ts.isNamedImports(named)) for (const element of named.elements) bind(element.name, false)
    } else if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations) bind(declaration.name, isExported)
    } else if (
      (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement) || ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) || ts.isEnumDeclaration(statement) || ts.isModuleDeclaration(statement)) &&
      statement.name !== undefined && ts.isIdentifier(statement.name)
    ) {
      bind(statement.name, isExported)
    }
  }
  return { bound, exported }
}

/** Identifiers a module refers to (a superset of its free names: shadowing is ignored). */
const referenced = (source: ts.SourceFile): Set<string> => {
  const names = new Set<string>()
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node)) {
      const parent = node.parent
      const isMemberName = (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isQualifiedName(parent) && parent.right === node) ||
        ((ts.isPropertyAssignment(parent) || ts.isPropertySignature(parent) || ts.isPropertyDeclaration(parent) ||
          ts.isMethodDeclaration(parent) || ts.isMethodSignature(parent)) && parent.name === node)
      if (!isMemberName) names.add(node.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return names
}

const parse = (fileName: string, text: string) => ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true)

const blockFile = (index: number) => path.join(fixtures, `readme-block-${index + 1}.ts`)

/**
 * Each block's module text: the block as written (so its lines keep their numbers), then
 * the imports of what it takes from earlier blocks or the prelude, and the export of what
 * it binds, for the blocks after it.
 */
const modulesOf = (blocks: ReadonlyArray<Block>): Map<string, string> => {
  const fromPrelude = topLevel(parse(prelude, fs.readFileSync(prelude, "utf8"))).bound
  const modules = new Map<string, string>()
  const boundBy: Array<Set<string>> = []
  blocks.forEach((block, index) => {
    const source = parse(blockFile(index), block.code)
    const { bound, exported } = topLevel(source)
    const imports = new Map<string, Array<string>>()
    for (const name of referenced(source)) {
      if (bound.has(name)) continue
      let earlier = boundBy.length - 1
      while (earlier >= 0 && !boundBy[earlier]!.has(name)) earlier--
      const from = earlier >= 0 ? `./readme-block-${earlier + 1}.js` : fromPrelude.has(name) ? "./readme-prelude.js" : undefined
      if (from !== undefined) imports.set(from, [...(imports.get(from) ?? []), name])
    }
    const toExport = [...bound].filter((name) => !exported.has(name))
    modules.set(
      blockFile(index),
      [
        block.code,
        ...[...imports].map(([from, names]) => `import { ${names.join(", ")} } from "${from}"`),
        `export { ${toExport.join(", ")} }`
      ].join("\n")
    )
    boundBy.push(bound)
  })
  return modules
}

/** One program over the given modules (and the prelude), answering each file's diagnostics. */
const compile = (modules: Map<string, string>) => {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })!
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    noUnusedLocals: false,
    noUnusedParameters: false,
    // `export { aType }` of an imported type, for the blocks after it.
    verbatimModuleSyntax: false
  }
  const host = ts.createCompilerHost(options, true)
  const { fileExists, getSourceFile, readFile } = host
  host.fileExists = (fileName) => modules.has(path.resolve(fileName)) || fileExists.call(host, fileName)
  host.readFile = (fileName) => modules.get(path.resolve(fileName)) ?? readFile.call(host, fileName)
  host.getSourceFile = (fileName, language, ...rest) => {
    const text = modules.get(path.resolve(fileName))
    return text !== undefined ? ts.createSourceFile(fileName, text, language, true) : getSourceFile.call(host, fileName, language, ...rest)
  }
  const program = ts.createProgram({ rootNames: [prelude, ...modules.keys()], options, host })
  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]
  if (global.length > 0) throw new Error(ts.formatDiagnostics(global, formatHost))
  return (fileName: string): ReadonlyArray<ts.Diagnostic> => {
    const source = program.getSourceFile(fileName)
    if (source === undefined) throw new Error(`${fileName} is not in the program`)
    return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
  }
}

const formatHost: ts.FormatDiagnosticsHost = {
  getCanonicalFileName: (fileName) => fileName,
  getCurrentDirectory: () => root,
  getNewLine: () => "\n"
}

/** The diagnostics of a block, each at its README line. */
const report = (block: Block, diagnostics: ReadonlyArray<ts.Diagnostic>): string =>
  [
    `README.md:${block.line}: the block starting \`${block.code.split("\n")[0]}\` does not compile:`,
    ...diagnostics.map((d) => {
      const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined
      const where = at === undefined
        ? ""
        : at.line < block.code.split("\n").length
        ? `README.md:${block.line + at.line}:${at.character + 1}: `
        : "(in the imports the test adds) "
      return `  ${where}TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n    ")}`
    })
  ].join("\n")

// A block that must not compile, checked in the same program, so that a broken block is
// seen to fail this test.
const canary: Block = {
  line: 0,
  code: `import { Effect } from "effect"\nconst answer = yield* Effect.succeed(42)`
}
const canaryFile = path.join(fixtures, "readme-canary.ts")

describe("README.md", () => {
  const blocks = blocksOf(fs.readFileSync(readme, "utf8"))
  let compiled: ReturnType<typeof compile> | undefined
  const diagnosticsOf = (fileName: string) => {
    compiled ??= compile(new Map([...modulesOf(blocks), [canaryFile, `${canary.code}\nexport {}`]]))
    return compiled(fileName)
  }

  it("has TypeScript blocks", () => {
    expect(blocks.length).toBeGreaterThan(5)
  })

  it("a block that does not compile is reported (the canary: yield* outside a generator)", { timeout: 120_000 }, () => {
    expect(report(canary, diagnosticsOf(canaryFile))).toMatch(/TS1214: Identifier expected. 'yield' is a reserved word/)
  })

  it("every block compiles, a module that goes on from the ones before it", { timeout: 120_000 }, () => {
    const failures = blocks.flatMap((block, index) => {
      const diagnostics = diagnosticsOf(blockFile(index))
      return diagnostics.length === 0 ? [] : [report(block, diagnostics)]
    })
    expect(failures.join("\n\n")).toBe("")
  })
})
