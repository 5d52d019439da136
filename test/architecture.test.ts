import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';

/*
 * The layout's rules, read from the import graph of src/ (static imports, re-exports and dynamic
 * imports, type-only ones included: a type import is still a dependency of the design).
 *
 *   errors.ts                    below everything
 *   crypto/                      seal/unseal, keyring, key sources: imports nothing above it
 *   core/ session model          session, changes, json-value, session-id: nothing above it
 *   core/                        Store and the Backend interface: no backend, web face, CLI or framework
 *   backends/<name>/             implement core/backend.ts; never the web face, the ops or the CLI
 *   http/                        cookie, Transaction, middleware, framework adapters: storage only through Store
 *   ops/                         verify, rekey, backup, import: no CLI
 *   cli/                         argument parsing and printing; only bin.ts imports it
 */

const SRC = path.resolve(import.meta.dirname, '../src');
const SESSION_MODEL = ['core/session.ts', 'core/changes.ts', 'core/json-value.ts', 'core/session-id.ts'];
/** Packages of the frameworks we serve: only their own entry or adapter may name them. */
const FRAMEWORKS = /^(express|express-session|koa|koa-session|fastify|@fastify\/[^/]+|redis|@redis\/[^/]+|ioredis|iovalkey)(\/|$)/;
const DISK = /^(node:)?fs(\/promises)?$|^(proper-lockfile|write-file-atomic)$/;
/** The web frameworks and their session packages. */
const WEB = /^(express|express-session|koa|koa-session|fastify|@fastify\/[^/]+)(\/|$)/;
/** Which web framework each file may name: its own entry or adapter, and nothing else. */
const WEB_OWNERS: Readonly<Record<string, RegExp>> = {
  'express-session.ts': /^(express|express-session)$/,
  'http/koa.ts': /^koa$/,
  'http/fastify.ts': /^fastify$/,
};

export interface Import {
  /** The importing file, relative to src/. */
  readonly from: string;
  /** A file relative to src/ for a relative import, else the package or builtin as written. */
  readonly to: string;
  readonly relative: boolean;
  /** `import type` / `export type`: gone at run time. */
  readonly typeOnly?: boolean;
}

/** Every import of every .ts file under `root` (relative imports resolved to files under it). */
export async function importGraph(root: string): Promise<Import[]> {
  const imports: Import[] = [];
  for (const file of (await fs.readdir(root, { recursive: true })).filter((name) => name.endsWith('.ts')).sort()) {
    const text = await fs.readFile(path.join(root, file), 'utf8');
    const pattern = /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|^import\s*['"]([^'"]+)['"]/gm;
    for (const match of text.matchAll(pattern)) {
      const specifier = (match[1] ?? match[2] ?? match[3])!;
      const relative = specifier.startsWith('.');
      const to = relative ? path.normalize(path.join(path.dirname(file), specifier)).replace(/\.js$/, '.ts') : specifier;
      imports.push({ from: file, to, relative, typeOnly: /^[\s;]*(import|export)\s+type\s/.test(match[0]) });
    }
  }
  return imports;
}

const under = (folder: string) => (file: string) => file.startsWith(`${folder}/`);

