import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { consumerProject, packPackage, ROOT, tsc } from './helpers/packed.js';

/**
 * Every fenced TypeScript or JavaScript example in README.md, checked the way a user would paste
 * it: into a project with `"type": "module"` that has the packed package installed (see
 * helpers/packed.ts: offline, no registry). All of them are type-checked together (strict,
 * against the packed .d.ts files); each one that does not start a server is then run, on its own,
 * in its own empty folder, and must exit 0. New fences are picked up without editing this file.
 *
 * - Fences in another language (sh, diff, …) are not code to run.
 * - A fence that calls `.listen(` starts a server: type-checked only.
 * - A fence may opt out of running (still type-checked) only with a visible marker on the line
 *   above it: `<!-- not run: the reason -->`.
 */

const CODE_LANGUAGES: Readonly<Record<string, 'ts' | 'js'>> = {
  ts: 'ts',
  typescript: 'ts',
  mts: 'ts',
  js: 'js',
  javascript: 'js',
  mjs: 'js',
};
const NOT_RUN = /^<!--\s*not run:\s*(.+?)\s*-->$/;
/** A snippet that only serves requests never exits: a server is checked by its types. */
const STARTS_SERVER = /\.listen\(/;
const RUN_TIMEOUT_MS = 30_000;

interface Fence {
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly language: string;
  readonly code: string;
  /** The reason of a `<!-- not run: … -->` marker right above it. */
  readonly notRun: string | undefined;
}

function fencesOf(markdown: string): Fence[] {
  const lines = markdown.split('\n');
  const fences: Fence[] = [];
  for (let index = 0; index < lines.length; index += 1) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[index]!);
    if (open === null) continue;
    const [, indent = '', marker = '', language = ''] = open;
    const body: string[] = [];
    let end = index + 1;
    while (end < lines.length && !new RegExp(`^ {0,3}${marker[0]}{${marker.length},}\\s*$`).test(lines[end]!)) {
      body.push(lines[end]!.startsWith(indent) ? lines[end]!.slice(indent.length) : lines[end]!);
      end += 1;
    }
    let above = index - 1;
    while (above >= 0 && lines[above]!.trim() === '') above -= 1;
    const notRun = above >= 0 ? NOT_RUN.exec(lines[above]!.trim())?.[1] : undefined;
    fences.push({ line: index + 1, language: language.toLowerCase(), code: body.join('\n') + '\n', notRun });
    index = end;
  }
  return fences;
}

const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const fences = fencesOf(readme);
const examples = fences
  .filter((fence) => CODE_LANGUAGES[fence.language] !== undefined)
  .map((fence) => {
    const runs = fence.notRun === undefined && !STARTS_SERVER.test(fence.code);
    const why = fence.notRun !== undefined ? `not run: ${fence.notRun}` : runs ? 'run' : 'not run: starts a server (.listen)';
    return { ...fence, file: `readme-${fence.line}.${CODE_LANGUAGES[fence.language]}`, runs, why };
  });

/** Packages a snippet imports by name, as `npm install` would be told (`a`, `@scope/a` from `@scope/a/sub`). */
function importedPackages(code: string): string[] {
  const names = new Set<string>();
  for (const match of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm)) {
    const specifier = match[1]!;
    if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) continue;
    const parts = specifier.split('/');
    names.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
  }
  names.delete('sealed-sessions');
  return [...names];
}

let project: string;
/** Type errors by snippet file; '' holds those of no snippet (the project itself). */
const typeErrors = new Map<string, string[]>();
const cleanUps: Array<() => Promise<void>> = [];

test.before(async () => {
  const tarball = await packPackage((cleanUp) => cleanUps.push(cleanUp));
  const linked = new Set(['@types/node']);
  for (const name of examples.flatMap((example) => importedPackages(example.code))) {
    linked.add(name);
    // The snippet's user installs its types too, where the package has none of its own.
    const typings = `@types/${name.startsWith('@') ? name.slice(1).replace('/', '__') : name}`;
    if (await fs.stat(path.join(ROOT, 'node_modules', typings)).catch(() => undefined)) linked.add(typings);
  }
  project = await consumerProject((cleanUp) => cleanUps.push(cleanUp), tarball, { name: 'readme-examples', private: true, type: 'module' }, linked);
  await fs.mkdir(path.join(project, 'snippets'));
  for (const example of examples) await fs.writeFile(path.join(project, 'snippets', example.file), example.code);
  await fs.writeFile(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        lib: ['es2023'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        types: ['node'],
        // Each snippet is its own module, as its own file would be in the user's project.
        moduleDetection: 'force',
        allowJs: true,
        checkJs: true,
        skipLibCheck: true,
      },
      include: ['snippets'],
    }),
  );
  const { code, output } = await tsc(['-p', '.', '--pretty', 'false'], project);
  for (const line of output.split('\n').filter((text) => text.trim() !== '')) {
    const file = /^snippets\/([^(]+)\(/.exec(line)?.[1] ?? '';
    typeErrors.set(file, [...(typeErrors.get(file) ?? []), line]);
  }
  if (code !== 0 && typeErrors.size === 0) typeErrors.set('', [`tsc exited with ${code}`]);
});

