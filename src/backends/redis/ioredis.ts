import { sessionTypeError } from '../../errors.js';
import type { CallOptions, RedisArgs, RedisDriver, RedisNode } from './driver.js';
import { notConnected } from './failures.js';
import { keySlot } from './key-slot.js';

/*
 * The driver for ioredis v5 (and iovalkey, its fork with the same API): a `new Redis()` or a
 * `new Cluster()` the application already uses.
 *
 * - Buffers: `callBuffer` answers blob strings as Buffers (envelopes), `call` as strings (cursors,
 *   key names, config); integers and nil are the same either way.
 * - Routing: a cluster client finds the key of EVALSHA/EVAL from its numkeys argument and sends
 *   the call to the master of that key's slot, following MOVED/ASK itself.
 * - No offline queue: ioredis queues commands while a connection is down (its `enableOfflineQueue`
 *   default). So before sending, the connection that would carry the call is checked (`status`),
 *   and one that broke fails the call at once. ioredis has no way to abort a call: the
 *   caller's deadline stops waiting for it (`withDeadline`).
 */

type IoRedisArg = string | Buffer | number;

/** The part of an ioredis v5 `Redis` (or iovalkey) client this driver uses. */
export interface IoRedisClient {
  readonly status: string;
  readonly isCluster: boolean;
  readonly options: { readonly host?: string | undefined; readonly port?: number | undefined; readonly keyPrefix?: string | undefined };
  call(command: string, args: IoRedisArg[]): Promise<unknown>;
  callBuffer(command: string, args: IoRedisArg[]): Promise<unknown>;
  connect(): Promise<unknown>;
  once(event: 'ready', listener: () => void): unknown;
}

/** The part of an ioredis v5 `Cluster` (or iovalkey) this driver uses. */
export interface IoRedisCluster {
  readonly status: string;
  readonly isCluster: boolean;
  readonly options: { readonly keyPrefix?: string | undefined };
  /** Per slot, the node keys (`host:port`) that serve it, the master first. */
  readonly slots: readonly (readonly string[] | undefined)[];
  call(command: string, args: IoRedisArg[]): Promise<unknown>;
  callBuffer(command: string, args: IoRedisArg[]): Promise<unknown>;
  nodes(role: 'master'): IoRedisClient[];
  on(event: '-node' | '+node', listener: (node: IoRedisClient) => void): unknown;
  refreshSlotsCache(callback?: (error?: Error | null) => void): void;
}

/** Whether `client` is an ioredis (or iovalkey) client or cluster, told by its shape: no import of the library. */
export function isIoRedis(client: object): client is IoRedisClient | IoRedisCluster {
  return 'callBuffer' in client && typeof client.callBuffer === 'function' && 'status' in client && typeof client.status === 'string';
}

function send(client: IoRedisClient | IoRedisCluster, args: RedisArgs, options: CallOptions): Promise<unknown> {
  const [command, ...rest] = args;
  if (command === undefined) return Promise.reject(new TypeError('sealed-sessions: a Redis command needs a name'));
  const name = String(command);
  const call = options.buffers ? client.callBuffer(name, rest) : client.call(name, rest);
  return call.catch((error: unknown) => {
    throw isConnectionLost(error) ? Object.assign(notConnected(), { cause: error }) : error;
  });
}

/** ioredis's words for "the connection went away": a plain Error, or one of its own classes. */
function isConnectionLost(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    error.name === 'ClusterAllFailedError' ||
    /^(Connection is closed\.|Stream isn't writeable|Cluster isn't ready)/.test(error.message)
  );
}

/**
 * A connection that broke and has not come back: ioredis is between reconnect attempts, or gave
 * up. ('wait' is a lazy connection not opened yet, as a cluster keeps its masters until the first
 * call routed to them: sending opens it.)
 */
function isDown(client: IoRedisClient | IoRedisCluster): boolean {
  return client.status === 'reconnecting' || client.status === 'close' || client.status === 'end';
}

function nodeOf(client: IoRedisClient): RedisNode {
  return {
    call: (args, options) => (isDown(client) ? Promise.reject(notConnected()) : send(client, args, options)),
  };
}

function nodeKey(node: IoRedisClient): string {
  return `${node.options.host}:${node.options.port}`;
}

