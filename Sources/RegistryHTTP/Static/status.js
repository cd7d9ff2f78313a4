// The status page: the registry's live servers, kept current by the server's /events stream
// (Server-Sent Events: a `state` event with every server, then a `change` event per change).
// No build step, no dependencies. Everything shown comes from other processes, so it is put in
// the page with textContent only, never as HTML; each value is cut to MAX_TEXT characters (the
// full one in its tooltip, itself cut) and isolated in a <bdi dir="auto">, so that a long name
// cannot push the other columns off-screen and a right-to-left override cannot reverse the rest
// of the row.

const MAX_TEXT = 120;
const MAX_TITLE = 1000;

const servers = new Map();   // id -> entry, in file order (new ones last)
const $ = (id) => document.getElementById(id);

function setConnection(state, text) {
  const pill = $('connection');
  pill.dataset.state = state;
  pill.textContent = text;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

/** Someone else's text, cut and isolated: <bdi dir="auto" title="...">text…</bdi>. */
function text(value, max = MAX_TEXT, props = {}) {
  const full = String(value ?? '');
  const chars = [...full];
  const shown = chars.length > max ? chars.slice(0, max).join('') + '…' : full;
  const node = el('bdi', { textContent: shown, ...props });
  node.dir = 'auto';
  if (shown !== full) node.title = chars.slice(0, MAX_TITLE).join('');
  return node;
}

function chips(list, kind) {
  const items = list || [];
  const shown = items.slice(0, 50).map((name) => el('span', { className: `chip ${kind}`, title: kind }, text(name, 60)));
  if (items.length > 50) shown.push(el('small', { textContent: ` +${items.length - 50} more` }));
  return shown;
}

/** What the supervisor wrote in metadata.supervisor: {state, restarts}. */
function supervisor(entry) {
  const sup = entry.metadata && typeof entry.metadata === 'object' ? entry.metadata.supervisor : null;
  if (!sup || typeof sup !== 'object') return null;
  const restarts = Number.isInteger(sup.restarts) && sup.restarts > 0 ? ` · ${sup.restarts} restart${sup.restarts === 1 ? '' : 's'}` : '';
  return el('span', { className: 'supervisor', dataset: { state: String(sup.state ?? '') } },
    text(`supervised: ${sup.state ?? '?'}`, 40), restarts);
}

function row(entry, flash) {
  const caps = entry.capabilities || {};
  const health = entry.health || { status: 'UNKNOWN' };
  const liveness = entry.liveness === 'ttl' ? `ttl ${entry.ttlSeconds ?? 30}s`
    : entry.liveness === 'none' ? 'static' : (entry.liveness || '');
  const tr = el('tr', { dataset: { id: entry.id } },
    el('td', { className: 'server' },
      el('b', {}, text(entry.name || entry.id)),
      entry.name ? el('small', {}, text(entry.id)) : null,
      supervisor(entry)),
    el('td', {}, text(entry.transport || '–', 10)),
    el('td', { className: 'url' }, text(entry.url || '–', 60)),
    el('td', { className: 'health', dataset: { status: health.status } },
      el('span', { className: 'badge', dataset: { status: health.status } }, text(health.status, 12)),
      health.message ? el('small', {}, ' ', text(health.message)) : null),
    el('td', { className: 'nowrap' }, text(liveness, 20)),
    el('td', { className: 'nowrap' }, text(entry.pid ?? '–', 12)),
    el('td', {}, ...chips(caps.tools, 'tool'), ...chips(caps.resources, 'resource'), ...chips(caps.prompts, 'prompt')),
    el('td', { className: 'nowrap' }, el('small', { textContent: entry.startedAt ? new Date(entry.startedAt).toLocaleTimeString() : '–' })));
  if (flash) tr.classList.add('flash');
  return tr;
}

function render(generation, flashIDs = new Set()) {
  const body = document.querySelector('#servers tbody');
  body.replaceChildren(...[...servers.values()].map((e) => row(e, flashIDs.has(e.id))));
  $('empty').hidden = servers.size > 0;
  $('count').textContent = servers.size;
  $('generation').textContent = generation;
  $('updated').textContent = new Date().toLocaleTimeString();
}

function showProblem(text) {
  $('problem').hidden = !text;
  $('problem').textContent = text || '';
}

const events = new EventSource('/events');
let haveState = false;

// After a reconnection the server sends nothing when the page is already up to date.
events.addEventListener('open', () => haveState ? setConnection('live', 'live') : setConnection('connecting', 'connected…'));

events.addEventListener('state', (e) => {
  const state = JSON.parse(e.data);
  servers.clear();
  for (const entry of state.servers) servers.set(entry.id, entry);
  haveState = true;
  showProblem('');
  setConnection('live', 'live');
  render(state.generation);
});

events.addEventListener('change', (e) => {
  const change = JSON.parse(e.data);
  const touched = new Set();
  for (const entry of [...change.added, ...change.changed]) {
    servers.set(entry.id, entry);
    touched.add(entry.id);
  }
  for (const entry of change.removed) servers.delete(entry.id);
  showProblem('');
  setConnection('live', 'live');
  render(change.generation, touched);
});

events.addEventListener('registry-error', (e) => {
  const problem = JSON.parse(e.data);
  setConnection('registry-error', 'registry unreadable');
  showProblem(`${problem.error} (${problem.code}) — \`peer-registry repair\` moves a corrupt file aside.`);
});

events.addEventListener('error', async () => {
  // EventSource reconnects by itself, sending Last-Event-ID; the server answers with the full
  // state if anything changed meanwhile. It does not say why a connection failed: a 401 means
  // this browser has no token cookie (the page was opened without ?token=).
  if (events.readyState === EventSource.OPEN) return;
  setConnection('reconnecting', 'reconnecting…');
  try {
    const answer = await fetch('/healthz', { cache: 'no-store' });
    if (answer.status === 401) {
      setConnection('unauthorized', 'needs the token');
      showProblem('This server needs its token: open the URL `peer-registry serve` printed (it ends in ?token=…); the token is also in the registry directory, runtime/serve-<port>.json.');
    }
  } catch { /* the server is down: EventSource keeps trying */ }
});