test.after.always(async () => {
  await Promise.all(cleanUps.map((cleanUp) => cleanUp()));
});

test('README.md: the code examples this test found, and what it does with each fence', (t) => {
  for (const fence of fences) {
    const example = examples.find((candidate) => candidate.line === fence.line);
    t.log(`line ${fence.line} \`\`\`${fence.language}: ${example === undefined ? 'not code' : `type-checked, ${example.why}`}`);
  }
  t.true(examples.length >= 2, 'the README shows code (the Express app and the store at least)');
  t.true(
    examples.some((example) => example.runs),
    'at least one example runs',
  );
  t.deepEqual(typeErrors.get('') ?? [], [], 'the examples project type-checks');
});

test('README.md: no fence holds JavaScript without saying so (it would escape this test)', (t) => {
  const unlabelled = fences.filter(
    (fence) =>
      CODE_LANGUAGES[fence.language] === undefined &&
      !['sh', 'bash', 'shell', 'diff'].includes(fence.language) &&
      /^\s*(import|export|const|let|await)\s/m.test(fence.code),
  );
  t.deepEqual(
    unlabelled.map((fence) => `line ${fence.line}`),
    [],
    'label these fences ts or js',
  );
});

test('the fence reader: languages, the not-run marker right above a fence, indented fences, longer markers', (t) => {
  const markdown = [
    '# Title',
    '```ts',
    'app.listen(3000);',
    '```',
    '<!-- not run: needs a Redis server -->',
    '',
    '```js',
    'await client.connect();',
    '```',
    '<!-- not run: mentioned, but not right above -->',
    'A paragraph.',
    '1. a step',
    '   ````TypeScript',
    '   const a = 1;',
    '   ```',
    '   ````',
    '```',
    'plain',
    '```',
  ].join('\n');
  t.deepEqual(fencesOf(markdown), [
    { line: 2, language: 'ts', code: 'app.listen(3000);\n', notRun: undefined },
    { line: 7, language: 'js', code: 'await client.connect();\n', notRun: 'needs a Redis server' },
    { line: 13, language: 'typescript', code: 'const a = 1;\n```\n', notRun: undefined },
    { line: 17, language: '', code: 'plain\n', notRun: undefined },
  ]);
});

test('README.md: every environment variable the demo reads is documented', async (t) => {
  const server = await fs.readFile(path.join(ROOT, 'demo', 'server.ts'), 'utf8');
  const names = [...server.matchAll(/process\.env\[['"]([A-Z_]+)['"]\]|process\.env\.([A-Z_]+)/g)].map((match) => match[1] ?? match[2]!);
  t.true(names.length >= 3, names.join(', '));
  for (const name of new Set(names)) t.true(readme.includes(`| \`${name}\` |`), `${name} has a row in the README's table of the demo's variables`);
});

for (const example of examples) {
  test(`README.md line ${example.line} (\`\`\`${example.language}): type-checks${example.runs ? ' and runs' : ` (${example.why})`}`, async (t) => {
    t.deepEqual(typeErrors.get(example.file) ?? [], [], `type errors in the example at README.md line ${example.line}:\n${example.code}`);
    if (!example.runs) return;

    // As pasted into a fresh folder: no SESSION_KEYS, no NODE_ENV (the development key applies).
    const cwd = path.join(project, `run-${example.line}`);
    await fs.mkdir(cwd);
    const tsx = import.meta.resolve('tsx/esm');
    const args = example.file.endsWith('.ts')
      ? [`--import=${tsx}`, path.join(project, 'snippets', example.file)]
      : [path.join(project, 'snippets', example.file)];
    const result = await new Promise<{ code: number | null; signal: string | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, args, {
        cwd,
        env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? cwd },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, output });
      });
    });
    t.is(
      result.code,
      0,
      result.signal === 'SIGKILL'
        ? `still running after ${RUN_TIMEOUT_MS / 1000} s: an example that serves must call .listen( or be marked <!-- not run: reason -->`
        : `README.md line ${example.line} failed:\n${result.output}`,
    );
    t.log(result.output.trim() === '' ? 'ran, exit 0, no output' : `ran, exit 0:\n${result.output.trim()}`);
  });
}
