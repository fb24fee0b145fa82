// The holdfast dashboard: polls the JSON API and draws it. Plain JavaScript, no build
// step, no dependency: the binary serves this file as it is, under a CSP that allows
// only same-origin script, so everything shown is set with textContent (never HTML),
// and whatever a task or an escalation holds is shown as text.
//
// Why totals and differences: /v1/holdfast/summary answers counters since the server
// started. The page keeps the last ten minutes of readings and takes differences
// between them, so every rate (traffic, success, retries, cost) and every window is
// computed here, and the server keeps no history for dashboards.
'use strict';

(() => {
  const POLL_MS = 1500;
  const HISTORY_MS = 10 * 60 * 1000;
  const FAILURE_WINDOW_MS = 60 * 1000;
  const KEY_STORE = 'holdfast.client_key';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  const state = {
    history: [], // [{t: client ms, s: summary}]
    timer: null,
    running: false,
    again: false,
    selectedTask: null,
    cards: new Map(), // escalation id -> its card element
    needsKey: false,
  };

  // ---------------------------------------------------------------------------------
  // The API

  class ApiError extends Error {
    constructor(status, code, message, param) {
      super(message);
      this.status = status;
      this.code = code;
      this.param = param || null;
    }

    // "message (409 conflict)": what the server said, then its status and code.
    describe() {
      if (this.status === 0) return this.message;
      return `${this.message} (${this.status} ${this.code})`;
    }
  }

  async function api(path, options = {}) {
    const headers = { Accept: 'application/json' };
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method: options.method || 'GET', headers, cache: 'no-store' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', `the server did not answer (${e.message})`);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const err = (json && json.error) || {};
      if (response.status === 401) noteAuthFailure(err.code);
      // A key whose role is too low for a panel (the totals and alerts are for
      // operators, the inbox for reviewers): say which role it needs.
      if (response.status === 403 && err.code === 'forbidden') setBanner(err.message);
      throw new ApiError(
        response.status,
        err.code || `http_${response.status}`,
        err.message || `HTTP ${response.status} from ${path}`,
        err.param,
      );
    }
    if (json === null) {
      throw new ApiError(response.status, 'invalid_response', `${path} did not answer JSON`);
    }
    if (path.startsWith('/v1/holdfast/summary')) clearBanner();
    return json;
  }

  // ---------------------------------------------------------------------------------
  // Small helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = String(value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function badge(value, testid) {
    return el('span', { class: `badge ${value}`, 'data-testid': testid, 'data-state': value, text: value.replace('_', '-') });
  }

  function show(node, visible) {
    node.classList.toggle('hidden', !visible);
  }

  function message(node, text, isError = true) {
    node.textContent = text || '';
    node.classList.toggle('error', isError);
    node.classList.toggle('note', !isError);
    show(node, Boolean(text));
  }

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function clock(ms) {
    if (typeof ms !== 'number') return '–';
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function usd(x) {
    if (typeof x !== 'number' || !Number.isFinite(x)) return '–';
    if (x === 0) return '$0';
    return x < 0.01 ? `$${x.toFixed(6)}` : `$${x.toFixed(4)}`;
  }

  function pct(x) {
    return x === null || !Number.isFinite(x) ? '–' : `${x.toFixed(1)}%`;
  }

  function compact(value, max = 400) {
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    if (text === undefined) return '';
    return text.length > max ? `${text.slice(0, max)}…` : text;
  }

  function pretty(value) {
    try {
      return JSON.stringify(value, null, 2);
    } catch (_) {
      return String(value);
    }
  }

  // ---------------------------------------------------------------------------------
  // The key and the banner

  function noteAuthFailure(code) {
    state.needsKey = true;
    show($('keyform'), true);
    const text = code === 'invalid_api_key'
      ? 'The client key was refused: enter another.'
      : 'This server needs a client key: enter it above the panels.';
    setBanner(text);
  }

  function setBanner(text) {
    $('banner').textContent = text;
    show($('banner'), true);
  }

  function clearBanner() {
    state.needsKey = false;
    show($('banner'), false);
  }

  function setupKey() {
    $('keyform').addEventListener('submit', (event) => {
      event.preventDefault();
      const key = $('key-input').value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORE, key);
      $('key-input').value = '';
      show($('keyform'), false);
      refreshNow();
    });
    $('key-forget').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORE);
      refreshNow();
    });
    $('key-button').addEventListener('click', () => {
      show($('keyform'), $('keyform').classList.contains('hidden'));
    });
  }

  // ---------------------------------------------------------------------------------
  // Summary and charts

  // The reading at least `ago` ms older than the newest, or the oldest one.
  function readingBefore(ago) {
    const newest = state.history[state.history.length - 1];
    for (let i = state.history.length - 2; i >= 0; i -= 1) {
      if (newest.t - state.history[i].t >= ago) return state.history[i];
    }
    return state.history.length > 1 ? state.history[0] : null;
  }

  // One point per pair of readings: fn(previous summary, next summary, seconds between).
  function series(fn) {
    const points = [];
    for (let i = 1; i < state.history.length; i += 1) {
      const a = state.history[i - 1];
      const b = state.history[i];
      const seconds = (b.t - a.t) / 1000;
      if (seconds <= 0) continue;
      points.push({ t: b.t, v: fn(a.s, b.s, seconds), gap: seconds * 1000 > 3 * POLL_MS });
    }
    return points;
  }

  const ratio = (num, den) => (den > 0 ? (100 * num) / den : null);

  function drawChart(svg, points, fixedMax) {
    const W = 300;
    const H = 80;
    svg.replaceChildren();
    // The x axis spans what was read so far, up to ten minutes, so that a page just
    // opened shows its first seconds across the whole chart.
    const now = Date.now();
    const oldest = state.history.length > 0 ? state.history[0].t : now;
    const t0 = Math.max(now - HISTORY_MS, Math.min(oldest, now - 10 * POLL_MS));
    const span = now - t0;
    const values = points.filter((p) => p.v !== null && Number.isFinite(p.v)).map((p) => p.v);
    const max = fixedMax || Math.max(1e-9, ...values) * 1.15;
    for (const y of [0.5, 1]) {
      const line = document.createElementNS(SVG_NS, 'line');
      line.setAttribute('x1', 0);
      line.setAttribute('x2', W);
      line.setAttribute('y1', H * y - 0.5);
      line.setAttribute('y2', H * y - 0.5);
      line.setAttribute('class', 'grid');
      svg.append(line);
    }
    let d = '';
    let pen = false;
    for (const p of points) {
      if (p.t < t0 || p.v === null || !Number.isFinite(p.v)) {
        pen = false;
        continue;
      }
      const x = ((p.t - t0) / span) * W;
      const y = H - 2 - (Math.min(p.v, max) / max) * (H - 6);
      d += `${pen && !p.gap ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
    }
    if (d) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d.trim());
      path.setAttribute('class', 'line');
      svg.append(path);
    }
    const title = document.createElementNS(SVG_NS, 'title');
    title.textContent = `last ${Math.round(span / 1000)} s; top of the chart: ${max.toPrecision(3)}`;
    svg.append(title);
  }

  function last(points) {
    for (let i = points.length - 1; i >= 0; i -= 1) {
      if (points[i].v !== null && Number.isFinite(points[i].v)) return points[i].v;
    }
    return null;
  }

  async function refreshSummary() {
    const s = await api('/v1/holdfast/summary');
    const previous = state.history[state.history.length - 1];
    // Counters that went down mean the server restarted: the old readings are useless.
    if (previous && (s.requests.total < previous.s.requests.total || s.attempts < previous.s.attempts)) {
      state.history = [];
    }
    const now = Date.now();
    state.history.push({ t: now, s });
    while (state.history.length > 2 && now - state.history[0].t > HISTORY_MS + 5000) {
      state.history.shift();
    }
    const traffic = series((a, b, sec) => (b.requests.total - a.requests.total) / sec);
    const success = series((a, b) => ratio(b.requests.succeeded - a.requests.succeeded, b.requests.total - a.requests.total));
    const retry = series((a, b) => ratio(b.retries - a.retries, b.attempts - a.attempts));
    const cost = series((a, b, sec) => ((b.cost_usd - a.cost_usd) / sec) * 60);
    drawChart($('c-traffic'), traffic);
    drawChart($('c-success'), success, 100);
    drawChart($('c-retry'), retry, 100);
    drawChart($('c-cost'), cost);
    const t = last(traffic);
    $('v-traffic').textContent = t === null ? '–' : `${t.toFixed(2)} req/s`;
    $('v-success').textContent = pct(last(success));
    $('v-retry').textContent = last(retry) === null ? '–' : `${pct(last(retry))} of attempts`;
    const c = last(cost);
    $('v-cost').textContent = c === null ? '–' : `${usd(c)}/min`;
    const r = s.requests;
    const tasks = s.tasks || {};
    $('totals').textContent = `Since start: ${r.total} requests (${r.succeeded} ok, ${r.degraded} degraded, ${r.failed} failed), `
      + `${s.attempts} attempts, ${s.retries} retries, ${s.fallbacks} fallbacks, ${usd(s.cost_usd)}, `
      + `${s.tokens.input + s.tokens.output} tokens; tasks: ${tasks.submitted || 0} submitted, `
      + `${tasks.succeeded || 0} succeeded, ${tasks.failed || 0} failed, ${tasks.unfinished || 0} unfinished.`;
  }

  // ---------------------------------------------------------------------------------
  // Targets

  function failureRate(name) {
    const newest = state.history[state.history.length - 1];
    const older = readingBefore(FAILURE_WINDOW_MS);
    if (!newest || !older) return { text: '–', attempts: null };
    const find = (s) => (s.targets || []).find((x) => x.name === name) || { attempts: 0, failures: 0 };
    const a = find(older.s);
    const b = find(newest.s);
    const attempts = b.attempts - a.attempts;
    if (attempts <= 0) return { text: 'no attempts', attempts: b.attempts };
    return { text: `${pct(ratio(b.failures - a.failures, attempts))} of ${attempts}`, attempts: b.attempts };
  }

  async function refreshTargets() {
    const errorNode = $('targets-error');
    try {
      const body = await api('/v1/holdfast/targets');
      message(errorNode, '');
      const rows = body.data.map((t) => {
        let breaker = badge(t.breaker, `breaker-${t.name}`);
        if (t.breaker === 'open' && t.open_remaining_ms > 0) {
          breaker = el('span', {}, breaker, el('span', { class: 'muted', text: ` ${Math.ceil(t.open_remaining_ms / 1000)}s left` }));
        }
        const rate = failureRate(t.name);
        return el('tr', { 'data-testid': `target-${t.name}` },
          el('td', { text: t.name }),
          el('td', { class: 'muted', text: `${t.provider} · ${t.model}` }),
          el('td', {}, breaker),
          el('td', { text: rate.text }),
          el('td', { text: rate.attempts === null ? '–' : rate.attempts }),
          el('td', { 'data-testid': `load-${t.name}`, text: t.concurrency
            ? `${t.concurrency.in_flight} / ${t.concurrency.limit} · ${t.concurrency.queued} · ${t.concurrency.sheds}`
            : 'unlimited' }));
      });
      $('targets-body').replaceChildren(...rows);
    } catch (e) {
      message(errorNode, `Targets: ${e.describe()}`);
    }
  }

  // ---------------------------------------------------------------------------------
  // Tasks and their timelines

  async function refreshTasks() {
    const errorNode = $('tasks-error');
    try {
      const body = await api('/v1/tasks?limit=50');
      message(errorNode, '');
      $('tasks-count').textContent = `(latest ${body.tasks.length})`;
      const rows = body.tasks.map((t) => {
        const row = el('tr', { 'data-testid': `task-${t.task_id}`, 'data-task-id': t.task_id, class: t.task_id === state.selectedTask ? 'selected' : null },
          el('td', {}, el('code', { text: t.task_id })),
          el('td', { text: `${t.workflow} v${t.workflow_version}` }),
          el('td', {}, badge(t.status, `task-status-${t.task_id}`)),
          el('td', { text: `${(t.completed_steps || []).length} / ${(t.pending_steps || []).length}`, title: `done: ${(t.completed_steps || []).join(', ') || '–'}; pending: ${(t.pending_steps || []).join(', ') || '–'}` }),
          el('td', { text: t.retry_count }),
          el('td', { text: usd(t.cost_usd) }),
          el('td', { class: 'muted', text: clock(t.updated_at_ms) }));
        return row;
      });
      if (rows.length === 0) {
        rows.push(el('tr', {}, el('td', { class: 'muted', colspan: 7, text: 'No tasks yet.' })));
      }
      $('tasks-body').replaceChildren(...rows);
    } catch (e) {
      const text = e.code === 'engine_unavailable' ? 'This server runs without the workflow engine.' : `Tasks: ${e.describe()}`;
      message(errorNode, text);
    }
  }

  function selectTask(taskId) {
    state.selectedTask = taskId;
    $('timeline-task').textContent = taskId;
    $('timeline-list').replaceChildren();
    show($('timeline'), true);
    for (const row of $('tasks-body').children) {
      row.classList.toggle('selected', row.dataset.taskId === taskId);
    }
    refreshTimeline();
  }

  async function refreshTimeline() {
    const taskId = state.selectedTask;
    if (!taskId) return;
    const errorNode = $('timeline-error');
    try {
      const body = await api(`/v1/tasks/${encodeURIComponent(taskId)}/journal?limit=1000`);
      if (state.selectedTask !== taskId) return;
      message(errorNode, '');
      const items = body.entries.map((entry) => {
        const empty = entry.data === null || entry.data === undefined
          || (typeof entry.data === 'object' && Object.keys(entry.data).length === 0);
        const data = empty ? null : el('pre', { text: compact(entry.data, 2000) });
        return el('li', { 'data-testid': 'timeline-entry' },
          el('span', { class: 'at', text: `${clock(entry.at_ms)} #${entry.seq}` }),
          el('span', { class: 'kind', text: entry.kind }),
          data);
      });
      if (items.length === 0) items.push(el('li', { class: 'muted', text: 'no journal entries yet' }));
      $('timeline-list').replaceChildren(...items);
    } catch (e) {
      message(errorNode, `Timeline: ${e.describe()}`);
    }
  }

  function setupTasks() {
    $('tasks-body').addEventListener('click', (event) => {
      const row = event.target.closest('tr[data-task-id]');
      if (row) selectTask(row.dataset.taskId);
    });
    $('timeline-close').addEventListener('click', () => {
      state.selectedTask = null;
      show($('timeline'), false);
      for (const row of $('tasks-body').children) row.classList.remove('selected');
    });
  }

  // ---------------------------------------------------------------------------------
  // The escalation inbox

  async function resolve(esc, body, card, verb) {
    const inboxMessage = $('inbox-message');
    const cardError = card.querySelector('[data-role=error]');
    message(cardError, '');
    for (const button of card.querySelectorAll('button')) button.disabled = true;
    try {
      await api(`/v1/escalations/${encodeURIComponent(esc.escalation_id)}/resolve`, { method: 'POST', body });
      message(inboxMessage, `${verb} escalation ${esc.escalation_id} (task ${esc.task_id}, step ${esc.step}).`, false);
      card.remove();
      state.cards.delete(esc.escalation_id);
      refreshNow();
    } catch (e) {
      const text = e.status === 409
        ? `Escalation ${esc.escalation_id} was already resolved (by someone else, or by an earlier click): ${e.describe()}`
        : `Could not resolve escalation ${esc.escalation_id}: ${e.describe()}`;
      message(cardError, text);
      message(inboxMessage, text);
      for (const button of card.querySelectorAll('button')) button.disabled = false;
    }
  }

  function escalationCard(esc) {
    const id = esc.escalation_id;
    const error = el('p', { class: 'error hidden', 'data-role': 'error', 'data-testid': `escalation-error-${id}`, role: 'status' });
    const textarea = el('textarea', { 'data-testid': `edit-text-${id}`, 'aria-label': 'edited payload (JSON)', spellcheck: 'false' });
    const reasonInput = el('input', { class: 'reason-input', 'data-testid': `reject-reason-${id}`, placeholder: 'why (recorded with the decision)', 'aria-label': 'reason' });
    const approve = el('button', { type: 'button', class: 'primary', 'data-testid': `approve-${id}`, text: 'Approve' });
    const edit = el('button', { type: 'button', 'data-testid': `edit-${id}`, text: 'Edit' });
    const reject = el('button', { type: 'button', class: 'danger', 'data-testid': `reject-${id}`, text: 'Reject' });
    const sendEdit = el('button', { type: 'button', class: 'primary', 'data-testid': `edit-send-${id}`, text: 'Send edited payload' });
    const cancelEdit = el('button', { type: 'button', class: 'quiet', text: 'Cancel' });
    const sendReject = el('button', { type: 'button', class: 'danger', 'data-testid': `reject-send-${id}`, text: 'Reject with this reason' });
    const cancelReject = el('button', { type: 'button', class: 'quiet', text: 'Cancel' });
    const editor = el('div', { class: 'hidden' }, textarea, el('div', { class: 'actions' }, sendEdit, cancelEdit));
    const rejector = el('div', { class: 'actions hidden' }, reasonInput, sendReject, cancelReject);
    const card = el('div', { class: 'escalation', 'data-testid': `escalation-${id}`, 'data-task-id': esc.task_id },
      el('div', { class: 'meta' }, 'task ', el('code', { text: esc.task_id }), ' · step ', el('code', { text: esc.step }), ` · opened ${clock(esc.created_at_ms)}`),
      el('div', { class: 'reason', text: esc.reason }),
      el('pre', { 'data-testid': `payload-${id}`, text: pretty(esc.payload) }),
      el('div', { class: 'actions' }, approve, edit, reject),
      editor, rejector, error);

    approve.addEventListener('click', () => resolve(esc, { action: 'approve' }, card, 'Approved'));
    edit.addEventListener('click', () => {
      textarea.value = pretty(esc.payload);
      show(editor, true);
      show(rejector, false);
      textarea.focus();
    });
    cancelEdit.addEventListener('click', () => { show(editor, false); message(error, ''); });
    sendEdit.addEventListener('click', () => {
      let value;
      try {
        value = JSON.parse(textarea.value);
      } catch (e) {
        const text = `The edited payload is not valid JSON, so it was not sent: ${e.message}`;
        message(error, text);
        message($('inbox-message'), text);
        return;
      }
      resolve(esc, { action: 'edit', value }, card, 'Edited');
    });
    reject.addEventListener('click', () => {
      show(rejector, true);
      show(editor, false);
      reasonInput.focus();
    });
    cancelReject.addEventListener('click', () => { show(rejector, false); message(error, ''); });
    sendReject.addEventListener('click', () => {
      const reason = reasonInput.value.trim();
      resolve(esc, reason ? { action: 'reject', reason } : { action: 'reject' }, card, 'Rejected');
    });
    return card;
  }

  async function refreshInbox() {
    const inbox = $('inbox');
    try {
      const body = await api('/v1/escalations?status=open&limit=100');
      const open = body.escalations;
      $('inbox-count').textContent = `(${open.length} open)`;
      const ids = new Set(open.map((e) => e.escalation_id));
      // Cards stay in place while they are open, so that a half-typed edit survives
      // the refresh; only new ones are added and gone ones removed.
      for (const [id, card] of state.cards) {
        if (!ids.has(id)) {
          card.remove();
          state.cards.delete(id);
        }
      }
      for (const esc of open) {
        if (!state.cards.has(esc.escalation_id)) {
          const card = escalationCard(esc);
          state.cards.set(esc.escalation_id, card);
          inbox.append(card);
        }
      }
      let empty = inbox.querySelector('[data-role=empty]');
      if (open.length === 0 && !empty) {
        empty = el('p', { class: 'muted', 'data-role': 'empty', 'data-testid': 'inbox-empty', text: 'Nothing waits for a person.' });
        inbox.append(empty);
      } else if (open.length > 0 && empty) {
        empty.remove();
      }
    } catch (e) {
      const text = e.code === 'engine_unavailable' ? 'This server runs without the workflow engine.' : `Inbox: ${e.describe()}`;
      $('inbox-count').textContent = '';
      message($('inbox-message'), text);
    }
  }

  // ---------------------------------------------------------------------------------
  // Few-shot examples: every library's examples, candidates first; approve or retire
  // with one click.

  async function changeExample(example, action) {
    const note = $('examples-message');
    try {
      const changed = await api(`/v1/holdfast/examples/${example.id}/${action}`, { method: 'POST', body: {} });
      message(note, `Example ${changed.id} of ${changed.library} is ${changed.status}.`, false);
      refreshNow();
    } catch (e) {
      message(note, `Could not ${action} example ${example.id}: ${e.describe()}`);
    }
  }

  function exampleRow(e) {
    const actions = el('td', {});
    if (e.status === 'candidate') {
      const approve = el('button', { type: 'button', class: 'primary', 'data-testid': `example-approve-${e.id}`, text: 'Approve' });
      approve.addEventListener('click', () => changeExample(e, 'approve'));
      actions.append(approve);
    }
    if (e.status !== 'retired') {
      const retire = el('button', { type: 'button', class: 'danger', 'data-testid': `example-retire-${e.id}`, text: 'Retire' });
      retire.addEventListener('click', () => changeExample(e, 'retire'));
      actions.append(retire);
    }
    return el('tr', { 'data-testid': `example-${e.id}` },
      el('td', {}, el('code', { text: e.library })),
      el('td', {}, badge(e.status, `example-status-${e.id}`)),
      el('td', { text: compact(e.input, 160) }),
      el('td', { text: compact(e.output, 160) }),
      el('td', { text: `${e.source} · ${e.author}` }),
      el('td', { text: e.last_used_at_ms ? `${e.times_used} · last ${clock(e.last_used_at_ms)}` : `${e.times_used}` }),
      actions);
  }

  async function refreshExamples() {
    const body = $('examples-body');
    try {
      const list = (await api('/v1/holdfast/examples?limit=200')).examples;
      const rank = { candidate: 0, active: 1, retired: 2 };
      list.sort((a, b) => rank[a.status] - rank[b.status] || b.id - a.id);
      const candidates = list.filter((e) => e.status === 'candidate').length;
      $('examples-count').textContent = `(${list.length} · ${candidates} to review)`;
      body.replaceChildren(...list.map(exampleRow));
    } catch (e) {
      const text = e.code === 'engine_unavailable' ? 'This server keeps no example libraries (no store attached).' : `Examples: ${e.describe()}`;
      $('examples-count').textContent = '';
      message($('examples-message'), text);
    }
  }

  // ---------------------------------------------------------------------------------
  // Alerts

  async function refreshAlerts() {
    const list = $('alerts');
    try {
      const body = await api('/v1/holdfast/alerts');
      show($('alerts-unavailable'), false);
      message($('alerts-error'), body.enabled === false ? 'Alert rules are off on this server.' : '', false);
      const items = (body.alerts || []).map((a) => el('li', { 'data-testid': `alert-${a.alert}` },
        badge(a.state, `alert-state-${a.alert}`), ' ',
        el('strong', { text: a.alert }),
        el('span', { class: 'muted', text: ` ${a.severity}` }),
        el('span', { class: 'summary', text: a.summary || (a.value === null ? '' : `value ${a.value}, threshold ${a.threshold}`) })));
      list.replaceChildren(...items);
      const notices = (body.recent || []).slice(0, 20).map((n) => el('li', {},
        badge(String(n.state), 'notice'), ' ',
        el('strong', { text: n.alert }),
        el('span', { class: 'summary', text: `${n.summary} (since ${n.started_at}${n.resolved_at ? `, resolved ${n.resolved_at}` : ''})` })));
      if (notices.length === 0) notices.push(el('li', { class: 'muted', text: 'none' }));
      $('notices').replaceChildren(...notices);
    } catch (e) {
      if (e.status === 404) {
        show($('alerts-unavailable'), true);
        list.replaceChildren();
        message($('alerts-error'), '');
      } else {
        message($('alerts-error'), `Alerts: ${e.describe()}`);
      }
    }
  }

  // The store's state from /ready (no key needed; 503 is an answer, not a failure):
  // "store up since 14:02:11" or "store down since 14:05:40 (timeout)", and, with
  // [store] outbox on, how full the outbox is: "outbox 12.5 KiB of 64 MiB (0.0%)".
  async function refreshStore() {
    const node = $('store-status');
    const outbox = $('outbox-status');
    let body = null;
    try {
      const response = await fetch('/ready', { cache: 'no-store', headers: { Accept: 'application/json' } });
      body = await response.json();
    } catch (_) {
      body = null;
    }
    const store = body && body.checks && body.checks.store;
    if (!store) {
      node.className = 'badge';
      node.textContent = body ? 'no store' : 'store ?';
      show(outbox, false);
      return;
    }
    node.className = `badge ${store.state}`;
    const cause = store.cause ? ` (${store.cause})` : '';
    node.textContent = `store ${store.state} since ${clock(store.since_ms)}${cause}`;
    const held = store.outbox;
    show(outbox, Boolean(held));
    if (held) {
      const share = held.max_bytes > 0 ? held.bytes / held.max_bytes : 0;
      // Empty is the normal state; filling means the store is down; near full, refusals.
      const state = held.bytes === 0 ? 'up' : (share < 0.8 ? 'pending' : 'down');
      outbox.className = `badge ${state}`;
      outbox.dataset.bytes = String(held.bytes);
      outbox.textContent = `outbox ${size(held.bytes)} of ${size(held.max_bytes)} (${(100 * share).toFixed(1)}%)`;
    }
  }

  function size(bytes) {
    if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${value} B` : `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
  }

  // ---------------------------------------------------------------------------------
  // Game days: the scheduled chaos experiments' latest runs ([chaos] schedule)

  async function refreshGameDays() {
    try {
      const body = await api('/v1/holdfast/game-days');
      message($('game-days-error'), '');
      const items = (body.runs || []).slice(0, 10).map((r, i) => el('li', { 'data-testid': `game-day-${i}` },
        badge(r.passed ? 'passed' : 'failed', `game-day-state-${i}`), ' ',
        el('strong', { text: r.title }),
        el('span', { class: 'summary', text: ` ${r.experiment} · ${r.started_unix_ms ? clock(r.started_unix_ms) : '?'} · ${r.verdict}` })));
      if (items.length === 0) items.push(el('li', { class: 'muted', text: 'no scheduled experiment has run' }));
      $('game-days').replaceChildren(...items);
    } catch (e) {
      $('game-days').replaceChildren();
      message($('game-days-error'), `Game days: ${e.describe()}`);
    }
  }

  // ---------------------------------------------------------------------------------
  // Configuration versions, each with the quality gate's verdict

  async function refreshConfig() {
    try {
      const body = await api('/admin/config/history?limit=10');
      message($('config-error'), '');
      const items = (body.data || []).map((v) => {
        const gate = v.gate;
        const verdict = gate ? `${gate.passed ? 'gate passed' : 'gate FAILED'} (${gate.action}): ${gate.summary}` : 'not gated';
        return el('li', { 'data-testid': `config-version-${v.version}` },
          badge(v.applied ? 'running' : (gate && !gate.passed ? gate.action : 'stored'), `config-state-${v.version}`), ' ',
          el('strong', { text: `version ${v.version}` }),
          el('span', { class: 'summary', text: ` ${verdict}${v.restored_from ? ` · restores ${v.restored_from}` : ''}` }));
      });
      if (items.length === 0) items.push(el('li', { class: 'muted', text: 'none' }));
      $('config-versions').replaceChildren(...items);
    } catch (e) {
      $('config-versions').replaceChildren();
      message($('config-error'), e.code === 'history_unavailable' ? 'This server keeps no configuration history.' : `Configuration: ${e.describe()}`);
    }
  }

  // ---------------------------------------------------------------------------------
  // The refresh loop: one tick at a time, paused while the tab is hidden.

  async function tick() {
    state.timer = null;
    if (document.hidden) {
      $('live-status').textContent = 'paused while the tab is hidden';
      return;
    }
    state.running = true;
    let summaryError = null;
    await Promise.all([
      refreshSummary().catch((e) => { summaryError = e; }),
      refreshTargets(),
      refreshTasks(),
      refreshInbox(),
      refreshExamples(),
      refreshAlerts(),
      refreshConfig(),
      refreshGameDays(),
      refreshTimeline(),
      refreshStore(),
    ]);
    state.running = false;
    if (document.hidden) {
      // Hidden while this tick ran: the loop stops here until the tab is shown again.
      $('live-status').textContent = 'paused while the tab is hidden';
      return;
    }
    if (summaryError) {
      $('live-status').textContent = `refresh failed at ${clock(Date.now())}`;
      if (!state.needsKey) setBanner(`The summary could not be read: ${summaryError.describe()}`);
    } else {
      $('live-status').textContent = `live · updated ${clock(Date.now())} · every ${POLL_MS / 1000}s`;
    }
    if (state.again) {
      state.again = false;
      schedule(0);
    } else {
      schedule(POLL_MS);
    }
  }

  function schedule(delay) {
    if (state.timer !== null || state.running || document.hidden) return;
    state.timer = setTimeout(tick, delay);
  }

  // Refresh at once (after an action), or right after the tick under way.
  function refreshNow() {
    if (state.running) {
      state.again = true;
      return;
    }
    clearTimeout(state.timer);
    state.timer = null;
    schedule(0);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(state.timer);
      state.timer = null;
      $('live-status').textContent = 'paused while the tab is hidden';
    } else {
      refreshNow();
    }
  });

  document.addEventListener('DOMContentLoaded', () => {
    setupKey();
    setupTasks();
    schedule(0);
  });
})();
