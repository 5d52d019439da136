import { randomBytes } from 'node:crypto';
import { redisBackend } from '../../../src/redis.js';
import { backendContract } from '../contract.js';
import { sharedTargets } from './targets.js';

/*
 * The store behaviours every backend shows, on a real redis-server and on a real 3-master
 * Redis Cluster. Each test gets a prefix of its own on the shared servers: a fresh storage.
 */

const targets = sharedTargets();

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
