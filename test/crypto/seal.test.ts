import fs from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { openStore } from '../../src/index.js';
import { createKeyring } from '../../src/crypto/keys.js';
import { ENVELOPE_OVERHEAD, HEADER_BYTES, readHeader, seal, unseal, type EnvelopeTimes } from '../../src/crypto/seal.js';
import { fileNameOf } from '../../src/core/session-id.js';
import { KEY, OLD_KEY, tempDir } from '../helpers/temp-dir.js';

const NAME = 'a'.repeat(64);
const OTHER_NAME = 'b'.repeat(64);
const TIMES: EnvelopeTimes = {
  created: Date.UTC(2024, 1, 29, 8, 15, 30, 123),
  written: Date.UTC(2024, 2, 1, 9, 0, 0, 456),
  absoluteDeadline: Date.UTC(2024, 2, 7, 8, 15, 30, 123),
  idleSeconds: 1800,
};
const PLAINTEXT = Buffer.from('{"id":"x","data":{"greeting":"Grüße ✓"}}', 'utf8');

test('seal then unseal gives back the plaintext and the header', (t) => {
  const keyring = createKeyring([KEY]);
  const envelope = seal(keyring, TIMES, PLAINTEXT, NAME);
  t.is(envelope.length, ENVELOPE_OVERHEAD + PLAINTEXT.length);
  const opened = unseal(keyring, envelope, NAME);
  if (!opened.ok) return t.fail(`unseal failed: ${opened.reason}`);
  t.true(opened.plaintext.equals(PLAINTEXT));
  t.deepEqual(opened.header, { version: 1, keyIdHex: keyring.primary.idHex, ...TIMES });
});

test('the ciphertext does not contain the plaintext, and each seal uses a fresh nonce', (t) => {
  const keyring = createKeyring([KEY]);
  const first = seal(keyring, TIMES, PLAINTEXT, NAME);
  const second = seal(keyring, TIMES, PLAINTEXT, NAME);
  t.is(first.indexOf(Buffer.from('Grüße')), -1);
  t.false(first.subarray(40, 52).equals(second.subarray(40, 52)), 'same nonce twice');
  t.false(first.subarray(HEADER_BYTES).equals(second.subarray(HEADER_BYTES)), 'same ciphertext twice');
  // Everything before the nonce is the same clear-text header.
  t.true(first.subarray(0, 40).equals(second.subarray(0, 40)));
});

test('header fields sit at their documented offsets, big-endian', (t) => {
  const keyring = createKeyring([KEY]);
  const envelope = seal(keyring, TIMES, PLAINTEXT, NAME);
  t.deepEqual([...envelope.subarray(0, 4)], [0x53, 0x53, 0x4e, 0x01]); // "SSN" + version 1
  t.true(envelope.subarray(4, 12).equals(keyring.primary.id));
  t.is(envelope.readDoubleBE(12), TIMES.created);
  t.is(envelope.readDoubleBE(20), TIMES.written);
  t.is(envelope.readDoubleBE(28), TIMES.absoluteDeadline);
  t.is(envelope.readUInt32BE(36), TIMES.idleSeconds);
  t.deepEqual(readHeader(envelope), { version: 1, keyIdHex: keyring.primary.id.toString('hex'), ...TIMES });
  // The header alone (what gc reads) is enough for readHeader.
  t.deepEqual(readHeader(envelope.subarray(0, HEADER_BYTES)), readHeader(envelope));
});

test('readHeader refuses what is not an envelope', (t) => {
  const envelope = seal(createKeyring([KEY]), TIMES, PLAINTEXT, NAME);
  t.is(readHeader(envelope.subarray(0, HEADER_BYTES - 1)), null);
  t.is(readHeader(Buffer.alloc(0)), null);
  const wrongMagic = Buffer.from(envelope);
  wrongMagic[3] = 0x02; // another format version
  t.is(readHeader(wrongMagic), null);
});

test('unseal under another file name fails authentication', (t) => {
  const keyring = createKeyring([KEY]);
  const envelope = seal(keyring, TIMES, PLAINTEXT, NAME);
  t.deepEqual(unseal(keyring, envelope, OTHER_NAME), { ok: false, reason: 'authentication' });
  t.deepEqual(unseal(keyring, envelope, NAME.slice(1)), { ok: false, reason: 'authentication' });
});

test('unseal reports unknown keys, short input and changed bytes', (t) => {
  const envelope = seal(createKeyring([OLD_KEY]), TIMES, PLAINTEXT, NAME);
  t.deepEqual(unseal(createKeyring([KEY]), envelope, NAME), { ok: false, reason: 'unknown-key' });
  t.deepEqual(unseal(createKeyring([KEY]), envelope.subarray(0, ENVELOPE_OVERHEAD - 1), NAME), { ok: false, reason: 'format' });
  const changed = Buffer.from(envelope);
  changed[20] = changed[20]! ^ 0x01; // the `written` time, clear text but authenticated
  t.deepEqual(unseal(createKeyring([OLD_KEY]), changed, NAME), { ok: false, reason: 'authentication' });
});

