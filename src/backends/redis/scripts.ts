import { createHash } from 'node:crypto';

/*
 * The Lua scripts of the Redis backend. Each touches exactly one key (KEYS[1]), so it runs on
 * whichever cluster slot the key hashes to, without hash tags.
 *
 * They compare envelopes by their nonce: bytes 40–51 of the clear header (Lua strings are
 * 1-based: string.sub(v, 41, 52)). Every seal draws a fresh random nonce, so an equal nonce means
 * the very envelope the caller read, and a different one means another writer got there first.
 * An envelope shorter than 52 bytes has no nonce and never matches one.
 */

export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
}

function script(name: string, source: string): Script {
  return { name, source, sha1: createHash('sha1').update(source).digest('hex') };
}

/**
 * ARGV[1] = the nonce the caller holds ('' = none). Returns nil when the key is missing,
 * {0, pexpiretime, header} when the stored nonce equals ARGV[1], else {envelope, pexpiretime}.
 * The expiry comes back in both cases: another host's keep-alive moves it without a new nonce
 * (and with the 52-byte header, the last use can be told from it).
 */
export const READ_IF_CHANGED = script(
  'read-if-changed',
  `local v = redis.call('GET', KEYS[1])
if not v then return nil end
local at = redis.call('PEXPIRETIME', KEYS[1])
if ARGV[1] ~= '' and string.sub(v, 41, 52) == ARGV[1] then return {0, at, string.sub(v, 1, 52)} end
return {v, at}`,
);

/**
 * ARGV[1] = expected nonce ('' = the key must not exist), ARGV[2] = the new envelope,
 * ARGV[3] = its absolute expiry (Unix ms). Returns 0 on a mismatch, 1 once written.
 * A deadline already past (by the server's clock) deletes the key instead: the session is gone,
 * as the caller asked. Redis 7.0 happens to delete on SET … PXAT <past> too; saying so here keeps
 * that from resting on a server detail.
 */
export const COMPARE_AND_SET = script(
  'compare-and-set',
  `local v = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if v then return 0 end
elseif not v or string.sub(v, 41, 52) ~= ARGV[1] then
  return 0
end
local now = redis.call('TIME')
if tonumber(ARGV[3]) <= tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1`,
);

/** ARGV[1] = expected nonce. Deletes the key only if it still holds that envelope: 1, else 0. */
export const COMPARE_AND_DELETE = script(
  'compare-and-delete',
  `local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 41, 52) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`,
);
