/**
 * The web console (served at /ui by the gateway, from the package itself: no CDN, no framework).
 * Everything it shows comes from the gateway's public REST API, as any client would call it:
 * GET /v1/cluster (the METRICS JSON of the node that answers: members, roles, term, leader, the
 * leader's replication progress, disk), GET /v1/topics and /v1/topics/{t}, POST /v1/topics,
 * POST /v1/topics/{t}/records, and the SSE tail of /v1/topics/{t}/records.
 *
 * Tokens: when the gateway answers 401 the page asks for a token, keeps it in sessionStorage and
 * sends it as the API says: `Authorization: Bearer …` on fetches, `access_token` on the tail
 * (EventSource cannot set headers). Every text is set through textContent (no HTML injection).
 *
 * Bounds: one refresh at a time every `refreshIntervalMs`; the tail keeps the newest
 * `tailRowCountMax` rows.
 */

const refreshIntervalMs = 2000;
const tailRowCountMax = 500;
const tokenKey = 'walrus-console-token';

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(tokenKey),
  topics: [],
  selected: null,
  source: null,
  refreshing: false,
};

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code ?? null;
  }
}

/** Calls the gateway's API with the token, if any; throws ApiError with the problem's code. */
async function api(path, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { ...init, headers });
  const text = await res.text();
  const body =
    text.length > 0 && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '—' : String(text);
  if (className) td.className = className;
  row.append(td);
  return td;
}

function fillTable(tableId, rows, render) {
  const body = $(tableId).tBodies[0];
  const fresh = document.createElement('tbody');
  for (const item of rows) {
    const tr = document.createElement('tr');
    render(tr, item);
    fresh.append(tr);
  }
  body.replaceWith(fresh);
}

