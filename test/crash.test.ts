import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { openStore } from '../src/index.js';
import { crashValue, startWorker, type Worker } from './fixtures/worker.js';
import { KEY, listFiles, tempDir } from './helpers/temp-dir.js';

/*
 * A process killed at any moment of a commit (SIGKILL: no cleanup, no exit handlers) must leave
 * each session at its previous version or its new one, whole and readable; what it leaves behind
 * (temp files, lock folders) must neither be read as sessions nor get in the way.
 */

const SESSIONS = 12;
const LANES = 4;
const ROUNDS = 12;
const LOCK_STALE = 2;
const TEMP_FILE = /(?:^|\/)[0-9a-f]{64}\.sess\.\d+$/;
const SESSION_FILE = /^[0-9a-f]{2}\/[0-9a-f]{64}\.sess$/;

interface JournalEntry {
  readonly old: number;
  readonly next: number;
  done: boolean;
}

/** The last word of the journal on each session: the write it was about to make, and whether that write returned. */
async function readJournal(file: string): Promise<{ first: Map<string, number>; last: Map<string, JournalEntry>; intents: number; dones: number }> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const first = new Map<string, number>();
  const last = new Map<string, JournalEntry>();
  let intents = 0;
  let dones = 0;
  // A line is whole only with its newline.
  for (const line of text.split('\n').slice(0, -1)) {
    const [kind, id, a, b] = line.split(' ');
    if (kind === 'intent' && id !== undefined) {
      intents++;
      if (!first.has(id)) first.set(id, Number(a));
      last.set(id, { old: Number(a), next: Number(b), done: false });
    } else if (kind === 'done' && id !== undefined) {
      dones++;
      const entry = last.get(id);
      if (entry === undefined || entry.next !== Number(a)) throw new Error(`journal: done without its intent: ${line}`);
      entry.done = true;
    } else {
      throw new Error(`journal: unexpected line ${JSON.stringify(line)}`);
    }
  }
  return { first, last, intents, dones };
}

