import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Flags for every Chromium the tests start: the test machines have no network beyond the
 * package registries, so nothing may phone home, and a root user needs --no-sandbox.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Looked up on PATH in this order, as `command -v` would. */
export const SYSTEM_NAMES: readonly string[] = ['chromium', 'chromium-browser', 'google-chrome'];
/** Debian's location, for a PATH that lacks /usr/bin. */
export const SYSTEM_FALLBACKS: readonly string[] = ['/usr/bin/chromium'];

export interface FoundChromium {
  readonly executablePath: string;
  readonly source: 'CHROMIUM_PATH' | 'system' | 'bundled';
  /** What to add to the browser's environment (the bundled one brings its own fonts). */
  readonly env: Readonly<Record<string, string>>;
  /** One line for the test log: which binary, and why this one. */
  readonly reason: string;
}

export interface FindOptions {
  /** The environment to read CHROMIUM_PATH and PATH from. */
  readonly env?: NodeJS.ProcessEnv;
  /** Absolute paths tried after PATH. */
  readonly fallbacks?: readonly string[];
  /** Where the bundled browser is unpacked (one folder per package version inside). */
  readonly cacheDir?: string;
}

/**
 * The Chromium the browser tests drive:
 *
 * 1. `CHROMIUM_PATH`, when it names an executable file.
 * 2. A system Chromium: `chromium`, `chromium-browser` or `google-chrome` on PATH, else /usr/bin/chromium.
 * 3. The headless shell inside the devDependency `@sparticuz/chromium`, unpacked once per install.
 *
 * A `CHROMIUM_PATH` that is set but names no executable replaces the system lookup rather than
 * failing: it says "the system browser is there", and it is not, so the bundled one runs. That
 * is how a machine that has a system Chromium proves the suite passes without one
 * (`CHROMIUM_PATH=/nonexistent npm test`). A typo cannot pass unnoticed as a silent choice:
 * `reason` names the binary and why, and the page test logs it.
 */
export async function findChromium(options: FindOptions = {}): Promise<FoundChromium> {
  const env = options.env ?? process.env;
  const configured = env['CHROMIUM_PATH'];
  if (configured !== undefined && configured !== '') {
    if (await isExecutableFile(configured)) {
      return { executablePath: configured, source: 'CHROMIUM_PATH', env: {}, reason: `CHROMIUM_PATH=${configured}` };
    }
    const bundled = await bundledChromium(options.cacheDir);
    return { ...bundled, reason: `${bundled.reason}, because CHROMIUM_PATH=${configured} is not an executable file (system lookup skipped)` };
  }

  const dirs = (env['PATH'] ?? '').split(path.delimiter).filter((dir) => path.isAbsolute(dir));
  for (const name of SYSTEM_NAMES) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      if (await isExecutableFile(candidate)) return { executablePath: candidate, source: 'system', env: {}, reason: `system ${candidate} (${name} on PATH)` };
    }
  }
  for (const candidate of options.fallbacks ?? SYSTEM_FALLBACKS) {
    if (await isExecutableFile(candidate)) return { executablePath: candidate, source: 'system', env: {}, reason: `system ${candidate}` };
  }
  const bundled = await bundledChromium(options.cacheDir);
  return { ...bundled, reason: `${bundled.reason}, because no system Chromium was found` };
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stats = await fs.stat(file);
    if (!stats.isFile()) return false;
    await fs.access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const require = createRequire(import.meta.url);

/** The installed @sparticuz/chromium's version (its package.json is not among its exports). */
async function bundledVersion(): Promise<string> {
  for (let dir = path.dirname(require.resolve('@sparticuz/chromium')); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = await fs.readFile(path.join(dir, 'package.json'), 'utf8').catch(() => undefined);
    if (manifest === undefined) continue;
    const { name, version } = JSON.parse(manifest) as { name?: string; version?: string };
    if (name === '@sparticuz/chromium' && version !== undefined) return version;
  }
  throw new Error('cannot find the package.json of @sparticuz/chromium');
}
const DEFAULT_CACHE_DIR = path.join(ROOT, 'node_modules', '.cache', 'sealed-sessions-chromium');

/**
 * Unpacks `@sparticuz/chromium`'s brotli'd headless shell (about 190 MB, 2–3 s) into
 * `<cacheDir>/<version>/`, once: later calls, in any process, reuse it.
 *
 * Not where the package unpacks by itself (`/tmp/chromium`): it runs whatever file already has
 * that name, even half written by a concurrent or killed unpack, or planted by another user of
 * /tmp. Here each unpack goes into a fresh private folder that is renamed into place only when
 * complete, so a reader sees all of it or nothing, and two test files that race both end with
 * the same complete copy. The default cache lives in node_modules/.cache: it goes when
 * `npm ci` replaces node_modules, with the package that made it.
 */
async function bundledChromium(cacheDir = DEFAULT_CACHE_DIR): Promise<FoundChromium> {
  const version = await bundledVersion();
  const target = path.join(cacheDir, version);
  const found = (): FoundChromium => ({
    executablePath: path.join(target, 'chromium'),
    source: 'bundled',
    env: { FONTCONFIG_FILE: path.join(target, 'fonts.conf') },
    reason: `bundled @sparticuz/chromium ${version} (${target})`,
  });
  if (await isExecutableFile(path.join(target, 'chromium'))) return found();

  await fs.mkdir(cacheDir, { recursive: true });
  const staging = await fs.mkdtemp(path.join(cacheDir, `.unpack-${version}-`));
  try {
    const { default: bundled } = await import('@sparticuz/chromium');
    // executablePath() unpacks into os.tmpdir(), which reads TMPDIR on each call; the package
    // reads it synchronously, before its first await, so pointing TMPDIR at the private folder
    // for the length of the call (no other code runs meanwhile) sends every file there.
    const saved = process.env['TMPDIR'];
    process.env['TMPDIR'] = staging;
    let unpacking: Promise<string>;
    try {
      unpacking = bundled.executablePath();
    } finally {
      if (saved === undefined) delete process.env['TMPDIR'];
      else process.env['TMPDIR'] = saved;
    }
    const unpacked = await unpacking;
    if (unpacked !== path.join(staging, 'chromium')) {
      throw new Error(`@sparticuz/chromium ${version} unpacked to ${unpacked}, not into ${staging}: check how this version picks its folder`);
    }
    // Its own fonts.conf names /tmp/fonts; this one names the unpacked fonts, after the system's.
    await fs.writeFile(
      path.join(staging, 'fonts.conf'),
      `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>${path.join(target, 'fonts')}</dir>
  <cachedir>${path.join(target, 'fonts-cache')}</cachedir>
</fontconfig>
`,
    );
    await fs.rename(staging, target);
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    // Another process finished first: its copy is complete, ours is not needed.
    if (!(await isExecutableFile(path.join(target, 'chromium')))) throw error;
  }
  return found();
}
