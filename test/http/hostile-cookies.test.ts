import { createHash } from 'node:crypto';
import { existsSync, readdirSync, type Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import signature from 'cookie-signature';
import express from 'express';
import { openStore, sessions, type RequestWithTransaction, type Store, type Transaction } from '../../src/index.js';
import { defaultIo, type Io } from '../../src/backends/file/io.js';
import { createKeyring } from '../../src/crypto/keys.js';
import { fileNameOf, isValidId } from '../../src/core/session-id.js';
import { listen } from '../helpers/http.js';
import { KEY, OLD_KEY, tempDir } from '../helpers/temp-dir.js';

/**
 * A fixed corpus of hostile Cookie headers, built from a few live, destroyed and made-up ids,
 * each sent over real HTTP (fetch, or a raw socket when fetch refuses the bytes) to a plain
 * node:http server and to an Express 5 app. Nothing here is random at run time: only the ids
 * the store hands out differ between runs, never the shape of a case.
 */

/** Which session a case should find: session A, session B, or none. */
type Outcome = 'A' | 'B' | 'none';

interface HostileCase {
  readonly name: string;
  /** The Cookie header value; null sends no Cookie header. Chars above U+00FF go out as UTF-8, the rest as single bytes. */
  readonly cookie: string | null;
  /** Further raw header lines (sent over a raw socket). */
  readonly extraLines?: readonly string[];
  /** Acceptable outcomes of `getSession(false)`: almost always exactly one. */
  readonly expect: readonly Outcome[];
  /** Node's HTTP parser may refuse the request (400, 431) before the middleware sees it. */
  readonly mayBeRefused?: boolean;
}

/** What the corpus is built from. */
interface Known {
  readonly idA: string;
  readonly idB: string;
  /** Validly signed cookie values of the live sessions A and B. */
  readonly a: string;
  readonly b: string;
  /** A validly signed id whose session was destroyed. */
  readonly gone: string;
  /** The store's first signing secret. */
  readonly secret: string;
}

const sign = (value: string, secret: string): string => signature.sign(value, secret);
/** A deterministic 43-character base64url string, shaped like an id. */
const fakeId = (seed: string): string => createHash('sha256').update(seed).digest('base64url');
/** A deterministic base64 (with + and /) string of `length` characters. */
const fakeB64 = (seed: string, length: number): string => {
  let text = '';
  for (let round = 0; text.length < length; round++) text += createHash('sha512').update(`${seed}/${round}`).digest('base64').replace(/=+$/, '');
  return text.slice(0, length);
};
/** Replaces the character at `index` with a different one from the same alphabet. */
const flip = (text: string, index: number): string => {
  const char = text[index]!;
  const other = char === 'A' ? 'B' : 'A';
  return text.slice(0, index) + other + text.slice(index + 1);
};

const CONTROL_CHARS = [...Array.from({ length: 0x20 }, (_, code) => code).filter((code) => code !== 0x09), 0x7f].map((code) => String.fromCharCode(code));

const TRAVERSALS = [
  '../../../../etc/passwd',
  '../pwned',
  '../../pwned',
  '../../../pwned',
  '../../outer/canary.txt',
  '..%2f..%2f..%2fpwned',
  '..%2F..%2Fpwned',
  '%2e%2e%2f%2e%2e%2fpwned',
  '%252e%252e%252fpwned',
  '..\\..\\pwned',
  '..%5c..%5cpwned',
  '/etc/passwd',
  '/tmp/hostile-pwned',
  'C:\\Windows\\hostile-pwned',
  '....//....//pwned',
  '..;/pwned',
  '..%00/pwned',
  '..%c0%afpwned',
  'file:///etc/passwd',
  '~/pwned',
  '.',
  '..',
  './pwned',
  '%2e%2e',
];

const GARBAGE = [
  'garbage',
  'null',
  'undefined',
  'true',
  '0',
  '-1',
  'NaN',
  '[object Object]',
  '{"$ne":null}',
  '__proto__',
  'constructor',
  '<script>alert(1)</script>',
  "' OR '1'='1",
  '%00',
  '%0d%0aSet-Cookie:%20x=y',
  '${jndi:ldap://x/a}',
  's%3Aabc.def',
  '*',
  '\\',
  '/',
  '.',
  '...',
  'a.b.c.d',
  '%',
  '+/+/+/',
  '====',
];

function buildCorpus(k: Known): HostileCase[] {
  const cases: HostileCase[] = [];
  const add = (name: string, cookie: string | null, expect: Outcome | readonly Outcome[] = 'none', more: Partial<HostileCase> = {}): void => {
    cases.push({ name, cookie, expect: typeof expect === 'string' ? [expect] : expect, ...more });
  };
  const [idA, sigA] = [k.a.slice(0, 43), k.a.slice(44)];
  const unknownSecret = createKeyring([OLD_KEY]).keys[0]!.cookieSecret;

  // Nothing, or next to nothing.
  add('no Cookie header', null);
  add('empty Cookie header', '');
  for (const text of [';', ';;;;;', '=', '==', '=;=;=', 'sid', 'sid;', 'sid=', 'sid=;', 'sid=;sid=;sid=', '; sid', 'sid ; sid', 'sid=""', 'sid="', '"sid"']) {
    add(`almost nothing: ${JSON.stringify(text)}`, text);
  }

  // Our name without '=', or the signed value without our name.
  add('sid without =, then the signed value', `sid${k.a}`);
  add('the signed value alone', k.a);
  add('the signed value after a bare =', `=${k.a}`);
  add('sid and the signed value with a space, no =', `sid ${k.a}`);
  add('sid:value', `sid:${k.a}`);
  add('sid%3Dvalue', `sid%3D${k.a}`);
  add('the live id, unsigned', `sid=${idA}`);
  add('the live id with a trailing dot', `sid=${idA}.`);
  add('the signature alone', `sid=${sigA}`);
  add('the signature after a dot', `sid=.${sigA}`);
  add('express-session prefix on a valid value', `sid=s:${k.a}`);
  add('express-session prefix, encoded', `sid=s%3A${k.a}`);

  // Garbage: a fixed list, then well-formed values with wrong signatures, then printable junk.
  for (const text of GARBAGE) add(`garbage ${JSON.stringify(text)}`, `sid=${text}`);
  for (let index = 0; index < 20; index++) add(`well-formed, wrong signature #${index}`, `sid=${fakeId(`id-${index}`)}.${fakeB64(`sig-${index}`, 43)}`);
  for (let index = 0; index < 12; index++) {
    const junk = fakeB64(`junk-${index}`, 10 + index * 7).replace(/[+/]/g, (char) => (char === '+' ? '!' : '~'));
    add(`printable junk #${index}`, `sid=${junk}`);
  }

  // Names that look like ours but are not.
  for (const name of ['SID', 'Sid', 'sId', 'sid_', '_sid', 'sid[]', 'sid.', 's%69d', 'sid%00', 'sidsid', 'x-sid']) {
    add(`cookie name ${JSON.stringify(name)}`, `${name}=${k.a}`);
  }
  add('our value inside another cookie', `x=sid=${k.a}`);
  add('our value inside a quoted other cookie', `x="sid=${k.a}"`);
  add('a comma instead of a semicolon before sid', `a=1,sid=${k.a}`);
  add('a comma after the value', `sid=${k.a},`);
  add('a comma and another sid after the value', `sid=${k.a},sid=x`);
  add('= after the value', `sid=${k.a}=`);
  add('== before the value', `sid==${k.a}`);

  // Separators and whitespace around a valid value: still the valid value.
  add('trailing semicolon', `sid=${k.a};`, 'A');
  add('semicolons all around', ` ;;sid=${k.a};;;`, 'A');
  add('no space after the semicolon', `x=1;sid=${k.a}`, 'A');
  add('space before =', `sid =${k.a}`, 'A');
  add('space after =', `sid= ${k.a}`, 'A');
  add('tabs around =', `sid\t=\t${k.a}`, 'A');
  add('space before the next semicolon', `sid=${k.a} ; x=1`, 'A');
  add('prototype names beside', `__proto__=x; constructor=y; prototype=z; hasOwnProperty=w; sid=${k.a}`, 'A');
  add('an a=b=c cookie beside', `a=b=c; sid=${k.a}`, 'A');

  // Control characters, which fetch refuses: raw sockets; Node may refuse them first.
  for (const char of CONTROL_CHARS) {
    const hex = char.charCodeAt(0).toString(16).padStart(2, '0');
    add(`control 0x${hex} inside a valid value`, `sid=${k.a.slice(0, 20)}${char}${k.a.slice(20)}`, 'none', { mayBeRefused: true });
    // VT and FF are white space to JavaScript's trim(), so a lenient parser may read the name as sid.
    add(`control 0x${hex} before the name`, `${char}sid=${k.a}`, /\s/.test(char) ? ['A', 'none'] : 'none', { mayBeRefused: true });
  }
  add('tab inside a valid value', `sid=${k.a.slice(0, 20)}\t${k.a.slice(20)}`);
  add('NUL after a valid value', `sid=${k.a}\0`, 'none', { mayBeRefused: true });
  for (const char of ['\x01', '\x1b', '\x7f']) {
    add(`control 0x${char.charCodeAt(0).toString(16)} in another cookie, then a valid sid`, `junk=${char}; sid=${k.a}`, 'A', { mayBeRefused: true });
  }
  // CR LF ends the header line: what follows is another header, not part of the cookie.
  add('CRLF then an injected header', `sid=garbage\r\nX-Injected: 1`);
  add('CRLF then a second Cookie header with the valid value', `sid=garbage\r\nCookie: sid=${k.a}`, 'A');
  add('bare LF then a second Cookie header', `sid=garbage\nCookie: sid=${k.a}`, ['A', 'none'], { mayBeRefused: true });
  add('bare CR then a second Cookie header', `sid=garbage\rCookie: sid=${k.a}`, 'none', { mayBeRefused: true });
  add('obsolete line folding', `sid=garbage\r\n sid=${k.a}`, 'none', { mayBeRefused: true });
  add('two Cookie headers, the valid one second', 'sid=garbage', 'A', { extraLines: [`Cookie: sid=${k.a}`] });
  add('two Cookie headers, B then A', `sid=${k.b}`, 'B', { extraLines: [`Cookie: sid=${k.a}`] });

  // Long values.
  const eightK = 8192;
  add('8 KB value', `sid=${'A'.repeat(eightK)}`);
  add('8 KB after a valid value', `sid=${k.a}${'A'.repeat(eightK)}`);
  add('8 KB before a valid value', `sid=${'A'.repeat(eightK)}${k.a}`);
  add('8 KB of dots', `sid=${'.'.repeat(eightK)}`);
  add('8 KB of percent signs', `sid=${'%'.repeat(eightK)}`);
  add('8 KB of quotes', `sid="${'"'.repeat(eightK)}"`);
  add('8 KB of 0xff bytes', `sid=${'\u00ff'.repeat(eightK)}`);
  add('8 KB of ../', `sid=${'../'.repeat(eightK / 3)}pwned`);
  add('8 KB id-shaped then a signature', `sid=${'A'.repeat(eightK)}.${sigA}`);
  add('8 KB cookie name, then a valid sid', `${'x'.repeat(eightK)}=1; sid=${k.a}`, 'A');
  add('8 KB other cookie, then a valid sid', `pad=${'p'.repeat(eightK)}; sid=${k.a}`, 'A');
  add('a valid sid, then an 8 KB other cookie', `sid=${k.a}; pad=${'p'.repeat(eightK)}`, 'A');
  add('2000 small cookies, then a valid sid', `${'a=b; '.repeat(2000)}sid=${k.a}`, 'A');
  add('8 KB of empty sid cookies', 'sid=x;'.repeat(eightK / 6));
  add('a 20 KB header (over the parser limit)', `sid=${k.a}; pad=${'p'.repeat(20_000)}`, ['A', 'none'], { mayBeRefused: true });

  // Path traversal, plain and validly signed with the store's own secret.
  for (const text of [...TRAVERSALS, `${idA}/../../pwned`, `../${idA}`, `./${idA}`, `${idA}%2f..`, `../${idA}.${sigA}`]) {
    add(`traversal ${JSON.stringify(text)}`, `sid=${text}`);
    add(`traversal ${JSON.stringify(text)}, validly signed`, `sid=${sign(text, k.secret)}`);
  }
  // Validly signed values that are not ids (or ids of nothing).
  const nonIds = [
    '-'.repeat(43),
    '_'.repeat(43),
    'A'.repeat(43),
    '0'.repeat(43),
    'A'.repeat(42),
    'A'.repeat(44),
    '',
    ' ',
    idA.toLowerCase(),
    `${idA}\n`,
    `${idA} `,
    `${idA}.${idA}`,
  ];
  for (const [index, text] of nonIds.entries()) {
    add(
      `validly signed non-session #${index} ${JSON.stringify(text.length > 12 ? `${text.slice(0, 12)}…(${text.length})` : text)}`,
      `sid=${sign(text, k.secret)}`,
      'none',
      {
        mayBeRefused: /[\0-\x1f]/.test(text),
      },
    );
  }
  for (let index = 0; index < 8; index++) add(`validly signed id of no session #${index}`, `sid=${sign(fakeId(`nobody-${index}`), k.secret)}`);
  add('validly signed id of a destroyed session', `sid=${k.gone}`);
  add('validly signed id of a destroyed session, quoted', `sid="${k.gone}"`);

  // Signatures that are not the store's.
  add('signed with an unknown key', `sid=${sign(idA, unknownSecret)}`);
  add('signed with the raw key instead of its cookie secret', `sid=${sign(idA, KEY)}`);
  add('signed with an empty secret', `sid=${sign(idA, '')}`);
  add("A's id with B's signature", `sid=${idA}.${k.b.slice(44)}`);
  add("B's id with A's signature", `sid=${k.b.slice(0, 43)}.${sigA}`);
  add('the signature with padding', `sid=${k.a}=`);
  add('the signature one character short', `sid=${k.a.slice(0, -1)}`);
  add('the signature one character long', `sid=${k.a}A`);
  add('the signature in base64url', `sid=${idA}.${sigA.replace(/\+/g, '-').replace(/\//g, '_')}`, /[+/]/.test(sigA) ? 'none' : 'A');
  for (const index of [0, 21, 42, 44, 50, 60, 70, 86]) add(`one character changed at ${index}`, `sid=${flip(k.a, index)}`);
  add('the signature twice', `sid=${k.a}.${sigA}`);
  add('signature and id swapped', `sid=${sigA}.${idA}`);
  add('two dots', `sid=${idA}..${sigA}`);
  add('a space before the dot', `sid=${idA} .${sigA}`);
  add('the id upper-cased', `sid=${idA.toUpperCase()}.${sigA}`, idA.toUpperCase() === idA ? 'A' : 'none');
  for (const length of [1, 43, 44, 60, 86]) add(`the valid value cut to ${length}`, `sid=${k.a.slice(0, length)}`);

  // Unicode (UTF-8 over a raw socket above U+00FF; single bytes below).
  add('latin-1 letters', 'sid=ünïcödé');
  add('CJK', 'sid=日本語');
  add('an emoji', 'sid=🍪');
  add('an emoji before a valid value', `sid=🍪${k.a}`);
  add('zero-width space after a valid value', `sid=${k.a}\u200b`);
  add('zero-width space before a valid value', `sid=\u200b${k.a}`);
  add('BOM before the value', `sid=\ufeff${k.a}`);
  add('BOM before the name', `\ufeffsid=${k.a}`);
  add('line separator after a valid value', `sid=${k.a}\u2028`);
  add('right-to-left override', `sid=\u202e${k.a}`);
  add('a combining accent', `sid=${k.a}\u0301`);
  add('one-dot leader for the dot', `sid=${idA}\u2024${sigA}`);
  add('fullwidth name', `ｓｉｄ=${k.a}`);
  add('Cyrillic s in the name', `ѕid=${k.a}`);
  add('dotless i in the name', `sıd=${k.a}`);
  add('fullwidth signed value', `sid=${[...k.a].map((char) => String.fromCharCode(char.charCodeAt(0) + 0xfee0)).join('')}`);
  // U+00A0 is one byte on the wire; JavaScript's trim() counts it as white space, cookie parsers differ.
  add('no-break spaces around a valid value', `sid=\u00a0${k.a}\u00a0`, ['A', 'none']);
  add('0xff 0xfe bytes', 'sid=\u00ff\u00fe');

  // Quoted values.
  add('a quoted valid value', `sid="${k.a}"`, 'A');
  add('quoted garbage', 'sid="garbage"');
  add('an open quote before a valid value', `sid="${k.a}`);
  add('a close quote after a valid value', `sid=${k.a}"`);
  add('single quotes', `sid='${k.a}'`);
  add('double double quotes', `sid=""${k.a}""`);
  add('spaces inside the quotes', `sid=" ${k.a} "`);
  add('escaped quotes', `sid=\\"${k.a}\\"`);
  add('three quotes', 'sid="""');
  add('a quoted name', `"sid"=${k.a}`);

  // Several sid cookies: the first validly signed one with a live session wins.
  add('garbage, then the valid one', `sid=garbage; sid=${k.a}`, 'A');
  add('empty, then the valid one', `sid=; sid=${k.a}`, 'A');
  add('sid without =, then the valid one', `sid; sid=${k.a}`, 'A');
  add('destroyed, then the valid one', `sid=${k.gone}; sid=${k.a}`, 'A');
  add('unknown key, then the valid one', `sid=${sign(idA, unknownSecret)}; sid=${k.a}`, 'A');
  add('signed id of no session, then the valid one', `sid=${sign(fakeId('nobody-x'), k.secret)}; sid=${k.a}`, 'A');
  add('signed traversal, then the valid one', `sid=${sign('../../pwned', k.secret)}; sid=${k.a}`, 'A');
  add('well-formed wrong signature, then the valid one', `sid=${fakeId('w')}.${fakeB64('w', 43)}; sid=${k.a}`, 'A');
  add('quoted garbage, then the quoted valid one', `sid="garbage"; sid="${k.a}"`, 'A');
  add('SID=B, then sid=A', `SID=${k.b}; sid=${k.a}`, 'A');
  add('A then B', `sid=${k.a}; sid=${k.b}`, 'A');
  add('B then A', `sid=${k.b}; sid=${k.a}`, 'B');
  add('destroyed, B, then A', `sid=${k.gone}; sid=${k.b}; sid=${k.a}`, 'B');
  add('A twice', `sid=${k.a}; sid=${k.a}`, 'A');

  // 50 sid cookies. Garbage is skipped at the cost of a regex; at most 8 validly signed ids are
  // looked up (MAX_LOOKUPS in src/transaction.ts).
  const many = (count: number, make: (index: number) => string): string => Array.from({ length: count }, (_, index) => `sid=${make(index)}`).join('; ');
  add(
    '50 garbage sid cookies',
    many(50, (index) => `g${index}`),
  );
  add(
    '50 destroyed sid cookies',
    many(50, () => k.gone),
  );
  add(
    '50 well-formed wrong-signature sid cookies',
    many(50, (index) => `${fakeId(`m${index}`)}.${fakeB64(`m${index}`, 43)}`),
  );
  add(
    '50 signed ids of no session',
    many(50, (index) => sign(fakeId(`n${index}`), k.secret)),
  );
  add(
    '50 copies of the valid one',
    many(50, () => k.a),
    'A',
  );
  add(
    'the valid one, then 49 garbage',
    many(50, (index) => (index === 0 ? k.a : `g${index}`)),
    'A',
  );
  add(
    '7 garbage, the valid one 8th, then 42 more',
    many(50, (index) => (index === 7 ? k.a : `g${index}`)),
    'A',
  );
  add(
    '8 garbage, then the valid one 9th (garbage is not a lookup)',
    many(50, (index) => (index === 8 ? k.a : `g${index}`)),
    'A',
  );
  add(
    '49 garbage, then the valid one last (garbage is not a lookup)',
    many(50, (index) => (index === 49 ? k.a : `g${index}`)),
    'A',
  );
  add(
    '8 signed ids of no session, then the valid one 9th (past the 8 looked up)',
    many(50, (index) => (index === 8 ? k.a : sign(fakeId(`p${index}`), k.secret))),
  );
  add(
    '49 signed ids of no session, then the valid one last',
    many(50, (index) => (index === 49 ? k.a : sign(fakeId(`n${index}`), k.secret))),
  );
  add('50 sid without =, then the valid one', `${'sid; '.repeat(50)}sid=${k.a}`, 'A');
  add('50 other cookies, then the valid one', `${Array.from({ length: 50 }, (_, index) => `c${index}=v${index}`).join('; ')}; sid=${k.a}`, 'A');
  add('50 SID cookies, then the valid one', `${Array.from({ length: 50 }, () => `SID=${k.b}`).join('; ')}; sid=${k.a}`, 'A');
  return cases;
}

interface Reply {
  readonly status: number;
  readonly setCookies: readonly string[];
  readonly body: string;
  readonly via: 'fetch' | 'socket';
}

/** True when fetch sends `cookie` byte for byte (it refuses control chars and code points above 0xff, and trims white space). */
function fetchCanSend(cookie: string): boolean {
  return /^[\x20-\x7e\x80-\xff]*$/.test(cookie) && cookie === cookie.trim() && !/^[\t ]|[\t ]$/.test(cookie);
}

function encode(text: string): Buffer {
  return Buffer.from(text, /[^\0-\xff]/.test(text) ? 'utf8' : 'latin1');
}

/** One request over a raw socket, `Connection: close`; the reply is read to the end. */
function rawRequest(base: URL, method: string, target: string, hostile: HostileCase): Promise<Reply> {
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${base.host}`];
  const head = Buffer.concat([
    Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1'),
    ...(hostile.cookie === null ? [] : [Buffer.from('Cookie: ', 'latin1'), encode(hostile.cookie), Buffer.from('\r\n', 'latin1')]),
    ...(hostile.extraLines ?? []).map((line) => Buffer.concat([encode(line), Buffer.from('\r\n', 'latin1')])),
    Buffer.from('Content-Length: 0\r\nConnection: close\r\n\r\n', 'latin1'),
  ]);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(base.port), base.hostname);
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const bytes = Buffer.concat(chunks);
      if (bytes.length === 0) {
        reject(new Error(`no reply at all (${error?.message ?? 'closed'})`));
        return;
      }
      try {
        resolve(parseReply(bytes));
      } catch (parseError) {
        reject(parseError as Error);
      }
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish(new Error('timed out'));
    }, 10_000);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.on('error', (error) => finish(error));
    socket.write(head);
  });
}

function parseReply(bytes: Buffer): Reply {
  const split = bytes.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`a reply without a header end: ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`);
  const [statusLine = '', ...headerLines] = bytes.subarray(0, split).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3})/.exec(statusLine);
  if (status === null) throw new Error(`not an HTTP reply: ${JSON.stringify(statusLine)}`);
  const headers = headerLines.map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()] as const);
  let body = bytes.subarray(split + 4);
  if (headers.some(([name, value]) => name === 'transfer-encoding' && /chunked/i.test(value))) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = body.indexOf('\r\n', at);
      const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return {
    status: Number(status[1]),
    setCookies: headers.filter(([name]) => name === 'set-cookie').map(([, value]) => value),
    body: body.toString('utf8'),
    via: 'socket',
  };
}

async function send(base: URL, method: string, target: string, hostile: HostileCase): Promise<Reply> {
  if ((hostile.cookie !== null && !fetchCanSend(hostile.cookie)) || hostile.extraLines !== undefined) return rawRequest(base, method, target, hostile);
  const headers: Record<string, string> = { connection: 'close' };
  if (hostile.cookie !== null) headers['cookie'] = hostile.cookie;
  const response = await fetch(new URL(target, base), { method, headers, redirect: 'manual' });
  return { status: response.status, setCookies: response.headers.getSetCookie(), body: await response.text(), via: 'fetch' };
}

/**
 * Every file and folder under `root` (relative paths, folders end with '/'). Synchronous on
 * purpose: with a few hundred session folders it is several times faster than the async walk,
 * and no request is in flight while a test takes its snapshot. A folder that vanishes during the
 * walk (a lock folder being released) is skipped.
 */
async function tree(root: string): Promise<Set<string>> {
  const found = new Set<string>();
  const walk = (relative: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(path.join(root, relative), { withFileTypes: true });
    } catch (error) {
      if ((error as { code?: unknown }).code === 'ENOENT' && relative !== '') return;
      throw error;
    }
    for (const entry of entries) {
      const name = path.join(relative, entry.name);
      found.add(entry.isDirectory() ? `${name}/` : name);
      if (entry.isDirectory()) walk(name);
    }
  };
  walk('');
  return found;
}

/**
 * The tree once no session lock folder is left. Commits resolve only after their lock is
 * released (the last test pins that), so `lingered` should stay 0; the wait is kept so that a
 * regression shows as a count in the log rather than as a flaky snapshot.
 */
async function treeUnlocked(root: string, lingered: { count: number }): Promise<Set<string>> {
  let seen = false;
  for (let waited = 0; ; waited += 2) {
    const snapshot = await tree(root);
    const locks = [...snapshot].filter((entry) => entry.endsWith('.sess.lock/'));
    if (locks.length === 0) {
      if (seen) lingered.count++;
      return snapshot;
    }
    seen = true;
    if (waited >= 3000) throw new Error(`session lock folders stayed for 3 s: ${locks.join(', ')}`);
    await sleep(2);
  }
}

const minus = (a: ReadonlySet<string>, b: ReadonlySet<string>): string[] => [...a].filter((item) => !b.has(item)).sort();

/** Names containing "pwned" directly in `dir` (what a traversal to the temp root or the repo would leave). */
async function pwnedIn(dir: string): Promise<string[]> {
  return (await fs.readdir(dir)).filter((name) => name.includes('pwned'));
}

interface Body {
  readonly id: string | null;
  readonly who: string | null;
}

/** The `getSession(false)` route: reports the session found, never creates one. */
async function peek(trans: Transaction): Promise<Body> {
  const session = await trans.getSession(false);
  return { id: session?.id ?? null, who: (session?.get('who') as string | undefined) ?? null };
}

/** The `getSession()` route: gets or creates a session, then sets a key. */
async function touch(trans: Transaction): Promise<Body> {
  const session = await trans.getSession();
  session.set('hits', ((session.get('hits') as number | undefined) ?? 0) + 1);
  return { id: session.id, who: (session.get('who') as string | undefined) ?? null };
}

function plainServer(store: Store): http.RequestListener {
  const mw = sessions({ store });
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const trans = (req as RequestWithTransaction).trans;
    const route = req.url === '/peek' && req.method === 'GET' ? peek : req.url === '/touch' && req.method === 'POST' ? touch : null;
    if (route === null) {
      res.writeHead(404).end();
      return;
    }
    const body = await route(trans);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  return (req, res) =>
    mw(req, res, () => {
      handler(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`handler failed: ${String(error)}`);
      });
    });
}

function expressServer(store: Store): http.RequestListener {
  const app = express();
  app.use(sessions({ store }));
  app.get('/peek', async (req, res) => {
    res.json(await peek(req.trans));
  });
  app.post('/touch', async (req, res) => {
    res.json(await touch(req.trans));
  });
  return app;
}

/** The sid cookie of a set of Set-Cookie lines, or undefined. */
function sidOf(setCookies: readonly string[]): string | undefined {
  const lines = setCookies.filter((line) => line.startsWith('sid='));
  if (lines.length > 1) throw new Error(`several sid cookies set: ${lines.join(' | ')}`);
  return lines[0]?.slice(4).split(';')[0];
}

function describe(hostile: HostileCase): string {
  const shown =
    hostile.cookie === null
      ? 'none'
      : JSON.stringify(hostile.cookie.length > 160 ? `${hostile.cookie.slice(0, 160)}…(${hostile.cookie.length} chars)` : hostile.cookie);
  return `[${hostile.name}] Cookie: ${shown}${hostile.extraLines === undefined ? '' : ` + ${hostile.extraLines.length} more line(s)`}`;
}

/** Like `listen()`, with server options. */
async function listenWith(t: ExecutionContext, options: http.ServerOptions, handler: http.RequestListener): Promise<string> {
  const server = http.createServer(options, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.keepAliveTimeout = 500;
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function runCorpus(t: ExecutionContext, kind: string, serve: (store: Store) => http.RequestListener, serverOptions?: http.ServerOptions): Promise<void> {
  t.timeout(60_000);
  const started = performance.now();
  // <temp root>/outer/inner/sessions-data: up to three `../` from the data dir stay inside what is watched.
  const root = path.dirname(await tempDir(t));
  const dir = path.join(root, 'outer', 'inner', 'sessions-data');
  await fs.mkdir(path.dirname(dir), { recursive: true });
  await fs.writeFile(path.join(root, 'outer', 'canary.txt'), 'canary\n');
  const store = await openStore({ dir, keys: KEY });
  const events: string[] = [];
  store.on('tamper', (event) => events.push(`tamper ${event.file} ${event.reason}`));
  store.on('warning', (event) => events.push(`warning ${event.message}`));

  const liveA = store.create().set('who', 'A');
  const liveB = store.create().set('who', 'B');
  const destroyed = store.create().set('who', 'gone');
  for (const session of [liveA, liveB, destroyed]) await session.save();
  t.true(await store.destroy(destroyed.id));
  const secret = store.signingSecrets[0]!;
  const known: Known = { idA: liveA.id, idB: liveB.id, a: sign(liveA.id, secret), b: sign(liveB.id, secret), gone: sign(destroyed.id, secret), secret };
  const corpus = buildCorpus(known);
  t.true(corpus.length >= 200, `only ${corpus.length} cases`);
  t.is(new Set(corpus.map((hostile) => hostile.name)).size, corpus.length, 'case names are unique');

  const base = new URL(serverOptions === undefined ? await listen(t, serve(store)) : await listenWith(t, serverOptions, serve(store)));
  const dataPrefix = `${path.relative(root, dir)}/`;
  const ids: Record<Outcome, string | null> = { A: liveA.id, B: liveB.id, none: null };
  const whos: Record<Outcome, string | null> = { A: 'A', B: 'B', none: null };
  const repoRoot = path.resolve(import.meta.dirname, '../..');
  const pwnedBefore = { tmp: await pwnedIn(os.tmpdir()), repo: await pwnedIn(repoRoot), root: await pwnedIn(root) };
  const refused: string[] = [];
  const lingered = { count: 0 };
  const byTransport = { fetch: 0, socket: 0 };

  for (const hostile of corpus) {
    const what = describe(hostile);
    // (The first case starts right after a destroy() in the setup, whose lock may still be going.)
    const before = await treeUnlocked(root, lingered);

    // getSession(false): the expected session or none; nothing created, anywhere.
    const peeked = await send(base, 'GET', '/peek', hostile);
    byTransport[peeked.via]++;
    t.true(peeked.status < 500, `${what}: /peek answered ${peeked.status}: ${peeked.body.slice(0, 300)}`);
    const afterPeek = await tree(root);
    t.deepEqual(minus(afterPeek, before), [], `${what}: files created by getSession(false)`);
    t.deepEqual(minus(before, afterPeek), [], `${what}: files removed by getSession(false)`);
    let outcome: Outcome = 'none';
    if (peeked.status !== 200) {
      t.true(hostile.mayBeRefused === true && (peeked.status === 400 || peeked.status === 431), `${what}: /peek answered ${peeked.status}`);
      refused.push(`${hostile.name} (${peeked.status})`);
    } else {
      const body = JSON.parse(peeked.body) as Body;
      const found = (Object.keys(ids) as Outcome[]).find((key) => ids[key] === body.id);
      t.not(found, undefined, `${what}: getSession(false) found a session that is neither A nor B: ${body.id}`);
      outcome = found ?? 'none';
      t.true(hostile.expect.includes(outcome), `${what}: getSession(false) found ${outcome}, expected ${hostile.expect.join(' or ')}`);
      t.is(body.who, whos[outcome], `${what}: the data of the session found`);
      const sid = sidOf(peeked.setCookies);
      if (outcome === 'none') t.is(sid, undefined, `${what}: getSession(false) set a cookie without a session`);
      else if (sid !== undefined) t.is(signature.unsign(sid, secret) || null, ids[outcome], `${what}: a refreshed cookie names another session`);
    }

    // getSession() then a key: the session found, or a new one, never the id the client sent.
    const touched = await send(base, 'POST', '/touch', hostile);
    t.true(touched.status < 500, `${what}: /touch answered ${touched.status}: ${touched.body.slice(0, 300)}`);
    const afterTouch = await treeUnlocked(root, lingered);
    t.deepEqual(minus(afterPeek, afterTouch), [], `${what}: files removed by getSession()`);
    const created = minus(afterTouch, afterPeek);
    if (touched.status !== 200) {
      t.true(hostile.mayBeRefused === true && touched.status === peeked.status, `${what}: /touch answered ${touched.status}`);
      t.deepEqual(created, [], `${what}: a refused request created files`);
    } else {
      const body = JSON.parse(touched.body) as Body;
      const sid = sidOf(touched.setCookies);
      if (outcome !== 'none') {
        t.is(body.id, ids[outcome], `${what}: getSession() did not return the session getSession(false) found`);
        t.deepEqual(created, [], `${what}: getSession() on a live session created files`);
        if (sid !== undefined) t.is(signature.unsign(sid, secret) || null, ids[outcome], `${what}: a refreshed cookie names another session`);
      } else {
        t.truthy(sid, `${what}: a new session without a Set-Cookie`);
        const newId = (sid === undefined ? false : signature.unsign(sid, secret)) || null;
        t.true(isValidId(newId), `${what}: the Set-Cookie does not carry a validly signed id: ${sid}`);
        t.is(newId, body.id, `${what}: the Set-Cookie names another session than the one returned`);
        t.is(body.who, null, `${what}: a new session holds someone's data`);
        if (typeof newId === 'string') {
          t.false(
            (hostile.cookie ?? '').includes(newId) || (hostile.extraLines ?? []).some((line) => line.includes(newId)),
            `${what}: getSession() adopted the id sent`,
          );
          t.false([liveA.id, liveB.id, destroyed.id].includes(newId), `${what}: getSession() reused a known id`);
          const name = fileNameOf(newId);
          const file = `${dataPrefix}${name.slice(0, 2)}/${name}.sess`;
          t.deepEqual(
            created.filter((entry) => entry !== `${dataPrefix}${name.slice(0, 2)}/`),
            [file],
            `${what}: getSession() + set created something else than the new session's file`,
          );
          // Keep the data dir small: the next case starts from the same three sessions.
          t.true(await store.destroy(newId), `${what}: the new session was not stored`);
          await treeUnlocked(root, lingered);
        }
      }
    }

    // The server is still up, and session A still reads.
    const check = await fetch(new URL('/peek', base), { headers: { cookie: `sid=${known.a}`, connection: 'close' } });
    t.deepEqual(await check.json(), { id: liveA.id, who: 'A' }, `${what}: session A no longer reads afterwards`);
  }

  t.deepEqual(await pwnedIn(os.tmpdir()), pwnedBefore.tmp, 'a "pwned" file appeared in the temp dir');
  t.deepEqual(await pwnedIn(repoRoot), pwnedBefore.repo, 'a "pwned" file appeared in the repository');
  t.deepEqual(await pwnedIn(root), pwnedBefore.root);
  t.is(await fs.readFile(path.join(root, 'outer', 'canary.txt'), 'utf8'), 'canary\n');
  t.deepEqual(events, [], 'the store reported tampering or trouble');
  t.is(byTransport.fetch + byTransport.socket, corpus.length);
  t.log(
    `${kind}: ${corpus.length} hostile Cookie headers (${byTransport.fetch} over fetch, ${byTransport.socket} over raw sockets), ` +
      `${refused.length} refused by Node's parser, in ${Math.round(performance.now() - started)} ms`,
  );
  if (refused.length > 0) t.log(`refused: ${refused.join('; ')}`);
  if (lingered.count > 0) t.log(`${lingered.count} time(s) a session lock folder outlived the response or destroy()`);
}