test('sessions survive a writer SIGKILLed mid-commit at random moments: old or new version, never neither', async (t) => {
  t.timeout(100_000);
  const dir = await tempDir(t);
  const root = path.dirname(dir);
  const store = await openStore({ dir, keys: KEY, lockStale: LOCK_STALE });
  const tampers: unknown[] = [];
  store.on('tamper', (event) => tampers.push(event));

  // Every session starts stored at version 0.
  const ids: string[] = [];
  for (let index = 0; index < SESSIONS; index++) {
    const session = store.create();
    session.set('value', crashValue(session.id, 0)).set('version', 0);
    await session.save();
    ids.push(session.id);
  }
  const lanes = Array.from({ length: LANES }, (_, lane) => ids.filter((_, index) => index % LANES === lane));
  /** The version each session is stored at, as verified after the last round. */
  const stored = new Map(ids.map((id) => [id, 0]));

  const checkAll = async (round: string, allowed: (id: string) => readonly number[]) => {
    for (const id of ids) {
      const session = await store.load(id);
      if (session === null) {
        t.fail(`${round}: session ${id} does not load`);
        continue;
      }
      const version = session.get('version');
      const ok = allowed(id);
      if (typeof version !== 'number' || !ok.includes(version)) {
        t.fail(`${round}: session ${id} is at version ${JSON.stringify(version)}, expected one of ${ok.join(', ')}`);
        continue;
      }
      // The whole value of that version, and nothing of another one.
      t.deepEqual(session.get('value'), crashValue(id, version), `${round}: value of ${id}`);
      t.is(session.size, 2);
      stored.set(id, version);
    }
  };

  let intents = 0;
  let dones = 0;
  let killedInFlight = 0;
  let landedNew = 0;
  const workers: Worker[] = [];
  t.teardown(() => {
    for (const worker of workers) worker.kill('SIGKILL');
  });

  for (let round = 0; round < ROUNDS; round++) {
    const journal = path.join(root, `journal-${round}.log`);
    const worker = startWorker({ op: 'crash-loop', dir, lanes, journal, lockStale: LOCK_STALE });
    workers.push(worker);
    await worker.waitFor('ready');
    // At least one commit returns before the kill, however slow the machine (a lock left by the
    // last round's kill can hold a lane for the stale period): then a random moment.
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && (await readJournal(journal)).dones === 0;) await sleep(10);
    await sleep(Math.random() * 280);
    worker.kill('SIGKILL');
    const exit = await worker.exited;
    t.is(exit.signal, 'SIGKILL', `round ${round}: the writer stopped before it was killed: ${worker.lines.join(' | ')}`);
    t.deepEqual(
      worker.lines.filter((line) => line !== 'ready'),
      [],
      `round ${round}: the writer reported trouble`,
    );

    const { first, last, intents: roundIntents, dones: roundDones } = await readJournal(journal);
    intents += roundIntents;
    dones += roundDones;
    // The journal itself is consistent: each session continues from the version verified last round.
    for (const [id, old] of first) t.is(stored.get(id), old, `round ${round}: writer started ${id} from version ${old}`);
    for (const entry of last.values()) if (!entry.done) killedInFlight++;
    const before = new Map(stored);
    await checkAll(`round ${round}`, (id) => {
      const entry = last.get(id);
      if (entry === undefined) return [stored.get(id)!]; // not written this round: unchanged
      if (entry.done) return [entry.next]; // a commit that returned is on disk
      return [entry.old, entry.next]; // killed mid-commit: either, whole
    });
    for (const [id, entry] of last) if (!entry.done && stored.get(id) === entry.next && before.get(id) !== entry.next) landedNew++;
  }

  t.log(`${ROUNDS} kills; ${intents} commits started, ${dones} returned; ${killedInFlight} interrupted (${landedNew} of them landed)`);
  t.true(dones >= SESSIONS, `the writer made too little progress to test anything (${dones} commits)`);
  t.true(killedInFlight >= ROUNDS / 2, `too few kills hit a commit in flight (${killedInFlight})`);
  t.deepEqual(tampers, [], 'no session read as tampered/unreadable');

  // Debris: temp files of killed writers (made sure of by adding some: a torn one and a whole one).
  const files = await listFiles(dir);
  const leftover = files.filter((file) => TEMP_FILE.test(file));
  t.log(`temp files left by the kills: ${leftover.length}`);
  const sessionFiles = files.filter((file) => SESSION_FILE.test(file));
  t.is(sessionFiles.length, SESSIONS);
  for (const [index, file] of sessionFiles.slice(0, 3).entries()) {
    const bytes = await fs.readFile(path.join(dir, file));
    await fs.writeFile(path.join(dir, `${file}.${4_000_000_000 + index}`), index === 0 ? bytes.subarray(0, bytes.length >> 1) : bytes);
  }
  const temps = (await listFiles(dir)).filter((file) => TEMP_FILE.test(file));
  t.true(temps.length >= 3);

  // Reads and commits work beside them, and gc counts them as neither sessions nor unreadable.
  await checkAll('with temp files', (id) => [stored.get(id)!]);
  const report = await store.gc();
  t.is(report.scanned, SESSIONS, 'gc counts only session files');
  t.is(report.unreadable, 0);
  t.is(report.expired, 0);
  t.is(report.removed, 0);
  // A listing that opens every session (log out everywhere) does not take them for sessions either.
  t.is(await store.destroyWhere(() => false), 0);
  t.deepEqual(tampers, []);
  const fresh = (await listFiles(dir)).filter((file) => TEMP_FILE.test(file));
  t.deepEqual(fresh.sort(), temps.sort(), 'gc left fresh temp files alone (a live write may own them)');
  for (const id of ids) {
    const session = await store.load(id);
    const next = stored.get(id)! + 1;
    session?.set('value', crashValue(id, next)).set('version', next);
    t.is(session && (await store.commit(session)), 'written');
  }
  await checkAll('after commits beside temp files', (id) => [stored.get(id)! + 1]);

  // Once older than gc's threshold (60 s), temp files are debris: gc removes them, and only them.
  const past = new Date(Date.now() - 5 * 60_000);
  for (const file of temps) await fs.utimes(path.join(dir, file), past, past);
  const cleaned = await store.gc();
  t.true(cleaned.debrisRemoved >= temps.length, `gc removed ${cleaned.debrisRemoved} debris entries of ${temps.length} old temp files`);
  t.is(cleaned.scanned, SESSIONS);
  t.is(cleaned.removed, 0);
  const after = await listFiles(dir);
  t.deepEqual(
    after.filter((file) => !SESSION_FILE.test(file)),
    [],
    'only session files are left',
  );
  t.is(after.length, SESSIONS);
  await checkAll('after gc', (id) => [stored.get(id)!]);
  t.deepEqual(tampers, []);
});
