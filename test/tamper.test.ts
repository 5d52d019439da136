import fs from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { openStore, type Store } from '../src/index.js';
import { plaintextOf } from '../src/core/sealed-session.js';
import { createKeyring } from '../src/crypto/keys.js';
import { readHeader, seal } from '../src/crypto/seal.js';
import { fileNameOf } from '../src/core/session-id.js';
import { KEY, listFiles, tempDir } from './helpers/temp-dir.js';

interface TamperEvent {
  readonly file: string;
  readonly reason: string;
}

interface Setup {
  readonly dir: string;
  readonly store: Store;
  /** Three sessions: [target, other, another]. */
  readonly ids: readonly [string, string, string];
  readonly data: ReadonlyMap<string, Record<string, unknown>>;
  readonly events: TamperEvent[];
  fileOf(id: string): string;
  relativeOf(id: string): string;
}

async function setup(t: ExecutionContext): Promise<Setup> {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const events: TamperEvent[] = [];
  store.on('tamper', (event) => events.push(event));
  const data = new Map<string, Record<string, unknown>>();
  const ids: string[] = [];
  for (const user of ['ada', 'bob', 'cyd']) {
    const session = store.create();
    const value = { user, roles: ['reader', user], visits: user.length * 7 };
    for (const [key, item] of Object.entries(value)) session.set(key, item);
    await session.save();
    data.set(session.id, value);
    ids.push(session.id);
  }
  const relativeOf = (id: string) => {
    const name = fileNameOf(id);
    return path.join(name.slice(0, 2), `${name}.sess`);
  };
  return { dir, store, ids: ids as [string, string, string], data, events, relativeOf, fileOf: (id) => path.join(dir, relativeOf(id)) };
}

/**
 * The target reads as "no session" (resolves null, never throws), with exactly one tamper event
 * per load naming its file (not its id); the other sessions still read.
 */
async function assertTampered(t: ExecutionContext, s: Setup, target: string, reason: string, untouched: readonly string[]): Promise<void> {
  for (let attempt = 1; attempt <= 2; attempt++) {
    const before = s.events.length;
    t.is(await s.store.load(target), null);
    const events = s.events.slice(before);
    t.deepEqual(events, [{ file: s.relativeOf(target), reason }]);
    t.false(events[0]?.file.includes(target), 'the event names the id');
    t.false(path.isAbsolute(events[0]?.file ?? ''), 'the event file is relative to the data dir');
  }
  const before = s.events.length;
  for (const id of untouched) t.deepEqual((await s.store.load(id))?.toJSON(), s.data.get(id));
  t.is(s.events.length, before, 'an untouched session was reported');
}

async function rewrite(file: string, change: (bytes: Buffer) => Buffer): Promise<void> {
  await fs.writeFile(file, change(await fs.readFile(file)));
}

const flips: readonly { offset: number | 'last'; field: string; reason: string }[] = [
  { offset: 0, field: 'magic', reason: 'format' },
  { offset: 3, field: 'format version', reason: 'format' },
  { offset: 4, field: 'key id, first byte', reason: 'unknown-key' },
  { offset: 11, field: 'key id, last byte', reason: 'unknown-key' },
  { offset: 12, field: 'created', reason: 'authentication' },
  { offset: 27, field: 'written, last byte', reason: 'authentication' },
  { offset: 30, field: 'absolute deadline', reason: 'authentication' },
  { offset: 39, field: 'idle timeout', reason: 'authentication' },
  { offset: 40, field: 'nonce, first byte', reason: 'authentication' },
  { offset: 51, field: 'nonce, last byte', reason: 'authentication' },
  { offset: 52, field: 'tag, first byte', reason: 'authentication' },
  { offset: 67, field: 'tag, last byte', reason: 'authentication' },
  { offset: 68, field: 'ciphertext, first byte', reason: 'authentication' },
  { offset: 100, field: 'ciphertext, middle', reason: 'authentication' },
  { offset: 'last', field: 'last byte', reason: 'authentication' },
];

for (const { offset, field, reason } of flips) {
  for (const mask of [0x01, 0x80]) {
    test(`a flipped bit (0x${mask.toString(16)}) at offset ${offset} (${field}) reads as no session, reason ${reason}`, async (t) => {
      const s = await setup(t);
      const [target, ...others] = s.ids;
      await rewrite(s.fileOf(target), (bytes) => {
        const at = offset === 'last' ? bytes.length - 1 : offset;
        t.true(at < bytes.length);
        bytes[at] = bytes[at]! ^ mask;
        return bytes;
      });
      await assertTampered(t, s, target, reason, others);
    });
  }
}

