/** One command's arguments: binary-safe. */
export type RedisArgs = readonly (string | Buffer)[];

export interface CallOptions {
  /** Blob strings come back as Buffers (envelopes) instead of strings (cursors, key names, config). */
  readonly buffers: boolean;
  readonly signal: AbortSignal;
}

/** One server: a standalone server, or one master of a cluster. */
export interface RedisNode {
  /** Sends one command to this node. */
  call(args: RedisArgs, options: CallOptions): Promise<unknown>;
}

/**
 * What the envelope operations need from a Redis client library, whichever it is. A driver
 * never retries, never queues while disconnected and never waits without the signal: those
 * rules are what let every operation fail fast and within its time limit.
 */
export interface RedisDriver {
  /** Sends one command about `key` to the master that owns it (following MOVED/ASK in a cluster). Throws at once if that connection is known to be down. */
  callKey(key: string, args: RedisArgs, options: CallOptions): Promise<unknown>;
  /** Every master: the one server, or each master of a cluster as the client last saw the topology. */
  masters(signal: AbortSignal): Promise<readonly RedisNode[]>;
}
