import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { consumerProject, packPackage, readPackageJson, ROOT, tsc } from './helpers/packed.js';

/**
 * Every entry point in package.json `exports` (but ./package.json), as a consumer names it.
 * New entries (sealed-sessions/koa, …) are checked here without editing this file.
 */
interface Entry {
  readonly specifier: string;
  readonly types: string;
}

async function entryPoints(): Promise<Entry[]> {
  const { name, exports } = await readPackageJson();
  return Object.entries(exports)
    .filter(([subpath]) => subpath !== './package.json')
    .map(([subpath, target]) => {
      if (subpath.includes('*')) throw new Error(`exports pattern ${subpath}: this test names each entry point; teach it patterns`);
      const types = (target as { types?: unknown }).types;
      if (typeof types !== 'string') throw new Error(`exports["${subpath}"] has no "types" condition`);
      return { specifier: subpath === '.' ? name : `${name}/${subpath.slice(2)}`, types: path.normalize(types) };
    });
}

/**
 * moduleResolution node10 (TypeScript's `node`, still the default of many CommonJS projects)
 * ignores `exports`: it finds types only through package.json `typesVersions`, whose `*` maps
 * every subpath, and the root's index, into dist/src/. node16 and bundler read `exports`.
 */
const SETTINGS = [
  { moduleResolution: 'node10', module: 'commonjs', type: 'commonjs' },
  { moduleResolution: 'node16', module: 'node16', type: 'module' },
  { moduleResolution: 'bundler', module: 'esnext', type: 'module' },
] as const;

let tarball: string;
const cleanUps: Array<() => Promise<void>> = [];
test.before(async () => {
  tarball = await packPackage((cleanUp) => cleanUps.push(cleanUp));
});
test.after.always(async () => {
  await Promise.all(cleanUps.map((cleanUp) => cleanUp()));
});

/** A consumer project that imports every entry point, with `compilerOptions` on top of strict. */
async function consumer(t: ExecutionContext, type: string, compilerOptions: Record<string, unknown>): Promise<{ project: string; entries: Entry[] }> {
  const entries = await entryPoints();
  t.true(entries.length >= 2, 'sealed-sessions and sealed-sessions/express-session at least');
  const { peerDependencies = {} } = await readPackageJson();
  // What a consumer of each entry point has installed: Node's types, and the types of the peers it uses.
  const typings = ['@types/node'];
  for (const peer of Object.keys(peerDependencies)) {
    if (await fs.stat(path.join(ROOT, 'node_modules', '@types', peer)).catch(() => undefined)) typings.push(`@types/${peer}`);
  }
  const project = await consumerProject((cleanUp) => t.teardown(cleanUp), tarball, { name: 'consumer', private: true, type }, typings);
  await fs.writeFile(
    path.join(project, 'index.ts'),
    entries.map((entry, index) => `import * as entry${index} from '${entry.specifier}';\nexport { entry${index} };\n`).join(''),
  );
  await fs.writeFile(
    path.join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'es2022', types: ['node'], ...compilerOptions }, files: ['index.ts'] }),
  );
  return { project, entries };
}

function errors(output: string): string {
  return output
    .split('\n')
    .filter((line) => line.includes('error'))
    .join('\n');
}

for (const settings of SETTINGS) {
  test(`moduleResolution ${settings.moduleResolution}: every entry point in exports resolves to its declared types in the packed package`, async (t) => {
    const { project, entries } = await consumer(t, settings.type, {
      module: settings.module,
      moduleResolution: settings.moduleResolution,
      // TypeScript 6 deprecates node10; the projects that still use it are the point here.
      ...(settings.moduleResolution === 'node10' ? { ignoreDeprecations: '6.0' } : {}),
      skipLibCheck: true,
    });
    const { code, output } = await tsc(['-p', '.', '--listFiles'], project);
    // An entry point that does not resolve is an error (TS2307 without types, TS7016 with JavaScript only).
    t.is(code, 0, errors(output));
    const files = new Set(output.split('\n'));
    for (const entry of entries) {
      const declared = path.join(project, 'node_modules', 'sealed-sessions', entry.types);
      t.true(files.has(declared), `${entry.specifier}: ${declared} is in the program`);
    }
  });
}

test('the packed declarations type-check in a consumer program (skipLibCheck off)', async (t) => {
  const { project } = await consumer(t, 'module', { module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: false });
  const { output } = await tsc(['-p', '.'], project);
  // Ours only: a framework's own typings can clash with a neighbour's in this shared node_modules
  // (@types/koa's content-disposition options against express 5's content-disposition 2, which
  // ships types of its own), and that is no fault of the declarations we ship.
  const ours = output.split('\n').filter((line) => line.includes('error') && (line.includes('sealed-sessions/') || line.startsWith('index.ts')));
  t.deepEqual(ours, []);
  const others = errors(output);
  if (others !== '') t.log(`errors in other packages' typings, not ours:\n${others}`);
});