test('any key of the keyring unseals, the first one seals', (t) => {
  const old = createKeyring([OLD_KEY]);
  const rotated = createKeyring([KEY, OLD_KEY]);
  const fromOld = seal(old, TIMES, PLAINTEXT, NAME);
  const opened = unseal(rotated, fromOld, NAME);
  t.true(opened.ok && opened.plaintext.equals(PLAINTEXT));
  const fromRotated = seal(rotated, TIMES, PLAINTEXT, NAME);
  t.is(readHeader(fromRotated)?.keyIdHex, createKeyring([KEY]).primary.idHex);
  t.deepEqual(unseal(old, fromRotated, NAME), { ok: false, reason: 'unknown-key' });
});

test('an empty plaintext round-trips', (t) => {
  const keyring = createKeyring([KEY]);
  const envelope = seal(keyring, TIMES, Buffer.alloc(0), NAME);
  t.is(envelope.length, ENVELOPE_OVERHEAD);
  const opened = unseal(keyring, envelope, NAME);
  t.true(opened.ok && opened.plaintext.length === 0);
});

/*
 * Format back-compat guard. test/fixtures/sealed-v1.bin was sealed once by the v1 format (see
 * test/fixtures/make-sealed-v1.ts for how) and is checked in. Every value below is hard-coded on
 * purpose: if this test fails, files already on users' disks would stop opening.
 */
const FIXTURE = new URL('../fixtures/sealed-v1.bin', import.meta.url);
const FIXTURE_KEY = 'fixture-key-v1-0123456789abcdef-0123456789abcdef';
const FIXTURE_ID = 'FIXTURE-v1-session-id_0123456789abcdefghijk';
const FIXTURE_NAME = '6e39006456c91c379cc7fe9ed88b9dfa24f178e45f2aa4fa528e750c9f49c697';
const FIXTURE_KEY_ID = '0af5ba863b0c95b1';
const FIXTURE_TIMES = {
  created: Date.UTC(2025, 0, 1, 12, 0, 0),
  written: Date.UTC(2025, 0, 1, 12, 30, 0),
  absoluteDeadline: Date.UTC(2025, 0, 8, 12, 0, 0),
  idleSeconds: 1800,
};
const FIXTURE_DATA = { user: 'ada', visits: 42, cart: { items: [1, 'two', null, true] }, greeting: 'Grüße ✓' };

test('format v1 fixture: header and file name are unchanged', async (t) => {
  const envelope = await fs.readFile(FIXTURE);
  t.is(fileNameOf(FIXTURE_ID), FIXTURE_NAME);
  t.is(createKeyring([FIXTURE_KEY]).primary.idHex, FIXTURE_KEY_ID);
  t.deepEqual(readHeader(envelope), { version: 1, keyIdHex: FIXTURE_KEY_ID, ...FIXTURE_TIMES });
});

test('format v1 fixture still opens through the store', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, FIXTURE_NAME.slice(0, 2), `${FIXTURE_NAME}.sess`);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.copyFile(FIXTURE, file);
  // The clock is pinned inside the fixture's lifetime, so the test does not age.
  const now = () => FIXTURE_TIMES.written + 1000;
  const tampered: unknown[] = [];

  const store = await openStore({ dir, keys: FIXTURE_KEY, now });
  store.on('tamper', (event) => tampered.push(event));
  const session = await store.load(FIXTURE_ID);
  t.truthy(session, 'the v1 fixture did not open');
  t.deepEqual(session?.toJSON(), FIXTURE_DATA);

  // Also as an older key of a rotated keyring.
  const rotated = await openStore({ dir, keys: [KEY, FIXTURE_KEY], now });
  rotated.on('tamper', (event) => tampered.push(event));
  t.deepEqual((await rotated.load(FIXTURE_ID))?.toJSON(), FIXTURE_DATA);
  t.deepEqual(tampered, []);
});

/*
 * The idle timeout is a uint32 of seconds in the header. openStore() must not accept a value the
 * envelope cannot hold and then fail every commit with a bare RangeError: either it refuses the
 * option (ERR_SESSION_OPTION), or the session stores and reads back.
 */
for (const idleTimeout of [2 ** 32 - 1, 2 ** 32, 5_000_000_000]) {
  test(`idleTimeout ${idleTimeout}: refused up front or stored, never a RangeError at commit`, async (t) => {
    const dir = await tempDir(t);
    let store;
    try {
      store = await openStore({ dir, keys: KEY, idleTimeout });
    } catch (error) {
      t.is((error as { code?: unknown }).code, 'ERR_SESSION_OPTION');
      return;
    }
    const session = store.create();
    session.set('a', 1);
    await t.notThrowsAsync(session.save());
    t.deepEqual((await store.load(session.id))?.toJSON(), { a: 1 });
  });
}
