import prettyBytes from 'pretty-bytes';
import type { JsonValue, StoreStats } from '../src/index.js';

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

export interface PageModel {
  readonly session: { readonly entries: ReadonlyArray<[string, JsonValue]> } | null;
  readonly stats: StoreStats;
  readonly notice: string | undefined;
  /** A refused "Add": what was typed, shown again in the form, and why it was refused. */
  readonly refused?: { readonly name: string; readonly value: string; readonly reason: string };
}

/** A padlock, inline: the browser's favicon request needs no route (and never meets a 404). */
const FAVICON = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M10 14v-4a6 6 0 0 1 12 0v4" fill="none" stroke="#1f5fbf" stroke-width="3"/><rect x="5" y="14" width="22" height="16" rx="3" fill="#1f5fbf"/><circle cx="16" cy="22" r="2.5" fill="#fff"/></svg>',
)}`;

const HEAD = `<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/svg+xml" href="${FAVICON}">`;

const STYLE = `
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
  main { max-width: 980px; margin: 0 auto; padding: 24px; display: grid; gap: 18px; grid-template-columns: minmax(0, 1.4fr) minmax(0, 1fr); }
  header, .wide { grid-column: 1 / -1; }
  @media (max-width: 700px) {
    main { grid-template-columns: minmax(0, 1fr); padding: 12px; gap: 12px; }
  }
  h1 { margin: 0 0 4px; font-size: 24px; } h2 { margin: 0 0 12px; font-size: 17px; }
  section { min-width: 0; background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 16px 18px; }
  .status { display: inline-block; padding: 2px 10px; border-radius: 999px; font-weight: 600; }
  .yes { background: #dcf5e3; color: #11652c; } .no { background: #eceff3; color: #4a5260; }
  table { border-collapse: collapse; width: 100%; margin: 8px 0; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eceff3; vertical-align: top; }
  td.name, td.value { overflow-wrap: anywhere; }
  td.value { font-family: ui-monospace, monospace; }
  td.action { width: 1%; white-space: nowrap; }
  form.inline { display: inline; }
  .row { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 10px; }
  input[type=text] { padding: 6px 8px; border: 1px solid #c4cad3; border-radius: 6px; min-width: 0; flex: 1; }
  button { padding: 6px 12px; border: 1px solid #9aa3af; border-radius: 6px; background: #fff; cursor: pointer; }
  button.primary { background: #1f5fbf; border-color: #1f5fbf; color: #fff; }
  button.danger { border-color: #b42318; color: #b42318; }
  .notice { background: #fff7d6; border: 1px solid #f0d98a; border-radius: 6px; padding: 8px 12px; grid-column: 1 / -1; }
  .refused { color: #b42318; margin: 10px 0 0; }
  dl { display: grid; grid-template-columns: auto 1fr; gap: 4px 12px; margin: 0 0 12px; } dt { color: #5b6472; } dd { margin: 0; font-weight: 600; }
  pre { background: #f3f5f8; padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 13px; max-width: 100%; }
  svg { max-width: 100%; height: auto; }
  .muted { color: #5b6472; font-size: 13px; }
`;

function chart(stats: StoreStats): string {
  const max = Math.max(1, ...stats.expiresIn.map((bucket) => bucket.sessions));
  const rowHeight = 22;
  const rows = stats.expiresIn
    .map((bucket, index) => {
      const width = Math.round((bucket.sessions / max) * 170);
      const y = index * rowHeight;
      return `<text x="0" y="${y + 15}" font-size="12">${escapeHtml(bucket.label)}</text>
        <rect x="70" y="${y + 4}" width="${width}" height="14" rx="3" fill="#1f5fbf"><title>${bucket.sessions} sessions</title></rect>
        <text x="${76 + width}" y="${y + 15}" font-size="12">${bucket.sessions}</text>`;
    })
    .join('');
  const height = stats.expiresIn.length * rowHeight;
  return `<svg role="img" aria-label="Live sessions by time left before expiry" width="280" height="${height}" viewBox="0 0 280 ${height}">${rows}</svg>`;
}

