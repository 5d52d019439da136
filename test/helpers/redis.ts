// Real redis-server processes for tests: a standalone server or a 3-master cluster, each on free
// 127.0.0.1 ports with persistence off and a temp dir of its own, gone when the test process ends.
// redis-server is found (REDIS_SERVER, else the PATH) or, as root with apt-get, installed from
// Debian's package once for all test processes; otherwise the error says the one command to run.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import lockfile from 'proper-lockfile';
import { generate } from 'selfsigned';

const run = promisify(execFile);

export interface RedisBinaries {
  readonly server: string;
  readonly cli: string;
}

export interface RedisServer {
  readonly url: string;
  /** With `startRedis(t, { tls: true })`: `rediss://127.0.0.1:<its TLS port>`, served with `certificate`. */
  readonly tlsUrl?: string;
  /** The self-signed certificate (PEM) of the TLS port, for a client's `ca` or NODE_EXTRA_CA_CERTS. */
  readonly certificate?: { readonly file: string; readonly pem: string };
  readonly port: number;
  /** Its working dir (the log is `redis.log` there; a cluster node's `nodes.conf` too). */
  readonly dir: string;
  /** SIGTERM, wait for the exit, remove the dir. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), wait for the exit; the dir stays, so `restart()` can follow. */
  kill(): Promise<void>;
  /** Starts it again on the same port and dir (kills it first if it still runs). */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open, nothing answers (a hung server). */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
}

export interface RedisClusterNodes {
  /** For `createCluster({ rootNodes })`. */
  readonly rootNodes: readonly { readonly url: string }[];
  readonly nodes: readonly RedisServer[];
  /** SIGKILLs node `index` (a master: the cluster has no replicas). */
  killNode(index: number): Promise<void>;
  stop(): Promise<void>;
}

const INSTALL_COMMAND = process.platform === 'darwin' ? 'brew install redis' : 'sudo apt-get install -y redis-server';
const INSTALL_LOCK = path.join(os.tmpdir(), 'sealed-sessions-redis-install');

let binaries: Promise<RedisBinaries> | undefined;

/** redis-server and redis-cli, installing Debian's package first when they are missing and we can. Never resolves to "skip". */
export function redisBinaries(): Promise<RedisBinaries> {
  binaries ??= locateOrInstall();
  return binaries;
}

async function locateOrInstall(): Promise<RedisBinaries> {
  const explicit = process.env['REDIS_SERVER'];
  if (explicit !== undefined && explicit !== '') {
    const found = besideServer(explicit);
    if (found === null) throw new Error(`REDIS_SERVER=${explicit} is not an executable redis-server with redis-cli beside it or on the PATH`);
    return found;
  }
  const found = onPath();
  if (found !== null) return found;
  if (process.getuid?.() !== 0 || findOnPath('apt-get') === null) {
    throw new Error(`redis-server is not installed (tests need it; set REDIS_SERVER or put it on the PATH). Run: ${INSTALL_COMMAND}`);
  }
  await installDebianPackage();
  const installed = onPath();
  if (installed === null) throw new Error(`apt-get installed redis-server, yet it is not on the PATH. Run: ${INSTALL_COMMAND}`);
  return installed;
}

function onPath(): RedisBinaries | null {
  const server = findOnPath('redis-server');
  return server === null ? null : besideServer(server);
}

function besideServer(server: string): RedisBinaries | null {
  if (!isExecutable(server)) return null;
  const sibling = path.join(path.dirname(server), 'redis-cli');
  const cli = isExecutable(sibling) ? sibling : findOnPath('redis-cli');
  return cli === null ? null : { server, cli };
}

