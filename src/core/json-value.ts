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
  assertJson(value, new Set(), key, false);
  return deepFreeze(JSON.parse(JSON.stringify(value)) as JsonValue);
}

/**
 * Why the message names only the top-level key and the kind of value: a nested path is the
 * session's own data (`contacts.alice@example.com.card`), and error messages end up in logs.
 * The top-level key is the application's own name for its data.
 */
function fail(key: string, what: string, nested: boolean): never {
  throw sessionTypeError(
    'ERR_SESSION_VALUE',
    `the value set for key ${JSON.stringify(key)} ${nested ? 'holds' : 'is'} ${what}, which a session cannot store (values must be JSON)`,
  );
}

/** A class's name, when it looks like one (a prototype's `constructor` could be anything). */
function className(prototype: object): string {
  const constructor: unknown = Object.getOwnPropertyDescriptor(prototype, 'constructor')?.value;
  const name = typeof constructor === 'function' ? constructor.name : '';
  return /^[A-Za-z_$][\w$]{0,63}$/.test(name) ? name : 'a class';
}

function assertJson(value: unknown, ancestors: Set<object>, key: string, nested: boolean): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) fail(key, 'a non-finite number', nested);
      // JSON writes -0 as 0: it would not come back as it went in.
      if (Object.is(value, -0)) fail(key, 'a negative zero', nested);
      return;
    case 'object':
      break;
    default:
      fail(key, value === undefined ? 'undefined' : `a ${typeof value}`, nested);
  }
  if (value === null) return;
  if (ancestors.has(value)) fail(key, 'a cycle', true);
  ancestors.add(value);
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) fail(key, 'an Array subclass', nested);
    if (Reflect.ownKeys(value).length !== value.length + 1) fail(key, 'an array with holes or extra properties', nested);
    for (let index = 0; index < value.length; index++) assertJson(value[index], ancestors, key, true);
  } else {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) {
      fail(key, `an instance of ${className(prototype as object)}`, nested);
    }
    for (const property of Reflect.ownKeys(value)) {
      if (typeof property === 'symbol') fail(key, 'a symbol key', true);
      const descriptor = Object.getOwnPropertyDescriptor(value, property)!;
      if (!descriptor.enumerable || !('value' in descriptor)) fail(key, 'an accessor or hidden property', true);
      assertJson(descriptor.value, ancestors, key, true);
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
