// The live dashboard: signs in with the app user's JWT, paints from the worker's dashboard query,
// then stays live on Ably's SSE stream (no polling, no client library).
'use strict';

const $ = (id) => document.getElementById(id);
const state = { jwt: null, claims: null, ably: null, summary: null, source: null, renew: null, health: {} };

function claimsOf(jwt) {
  const part = jwt.split('.')[1] || '';
  const text = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(decodeURIComponent(escape(text)));
}

async function call(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.jwt}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = (body.error && (body.error.message || body.error)) || response.statusText;
    throw new Error(`${response.status}: ${reason}`);
  }
  return body;
}

function setStatus(text, live = false) {
  $('status').textContent = text;
  $('status').classList.toggle('live', live);
}

function flash(element) {
  element.classList.remove('flash');
  void element.offsetWidth; // restart the animation
  element.classList.add('flash');
}

function setFigure(id, html) {
  const element = $(id);
  if (element.innerHTML !== html) {
    element.innerHTML = html;
    flash(element);
  }
}

// ---- painting ---------------------------------------------------------------------------------

function money(byCurrency) {
  const entries = Object.entries(byCurrency);
  if (!entries.length) return '0';
  return entries.map(([currency, amount]) => `${amount}<small>${currency}</small>`).join(' ');
}

function paint() {
  const s = state.summary;
  $('location').textContent = `${s.location_id} (${s.today})`;
  setFigure('revenue-today', money(s.revenue_today));
  setFigure('leads-today', String(s.leads_today));
  setFigure('won-today', s.won_today);
  setFigure('unread', String(s.unread));
  setFigure('open-tasks', String(s.open_tasks));
  paintChart();
  list('appointments', s.appointments.map((a) => item(a.start_time, a.status || '', a.title || a.appointment_id)));
  list('activity', s.activity.map((e) => item(e.at, e.kind, e.title || '')));
}

function list(id, items) {
  if (!items.length) {
    const none = document.createElement('li');
    none.className = 'none';
    none.textContent = 'none yet';
    items.push(none);
  }
  $(id).replaceChildren(...items);
}

function item(when, kind, text) {
  const li = document.createElement('li');
  const at = document.createElement('span');
  at.className = 'when';
  at.textContent = new Date(when).toLocaleString();
  const what = document.createElement('span');
  what.className = 'kind';
  what.textContent = kind;
  li.append(at, what, document.createTextNode(text));
  return li;
}

function paintChart() {
  const s = state.summary;
  const select = $('currency');
  const currencies = [...new Set(s.revenue_days.map((d) => d.currency))].sort();
  if (!currencies.length) currencies.push('USD');
  const chosen = currencies.includes(select.value) ? select.value : currencies[0];
  select.replaceChildren(...currencies.map((c) => new Option(c, c, false, c === chosen)));
  const days = [];
  const today = new Date(`${s.today}T00:00:00Z`);
  for (let n = 29; n >= 0; n -= 1) {
    days.push(new Date(today.getTime() - n * 86400000).toISOString().slice(0, 10));
  }
  const amounts = Object.fromEntries(
    s.revenue_days.filter((d) => d.currency === chosen).map((d) => [d.date, Number(d.amount)]));
  const top = Math.max(1, ...days.map((d) => amounts[d] || 0));
  const svg = $('chart');
  const ns = 'http://www.w3.org/2000/svg';
  const bars = days.map((day, n) => {
    const height = Math.round(((amounts[day] || 0) / top) * 130);
    const rect = document.createElementNS(ns, 'rect');
    rect.setAttribute('x', String(n * 20 + 2));
    rect.setAttribute('y', String(140 - height));
    rect.setAttribute('width', '16');
    rect.setAttribute('height', String(height));
    const title = document.createElementNS(ns, 'title');
    title.textContent = `${day}: ${amounts[day] || 0} ${chosen}`;
    rect.append(title);
    return rect;
  });
  const labels = [0, 14, 29].map((n) => {
    const text = document.createElementNS(ns, 'text');
    text.setAttribute('x', String(n * 20 + 10));
    text.setAttribute('y', '155');
    text.setAttribute('text-anchor', 'middle');
    text.textContent = days[n].slice(5);
    return text;
  });
  svg.replaceChildren(...bars, ...labels);
}

function paintHealth() {
  $('health').hidden = false;
  const rows = Object.values(state.health).sort((a, b) => a.worker.localeCompare(b.worker));
  $('health-rows').replaceChildren(...rows.map((h) => {
    const tr = document.createElement('tr');
    const lag = Object.entries(h.consumer_lag).map(([p, n]) => `p${p}: ${n}`).join(', ') || '–';
    const latency = h.latency_ms.p50 === null ? '–' : `${h.latency_ms.p50} / ${h.latency_ms.p99} ms`;
    const last = h.last_webhook_at ? new Date(h.last_webhook_at).toLocaleTimeString() : '–';
    for (const text of [h.worker, h.records_per_second, lag, h.dead_letters, latency,
      `${h.publish_errors} / ${h.publish_retries}`, last]) {
      const td = document.createElement('td');
      td.textContent = String(text);
      tr.append(td);
    }
    tr.dataset.worker = h.worker;
    return tr;
  }));
}