function findOnPath(name: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/*
 * ava runs each test file in its own process, all at once: the first to get here installs, the
 * others wait on the lock and then find the binaries. The lock lives in os.tmpdir() so every
 * worktree and checkout on the machine shares it (apt-get has one dpkg database too).
 */
async function installDebianPackage(): Promise<void> {
  await fsp.writeFile(INSTALL_LOCK, '', { flag: 'a' });
  let compromised: Error | undefined;
  const release = await lockfile.lock(INSTALL_LOCK, {
    // An install takes tens of seconds; wait up to ten minutes for another process's.
    retries: { retries: 1200, factor: 1.2, minTimeout: 100, maxTimeout: 500 },
    onCompromised: (error) => {
      // The default throws from a timer and kills the process; apt-get's own lock still guards dpkg.
      compromised = error;
    },
  });
  try {
    if (onPath() !== null) return;
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => run('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=300', 'redis-server'], { env, maxBuffer: 64 * 1024 * 1024 });
    try {
      await install();
    } catch {
      // Typically "Unable to locate package": no package lists yet (a fresh container).
      await run('apt-get', ['update', '-qq', '-o', 'DPkg::Lock::Timeout=300'], { env, maxBuffer: 64 * 1024 * 1024 });
      await install();
    }
    await stopSystemService();
  } finally {
    if (compromised === undefined) await release().catch(() => undefined);
  }
}

/**
 * Debian's package may start (and enable) a system redis-server on 6379. Tests never use it —
 * each starts its own on free ports — so stop and disable it rather than leave a stray service.
 */
async function stopSystemService(): Promise<void> {
  const quietly = (command: string, args: string[]) => run(command, args).catch(() => undefined);
  if (fs.existsSync('/run/systemd/system') && findOnPath('systemctl') !== null) {
    await quietly('systemctl', ['disable', '--now', 'redis-server']);
  } else if (fs.existsSync('/etc/init.d/redis-server')) {
    await quietly('/etc/init.d/redis-server', ['stop']);
    if (findOnPath('update-rc.d') !== null) await quietly('update-rc.d', ['redis-server', 'disable']);
  }
}

// Every server this process started, killed (and its dir removed) however the process ends.
const running = new Map<ChildProcess, string>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const child of running.keys()) child.kill('SIGKILL');
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A standalone redis-server on a free 127.0.0.1 port, persistence off. With `t`, stopped when that
 * test ends. With `tls`, it also serves TLS on a second free port, with a certificate made for
 * 127.0.0.1 and signed by itself (no client certificate asked for).
 */
export async function startRedis(t?: ExecutionContext, options: { tls?: boolean } = {}): Promise<RedisServer> {
  let server: RedisServer;
  if (options.tls === true) {
    const certDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sealed-sessions-redis-tls-'));
    dirs.add(certDir);
    const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const file = path.join(certDir, 'certificate.pem');
    const keyFile = path.join(certDir, 'key.pem');
    await fsp.writeFile(file, pems.cert);
    await fsp.writeFile(keyFile, pems.private, { mode: 0o600 });
    const tlsPort = await freePort(false);
    const args = ['--tls-port', String(tlsPort), '--tls-cert-file', file, '--tls-key-file', keyFile, '--tls-ca-cert-file', file, '--tls-auth-clients', 'no'];
    const plain = await startServer(args, false);
    server = {
      ...plain,
      tlsUrl: `rediss://127.0.0.1:${tlsPort}`,
      certificate: { file, pem: pems.cert },
      stop: async () => {
        await plain.stop();
        dirs.delete(certDir);
        await fsp.rm(certDir, { recursive: true, force: true });
      },
    };
  } else {
    server = await startServer([], false);
  }
  t?.teardown(() => server.stop());
  return server;
}

/**
 * A 3-master cluster (no replicas) on free ports: about 2 s. `cluster-require-full-coverage no`,
 * so a killed master takes only its own slots down, and a short node timeout, so the others
 * notice quickly.
 */
export async function startRedisCluster(options: { masters?: number; nodeTimeoutMs?: number } = {}): Promise<RedisClusterNodes> {
  const { masters = 3, nodeTimeoutMs = 500 } = options;
  const { cli } = await redisBinaries();
  const clusterArgs = [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    'nodes.conf',
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    '--cluster-require-full-coverage',
    'no',
  ];
  const nodes = await Promise.all(Array.from({ length: masters }, () => startServer(clusterArgs, true)));
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    await run(cli, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 60_000 });
    await Promise.all(nodes.map((node) => waitFor(node.port, 'CLUSTER INFO', /cluster_state:ok/, 30_000)));
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    rootNodes: nodes.map((node) => ({ url: node.url })),
    nodes,
    killNode: async (index) => {
      const node = nodes[index];
      if (node === undefined) throw new RangeError(`no node ${index}`);
      await node.kill();
    },
    stop,
  };
}

