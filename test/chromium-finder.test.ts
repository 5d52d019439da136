import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { findChromium } from './helpers/chromium.js';

const run = promisify(execFile);

async function scratch(t: ExecutionContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sealed-sessions-chromium-finder-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A stand-in for a system browser: an executable that says which one it is. */
async function fakeBrowser(dir: string, name: string, mode = 0o755): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await fs.writeFile(file, `#!/bin/sh\necho "fake ${name} in ${dir}"\n`, { mode });
  await fs.chmod(file, mode);
  return file;
}

async function versionOf(executable: string): Promise<string> {
  const { stdout } = await run(executable, ['--version'], { timeout: 30_000 });
  return stdout.trim();
}

test('CHROMIUM_PATH naming nothing: the system lookup is skipped and the bundled Chromium runs', async (t) => {
  const dir = await scratch(t);
  // A PATH with a "system" browser on it: it must not be chosen.
  await fakeBrowser(dir, 'chromium');
  const found = await findChromium({ env: { CHROMIUM_PATH: path.join(dir, 'nowhere', 'chromium'), PATH: dir } });
  t.is(found.source, 'bundled');
  t.regex(found.reason, /CHROMIUM_PATH=.*nowhere.* is not an executable file/);
  t.regex(await versionOf(found.executablePath), /^Chromium \d+\./, 'the bundled binary runs on this machine');
  t.truthy(found.env['FONTCONFIG_FILE'], 'it brings its fonts');
  await t.notThrowsAsync(fs.access(found.env['FONTCONFIG_FILE']!));
});

test('no system Chromium on PATH or at the fallbacks: the bundled one', async (t) => {
  const dir = await scratch(t);
  const found = await findChromium({ env: { PATH: dir }, fallbacks: [path.join(dir, 'usr-bin-chromium')] });
  t.is(found.source, 'bundled');
  t.regex(found.reason, /no system Chromium/);
  t.regex(await versionOf(found.executablePath), /^Chromium \d+\./);
});

test('a system Chromium on PATH is preferred to the bundled one; chromium before chromium-browser before google-chrome', async (t) => {
  const dir = await scratch(t);
  const first = path.join(dir, 'first');
  const second = path.join(dir, 'second');
  const chrome = await fakeBrowser(first, 'google-chrome');
  const options = { fallbacks: [] };

  let found = await findChromium({ ...options, env: { PATH: [first, second].join(path.delimiter) } });
  t.deepEqual([found.source, found.executablePath], ['system', chrome]);
  t.is(await versionOf(found.executablePath), `fake google-chrome in ${first}`);

  const browser = await fakeBrowser(second, 'chromium-browser');
  found = await findChromium({ ...options, env: { PATH: [first, second].join(path.delimiter) } });
  t.is(found.executablePath, browser, 'chromium-browser, although google-chrome comes first on PATH');

  const chromium = await fakeBrowser(second, 'chromium');
  found = await findChromium({ ...options, env: { PATH: [first, second].join(path.delimiter) } });
  t.is(found.executablePath, chromium);
  t.deepEqual(found.env, {});
});

test('a file that is not executable, or a directory, is no browser', async (t) => {
  const dir = await scratch(t);
  await fakeBrowser(dir, 'chromium', 0o644);
  await fs.mkdir(path.join(dir, 'chromium-browser'));
  const chrome = await fakeBrowser(path.join(dir, 'later'), 'google-chrome');
  const found = await findChromium({ env: { PATH: [dir, path.join(dir, 'later')].join(path.delimiter) }, fallbacks: [] });
  t.is(found.executablePath, chrome);
});

test('the fallback path is used when PATH has none', async (t) => {
  const dir = await scratch(t);
  const fallback = await fakeBrowser(path.join(dir, 'usr', 'bin'), 'chromium');
  const found = await findChromium({ env: { PATH: path.join(dir, 'empty') }, fallbacks: [fallback] });
  t.deepEqual([found.source, found.executablePath], ['system', fallback]);
});

test('CHROMIUM_PATH naming an executable wins over PATH', async (t) => {
  const dir = await scratch(t);
  await fakeBrowser(dir, 'chromium');
  const chosen = await fakeBrowser(path.join(dir, 'chosen'), 'my-chromium');
  const found = await findChromium({ env: { CHROMIUM_PATH: chosen, PATH: dir } });
  t.deepEqual([found.source, found.executablePath], ['CHROMIUM_PATH', chosen]);
});

test('two unpacks of the bundled Chromium racing (as two test files do) end with one complete copy and no leftovers', async (t) => {
  t.timeout(90_000);
  const cacheDir = await scratch(t);
  const env = { CHROMIUM_PATH: path.join(cacheDir, 'none') };
  const [a, b] = await Promise.all([findChromium({ env, cacheDir }), findChromium({ env, cacheDir })]);
  t.is(a.executablePath, b.executablePath);
  t.regex(await versionOf(a.executablePath), /^Chromium \d+\./);
  t.deepEqual(
    (await fs.readdir(cacheDir)).filter((name) => name.startsWith('.unpack-')),
    [],
    'the losing unpack was removed',
  );
  t.is((await fs.readdir(cacheDir)).length, 1, 'one folder, named after the version');
});