function sessionPanel(model: PageModel): string {
  const { session, refused } = model;
  if (session === null) {
    return `<section id="session">
      <h2>Your session <span class="status no" data-testid="status">no session</span></h2>
      <p>Nothing is stored for you: this page asked with <code>getSession(false)</code>, which never creates one.</p>
      <form method="post" action="/create"><button class="primary" type="submit">Create a session</button></form>
    </section>`;
  }
  const rows = session.entries
    .map(
      ([
        name,
        value,
      ]) => `<tr><td class="name">${escapeHtml(name)}</td><td class="value">${escapeHtml(typeof value === 'string' ? value : JSON.stringify(value))}</td>
        <td class="action"><form class="inline" method="post" action="/delete"><input type="hidden" name="name" value="${escapeHtml(name)}">
        <button type="submit" aria-label="delete ${escapeHtml(name)}">delete</button></form></td></tr>`,
    )
    .join('');
  return `<section id="session">
    <h2>Your session <span class="status yes" data-testid="status">active</span></h2>
    ${session.entries.length === 0 ? '<p class="muted">It holds no values yet.</p>' : `<table><thead><tr><th>name</th><th>value</th><th></th></tr></thead><tbody>${rows}</tbody></table>`}
    <form method="post" action="/set" class="row">
      <input type="text" name="name" placeholder="name" aria-label="name" required maxlength="100" pattern=".*\\S.*"
        title="A name needs at least one character that is not a space."${refused === undefined ? '' : ` value="${escapeHtml(refused.name)}"`}>
      <input type="text" name="value" placeholder="value" aria-label="value" maxlength="10000"${refused === undefined ? '' : ` value="${escapeHtml(refused.value)}"`}>
      <button class="primary" type="submit">Add</button>
    </form>
    ${refused === undefined ? '' : `<p class="refused" role="alert">${escapeHtml(refused.reason)}</p>`}
    <div class="row">
      <form method="post" action="/regenerate"><button type="submit">Regenerate id</button></form>
      <form method="post" action="/expire"><button class="danger" type="submit">Expire session</button></form>
    </div>
    <p class="muted">The cookie carries only the signed id; the values live encrypted on the server.</p>
  </section>`;
}

export function renderPage(model: PageModel): string {
  const { stats } = model;
  return `<!doctype html>
<html lang="en"><head>${HEAD}
<title>sealed-sessions demo</title><style>${STYLE}</style></head>
<body><main>
  <header><h1>sealed-sessions</h1><div class="muted">WebStack's sessions example, with each session sealed in its own file on this server.</div></header>
  ${model.notice === undefined ? '' : `<div class="notice" role="status">${escapeHtml(model.notice)}</div>`}
  ${sessionPanel(model)}
  <section id="store">
    <h2>The store</h2>
    <dl>
      <dt>sessions (all users)</dt><dd data-testid="session-count">${stats.live}</dd>
      <dt>size on disk</dt><dd data-testid="bytes">${prettyBytes(stats.bytes)}</dd>
      <dt>expired, not yet collected</dt><dd>${stats.expired}</dd>
      <dt>debris (locks, temp files)</dt><dd>${stats.debris}</dd>
    </dl>
    <div class="muted">Live sessions by time left before expiry</div>
    ${chart(stats)}
  </section>
  <section class="wide" id="code">
    <h2>The code behind this page</h2>
<pre>const session = await req.trans.getSession(false); // WebStack: trans.get_session(create=0)
const session = await req.trans.getSession();      // trans.get_session()
session.set('my_data', value);                     // session["my_data"] = my_data
if (session.has('my_data')) session.get('my_data'); // session.has_key("my_data")
for (const key of session.keys()) { … }            // for key in session.keys()
await req.trans.expireSession();                   // trans.expire_session()</pre>
  </section>
</main></body></html>`;
}

export function renderError(status: number, title: string, detail: string): string {
  return `<!doctype html>
<html lang="en"><head>${HEAD}
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><main><section class="wide">
  <h1>${escapeHtml(title)}</h1><p>${escapeHtml(detail)}</p><p class="muted">HTTP ${status}</p>
  <p><a href="/">Back to the demo</a></p>
</section></main></body></html>`;
}
