import { randomBytes } from 'node:crypto';
import test from 'ava';
import { redisBackend } from '../../../src/redis.js';
import { backendContract } from '../contract.js';
import { clusterTarget, standaloneTarget, type Target } from './targets.js';

/*
 * The store behaviours every backend shows, on a real redis-server and on a real 3-master
 * Redis Cluster. Each test gets a prefix of its own on the shared servers: a fresh storage.
 */

const targets: Partial<Record<'standalone' | 'cluster', Target>> = {};

test.before(async () => {
  [targets.standalone, targets.cluster] = await Promise.all([standaloneTarget(), clusterTarget()]);
});

test.after.always(async () => {
  await Promise.all(Object.values(targets).map((target) => target.stop()));
});

for (const name of ['standalone', 'cluster'] as const) {
  backendContract(`Redis ${name}`, () => {
    const target = targets[name]!;
    const prefix = `t${randomBytes(6).toString('hex')}:`;
    return Promise.resolve({
      backend: () => redisBackend({ client: target.client, prefix }),
      corrupt: async (file) => {
        const key = `${prefix}${file}`;
        const envelope = (await target.envelopes.get(key))!;
        envelope[envelope.length - 1]! ^= 0x01;
        await target.envelopes.set(key, envelope);
      },
      count: async () => {
        let count = 0;
        for await (const _ of target.envelopes.scanHeaders(prefix)) count++;
        return count;
      },
    });
  });
}
