// A throwaway redis-server for the connect-redis peer: loopback only, a free port, no persistence.
import { execFileSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { spawnTracked, waitForOutput } from './children.js';

export const REDIS_INSTALL_HINT =
  'install it with `sudo apt-get install redis-server` (Debian/Ubuntu; the bench starts its own server and stops it, the system service can stay disabled)';

/** redis-server's version (`7.0.15`), or null when there is no redis-server on the PATH. */
export function redisServerVersion(): string | null {
  try {
    const out = execFileSync('redis-server', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return /v=(\S+)/.exec(out)?.[1] ?? out.trim();
  } catch {
    return null;
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on 127.0.0.1 with RDB and AOF off, its working dir `dir`; resolves once it accepts connections. */
export async function startRedis(dir: string, cwd: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawnTracked(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
    cwd,
  );
  // Its log goes to stdout (drained, not shown); this line says it serves.
  await waitForOutput(child, /Ready to accept connections/, 'redis-server', 20_000);
  return { url: `redis://127.0.0.1:${port}`, child };
}
