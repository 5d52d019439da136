import express, { type NextFunction, type Request, type Response } from 'express';
import { isSealedSessionError, openStore, sessions, type Store } from '../src/index.js';
import { renderError, renderPage } from './page.js';
import { cached } from './stats-cache.js';

const NOTICES: Record<string, string> = {
  created: 'A session was created: your browser now holds its signed cookie.',
  set: 'Stored. Reload the page: the value comes back from the encrypted file.',
  deleted: 'Deleted.',
  regenerated: 'New id, same data: the old file is gone (this is what a login should do).',
  expired: 'Your session is expired: its file is gone and the cookie cleared.',
};

/** How long the store panel's figures are reused: `store.stats()` reads every session file's header (about 0.5 s at 5,000 sessions). */
const STATS_MAX_AGE_MS = 5_000;

/** The demo app: WebStack's sessions example as a page, plus a panel about the store. */
export function createApp(store: Store): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Anyone can load the page, so at most one stats() runs at a time and its result serves
  // every request for a few seconds. A change made here (a POST answered by its redirect)
  // invalidates it once the response is finished, which is after the session's commit: the
  // page the redirect leads to counts it. Changes by other processes (the CLI, another server)
  // show within STATS_MAX_AGE_MS.
  const stats = cached(() => store.stats(), { maxAge: STATS_MAX_AGE_MS });
  app.use((req, res, next) => {
    // Every page shows session data, or the lack of it: never kept by the browser, so Back after
    // "Expire session" asks again instead of showing the values of an ended session.
    res.set('Cache-Control', 'no-store');
    if (req.method === 'POST') {
      res.once('finish', () => {
        if (res.statusCode === 303) stats.invalidate();
      });
    }
    next();
  });
  app.use(sessions({ store }));
  app.use(express.urlencoded({ extended: false, limit: '16kb' }));

  app.get('/', async (req, res) => {
    const session = await req.trans.getSession(false);
    const notice = typeof req.query['done'] === 'string' ? NOTICES[req.query['done']] : undefined;
    res.type('html').send(renderPage({ session: session === null ? null : { entries: [...session] }, stats: await stats.get(), notice }));
  });

  app.post('/create', async (req, res) => {
    await req.trans.getSession();
    res.redirect(303, '/?done=created');
  });

  app.post('/set', async (req, res) => {
    const { name, value } = req.body as Record<string, unknown>;
    if (typeof name !== 'string' || name.trim() === '' || name.length > 100 || (value !== undefined && typeof value !== 'string')) {
      // The page again, with what was typed still in the form.
      const reason = 'Not stored: a name needs 1–100 characters, not only spaces, and the value must be text.';
      const session = await req.trans.getSession(false);
      const refused = { name: typeof name === 'string' ? name : '', value: typeof value === 'string' ? value : '', reason };
      res
        .status(400)
        .type('html')
        .send(
          renderPage({
            session: session === null ? null : { entries: [...session] },
            stats: await stats.get(),
            notice: session === null ? reason : undefined,
            refused,
          }),
        );
      return;
    }
    const session = await req.trans.getSession();
    session.set(name.trim(), value ?? '');
    res.redirect(303, '/?done=set');
  });

  app.post('/delete', async (req, res) => {
    const { name } = req.body as Record<string, unknown>;
    const session = await req.trans.getSession(false);
    if (session !== null && typeof name === 'string') session.delete(name);
    res.redirect(303, '/?done=deleted');
  });

  app.post('/regenerate', async (req, res) => {
    await req.trans.regenerateSession();
    res.redirect(303, '/?done=regenerated');
  });

  app.post('/expire', async (req, res) => {
    await req.trans.expireSession();
    res.redirect(303, '/?done=expired');
  });

  app.use((_req, res) => {
    res
      .status(404)
      .type('html')
      .send(renderError(404, 'Not found', 'There is no such page in this demo.'));
  });

  // A friendly page, never a stack trace; the code is what an operator looks up.
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const status = typeof (error as { status?: unknown }).status === 'number' ? (error as { status: number }).status : 500;
    const detail = isSealedSessionError(error)
      ? `The session store reported ${error.code}. Your data was not changed; please try again.`
      : status < 500
        ? 'The request could not be understood.'
        : 'Something went wrong on our side. Please try again.';
    if (status >= 500) console.error('demo: request failed:', isSealedSessionError(error) ? error.code : error);
    res
      .status(status)
      .type('html')
      .send(renderError(status, status < 500 ? 'Bad request' : 'Sorry, that failed', detail));
  });
  return app;
}

const store = await openStore({ dir: process.env['SESSIONS_DIR'] ?? 'sessions-data' });
const gcTimer = setInterval(
  () => {
    store.gc().catch((error: unknown) => console.error('demo: gc failed:', error));
  },
  10 * 60 * 1000,
);
gcTimer.unref();
store.on('tamper', ({ file, reason }) => console.warn(`demo: unreadable session file ${file} (${reason})`));

const host = process.env['HOST'] ?? '127.0.0.1';
const port = Number(process.env['PORT'] ?? 3000);
// Express 5 hands a listen error (a port in use, say) to this callback.
const server = createApp(store).listen(port, host, (error?: NodeJS.ErrnoException) => {
  if (error !== undefined) {
    console.error(
      error.code === 'EADDRINUSE'
        ? `demo: ${host}:${port} is in use; start it on another port, e.g. PORT=3001 npm start`
        : `demo: cannot listen on ${host}:${port} (${error.code ?? error.message})`,
    );
    process.exit(1);
  }
  const address = server.address();
  const actual = typeof address === 'object' && address !== null ? address.port : port;
  console.log(`sealed-sessions demo on http://${host}:${actual} (data in ${store.dir})`);
});
