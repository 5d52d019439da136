import { randomBytes } from 'node:crypto';
import { backendContract } from '../contract.js';
import { contractStorage, sharedTargets } from './targets.js';

/*
 * The store behaviours every backend shows, on a real redis-server and on a real 3-master
 * Redis Cluster. Each test gets a prefix of its own on the shared servers: a fresh storage.
 */

const targets = sharedTargets();

for (const name of ['standalone', 'cluster'] as const) {
  backendContract(`Redis ${name}`, () => {
    const target = targets[name]!;
    return Promise.resolve(contractStorage(target, target.client, `t${randomBytes(6).toString('hex')}:`));
  });
}
