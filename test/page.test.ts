import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import prettyBytes from 'pretty-bytes';
import { CHROMIUM_ARGS, findChromium } from './helpers/chromium.js';
import { listFiles, tempDir } from './helpers/temp-dir.js';
/** 40 characters, so the demo never writes a development key file. */
const SESSION_KEYS = 'page-test-key-0123456789-abcdefghijklmno';
const ROOT = path.resolve(import.meta.dirname, '..');
const READY = /sealed-sessions demo on (http:\/\/127\.0\.0\.1:\d+) \(/;

interface Demo {
  readonly url: string;
  readonly stderr: () => string;
}

/** Starts demo/server.ts as a real child process; killed when the test ends. */
async function startDemo(t: ExecutionContext, dataDir: string): Promise<Demo> {
  const child: ChildProcess = spawn(process.execPath, ['--import=tsx/esm', 'demo/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SESSIONS_DIR: dataDir, SESSION_KEYS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(`the demo did not print its URL within 15 s`), 15_000);
    const onData = (): void => {
      const match = READY.exec(stdout);
      if (match !== null) {
        cleanup();
        resolve(match[1]!);
      }
    };
    const onExit = (code: number | null, signal: string | null): void => fail(`the demo exited early (code ${code}, signal ${signal})`);
    function cleanup(): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
    }
    function fail(why: string): void {
      cleanup();
      reject(new Error(`${why}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  return { url, stderr: () => stderr };
}

async function sessionFiles(dataDir: string): Promise<string[]> {
  return (await listFiles(dataDir)).filter((file) => file.endsWith('.sess')).sort();
}

/** What the store panel should show as the size on disk: 1000-based, as the CLI prints it. */
async function sizeOnDisk(dataDir: string): Promise<string> {
  let bytes = 0;
  for (const file of await sessionFiles(dataDir)) bytes += (await fs.stat(path.join(dataDir, file))).size;
  return prettyBytes(bytes);
}

/** One browser for the file (a system Chromium, else the bundled one: see helpers/chromium.ts); one context per test. */
let browser: Browser | undefined;
test.before(async (t) => {
  const found = await findChromium();
  t.log(`Chromium: ${found.reason}`);
  browser = await chromium.launch({ executablePath: found.executablePath, args: [...CHROMIUM_ARGS], env: { ...process.env, ...found.env } });
});
test.after.always(async () => {
  await browser?.close();
});

/** A page of a fresh browser context, with every failed response and console error collected: the demo's pages should cause none. */
async function openPage(
  t: ExecutionContext,
  options: Parameters<Browser['newContext']>[0] = {},
): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await browser!.newContext(options);
  t.teardown(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} ${response.request().method()} ${response.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return { context, page, problems };
}

async function status(page: Page): Promise<string | null> {
  return page.getByTestId('status').textContent();
}

async function sessionCount(page: Page): Promise<string | null> {
  return page.getByTestId('session-count').textContent();
}

/** The session table as [name, value] pairs, in page order. */
async function entries(page: Page): Promise<Array<[string, string]>> {
  const names = await page.locator('#session tbody tr td:nth-child(1)').allTextContents();
  const values = await page.locator('#session tbody tr td.value').allTextContents();
  return names.map((name, index) => [name, values[index] ?? '<missing>']);
}

async function sidCookie(context: BrowserContext, url: string): Promise<{ value: string; httpOnly: boolean; sameSite: string } | undefined> {
  return (await context.cookies(url)).find((cookie) => cookie.name === 'sid');
}

/** Clicks a button that submits a form, and waits for the page the 303 redirect leads to. */
async function submit(page: Page, button: string, done: string): Promise<void> {
  await Promise.all([page.waitForURL((url) => url.searchParams.get('done') === done), page.getByRole('button', { name: button, exact: true }).click()]);
}

async function add(page: Page, name: string, value: string): Promise<void> {
  await page.getByRole('textbox', { name: 'name', exact: true }).fill(name);
  await page.getByRole('textbox', { name: 'value', exact: true }).fill(value);
  await submit(page, 'Add', 'set');
}

test('the demo page in headless Chromium: create, add, reload, regenerate, delete, expire', async (t) => {
  t.timeout(30_000);
  const dataDir = await tempDir(t);
  const demo = await startDemo(t, dataDir);
  const { context, page, problems } = await openPage(t);

  // A first visit asks with getSession(false): nothing is created, on disk or in the browser.
  const first = await page.goto(demo.url);
  t.is(first?.headers()['cache-control'], 'no-store');
  t.is(await status(page), 'no session');
  t.is(await sessionCount(page), '0');
  t.deepEqual(await sessionFiles(dataDir), []);
  t.is(await sidCookie(context, demo.url), undefined);

  await submit(page, 'Create a session', 'created');
  t.is(await status(page), 'active');
  t.is(await sessionCount(page), '1');
  const created = await sessionFiles(dataDir);
  t.is(created.length, 1, 'one session file after "Create a session"');
  const firstCookie = await sidCookie(context, demo.url);
  t.truthy(firstCookie, 'the browser holds a sid cookie');
  t.true(firstCookie?.httpOnly, 'the sid cookie is HttpOnly');
  t.is(firstCookie?.sameSite, 'Lax');

  await add(page, 'colour', 'teal <b>&amp;</b>');
  t.deepEqual(await entries(page), [['colour', 'teal <b>&amp;</b>']], 'the value is shown, as text');
  const reloaded = await page.reload();
  t.is(reloaded?.headers()['cache-control'], 'no-store', 'a page showing session values is never stored by the browser');
  t.is(await status(page), 'active');
  t.deepEqual(await entries(page), [['colour', 'teal <b>&amp;</b>']], 'the value came back from the file after a reload');
  t.deepEqual(await sessionFiles(dataDir), created);

  await submit(page, 'Regenerate id', 'regenerated');
  t.is(await status(page), 'active');
  t.deepEqual(await entries(page), [['colour', 'teal <b>&amp;</b>']], 'the data survived the regeneration');
  const secondCookie = await sidCookie(context, demo.url);
  t.truthy(secondCookie);
  t.not(secondCookie?.value, firstCookie?.value, 'the sid cookie changed');
  t.not(secondCookie?.value.split('.')[0], firstCookie?.value.split('.')[0], 'the session id changed');
  const regenerated = await sessionFiles(dataDir);
  t.is(regenerated.length, 1, 'still one session file: the old one is gone');
  t.notDeepEqual(regenerated, created, 'the session lives in a new file');
  t.is(await sessionCount(page), '1');

  await add(page, 'second', 'to be deleted');
  t.deepEqual(await entries(page), [
    ['colour', 'teal <b>&amp;</b>'],
    ['second', 'to be deleted'],
  ]);
  await submit(page, 'delete second', 'deleted');
  t.deepEqual(await entries(page), [['colour', 'teal <b>&amp;</b>']], 'delete removed only the second value');
  await page.reload();
  t.deepEqual(await entries(page), [['colour', 'teal <b>&amp;</b>']], 'the deletion was stored');

  await submit(page, 'Expire session', 'expired');
  t.is(await status(page), 'no session');
  t.is(await sessionCount(page), '0');
  t.is(await sidCookie(context, demo.url), undefined, 'the sid cookie is gone from the browser');
  t.deepEqual(await sessionFiles(dataDir), [], 'no session file remains');
  await page.reload();
  t.is(await status(page), 'no session', 'still no session after a reload');

  // Back leads to the page that listed the values: it is asked for again (no-store), and shows
  // the session as it is now.
  const back = await page.goBack();
  t.is(new URL(page.url()).searchParams.get('done'), 'deleted', 'Back went to the page before "Expire session"');
  t.is(back?.headers()['cache-control'], 'no-store', 'the page came from the server again');
  t.is(await status(page), 'no session', 'Back does not show the expired session');
  t.deepEqual(await entries(page), []);

  // The favicon is inline, and an image the browser can decode.
  const icon = await page.locator('link[rel=icon]').getAttribute('href');
  t.true(icon?.startsWith('data:image/svg+xml,'), String(icon));
  // Browser-side code as text: this project's types describe Node, not the DOM.
  const iconSize = (await page.evaluate(`(async () => {
    const image = new Image();
    image.src = ${JSON.stringify(icon)};
    await image.decode();
    return [image.naturalWidth, image.naturalHeight];
  })()`)) as [number, number];
  t.true(iconSize[0]! > 0 && iconSize[1]! > 0, `the favicon decodes (${iconSize.join('×')})`);
  t.deepEqual(problems, [], 'no failed request and no console error on any page');

  // SESSION_KEYS was given: no development key file beside the data dir, no dev-key warning.
  t.deepEqual(await fs.readdir(path.dirname(dataDir)), [path.basename(dataDir)]);
  t.false(demo.stderr().includes('SEALED_SESSIONS_DEV_KEY'), demo.stderr());
  t.false(/request failed|Error/.test(demo.stderr()), demo.stderr());
});

test('on a 390×844 phone: one column, nothing scrolls sideways, sizes in 1000-based units; a blank name is refused and the 400 page keeps what was typed', async (t) => {
  t.timeout(30_000);
  const dataDir = await tempDir(t);
  const demo = await startDemo(t, dataDir);
  const { page, problems } = await openPage(t, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 });
  await page.goto(demo.url);
  await submit(page, 'Create a session', 'created');
  t.is(await page.getByTestId('session-count').textContent(), '1');
  t.regex((await page.locator('#store dt').first().textContent()) ?? '', /\(all users\)/, 'the count says it covers every user');

  // Long unbroken text, as people paste tokens and URLs: it wraps inside the table.
  const longName = 'n'.repeat(100);
  const longValue = 'https://example.com/' + 'x'.repeat(1_600);
  await add(page, longName, longValue);
  t.deepEqual(await entries(page), [[longName, longValue]]);
  const size = await page.getByTestId('bytes').textContent();
  t.is(size, await sizeOnDisk(dataDir), 'the size on disk, as pretty-bytes prints it');
  t.regex(size ?? '', / kB$/, 'over 1,000 bytes: kB (1000-based), not KB/KiB');

  interface Box {
    readonly left: number;
    readonly right: number;
    readonly top: number;
    readonly bottom: number;
    readonly width: number;
    readonly height: number;
  }
  const layout = (await page.evaluate(`(() => {
    const box = (selector) => document.querySelector(selector).getBoundingClientRect().toJSON();
    const pre = document.querySelector('pre');
    return {
      innerWidth: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      session: box('#session'),
      store: box('#store'),
      pre: { scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth, overflowX: getComputedStyle(pre).overflowX },
    };
  })()`)) as {
    innerWidth: number;
    scrollWidth: number;
    session: Box;
    store: Box;
    pre: { scrollWidth: number; clientWidth: number; overflowX: string };
  };
  t.is(layout.innerWidth, 390);
  t.true(layout.scrollWidth <= layout.innerWidth, `the page is ${layout.scrollWidth} px wide in a ${layout.innerWidth} px window`);
  for (const panel of ['session', 'store'] as const) {
    const box = layout[panel];
    t.true(box.width > 0 && box.height > 0 && box.left >= 0 && box.right <= layout.innerWidth, `#${panel} is on screen: ${JSON.stringify(box)}`);
  }
  t.true(layout.store.top >= layout.session.bottom, 'one column: the store panel comes below the session panel');
  t.is(layout.pre.overflowX, 'auto');
  t.true(layout.pre.scrollWidth > layout.pre.clientWidth, 'the code block is wider than the screen and scrolls inside itself');
  t.true(await page.locator('#session').isVisible());
  t.true(await page.locator('#store').isVisible());
  const deleteButton = await page.getByRole('button', { name: `delete ${longName}`, exact: true }).boundingBox();
  const addButton = await page.getByRole('button', { name: 'Add', exact: true }).boundingBox();
  t.true(deleteButton !== null && addButton !== null && deleteButton.height <= addButton.height + 1, 'the delete button keeps its word on one line');

  // A name of spaces only: the form itself refuses it, no request is sent.
  const name = page.getByRole('textbox', { name: 'name', exact: true });
  const value = page.getByRole('textbox', { name: 'value', exact: true });
  const posted: string[] = [];
  page.on('request', (request) => {
    if (request.method() === 'POST') posted.push(request.url());
  });
  await name.fill('   ');
  await value.fill('kept value');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  t.true(
    await name.evaluate((input) => (input as unknown as { validity: { patternMismatch: boolean } }).validity.patternMismatch),
    'the browser flags the name',
  );
  t.deepEqual(posted, [], 'nothing was sent');
  t.is(new URL(page.url()).searchParams.get('done'), 'set');

  // Past the form's check (an old browser, a script): the server refuses it, and its 400 page
  // is the page again, with what was typed still there.
  await page.locator('form[action="/set"]').evaluate((form) => {
    (form as unknown as { noValidate: boolean }).noValidate = true;
  });
  const [refused] = await Promise.all([
    page.waitForResponse((response) => response.url().endsWith('/set')),
    page.getByRole('button', { name: 'Add', exact: true }).click(),
  ]);
  await page.waitForLoadState();
  t.is(refused.status(), 400);
  t.is(refused.headers()['cache-control'], 'no-store');
  t.is(await name.inputValue(), '   ');
  t.is(await value.inputValue(), 'kept value');
  t.regex((await page.getByRole('alert').textContent()) ?? '', /not only spaces/);
  t.deepEqual(await entries(page), [[longName, longValue]], 'nothing was stored');
  t.is(await status(page), 'active');
  t.deepEqual(
    problems.filter((problem) => !problem.startsWith('400 POST ') && !problem.includes('400 (Bad Request)')),
    [],
    'no failed request or console error besides the refused POST',
  );
});
