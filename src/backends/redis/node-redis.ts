import type { CallOptions, RedisArgs, RedisDriver, RedisNode } from './driver.js';
import { notConnected } from './failures.js';
import { keySlot } from './key-slot.js';

/*
 * The driver for node-redis v5 (the `redis` package): a client from createClient() or a cluster
 * from createCluster(), the very one the application already uses for everything else.
 *
 * - Buffers: each command passes its own `typeMapping` ({ [RESP_TYPES.BLOB_STRING]: Buffer } for
 *   envelopes, {} for strings), which overrides whatever the client was created or proxied with
 *   (node-redis merges per-command options over the client's).
 * - Routing: cluster.sendCommand(firstKey, isReadonly, args) sends to the master of the key's
 *   slot and follows MOVED/ASK itself, so EVALSHA/EVAL go to the node that owns the key — whose
 *   script cache is the one that matters. isReadonly is always false: a replica may lag, and a
 *   read that could serve a destroyed session is not one we want.
 * - No offline queue: node-redis queues commands while a connection is down (unless the client
 *   was made with disableOfflineQueue, which is the user's choice, not ours). So before sending,
 *   the connection that would carry the call is checked (`isReady`), and a down one fails the
 *   call at once; the AbortSignal bounds the rest, and also removes a queued command.
 */

/** `RESP_TYPES.BLOB_STRING` ('$'): a protocol constant, so no runtime import of the client library. */
const BLOB_STRING = 36;
const AS_BUFFERS = { [BLOB_STRING]: Buffer };
const AS_STRINGS = {};

interface CommandOptionsLike {
  typeMapping?: object;
  abortSignal?: AbortSignal;
}

/** The part of a node-redis v5 client (`createClient()`) this driver uses. */
export interface NodeRedisClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  sendCommand(args: ReadonlyArray<string | Buffer>, options?: CommandOptionsLike): Promise<unknown>;
}

interface NodeRedisClusterNode {
  readonly client?: { readonly isReady: boolean } | undefined;
}

/** The part of a node-redis v5 cluster (`createCluster()`) this driver uses. */
export interface NodeRedisCluster {
  readonly isOpen: boolean;
  readonly masters: readonly NodeRedisClusterNode[];
  readonly slots: readonly ({ readonly master: NodeRedisClusterNode } | undefined)[];
  sendCommand(
    firstKey: string | Buffer | undefined,
    isReadonly: boolean | undefined,
    args: ReadonlyArray<string | Buffer>,
    options?: CommandOptionsLike,
  ): Promise<unknown>;
  nodeClient(node: NodeRedisClusterNode): Promise<NodeRedisClient>;
}

function isCluster(client: NodeRedisClient | NodeRedisCluster): client is NodeRedisCluster {
  return 'masters' in client && 'nodeClient' in client;
}

function commandOptions(options: CallOptions): CommandOptionsLike {
  return { typeMapping: options.buffers ? AS_BUFFERS : AS_STRINGS, abortSignal: options.signal };
}

function nodeOf(client: NodeRedisClient): RedisNode {
  return {
    call: (args, options) => {
      if (!client.isOpen || !client.isReady) return Promise.reject(notConnected());
      return client.sendCommand(args, commandOptions(options));
    },
  };
}

/** A driver over a node-redis v5 client or cluster. */
export function nodeRedisDriver(client: NodeRedisClient | NodeRedisCluster): RedisDriver {
  if (!isCluster(client)) {
    const node = nodeOf(client);
    return {
      callKey: (_key: string, args: RedisArgs, options: CallOptions) => node.call(args, options),
      masters: () => Promise.resolve([node]),
    };
  }
  const cluster = client;
  return {
    callKey: (key, args, options) => {
      // A master whose connection is down stays in the slot map (with no replica to take over,
      // until the cluster says otherwise): fail at once rather than queue behind its reconnects.
      const master = cluster.slots[keySlot(key)]?.master;
      if (!cluster.isOpen || (master?.client !== undefined && !master.client.isReady)) return Promise.reject(notConnected());
      return cluster.sendCommand(key, false, args, commandOptions(options));
    },
    masters: async (signal) => {
      if (!cluster.isOpen) throw notConnected();
      const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(notConnected()), { once: true }));
      aborted.catch(() => undefined);
      // nodeClient() connects a master the client has not connected yet; a snapshot of the
      // topology as the client knows it now (a failover during a scan may hide or repeat keys).
      const clients = await Promise.race([Promise.all(cluster.masters.map((master) => cluster.nodeClient(master))), aborted]);
      return clients.map(nodeOf);
    },
  };
}