async function startServer(extraArgs: readonly string[], clusterBus: boolean): Promise<RedisServer> {
  const { server } = await redisBinaries();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sealed-sessions-redis-'));
  dirs.add(dir);
  let child: ChildProcess | undefined;
  let port = 0;

  const launch = async (): Promise<void> => {
    const args = [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--logfile',
      'redis.log',
      '--daemonize',
      'no',
      ...extraArgs,
    ];
    const started = spawn(server, args, { cwd: dir, stdio: 'ignore' });
    child = started;
    running.set(started, dir);
    const exited = new Promise<never>((_, reject) => {
      started.once('exit', (code, signal) => {
        running.delete(started);
        reject(new Error(`redis-server on port ${port} exited (${signal ?? code}) before it served${logTail(dir)}`));
      });
    });
    exited.catch(() => undefined);
    await Promise.race([waitFor(port, 'PING', /^\+PONG/, 20_000), exited]);
  };

  // A port found free can be taken before redis binds it: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort(clusterBus);
    try {
      await launch();
      break;
    } catch (error) {
      await killChild(child);
      if (attempt === 5 || !/Address already in use|exited/.test(String(error))) throw error;
    }
  }

  const stopped = async (signal: 'SIGTERM' | 'SIGKILL') => {
    await killChild(child, signal);
    child = undefined;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    stop: async () => {
      await stopped('SIGTERM');
      dirs.delete(dir);
      await fsp.rm(dir, { recursive: true, force: true });
    },
    kill: () => stopped('SIGKILL'),
    restart: async () => {
      await stopped('SIGKILL');
      await launch();
    },
    pause: () => {
      child?.kill('SIGSTOP');
    },
    resume: () => {
      child?.kill('SIGCONT');
    },
  };
}

async function killChild(child: ChildProcess | undefined, signal: 'SIGTERM' | 'SIGKILL' = 'SIGKILL'): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  // A paused (SIGSTOPped) server acts on SIGTERM only once continued.
  if (signal !== 'SIGKILL') child.kill('SIGCONT');
  await exited;
}

function logTail(dir: string): string {
  try {
    const log = fs.readFileSync(path.join(dir, 'redis.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
    return log === '' ? '' : `; its log ends:\n${log}`;
  } catch {
    return '';
  }
}

/**
 * A port free on 127.0.0.1 a moment ago. A cluster node also needs port + 10000 (its bus), so
 * those come from 10000–55535 with both checked.
 */
async function freePort(withBus: boolean): Promise<number> {
  if (!withBus) return listenOn(0);
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 45_535);
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(port, '127.0.0.1', () => {
      const { port: bound } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(bound));
    });
  });
}

function isFree(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

/** Polls `command` (inline protocol, no client library) on `port` until its raw reply matches. */
async function waitFor(port: number, command: string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await rawCommand(port, command).catch((error: unknown) => String(error));
    if (pattern.test(last)) return;
    await sleep(25);
  }
  throw new Error(`redis on port ${port}: no ${pattern} from ${command} after ${timeoutMs} ms (last: ${last.slice(0, 200)})`);
}

function rawCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const timer = setTimeout(() => socket.destroy(new Error('no reply')), 1000);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk: string) => {
      reply += chunk;
      if (isWholeReply(reply)) socket.end();
    });
    socket.once('error', reject);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

/** True once `reply` holds one whole simple/error/integer reply, or a bulk string of its announced length. */
function isWholeReply(reply: string): boolean {
  const end = reply.indexOf('\r\n');
  if (end < 0) return false;
  if (!reply.startsWith('$')) return true;
  const length = Number(reply.slice(1, end));
  return length < 0 || Buffer.byteLength(reply) >= end + 2 + length + 2;
}
