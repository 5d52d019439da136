import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { CookieJar } from '../../helpers/http.js';
import { fixtureProcess } from '../../helpers/server-process.js';
import { KEY } from '../../helpers/temp-dir.js';
import { sharedTargets, type Target } from './targets.js';

/*
 * Two server processes ("hosts") on one Redis, standalone and Cluster: requests on one session
 * spread over both lose nothing, and a logout on one host stays a logout whatever the other
 * commits. Real processes, real HTTP, real cookies, real Redis.
 */

const targets = sharedTargets();

async function twoHosts(t: ExecutionContext, target: Target): Promise<[string, string]> {
  const prefix = `h${randomBytes(6).toString('hex')}:`;
  const args = [KEY, prefix, ...target.urls];
  return Promise.all([fixtureProcess(t, 'test/fixtures/redis-http-server.ts', args), fixtureProcess(t, 'test/fixtures/redis-http-server.ts', args)]);
}

for (const name of ['standalone', 'cluster'] as const) {
  test.serial(`${name}: 50 concurrent requests on one session spread over two hosts, 5 rounds: none of 250 updates lost, deletions too`, async (t) => {
    const hosts = await twoHosts(t, targets[name]!);
    const jar = new CookieJar();
    let lost = 0;
    for (let round = 0; round < 5; round++) {
      await jar.fetch(`${hosts[0]}/set/round/${round}`, { method: 'POST' });
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, index) => jar.fetch(`${hosts[index % 2]}/set/k${round}-${index}/v${index}`, { method: 'POST' })),
      );
      t.true(
        answers.every((answer) => answer.status === 200),
        'every request answered 200',
      );
      const data = (await (await jar.fetch(`${hosts[1]}/get`)).json()) as Record<string, string>;
      for (let index = 0; index < 50; index++) if (data[`k${round}-${index}`] !== `v${index}`) lost++;
    }
    t.is(lost, 0, `${lost} of 250 updates lost`);
    t.log(`${name}: 0 of 250 updates lost across two hosts`);

    const deletions = await Promise.all(Array.from({ length: 50 }, (_, index) => jar.fetch(`${hosts[index % 2]}/delete/k0-${index}`, { method: 'POST' })));
    t.true(deletions.every((answer) => answer.status === 200));
    const after = (await (await jar.fetch(`${hosts[0]}/get`)).json()) as Record<string, string>;
    t.deepEqual(
      Object.keys(after).filter((key) => key.startsWith('k0-')),
      [],
    );
  });

  test.serial(`${name}: a logout on one host while the other commits on the same session stays a logout`, async (t) => {
    const hosts = await twoHosts(t, targets[name]!);
    const jar = new CookieJar();
    await jar.fetch(`${hosts[0]}/set/user/alice`, { method: 'POST' });
    const cookie = jar.header();
    // The other host keeps committing with the old cookie while the first logs out.
    const writes = Array.from({ length: 30 }, async (_, index) => {
      await sleep(index);
      return fetch(`${hosts[1]}/set/late${index}/x`, { method: 'POST', headers: { cookie } });
    });
    await sleep(5);
    const logout = await fetch(`${hosts[0]}/expire`, { method: 'POST', headers: { cookie } });
    t.is(logout.status, 200);
    await Promise.all(writes);
    for (const host of hosts) {
      t.is(await (await fetch(`${host}/get`, { headers: { cookie } })).json(), null, 'the session is gone on both hosts');
    }
  });
}