function bytes(n) {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function setStatus(text, isError) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

function askForToken(message) {
  $('token-form').hidden = false;
  $('token-error').textContent = message;
}

// ---- cluster ------------------------------------------------------------------------------------

function renderCluster(cluster) {
  const m = cluster.metrics ?? {};
  const membership = m.membership_config ?? {};
  const voters = membership.voters ?? [];
  const learners = membership.learners ?? [];
  const addresses = membership.membership?.nodes ?? {};
  const leader = m.current_leader ?? null;
  const replication = m.state === 'Leader' ? (m.replication ?? {}) : null;
  $('leader').textContent = leader === null ? 'none (election under way?)' : `node ${leader}`;
  $('term').textContent = String(m.current_term ?? '—');
  $('log-index').textContent = `${m.last_log_index ?? '—'} / ${m.last_applied ?? '—'}`;
  $('answered-by').textContent = `node ${m.id ?? '?'} (${m.state ?? '?'})`;
  const s = m.storage ?? {};
  $('disk').textContent =
    `${bytes(s.disk_free_bytes)} free on node ${m.id ?? '?'} (reserve ${bytes(s.disk_reserve_bytes)})` +
    (s.disk_full ? ' — FULL: appends refused' : '');
  const ids = [...new Set([...voters, ...learners, ...Object.keys(addresses).map(Number)])].sort(
    (a, b) => a - b,
  );
  // Each member's own answer (GET /v1/cluster `members`): its reachability, its disk, and its lag
  // as the Raft leader reports it, whichever node answered the request.
  const members = new Map((cluster.members ?? []).map((member) => [member.nodeId, member]));
  fillTable('nodes', ids, (tr, id) => {
    tr.dataset.nodeId = String(id);
    const role = id === leader ? 'leader' : learners.includes(id) ? 'learner' : 'follower';
    tr.dataset.role = role;
    cell(tr, `node ${id}`);
    cell(tr, role, `role-${role}`);
    cell(tr, addresses[id]?.addr);
    cell(tr, addresses[id]?.client_addr);
    const member = members.get(id);
    const match = replication?.[id]?.match_index;
    const lag =
      typeof match === 'number' && typeof m.last_log_index === 'number' ? m.last_log_index - match : null;
    cell(tr, member?.lagEntries ?? (replication === null ? 'ask the leader' : lag));
    tr.dataset.reachable = member === undefined ? 'unknown' : String(member.reachable);
    cell(tr, member === undefined ? '—' : member.reachable ? 'yes' : `no: ${member.error ?? ''}`);
    cell(
      tr,
      member?.diskFreeBytes == null
        ? '—'
        : `${bytes(member.diskFreeBytes)}${member.diskFull ? ' — FULL: appends refused' : ''}`,
      'disk',
    );
  });
}

// ---- topics -------------------------------------------------------------------------------------

function retentionText(r) {
  const parts = [];
  if (r?.retentionMs) parts.push(`${Math.round(r.retentionMs / 1000)} s`);
  if (r?.retentionBytes) parts.push(bytes(r.retentionBytes));
  return parts.length === 0 ? 'keep all' : parts.join(', ');
}

function renderTopics(topics) {
  state.topics = topics;
  fillTable('topic-table', topics, (tr, t) => {
    tr.dataset.topic = t.name;
    if (t.name === state.selected) tr.className = 'selected';
    const active = t.segments[t.segments.length - 1];
    cell(tr, t.name);
    cell(tr, t.segments.length);
    cell(tr, `node ${t.leaderNodeId}`);
    cell(tr, active ? active.replicas.join(', ') : null);
    cell(tr, t.replicationFactor);
    cell(tr, t.underReplicatedSegmentCount);
    cell(tr, retentionText(t.retention));
    tr.addEventListener('click', () => selectTopic(t.name));
  });
  const select = $('tail-topic');
  const current = select.value || state.selected;
  const names = topics.map((t) => t.name);
  if ([...select.options].map((o) => o.value).join('\n') !== names.join('\n')) {
    select.replaceChildren(
      ...names.map((name) => {
        const option = document.createElement('option');
        option.value = name;
        option.textContent = name;
        return option;
      }),
    );
  }
  if (current && names.includes(current)) select.value = current;
}

async function selectTopic(name) {
  state.selected = name;
  $('tail-topic').value = name;
  renderTopics(state.topics);
  await refreshDetail();
}

/** The selected topic as its active segment's leader describes it (live offsets). */
async function refreshDetail() {
  const name = state.selected;
  if (name === null) return;
  const topic = await api(`/v1/topics/${encodeURIComponent(name)}`);
  if (state.selected !== name) return;
  $('detail-name').textContent = topic.name;
  $('detail-offsets').textContent = `${topic.startOffset}–${topic.endOffset}`;
  $('topic-detail').hidden = false;
  fillTable('segments', topic.segments, (tr, s) => {
    cell(tr, s.id);
    cell(tr, `${s.baseOffset}–${s.endOffset ?? '…'}`);
    cell(tr, s.sealed ? 'sealed' : 'active');
    cell(tr, `node ${s.leaderNodeId}`);
    cell(tr, s.replicas.join(', '));
    cell(tr, s.epoch);
  });
}

async function refresh() {
  if (state.refreshing) return;
  state.refreshing = true;
  try {
    const [cluster, topics] = await Promise.all([api('/v1/cluster'), api('/v1/topics')]);
    $('token-form').hidden = true;
    renderCluster(cluster);
    renderTopics(topics.topics);
    if (state.selected !== null && topics.topics.some((t) => t.name === state.selected))
      await refreshDetail();
    setStatus(`updated ${new Date().toLocaleTimeString()}`, false);
  } catch (error) {
    if (error.status === 401) {
      askForToken(state.token ? 'that token was refused' : '');
      setStatus('a token is needed', true);
    } else if (error.status === 403) {
      setStatus(`this token may not read the cluster: ${error.message}`, true);
    } else {
      setStatus(`cannot reach the cluster: ${error.message}`, true);
    }
  } finally {
    state.refreshing = false;
  }
}

// ---- tail and append ----------------------------------------------------------------------------

function stopTail() {
  state.source?.close();
  state.source = null;
  $('tail-stop').disabled = true;
  $('tail-start').disabled = false;
  $('tail-state').textContent = 'stopped';
}

function addRecordRow(record) {
  const body = $('records').tBodies[0];
  const tr = document.createElement('tr');
  tr.dataset.offset = String(record.offset);
  cell(tr, record.offset);
  cell(tr, new Date(record.timestamp).toLocaleTimeString());
  cell(tr, record.encoding === 'base64' ? `(base64) ${record.value}` : record.value, 'value');
  body.prepend(tr);
  while (body.rows.length > tailRowCountMax) body.deleteRow(body.rows.length - 1);
}

function startTail(topic, from) {
  stopTail();
  $('records').tBodies[0].replaceChildren();
  const query = new URLSearchParams(from === 'start' ? { timestamp: '0' } : { tailOffset: '0' });
  if (state.token) query.set('access_token', state.token);
  const source = new EventSource(`/v1/topics/${encodeURIComponent(topic)}/records?${query}`);
  state.source = source;
  $('tail-stop').disabled = false;
  $('tail-start').disabled = true;
  $('tail-state').textContent = `connecting to ${topic}…`;
  $('tail-state').dataset.topic = topic;
  source.onopen = () => {
    $('tail-state').textContent = `tailing ${topic}`;
  };
  source.onmessage = (event) => addRecordRow(JSON.parse(event.data));
  source.addEventListener('problem', (event) => {
    const problem = JSON.parse(event.data);
    $('tail-state').textContent = `${problem.code ?? 'error'}: ${problem.detail ?? problem.title ?? ''}`;
  });
  source.onerror = () => {
    if (state.source === source) $('tail-state').textContent = `reconnecting to ${topic}…`;
  };
}

async function append(topic, value) {
  const result = await api(`/v1/topics/${encodeURIComponent(topic)}/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ records: [{ value }] }),
  });
  return result.firstOffset;
}

// ---- wiring -------------------------------------------------------------------------------------

function showResult(id, text, isError) {
  $(id).textContent = text;
  $(id).className = isError ? 'error' : 'ok';
}

function wire() {
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    state.token = $('token').value.trim() || null;
    if (state.token) sessionStorage.setItem(tokenKey, state.token);
    else sessionStorage.removeItem(tokenKey);
    void refresh();
  });
  $('create-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = $('create-name').value.trim();
    try {
      const topic = await api('/v1/topics', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
      showResult('create-result', `created ${topic.name}`, false);
      $('create-name').value = '';
      await refresh();
      await selectTopic(topic.name);
    } catch (error) {
      showResult('create-result', `${error.code ?? 'error'}: ${error.message}`, true);
    }
  });
  $('tail-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const topic = $('tail-topic').value;
    if (topic) startTail(topic, $('tail-from').value);
  });
  $('tail-stop').addEventListener('click', stopTail);
  $('append-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const topic = $('tail-topic').value;
    if (!topic) return showResult('append-result', 'pick or create a topic first', true);
    try {
      const offset = await append(topic, $('append-value').value);
      showResult('append-result', `appended to ${topic} at offset ${offset}`, false);
      $('append-value').value = '';
    } catch (error) {
      showResult('append-result', `${error.code ?? 'error'}: ${error.message}`, true);
    }
  });
}

wire();
void refresh();
setInterval(() => void refresh(), refreshIntervalMs);