const truncations: readonly { label: string; length: (size: number) => number; reason: string }[] = [
  { label: 'to 0 bytes', length: () => 0, reason: 'format' },
  { label: 'to 10 bytes', length: () => 10, reason: 'format' },
  { label: 'to 51 bytes (header minus 1)', length: () => 51, reason: 'format' },
  { label: 'to 52 bytes (header only)', length: () => 52, reason: 'format' },
  { label: 'to 67 bytes (envelope minus 1)', length: () => 67, reason: 'format' },
  { label: 'to 68 bytes (no ciphertext)', length: () => 68, reason: 'authentication' },
  { label: 'by 1 byte', length: (size) => size - 1, reason: 'authentication' },
  { label: 'by half', length: (size) => Math.floor(size / 2), reason: 'authentication' },
];

for (const { label, length, reason } of truncations) {
  test(`a file truncated ${label} reads as no session, reason ${reason}`, async (t) => {
    const s = await setup(t);
    const [target, ...others] = s.ids;
    await rewrite(s.fileOf(target), (bytes) => bytes.subarray(0, length(bytes.length)));
    await assertTampered(t, s, target, reason, others);
  });
}

test('a file with a byte appended reads as no session', async (t) => {
  const s = await setup(t);
  const [target, ...others] = s.ids;
  await rewrite(s.fileOf(target), (bytes) => Buffer.concat([bytes, Buffer.from([0])]));
  await assertTampered(t, s, target, 'authentication', others);
});

test('a file replaced by random bytes of the same length reads as no session', async (t) => {
  const s = await setup(t);
  const [target, ...others] = s.ids;
  await rewrite(s.fileOf(target), (bytes) => Buffer.alloc(bytes.length, 0xa5));
  await assertTampered(t, s, target, 'format', others);
});

test('a file far larger than any session is refused without reading it all', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY, maxBytes: 1000 });
  const events: TamperEvent[] = [];
  store.on('tamper', (event) => events.push(event));
  const session = store.create();
  session.set('a', 1);
  await session.save();
  const other = store.create();
  other.set('b', 2);
  await other.save();
  const name = fileNameOf(session.id);
  const file = path.join(dir, name.slice(0, 2), `${name}.sess`);
  // Past the read bound (4 × maxBytes, at least 16 MiB): refused as not ours.
  await rewrite(file, (bytes) => Buffer.concat([bytes, Buffer.alloc(20 * 1024 * 1024)]));
  t.is(await store.load(session.id), null);
  t.deepEqual(events, [{ file: path.relative(dir, file), reason: 'format' }]);
  t.deepEqual((await store.load(other.id))?.toJSON(), { b: 2 });
});

test('two sessions whose files were swapped both read as no session', async (t) => {
  const s = await setup(t);
  const [a, b, untouched] = s.ids;
  const aBytes = await fs.readFile(s.fileOf(a));
  const bBytes = await fs.readFile(s.fileOf(b));
  await fs.writeFile(s.fileOf(a), bBytes);
  await fs.writeFile(s.fileOf(b), aBytes);
  await assertTampered(t, s, a, 'authentication', [untouched]);
  await assertTampered(t, s, b, 'authentication', [untouched]);
});

test('a session file copied over another one: the victim reads as no session, the source still reads', async (t) => {
  const s = await setup(t);
  const [victim, source, untouched] = s.ids;
  await fs.copyFile(s.fileOf(source), s.fileOf(victim));
  await assertTampered(t, s, victim, 'authentication', [source, untouched]);
});

test('a session file copied under a new name (a replayed id) opens for nobody', async (t) => {
  const s = await setup(t);
  const [source] = s.ids;
  const forgedId = 'F'.repeat(43);
  await fs.mkdir(path.dirname(s.fileOf(forgedId)), { recursive: true });
  await fs.copyFile(s.fileOf(source), s.fileOf(forgedId));
  await assertTampered(t, s, forgedId, 'authentication', s.ids);
});

