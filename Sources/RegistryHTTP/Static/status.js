// The status page: the registry's live servers, kept current by the server's /events stream
// (Server-Sent Events: a `state` event with every server, then a `change` event per change).
// No build step, no dependencies. Everything shown comes from other processes, so it is put in
// the page with textContent only, never as HTML.

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

function chips(list, kind) {
  return (list || []).map((name) => el('span', { className: `chip ${kind}`, textContent: name, title: kind }));
}

function row(entry, flash) {
  const caps = entry.capabilities || {};
  const health = entry.health || { status: 'UNKNOWN' };
  const liveness = entry.liveness === 'ttl' ? `ttl ${entry.ttlSeconds ?? 30}s`
    : entry.liveness === 'none' ? 'static' : (entry.liveness || '');
  const tr = el('tr', { dataset: { id: entry.id } },
    el('td', { className: 'server' },
      el('b', { textContent: entry.name || entry.id }),
      entry.name ? el('small', { textContent: entry.id }) : null),
    el('td', { textContent: entry.transport || '–' }),
    el('td', { className: 'url', textContent: entry.url || '–' }),
    el('td', { className: 'health', dataset: { status: health.status } },
      el('span', { className: 'badge', dataset: { status: health.status }, textContent: health.status }),
      health.message ? el('small', { textContent: ' ' + health.message }) : null),
    el('td', { className: 'nowrap', textContent: liveness }),
    el('td', { textContent: entry.pid ?? '–' }),
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
  render(e.lastEventId);
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
  render(e.lastEventId, touched);
});

events.addEventListener('registry-error', (e) => {
  const problem = JSON.parse(e.data);
  setConnection('registry-error', 'registry unreadable');
  showProblem(`${problem.error} (${problem.code}) — \`peer-registry repair\` moves a corrupt file aside.`);
});

events.addEventListener('error', () => {
  // EventSource reconnects by itself, sending Last-Event-ID; the server answers with the full
  // state if anything changed meanwhile.
  if (events.readyState !== EventSource.OPEN) setConnection('reconnecting', 'reconnecting…');
});
