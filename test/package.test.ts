import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import * as source from '../src/index.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');

// What ships is dist/, built by `npm run build` (and by npm's `prepare` on install).
test.before(async () => {
  await run(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { cwd: root });
});

test('the built package imports by name and exposes the same surface as src/index.ts', async (t) => {
  const script = `const m = await import('sealed-sessions'); process.stdout.write(JSON.stringify(Object.keys(m).sort()));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root });
  t.deepEqual(JSON.parse(stdout), Object.keys(source).sort());
});

test('package.json names the bin, ESM exports with types, and the Node floor', async (t) => {
  const pkg = JSON.parse(await fs.readFile(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  t.is(pkg['name'], 'sealed-sessions');
  t.is(pkg['type'], 'module');
  t.deepEqual(pkg['engines'], { node: '>=20.19' });
  const bin = (pkg['bin'] as Record<string, string>)['sealed-sessions']!;
  const { stdout } = await run(process.execPath, [path.join(root, bin), 'keygen'], { cwd: root });
  t.regex(stdout.trim(), /^[A-Za-z0-9_-]{43}$/);
  const types = (pkg['exports'] as Record<string, Record<string, string>>)['.']!['types']!;
  await t.notThrowsAsync(fs.access(path.join(root, types)));
});

test('the framework entries import by name from the built package', async (t) => {
  const script = [
    `const koa = await import('sealed-sessions/koa');`,
    `const fastify = await import('sealed-sessions/fastify');`,
    `const express = await import('sealed-sessions/express-session');`,
    `const main = await import('sealed-sessions');`,
    `process.stdout.write(JSON.stringify({ koa: typeof koa.sessions, fastify: typeof fastify.sessions, skipOverride: fastify.sessions[Symbol.for('skip-override')], express: typeof express.SealedStore, neutral: typeof main.SealedStore, sub: Object.getPrototypeOf(express.SealedStore) === main.SealedStore }));`,
  ].join('\n');
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root });
  t.deepEqual(JSON.parse(stdout), { koa: 'function', fastify: 'function', skipOverride: true, express: 'function', neutral: 'function', sub: true });
});
