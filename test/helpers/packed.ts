import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, '../..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

export interface PackageJson {
  readonly name: string;
  readonly exports: Readonly<Record<string, unknown>>;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly typesVersions?: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
}

export async function readPackageJson(dir = ROOT): Promise<PackageJson> {
  return JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Registers a clean-up: a test's `t.teardown`, or a list a `test.after.always` hook runs (hooks have no teardown). */
export type Teardown = (cleanUp: () => Promise<void>) => void;

/** A temp folder, removed at teardown. */
export async function tempFolder(teardown: Teardown, prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The tarball a user would install: `src/` built by this repo's tsconfig, then `npm pack`.
 *
 * Built and packed in a private copy (package.json, README.md, the build output), not in the
 * work tree: other test files run `tsc` into ./dist at the same time, and a pack that read a
 * file while tsc rewrote it would ship half a file. `--ignore-scripts`: the build has just run
 * (the `prepare` script would run tsc again, in a folder without sources).
 */
export async function packPackage(teardown: Teardown): Promise<string> {
  const stage = await tempFolder(teardown, 'sealed-sessions-pack-');
  const tsconfig = path.join(stage, 'tsconfig.json');
  await fs.writeFile(
    tsconfig,
    JSON.stringify({
      extends: path.join(ROOT, 'tsconfig.json'),
      compilerOptions: { rootDir: ROOT, outDir: path.join(stage, 'package', 'dist'), typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
      include: [path.join(ROOT, 'src')],
    }),
  );
  await run(process.execPath, [TSC, '-p', tsconfig]);
  for (const file of ['package.json', 'README.md']) await fs.copyFile(path.join(ROOT, file), path.join(stage, 'package', file));
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--offline', '--no-update-notifier', '--json', '--pack-destination', stage], {
    cwd: path.join(stage, 'package'),
  });
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  return path.join(stage, filename);
}

/**
 * A fresh project folder (outside this repo, so nothing resolves from the repo by accident)
 * with `package.json` as given and the tarball unpacked into node_modules/sealed-sessions.
 *
 * Offline by construction, the way a user's `npm install <tarball>` lays it out: `npm install`
 * itself would need the registry's metadata for every dependency range, and the cache `npm ci`
 * fills (the lock file's exact tarballs) does not answer that: `npm install --offline` fails
 * with ENOTCACHED. Every other
 * package is a symlink into this repo's node_modules, and only the ones named: the package's
 * own dependencies and peers, plus what the consumer code itself imports. A dependency missing
 * from the packed package.json then fails to resolve here as it would for a user.
 */
export async function consumerProject(teardown: Teardown, tarball: string, packageJson: Record<string, unknown>, linked: Iterable<string>): Promise<string> {
  const project = await tempFolder(teardown, 'sealed-sessions-consumer-');
  await fs.writeFile(path.join(project, 'package.json'), JSON.stringify(packageJson, null, 2));
  const installed = path.join(project, 'node_modules', 'sealed-sessions');
  await fs.mkdir(installed, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  const pkg = await readPackageJson(installed);
  const names = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {}), ...linked]);
  for (const name of names) {
    const source = path.join(ROOT, 'node_modules', name);
    await fs.access(source).catch(() => {
      throw new Error(`${name} is not installed in this repo (npm ci); the consumer project links it from there`);
    });
    const target = path.join(project, 'node_modules', name);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.symlink(source, target, 'dir');
  }
  return project;
}

/** Runs this repo's TypeScript compiler; resolves with its output and exit code (never rejects on type errors). */
export async function tsc(args: readonly string[], cwd: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TSC, ...args], { cwd, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw error;
    return { code: failure.code, output: (failure.stdout ?? '') + (failure.stderr ?? '') };
  }
}