test('an authentic file that names another id (forged with the key) reads as no session, reason content', async (t) => {
  const s = await setup(t);
  const [target, other, untouched] = s.ids;
  // Only someone holding the key can do this: seal, for the target's file name, the plaintext of
  // another session. The store checks the id inside.
  const header = readHeader(await fs.readFile(s.fileOf(target)));
  if (header === null) return t.fail('no header');
  const envelope = seal(createKeyring([KEY]), header, Buffer.from(plaintextOf(other, JSON.stringify(s.data.get(other)))), fileNameOf(target));
  await fs.writeFile(s.fileOf(target), envelope);
  await assertTampered(t, s, target, 'content', [other, untouched]);
});

test('an authentic file whose content is not a session reads as no session, reason content', async (t) => {
  const s = await setup(t);
  const [target, ...others] = s.ids;
  const header = readHeader(await fs.readFile(s.fileOf(target)));
  if (header === null) return t.fail('no header');
  for (const plaintext of ['not json', '[]', 'null', `{"id":"${target}"}`, `{"id":"${target}","data":[1]}`, `{"id":7,"data":{}}`]) {
    await fs.writeFile(s.fileOf(target), seal(createKeyring([KEY]), header, Buffer.from(plaintext), fileNameOf(target)));
    const before = s.events.length;
    t.is(await s.store.load(target), null, plaintext);
    t.deepEqual(s.events.slice(before), [{ file: s.relativeOf(target), reason: 'content' }], plaintext);
  }
  for (const id of others) t.deepEqual((await s.store.load(id))?.toJSON(), s.data.get(id));
});

/*
 * What happens next to a tampered session. Asserted behaviour: it is treated as not existing. A
 * destroy() removes the bad file and resolves false (there was no valid session); a commit of a
 * session loaded before the file was changed resolves 'gone' (the session ends, nothing is
 * written back, and the bad file stays as evidence for `verify`: only a destroy removes a file).
 * Each reports the tamper. A new session is unaffected.
 */
test('destroy() of a tampered session removes its file and resolves false', async (t) => {
  const s = await setup(t);
  const [target, ...others] = s.ids;
  await rewrite(s.fileOf(target), (bytes) => bytes.subarray(0, bytes.length - 1));
  t.false(await s.store.destroy(target));
  t.deepEqual(s.events, [{ file: s.relativeOf(target), reason: 'authentication' }]);
  await t.throwsAsync(fs.stat(s.fileOf(target)), { code: 'ENOENT' });
  t.is(await s.store.load(target), null);
  t.is(s.events.length, 1, 'a removed file is reported again');
  for (const id of others) t.deepEqual((await s.store.load(id))?.toJSON(), s.data.get(id));
  t.is((await listFiles(s.dir)).length, 2);
});

test('a commit onto a tampered file ends the session instead of writing or throwing', async (t) => {
  const s = await setup(t);
  const [target, ...others] = s.ids;
  const session = await s.store.load(target);
  if (session === null) return t.fail('not loaded');
  await rewrite(s.fileOf(target), (bytes) => {
    bytes[70] = bytes[70]! ^ 0xff;
    return bytes;
  });
  const tampered = await fs.readFile(s.fileOf(target));
  session.set('after', 'tamper');
  t.is(await s.store.commit(session), 'gone');
  t.true(session.isGone);
  t.deepEqual(s.events, [{ file: s.relativeOf(target), reason: 'authentication' }]);
  const evidence = await fs.readFile(s.fileOf(target));
  t.is(evidence[70], tampered[70], 'the tampered file is left as it was');
  // Never brought back by a later save.
  session.set('again', 1);
  await session.save();
  t.is(await s.store.load(target), null);
  t.deepEqual(await fs.readFile(s.fileOf(target)), evidence);
  t.is(s.events.length, 2, 'the load reports it again');
  for (const id of others) t.deepEqual((await s.store.load(id))?.toJSON(), s.data.get(id));
  const fresh = s.store.create();
  fresh.set('new', true);
  await fresh.save();
  t.deepEqual((await s.store.load(fresh.id))?.toJSON(), { new: true });
});

test('gc leaves a file with a foreign header alone and counts it as unreadable', async (t) => {
  const s = await setup(t);
  const [target, ...others] = s.ids;
  await rewrite(s.fileOf(target), (bytes) => {
    bytes[0] = 0x00;
    return bytes;
  });
  const report = await s.store.gc();
  t.like(report, { scanned: 3, unreadable: 1, expired: 0, removed: 0 });
  t.true((await fs.stat(s.fileOf(target))).isFile());
  t.deepEqual(s.events, [], 'gc decrypts nothing, so it reports no tamper');
  for (const id of others) t.deepEqual((await s.store.load(id))?.toJSON(), s.data.get(id));
});
