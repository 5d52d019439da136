import test from 'ava';
import { openStore, Session, type JsonValue } from '../../src/index.js';
import { KEY, tempDir } from '../helpers/temp-dir.js';

async function freshSession(t: Parameters<typeof tempDir>[0]): Promise<Session> {
  const store = await openStore({ dir: await tempDir(t), keys: KEY });
  return store.create();
}

test('a session behaves like a Map of JSON values', async (t) => {
  const session = await freshSession(t);
  t.true(session.isNew);
  t.regex(session.id, /^[A-Za-z0-9_-]{43}$/);
  t.is(session.set('user', 'alice'), session);
  session.set('cart', [1, { sku: 'x', qty: 2 }]).set('n', 0);
  t.is(session.size, 3);
  t.true(session.has('user'));
  t.false(session.has('nope'));
  t.is(session.get('user'), 'alice');
  t.deepEqual(session.get('cart'), [1, { sku: 'x', qty: 2 }]);
  t.deepEqual([...session.keys()], ['user', 'cart', 'n']);
  t.deepEqual([...session.values()], ['alice', [1, { sku: 'x', qty: 2 }], 0]);
  t.deepEqual([...session], [...session.entries()]);
  const seen: Array<[string, JsonValue]> = [];
  session.forEach((value, key, self) => {
    t.is(self, session);
    seen.push([key, value]);
  });
  t.deepEqual(seen, [...session.entries()]);
  t.true(session.delete('n'));
  t.false(session.delete('n'));
  t.is(Object.prototype.toString.call(session), '[object Session]');
  t.false(session instanceof Map);
  session.clear();
  t.is(session.size, 0);
});

const notJson: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['a function', () => 1],
  ['a symbol', Symbol('s')],
  ['a bigint', 10n],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-0', -0],
  ['a Date', new Date(0)],
  ['a Map', new Map()],
  ['a class instance', new (class Point {})()],
  ['a nested undefined', { a: { b: undefined } }],
  ['a sparse array', [1, , 3]],
  ['an array with extra properties', Object.assign([1], { extra: 1 })],
  ['a symbol key', { [Symbol('k')]: 1 }],
  ['a getter', Object.defineProperty({}, 'x', { get: () => 1, enumerable: true })],
  ['a hidden property', Object.defineProperty({}, 'x', { value: 1, enumerable: false })],
];

for (const [label, value] of notJson) {
  test(`set() of ${label} throws TypeError ERR_SESSION_VALUE and changes nothing`, async (t) => {
    const session = await freshSession(t);
    session.set('kept', 'yes');
    session.set('x', 'before');
    const error = t.throws(() => session.set('x', value), { instanceOf: TypeError });
    t.is((error as { code?: string }).code, 'ERR_SESSION_VALUE');
    t.is(session.get('x'), 'before');
    t.is(session.size, 2);
  });
}

test('an ERR_SESSION_VALUE message names the top-level key and the kind of value, never a nested path or a value', async (t) => {
  const session = await freshSession(t);
  const cases: Array<[unknown, RegExp]> = [
    [{ 'alice@example.com': { card: 10n } }, /key "contacts" holds a bigint/],
    [[{ phone: '+41 79 123 45 67', note: undefined }], /key "contacts" holds undefined/],
    [{ 'bob@example.com': Number.NaN }, /key "contacts" holds a non-finite number/],
    [{ 'carol@example.com': { since: new Date(0) } }, /key "contacts" holds an instance of Date/],
    [{ 'dave@example.com': Object.defineProperty({}, 'pin-4711', { get: () => 1, enumerable: true }) }, /key "contacts" holds an accessor/],
    [10n, /key "contacts" is a bigint/],
  ];
  // A prototype whose `constructor` is named with data: not echoed as a class name.
  const sneaky = Object.create({ constructor: Object.defineProperty(function () {}, 'name', { value: 'erin@example.com' }) }) as object;
  cases.push([{ x: sneaky }, /key "contacts" holds an instance of a class/]);
  for (const [value, pattern] of cases) {
    const error = t.throws(() => session.set('contacts', value), { instanceOf: TypeError });
    t.is((error as { code?: string }).code, 'ERR_SESSION_VALUE');
    t.regex(error?.message ?? '', pattern);
    for (const secret of ['@example.com', 'erin', 'card', 'phone', '+41', 'note', 'since', 'pin-4711', '[0]', '.x', 'NaN', '1970']) {
      t.false(error?.message.includes(secret), `the message holds ${secret}: ${error?.message}`);
    }
  }
});

test('set() of a cycle throws ERR_SESSION_VALUE', async (t) => {
  const session = await freshSession(t);
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  t.throws(() => session.set('x', cyclic), { instanceOf: TypeError, code: 'ERR_SESSION_VALUE' } as never);
  t.false(session.has('x'));
});

test('shared (non-cyclic) references and null-prototype objects are accepted', async (t) => {
  const session = await freshSession(t);
  const shared = { a: 1 };
  session.set('x', [shared, shared]);
  const bare = Object.assign(Object.create(null) as Record<string, number>, { b: 2 });
  session.set('y', bare);
  t.deepEqual(session.get('x'), [{ a: 1 }, { a: 1 }]);
  t.is((session.get('y') as Record<string, number>)['b'], 2);
});

test('values are copied and frozen at set(): later mutation throws instead of being silently lost', async (t) => {
  const session = await freshSession(t);
  const cart = { items: ['a'] };
  session.set('cart', cart);
  cart.items.push('b');
  t.deepEqual(session.get('cart'), { items: ['a'] });
  const stored = session.get('cart') as { items: string[] };
  t.throws(() => stored.items.push('c'), { instanceOf: TypeError });
});

test('keys must be strings', async (t) => {
  const session = await freshSession(t);
  t.throws(() => session.set(1 as unknown as string, 'x'), { code: 'ERR_SESSION_VALUE' } as never);
});

test('a key named __proto__ is stored as data, not as a prototype', async (t) => {
  const dir = await tempDir(t);
  const store = await openStore({ dir, keys: KEY });
  const session = store.create();
  session.set('__proto__', { polluted: true });
  await session.save();
  const again = await store.load(session.id);
  t.deepEqual(again?.get('__proto__'), { polluted: true });
  t.is(({} as Record<string, unknown>)['polluted'], undefined);
});
