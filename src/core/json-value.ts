import { sessionTypeError } from '../errors.js';

/** What a session can hold: exactly what JSON can carry. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * Checks that JSON holds `value` exactly, then returns a deep-frozen copy of it. Throws a
 * TypeError with code ERR_SESSION_VALUE otherwise.
 *
 * Frozen, because a session stores a copy: mutating an object after `set()` would change nothing
 * on disk, and a frozen value makes that mistake throw instead of being silently lost.
 */
export function toSessionValue(value: unknown, key: string): JsonValue {
  assertJson(value, new Set(), key);
  return deepFreeze(JSON.parse(JSON.stringify(value)) as JsonValue);
}

function fail(where: string, what: string): never {
  // The key is the application's own name for its data, never an id or a value.
  throw sessionTypeError('ERR_SESSION_VALUE', `${where}: ${what} cannot be stored in a session (values must be JSON)`);
}

function assertJson(value: unknown, ancestors: Set<object>, where: string): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) fail(where, String(value));
      // JSON writes -0 as 0: it would not come back as it went in.
      if (Object.is(value, -0)) fail(where, '-0');
      return;
    case 'object':
      break;
    default:
      fail(where, typeof value);
  }
  if (value === null) return;
  if (ancestors.has(value)) fail(where, 'a cycle');
  ancestors.add(value);
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) fail(where, 'an Array subclass');
    if (Reflect.ownKeys(value).length !== value.length + 1) fail(where, 'an array with holes or extra properties');
    for (let index = 0; index < value.length; index++) assertJson(value[index], ancestors, `${where}[${index}]`);
  } else {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      fail(where, `an instance of ${(value as object).constructor?.name ?? 'a class'}`);
    }
    for (const property of Reflect.ownKeys(value)) {
      if (typeof property === 'symbol') fail(where, 'a symbol key');
      const descriptor = Object.getOwnPropertyDescriptor(value, property)!;
      if (!descriptor.enumerable || !('value' in descriptor)) fail(`${where}.${property}`, 'an accessor or hidden property');
      assertJson(descriptor.value, ancestors, `${where}.${property}`);
    }
  }
  ancestors.delete(value);
}

/** Freezes a value parsed from JSON, all the way down. */
export function deepFreeze<T extends JsonValue>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
