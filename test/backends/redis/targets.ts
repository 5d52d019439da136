import test from 'ava';
import { createClient, createCluster } from 'redis';
import { redisEnvelopes, type RedisClientLike, type RedisEnvelopes, type RedisEnvelopesOptions } from '../../../src/backends/redis/envelopes.js';
import { redisBackend } from '../../../src/redis.js';
import type { ContractStorage } from '../contract.js';
import { startRedis, startRedisCluster, type RedisClusterNodes, type RedisServer } from '../../helpers/redis.js';

export type TargetName = 'standalone' | 'cluster';

type Client = ReturnType<typeof createClient>;
type Cluster = ReturnType<typeof createCluster>;

/** One real deployment, with an application's client and the layer over it. */
export interface Target {
  readonly name: TargetName;
  readonly urls: readonly string[];
  readonly client: Client | Cluster;
  readonly envelopes: RedisEnvelopes;
  /** A client straight to each master (standalone: one), for checks behind the layer's back. */
  readonly masters: readonly Client[];
  /** The master client that owns `key`. */
  masterOf(key: string): Promise<Client>;
  stop(): Promise<void>;
}

export async function standaloneTarget(options?: RedisEnvelopesOptions): Promise<Target & { readonly server: RedisServer }> {
  const server = await startRedis();
  // Errors on the client are reported as events; without a listener Node would throw them.
  const client = await createClient({ url: server.url })
    .on('error', () => undefined)
    .connect();
  return {
    name: 'standalone',
    urls: [server.url],
    client,
    envelopes: redisEnvelopes(client, options),
    masters: [client],
    masterOf: () => Promise.resolve(client),
    server,
    stop: async () => {
      client.destroy();
      await server.stop();
    },
  };
}

export async function clusterTarget(options?: RedisEnvelopesOptions): Promise<Target & { readonly nodes: RedisClusterNodes }> {
  const nodes = await startRedisCluster();
  const cluster = await createCluster({ rootNodes: nodes.rootNodes.map(({ url }) => ({ url })) })
    .on('error', () => undefined)
    .connect();
  const masters = await Promise.all(
    nodes.nodes.map((node) =>
      createClient({ url: node.url })
        .on('error', () => undefined)
        .connect(),
    ),
  );
  return {
    name: 'cluster',
    urls: nodes.rootNodes.map(({ url }) => url),
    client: cluster,
    envelopes: redisEnvelopes(cluster, options),
    masters,
    masterOf: async (key) => {
      const slot = Number(await masters[0]!.sendCommand(['CLUSTER', 'KEYSLOT', key]));
      const ranges = (await masters[0]!.sendCommand(['CLUSTER', 'SLOTS'])) as [number, number, [string, number, ...unknown[]]][];
      const range = ranges.find(([first, last]) => first <= slot && slot <= last);
      const index = nodes.nodes.findIndex((node) => node.port === range?.[2][1]);
      const master = masters[index];
      if (master === undefined) throw new Error(`no master owns slot ${slot}`);
      return master;
    },
    nodes,
    stop: async () => {
      cluster.destroy();
      for (const master of masters) master.destroy();
      await nodes.stop();
    },
  };
}

/**
 * A standalone server and a 3-master Cluster for one test file: started before its tests,
 * stopped after them. `targets.standalone` / `targets.cluster` once started.
 */
export function sharedTargets(): Partial<Record<TargetName, Target>> {
  const targets: Partial<Record<TargetName, Target>> = {};
  test.before(async () => {
    [targets.standalone, targets.cluster] = await Promise.all([standaloneTarget(), clusterTarget()]);
  });
  test.after.always(async () => {
    await Promise.all(Object.values(targets).map((target) => target.stop()));
  });
  return targets;
}

/**
 * A fresh storage for the backend contract on a shared target: its own key prefix, the store
 * talking through `client` (the target's own, or another library's on the same servers), and
 * checks made behind its back through the target's layer.
 */
export function contractStorage(target: Target, client: RedisClientLike, prefix: string): ContractStorage {
  return {
    backend: () => redisBackend({ client, prefix }),
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
  };
}