/** The rules broken by `imports`, one line each. */
export function violations(imports: readonly Import[]): string[] {
  const broken: string[] = [];
  const rule = (why: string, applies: (edge: Import) => boolean) => {
    for (const edge of imports) if (applies(edge)) broken.push(`${edge.from} → ${edge.to}: ${why}`);
  };
  const isCore = under('core');
  const isCrypto = under('crypto');
  const isHttp = under('http');
  const isModel = (file: string) => SESSION_MODEL.includes(file);

  rule(
    'core/ imports no backend, web face, operation, CLI, wiring or entry point',
    (e) => isCore(e.from) && e.relative && !isCore(e.to) && !isCrypto(e.to) && e.to !== 'errors.ts',
  );
  rule('core/ imports no framework and no disk', (e) => isCore(e.from) && !e.relative && (FRAMEWORKS.test(e.to) || DISK.test(e.to)));
  rule('crypto/ imports nothing above it', (e) => isCrypto(e.from) && e.relative && !isCrypto(e.to) && e.to !== 'errors.ts');
  rule('the session model imports nothing above it', (e) => isModel(e.from) && e.relative && !isModel(e.to) && e.to !== 'errors.ts');
  rule('errors.ts imports nothing of the library', (e) => e.from === 'errors.ts' && e.relative);
  rule('the web face reaches storage only through Store', (e) => isHttp(e.from) && e.relative && (under('backends')(e.to) || under('ops')(e.to)));
  rule('a backend never imports the web face, the operations or the CLI', (e) => under('backends')(e.from) && e.relative && /^(http|ops|cli)\//.test(e.to));
  rule('nothing but bin.ts and the CLI itself imports cli/', (e) => e.relative && under('cli')(e.to) && e.from !== 'bin.ts' && !under('cli')(e.from));
  rule('the library never imports the demo or the benchmarks', (e) => e.relative && /^\.\.\/(demo|bench)\//.test(e.to));
  rule('only the file backend’s io module touches the disk', (e) => !e.relative && DISK.test(e.to) && e.from !== 'backends/file/io.ts');
  rule(
    'a web framework is named only by its own entry or adapter',
    (e) => !isCore(e.from) && !e.relative && WEB.test(e.to) && !(WEB_OWNERS[e.from]?.test(e.to) ?? false),
  );
  rule('the http/ adapters know their framework only as types', (e) => isHttp(e.from) && !e.relative && WEB.test(e.to) && e.typeOnly !== true);
  return broken;
}

test('src/ keeps the layout’s import rules', async (t) => {
  const imports = await importGraph(SRC);
  t.true(imports.length > 100, `read ${imports.length} imports: the graph reader must see them`);
  t.deepEqual(violations(imports), []);
});

test('the rule checker catches each kind of broken import', (t) => {
  const bad: Import[] = [
    { from: 'core/store.ts', to: 'backends/file/file-backend.ts', relative: true },
    { from: 'core/store.ts', to: 'http/transaction.ts', relative: true },
    { from: 'core/store.ts', to: 'express-session', relative: false },
    { from: 'crypto/seal.ts', to: 'core/store.ts', relative: true },
    { from: 'core/session.ts', to: 'core/store.ts', relative: true },
    { from: 'http/transaction.ts', to: 'backends/file/io.ts', relative: true },
    { from: 'backends/file/file-backend.ts', to: 'ops/verify.ts', relative: true },
    { from: 'ops/verify.ts', to: 'cli/command.ts', relative: true },
    { from: 'index.ts', to: '../demo/server.ts', relative: true },
    { from: 'backends/file/file-backend.ts', to: 'node:fs', relative: false },
    { from: 'http/sealed-store.ts', to: 'express-session', relative: false, typeOnly: true },
    { from: 'http/koa.ts', to: 'fastify', relative: false, typeOnly: true },
    { from: 'http/fastify.ts', to: 'fastify', relative: false },
  ];
  t.is(violations(bad).length, bad.length, violations(bad).join('\n'));
  const good: Import[] = [
    { from: 'core/store.ts', to: 'core/backend.ts', relative: true },
    { from: 'core/store.ts', to: 'crypto/seal.ts', relative: true },
    { from: 'http/transaction.ts', to: 'core/store.ts', relative: true },
    { from: 'backends/file/file-backend.ts', to: 'core/backend.ts', relative: true },
    { from: 'backends/file/io.ts', to: 'node:fs', relative: false },
    { from: 'bin.ts', to: 'cli/main.ts', relative: true },
    { from: 'http/koa.ts', to: 'koa', relative: false, typeOnly: true },
    { from: 'express-session.ts', to: 'express-session', relative: false },
  ];
  t.deepEqual(violations(good), []);
});

test('the main, Koa and Fastify entries load no web framework at run time (a framework-neutral store needs none installed)', async (t) => {
  const imports = await importGraph(SRC);
  for (const entry of ['index.ts', 'koa.ts', 'fastify.ts']) {
    const seen = new Set<string>();
    const named: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const edge of imports.filter((e) => e.from === file && e.typeOnly !== true)) {
        if (edge.relative) visit(edge.to);
        else if (WEB.test(edge.to)) named.push(`${file} → ${edge.to}`);
      }
    };
    visit(entry);
    t.true(seen.has('http/sealed-store.ts') || entry !== 'index.ts', 'the graph walk reaches the store');
    t.deepEqual(named, [], `${entry} loads a framework`);
  }
});

test('the library never writes to the console', async (t) => {
  for (const file of await fs.readdir(SRC, { recursive: true })) {
    if (!file.endsWith('.ts')) continue;
    const text = await fs.readFile(path.join(SRC, file), 'utf8');
    t.notRegex(text, /console\.(log|error|warn|info|debug)\(/, file);
  }
});