test('hostile Cookie headers against a plain node:http server', (t) => runCorpus(t, 'node:http', plainServer));

test('hostile Cookie headers against an Express 5 app', (t) => runCorpus(t, 'express', expressServer));

// Node's lenient parser lets control characters through (as a lax proxy in front might): the
// middleware itself must then hold.
test('hostile Cookie headers against node:http with insecureHTTPParser', (t) =>
  runCorpus(t, 'node:http (insecureHTTPParser)', plainServer, { insecureHTTPParser: true }));

// Known bug, kept as an exposing test: README "How a commit works" ends with "6. Unlock", and a
// session lock folder means "while a commit holds its lock"; yet Store#runBatch resolves the
// commits inside `withLock`, before the release, so the middleware ends the response while the
// lock is still held. (The same order loses ERR_SESSION_LOCK_COMPROMISED when the release fails.)
// The corpus above once saw it by chance; a slow unlock makes it certain.
test('the response that commits a session leaves only after the session is unlocked', async (t) => {
  const dir = await tempDir(t);
  const io: Io = {
    ...defaultIo,
    lock: async (file, request) => {
      const release = await defaultIo.lock(file, request);
      return async () => {
        await sleep(150);
        await release();
      };
    },
  };
  const store = await openStore({ dir, keys: KEY, io });
  const base = new URL(await listen(t, plainServer(store)));
  const reply = await send(base, 'POST', '/touch', { name: 'no cookie', cookie: null, expect: ['none'] });
  t.is(reply.status, 200);
  const { id } = JSON.parse(reply.body) as Body;
  const name = fileNameOf(id ?? '');
  const file = path.join(dir, name.slice(0, 2), `${name}.sess`);
  t.true(existsSync(file), 'the session is on disk when the response arrives');
  t.false(existsSync(`${file}.lock`), 'the session is still locked when the response arrives');
});