// ---- live updates -----------------------------------------------------------------------------

// Each message carries the new value (a total, a day's amount), not a change, so folding one
// twice or onto a summary that already holds it leaves the figure right.
function fold(s, name, data) {
  if (name === 'revenue-update') {
    s.revenue_days = s.revenue_days.filter((d) => !(d.date === data.date && d.currency === data.currency));
    s.revenue_days.push({ date: data.date, currency: data.currency, amount: data.amount });
    if (data.date === s.today) s.revenue_today[data.currency] = data.amount;
  } else if (name === 'lead-alert' && data.date === s.today) {
    s.leads_today = data.leads_today;
  } else if (name === 'project-won' && data.date === s.today) {
    s.won_today = data.won_value_today;
  } else if (name === 'unread-changed') {
    s.unread = data.location_total;
  } else if (name === 'activity') {
    s.activity = [data, ...s.activity.filter((e) => e.id !== data.id)].slice(0, 10);
  } else {
    return false;
  }
  return true;
}

// The messages that arrive while a dashboard query is in flight, one list per query: the answer
// may have been read before their change, so they are folded onto it when it comes.
const inFlight = new Set();

function apply(name, data) {
  if (name === 'system-health') {
    state.health[data.worker] = data;
    paintHealth();
    return;
  }
  for (const arrived of inFlight) arrived.push([name, data]);
  if (state.summary && fold(state.summary, name, data)) paint();
  if (name === 'activity' && /^(task|appointment)-/.test(data.kind)) refresh().catch(showError); // lists: the tables'
}

async function refresh() {
  const location = state.claims.locationId || state.claims.location_id; // as the server reads it
  const arrived = [];
  inFlight.add(arrived);
  try {
    const summary = await call(`/v1/locations/${encodeURIComponent(location)}/dashboard`);
    for (const [name, data] of arrived) fold(summary, name, data);
    state.summary = summary;
  } finally {
    inFlight.delete(arrived);
  }
  paint();
}

// A stream delivers what is published once it is open, so the page is painted afresh then: a
// change published while the stream was being set up is in that answer, not lost in the gap.
const reconnect = () => connect().catch(showError);

async function connect() {
  const request = await call('/v1/realtime/token', { method: 'POST' });
  const answer = await fetch(`${state.ably}/keys/${encodeURIComponent(request.keyName)}/requestToken`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(request),
  });
  const token = await answer.json();
  if (!answer.ok) throw new Error(`Ably refused the token request: ${JSON.stringify(token)}`);
  const allowed = Object.keys(JSON.parse(request.capability || '{}'));
  const channels = allowed.filter((c) => c.startsWith('location:') || c === 'admin:health');
  const url = `${state.ably}/sse?v=1.2&channels=${channels.map(encodeURIComponent).join(',')}`
    + `&accessToken=${encodeURIComponent(token.token)}`;
  if (state.source) state.source.close();
  const source = new EventSource(url);
  state.source = source;
  source.onopen = () => {
    setStatus('catching up…');
    refresh().then(() => setStatus(`live: ${channels.join(', ')}`, true)).catch(showError);
  };
  source.onmessage = (event) => {
    const message = JSON.parse(event.data);
    const data = message.encoding === 'json' ? JSON.parse(message.data) : message.data;
    apply(message.name, data);
  };
  source.addEventListener('error', (event) => {
    if (event.data || source.readyState === EventSource.CLOSED) {
      setStatus('reconnecting…');
      source.close();
      setTimeout(reconnect, 2000); // a new token, a new stream
    }
  });
  // Renew a minute before the token expires.
  clearTimeout(state.renew);
  const expires = token.expires ? token.expires - Date.now() - 60000 : 50 * 60000;
  state.renew = setTimeout(reconnect, Math.max(expires, 10000));
}

function showError(error) {
  setStatus('error');
  $('sign-in-error').textContent = String(error.message || error);
}

async function start(jwt) {
  state.jwt = jwt;
  state.claims = claimsOf(jwt);
  state.ably = (await (await fetch('/dashboard/config.json')).json()).ably;
  await refresh();
  $('sign-in').hidden = true;
  $('board').hidden = false;
  await connect();
}

$('sign-in').addEventListener('submit', (event) => {
  event.preventDefault();
  const jwt = $('jwt').value.trim();
  $('sign-in-error').textContent = '';
  start(jwt).then(() => sessionStorage.setItem('streams-jwt', jwt)).catch((error) => {
    $('board').hidden = true;
    $('sign-in').hidden = false;
    showError(error);
  });
});
$('currency').addEventListener('change', paintChart);

const saved = sessionStorage.getItem('streams-jwt');
if (saved) {
  start(saved).catch((error) => {
    sessionStorage.removeItem('streams-jwt');
    $('sign-in').hidden = false;
    showError(error);
  });
} else {
  $('sign-in').hidden = false;
}