/** How often, at most, calls for a dropped master try to reach it again. */
const PROBE_EVERY_MS = 1000;

/**
 * What a cluster client's pool says of its masters. ioredis drops a node from its pool when its
 * connection ends, and puts it back (lazily, not connected) when it next reads the topology —
 * which it does only after a failed call, and the calls that fail at once here never reach it.
 * So a dropped node counts as down until it is connected again, and calls for it probe it now
 * and then: re-read the topology, or connect the node the pool holds again.
 */
class ClusterNodes {
  /** Nodes (`host:port`) dropped from the pool, until connected again. */
  readonly #dropped = new Set<string>();
  readonly #cluster: IoRedisCluster;
  #lastProbe = -Infinity;

  constructor(cluster: IoRedisCluster) {
    this.#cluster = cluster;
    cluster.on('-node', (node) => this.#dropped.add(nodeKey(node)));
    cluster.on('+node', (node) => {
      if (this.#dropped.has(nodeKey(node))) node.once('ready', () => this.#dropped.delete(nodeKey(node)));
    });
  }

  /** Whether the master of `key`'s slot is known to be down: dropped from the pool, or its connection broke. */
  masterDown(key: string): boolean {
    return this.#down(this.#cluster.slots[keySlot(key)]?.[0]);
  }

  /** Whether any master that serves a slot is known to be down: a scan would miss its keys without saying so. */
  anyMasterDown(): boolean {
    const masters = new Set<string>();
    for (const nodes of this.#cluster.slots) if (nodes?.[0] !== undefined) masters.add(nodes[0]);
    return [...masters].some((master) => this.#down(master));
  }

  #down(master: string | undefined): boolean {
    if (master === undefined) return false;
    const node = this.#cluster.nodes('master').find((candidate) => nodeKey(candidate) === master);
    if (this.#dropped.has(master)) {
      this.#probe(node);
      return true;
    }
    return node !== undefined && isDown(node);
  }

  #probe(node: IoRedisClient | undefined): void {
    if (performance.now() - this.#lastProbe < PROBE_EVERY_MS) return;
    this.#lastProbe = performance.now();
    // Either way a failure changes nothing (the node stays dropped), and a later call probes again.
    if (node === undefined) this.#cluster.refreshSlotsCache(() => undefined);
    else if (node.status === 'wait') node.connect().catch(() => undefined);
  }
}

/** Per cluster client: one set of listeners, however many stores share it. */
const clusterNodes = new WeakMap<IoRedisCluster, ClusterNodes>();

/** A driver over an ioredis v5 (or iovalkey) client or cluster. */
export function ioRedisDriver(client: IoRedisClient | IoRedisCluster): RedisDriver {
  // ioredis puts its keyPrefix before the keys of a command, but not into SCAN's pattern nor
  // into the keys SCAN answers with: listings (stats, verify, rekey, all()) would miss every
  // session, or prefix twice. Our own `prefix` does what it does, everywhere.
  const keyPrefix = client.options.keyPrefix;
  if (keyPrefix !== undefined && keyPrefix !== '') {
    throw sessionTypeError(
      'ERR_SESSION_OPTION',
      `redisBackend cannot use an ioredis client made with keyPrefix (its scans would miss every session): use a client without it and redisBackend's own prefix option, e.g. prefix: '${keyPrefix}sess:'`,
    );
  }
  if (!client.isCluster) {
    const node = nodeOf(client as IoRedisClient);
    return {
      callKey: (_key, args, options) => node.call(args, options),
      masters: () => Promise.resolve([node]),
    };
  }
  const cluster = client as IoRedisCluster;
  let nodes = clusterNodes.get(cluster);
  if (nodes === undefined) {
    nodes = new ClusterNodes(cluster);
    clusterNodes.set(cluster, nodes);
  }
  const pool = nodes;
  return {
    callKey: (key, args, options) => {
      // Fail at once rather than queue behind reconnects and slot refreshes.
      if (isDown(cluster) || pool.masterDown(key)) return Promise.reject(notConnected());
      return send(cluster, args, options);
    },
    masters: () => {
      if (isDown(cluster) || pool.anyMasterDown()) return Promise.reject(notConnected());
      // The topology as the client knows it now (a failover during a scan may hide or repeat keys).
      return Promise.resolve(cluster.nodes('master').map(nodeOf));
    },
  };
}
