// Warren's management UI: a single page talking to the management API (/api/...) with HTTP
// basic auth. Credentials live in sessionStorage (gone when the tab closes), as in RabbitMQ's
// UI. Everything a client named (queues, exchanges, payloads) is inserted as text, never as
// markup. Charts are drawn on <canvas> by drawChart below.
'use strict';

(() => {
  /** How often the overview and the current page are refreshed. */
  const POLL_MS = 5000;
  /** Overview samples kept for the charts (10 minutes at the default poll interval). */
  const HISTORY = 120;
  const CREDENTIALS = 'warren.credentials';
  const USERNAME = 'warren.username';
  /** RabbitMQ's reasons for a 401 that mean "log in again" rather than "not allowed". */
  const LOGIN_REASONS = ['Login failed', 'Not management user', 'User can only log in via localhost'];
  const RATE_KEYS = [
    ['publish', 'Publish', '#d9822b'],
    ['deliver_get', 'Deliver / get', '#2b7bd9'],
    ['ack', 'Ack', '#3c9d4e'],
  ];
  const DEPTH_KEYS = [
    ['messages_ready', 'Ready', '#d9b32b'],
    ['messages_unacknowledged', 'Unacked', '#8a5bd9'],
    ['messages', 'Total', '#777777'],
  ];

  // --- DOM helpers --------------------------------------------------------------------------

  /** Creates an element; strings among `kids` become text nodes, never markup. */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    append(el, kids);
    return el;
  }

  function append(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
  }

  const $ = (id) => document.getElementById(id);

  function fmt(n) {
    return typeof n === 'number' ? n.toLocaleString('en-US') : '?';
  }

  function fmtRate(r) {
    return (Math.round(r * 10) / 10).toLocaleString('en-US', { minimumFractionDigits: 1 }) + '/s';
  }

  function clock(t) {
    return new Date(t).toLocaleTimeString('en-GB', { hour12: false });
  }

  function exchangeLabel(name) {
    return name === '' ? '(AMQP default)' : name;
  }

  /** A hash route to a vhost-scoped object, every segment encoded. */
  function objectHref(kind, vhost, name) {
    return `#/${kind}/${encodeURIComponent(vhost)}/${encodeURIComponent(name === '' ? 'amq.default' : name)}`;
  }

  /** The API path of a vhost-scoped object (the default exchange is "amq.default"). */
  function objectPath(kind, vhost, name) {
    return `${kind}/${encodeURIComponent(vhost)}/${encodeURIComponent(name === '' ? 'amq.default' : name)}`;
  }

  function table(headers, rows, empty) {
    if (rows.length === 0) return h('p', { class: 'empty' }, empty);
    return h('table', { class: 'list' },
      h('thead', {}, h('tr', {}, headers.map((c) => h('th', {}, c)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))));
  }

  /** A two-column table of label / value pairs. */
  function facts(pairs) {
    return h('table', { class: 'facts' },
      h('tbody', {}, pairs.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));
  }

  function argsText(args) {
    const keys = Object.keys(args || {});
    return keys.length ? keys.map((k) => `${k}: ${JSON.stringify(args[k])}`).join(', ') : '';
  }

  function features(o) {
    const f = [];
    if (o.durable) f.push(h('abbr', { class: 'tag', title: 'durable' }, 'D'));
    if (o.auto_delete) f.push(h('abbr', { class: 'tag', title: 'auto-delete' }, 'AD'));
    if (o.exclusive) f.push(h('abbr', { class: 'tag', title: 'exclusive' }, 'Excl'));
    if (o.internal) f.push(h('abbr', { class: 'tag', title: 'internal' }, 'I'));
    const args = argsText(o.arguments);
    if (args) f.push(h('abbr', { class: 'tag args', title: args }, 'Args'));
    return f;
  }

  let flashTimer = null;
  /** Set when a message is meant for the page being navigated to (e.g. after a delete). */
  let flashSurvivesNavigation = false;
  function flash(text, kind) {
    const el = $('flash');
    el.textContent = text;
    el.className = kind === 'error' ? 'error' : 'ok';
    el.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { el.hidden = true; }, 10000);
  }

  function reasonOf(err) {
    if (err instanceof ApiError) {
      const r = err.body && err.body.reason !== undefined ? err.body.reason : err.body;
      return typeof r === 'string' ? r : JSON.stringify(r);
    }
    return err && err.message ? err.message : String(err);
  }

  function showError(err) {
    if (err instanceof LoggedOut) return;
    flash(reasonOf(err), 'error');
  }

  /** Parses an optional JSON object typed into a form; throws a readable error. */
  function jsonObject(text, what) {
    if (!text.trim()) return {};
    let v;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`${what} is not valid JSON: ${e.message}`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} must be a JSON object`);
    return v;
  }

  // --- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      super(`HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  /** Thrown after the session ended because the broker no longer accepts the credentials. */
  class LoggedOut extends Error {}

  function encodeCredentials(user, pass) {
    const bytes = new TextEncoder().encode(`${user}:${pass}`);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  async function request(method, path, body, extraHeaders) {
    const headers = Object.assign({
      Authorization: 'Basic ' + (sessionStorage.getItem(CREDENTIALS) || ''),
      // Makes the broker leave WWW-Authenticate out, so a wrong password is reported by the
      // page instead of the browser's own login dialog.
      'X-Requested-With': 'XMLHttpRequest',
    }, extraHeaders || {});
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch('api/' + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = text; }
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return { status: resp.status, data };
  }

  /** An API call in a session: a 401 that means bad credentials ends the session. */
  async function api(method, path, body, extraHeaders) {
    try {
      return (await request(method, path, body, extraHeaders)).data;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && LOGIN_REASONS.includes(reasonOf(e))) {
        logout(reasonOf(e));
        throw new LoggedOut();
      }
      throw e;
    }
  }

  const get = (path) => api('GET', path);

  // --- Overview samples ---------------------------------------------------------------------

  /** `{t, overview, depth: {...}, rates: {...}}`, oldest first. */
  const samples = [];

  /**
   * Message rates of an overview: RabbitMQ's `*_details.rate` when the broker reports it,
   * otherwise the change in the cumulative count since the previous sample, and 0 when the
   * broker reports neither.
   */
  function ratesOf(stats, t, prev) {
    const rates = {};
    for (const [key] of RATE_KEYS) {
      const details = stats[key + '_details'];
      if (details && typeof details.rate === 'number') {
        rates[key] = details.rate;
      } else if (typeof stats[key] === 'number' && prev && typeof prev.counts[key] === 'number' && t > prev.t) {
        rates[key] = Math.max(0, (stats[key] - prev.counts[key]) / ((t - prev.t) / 1000));
      } else {
        rates[key] = 0;
      }
    }
    return rates;
  }

  async function sample() {
    const o = await get('overview');
    const t = Date.now();
    const stats = o.message_stats && !Array.isArray(o.message_stats) ? o.message_stats : {};
    const prev = samples[samples.length - 1];
    const counts = {};
    for (const [key] of RATE_KEYS) counts[key] = stats[key];
    const qt = o.queue_totals || {};
    const depth = {};
    for (const [key] of DEPTH_KEYS) depth[key] = typeof qt[key] === 'number' ? qt[key] : 0;
    samples.push({ t, overview: o, counts, depth, rates: ratesOf(stats, t, prev) });
    while (samples.length > HISTORY) samples.shift();
    $('product').textContent = `${o.product_name || 'Warren'} ${o.product_version || ''} · ${o.node || ''}`;
    $('updated').textContent = `Updated ${clock(t)}`;
  }

  // --- Charts -------------------------------------------------------------------------------

  /**
   * The step between four gridlines that cover `max`: 1, 2 or 5 times a power of ten (2.5 too
   * when fractions are allowed, never below 1 for whole-number axes).
   */
  function gridStep(max, whole) {
    const raw = max / 4;
    if (raw <= 0) return whole ? 1 : 0.25;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const steps = whole ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    const step = steps.map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    return whole ? Math.max(1, Math.ceil(step)) : step;
  }

  /** An axis label: at most two decimals, none when whole. */
  function axisLabel(v, unit) {
    return Number(v.toFixed(2)).toLocaleString('en-US') + unit;
  }

  /**
   * Draws line series over time on `canvas`. series: [{label, color, values}], times: sample
   * times in ms. The canvas's dataset records what was drawn, for tests and for debugging.
   */
  function drawChart(canvas, times, series, axis) {
    const dpr = window.devicePixelRatio || 1;
    const width = Math.max(200, canvas.clientWidth || 600);
    const height = Math.max(120, canvas.clientHeight || 200);
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const pad = { left: 56, right: 12, top: 10, bottom: 24 };
    const w = width - pad.left - pad.right;
    const hgt = height - pad.top - pad.bottom;
    const step = gridStep(Math.max(0, ...series.flatMap((s) => s.values)), axis.whole);
    const max = 4 * step;
    const n = times.length;
    const t0 = n ? times[0] : 0;
    const span = n > 1 ? times[n - 1] - t0 : 1;
    const x = (t) => pad.left + (n > 1 ? ((t - t0) / span) * w : w);
    const y = (v) => pad.top + hgt - (v / max) * hgt;

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = '#e3e3e3';
    ctx.fillStyle = '#666';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const v = step * i;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + w, yy);
      ctx.stroke();
      ctx.fillText(axisLabel(v, axis.unit), pad.left - 6, yy);
    }
    ctx.textBaseline = 'top';
    if (n) {
      ctx.textAlign = 'right';
      ctx.fillText(clock(times[n - 1]), pad.left + w, pad.top + hgt + 6);
      if (n > 1) {
        ctx.textAlign = 'left';
        ctx.fillText(clock(t0), pad.left, pad.top + hgt + 6);
      }
    }
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    // The first series is drawn last, on top of any it coincides with.
    for (const s of [...series].reverse()) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.beginPath();
      s.values.forEach((v, i) => (i ? ctx.lineTo(x(times[i]), y(v)) : ctx.moveTo(x(times[i]), y(v))));
      ctx.stroke();
      if (n) {
        ctx.beginPath();
        ctx.arc(x(times[n - 1]), y(s.values[n - 1]), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    canvas.dataset.samples = String(n);
    canvas.dataset.max = String(max);
    canvas.dataset.last = JSON.stringify(Object.fromEntries(series.map((s) => [s.label, s.values[n - 1] ?? null])));
  }

  function legend(series, format) {
    return h('ul', { class: 'legend' }, series.map((s) =>
      h('li', {}, h('span', { class: 'swatch', dataset: { color: s.color } }), `${s.label} `,
        h('strong', { class: 'legend-value' }, s.values.length ? format(s.values[s.values.length - 1]) : '–'))));
  }

  /** A chart panel whose canvas is redrawn by `update`. */
  function chartPanel(id, title, keys, pick, format, axis) {
    const canvas = h('canvas', { id, class: 'chart', role: 'img', 'aria-label': title });
    const legendBox = h('div', {});
    const panel = h('div', { class: 'card chart-card' }, h('h3', {}, title), canvas, legendBox);
    const update = () => {
      const times = samples.map((s) => s.t);
      const series = keys.map(([key, label, color]) => ({ label, color, values: samples.map((s) => pick(s)[key]) }));
      drawChart(canvas, times, series, axis);
      legendBox.replaceChildren(legend(series, format));
      for (const sw of legendBox.querySelectorAll('.swatch')) sw.style.backgroundColor = sw.dataset.color;
    };
    return { panel, update };
  }

  // --- Views --------------------------------------------------------------------------------
  // A view is {title, el, refresh()}: `el` is built once (so forms keep what is typed) and
  // `refresh` replaces only the parts that show broker state.

  function overviewView() {
    const totals = h('div', { class: 'totals' });
    const depth = chartPanel('chart-depth', 'Queued messages', DEPTH_KEYS, (s) => s.depth, fmt, { whole: true, unit: '' });
    const rates = chartPanel('chart-rates', 'Message rates', RATE_KEYS, (s) => s.rates, fmtRate, { whole: false, unit: '/s' });
    const info = h('div', {});
    const el = h('div', {}, h('h2', {}, 'Overview'), totals, h('div', { class: 'charts' }, depth.panel, rates.panel), info);
    const tile = (id, label, value) => h('div', { class: 'tile' }, h('span', { class: 'label' }, label), h('span', { class: 'value', id }, fmt(value)));
    const refresh = async () => {
      const last = samples[samples.length - 1];
      if (!last) return;
      const o = last.overview;
      const ot = o.object_totals || {};
      const qt = o.queue_totals || {};
      totals.replaceChildren(
        tile('ov-connections', 'Connections', ot.connections),
        tile('ov-channels', 'Channels', ot.channels),
        tile('ov-exchanges', 'Exchanges', ot.exchanges),
        tile('ov-queues', 'Queues', ot.queues),
        tile('ov-consumers', 'Consumers', ot.consumers),
        tile('ov-messages-ready', 'Ready', qt.messages_ready),
        tile('ov-messages-unacked', 'Unacked', qt.messages_unacknowledged),
        tile('ov-messages', 'Total messages', qt.messages));
      depth.update();
      rates.update();
      info.replaceChildren(h('div', { class: 'card' }, h('h3', {}, 'Node'), facts([
        ['Node', o.node || ''],
        ['Product', `${o.product_name || ''} ${o.product_version || ''}`],
        ['Management API', o.management_version || ''],
        ['Listeners', (o.listeners || []).map((l) => `${l.protocol} ${l.ip_address}:${l.port}`).join(', ')],
      ])));
    };
    return { title: 'Overview', tab: 'overview', el, refresh, onResize: () => { depth.update(); rates.update(); } };
  }

  function connectionsView() {
    const list = h('div', {});
    const el = h('div', {}, h('h2', {}, 'Connections'), list);
    const close = async (name) => {
      if (!confirm(`Close connection ${name}?`)) return;
      try {
        await api('DELETE', 'connections/' + encodeURIComponent(name), undefined, { 'X-Reason': 'Closed via management UI' });
        flash(`Connection ${name} closed.`);
        await refresh();
      } catch (e) { showError(e); }
    };
    const refresh = async () => {
      const conns = await get('connections');
      list.replaceChildren(table(
        ['Name', 'Virtual host', 'User', 'Client', 'State', 'Channels', 'Protocol', ''],
        conns.map((c) => [
          c.name, c.vhost, c.user, `${c.peer_host}:${c.peer_port}`, c.state, fmt(c.channels), c.protocol,
          h('button', { type: 'button', class: 'danger small', onclick: () => close(c.name) }, 'Close'),
        ]),
        'No connections.'));
    };
    return { title: 'Connections', tab: 'connections', el, refresh };
  }

  /** A <select> of the vhosts the user may see, "/" first. */
  async function vhostSelect(name) {
    const vhosts = await get('vhosts');
    const names = vhosts.map((v) => v.name).sort((a, b) => (a === '/' ? -1 : b === '/' ? 1 : a.localeCompare(b)));
    return h('select', { name }, names.map((n) => h('option', { value: n }, n)));
  }

  function formRow(label, input) {
    return h('label', { class: 'row' }, h('span', {}, label), input);
  }

  function yesNo(name, yes) {
    return h('select', { name },
      h('option', { value: 'true', selected: yes }, 'Yes'),
      h('option', { value: 'false', selected: !yes }, 'No'));
  }

  function exchangesView() {
    const list = h('div', {});
    const form = h('form', { id: 'add-exchange', class: 'card' });
    const el = h('div', {}, h('h2', {}, 'Exchanges'), list, h('details', {}, h('summary', {}, 'Add a new exchange'), form));
    vhostSelect('vhost').then((vs) => {
      append(form, [
        formRow('Virtual host', vs),
        formRow('Name', h('input', { name: 'name', required: true })),
        formRow('Type', h('select', { name: 'type' }, ['direct', 'fanout', 'topic', 'headers'].map((t) => h('option', { value: t }, t)))),
        formRow('Durable', yesNo('durable', true)),
        formRow('Auto delete', yesNo('auto_delete', false)),
        formRow('Internal', yesNo('internal', false)),
        formRow('Arguments (JSON)', h('textarea', { name: 'arguments', rows: 2, placeholder: '{"alternate-exchange": "ae"}' })),
        h('button', { type: 'submit' }, 'Add exchange'),
      ]);
    }).catch(showError);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      try {
        const name = f.get('name');
        await api('PUT', objectPath('exchanges', f.get('vhost'), name), {
          type: f.get('type'),
          durable: f.get('durable') === 'true',
          auto_delete: f.get('auto_delete') === 'true',
          internal: f.get('internal') === 'true',
          arguments: jsonObject(f.get('arguments'), 'Arguments'),
        });
        flash(`Exchange ${name} declared.`);
        form.elements.name.value = '';
        await refresh();
      } catch (e) { showError(e); }
    });
    const refresh = async () => {
      const xs = await get('exchanges');
      list.replaceChildren(table(
        ['Virtual host', 'Name', 'Type', 'Features'],
        xs.map((x) => [x.vhost, h('a', { href: objectHref('exchanges', x.vhost, x.name) }, exchangeLabel(x.name)), x.type, features(x)]),
        'No exchanges.'));
    };
    return { title: 'Exchanges', tab: 'exchanges', el, refresh };
  }

  function bindingsTable(bs, vhost, showSource, onUnbind) {
    return table(
      [showSource ? 'From' : 'To', 'Routing key', 'Arguments', ''],
      bs.map((b) => [
        showSource
          ? (b.source === '' ? '(default exchange binding)' : h('a', { href: objectHref('exchanges', vhost, b.source) }, b.source))
          : h('a', { href: objectHref(b.destination_type === 'queue' ? 'queues' : 'exchanges', vhost, b.destination) }, `${b.destination_type} ${b.destination}`),
        b.routing_key,
        argsText(b.arguments),
        onUnbind && b.source !== '' ? h('button', { type: 'button', class: 'small', onclick: () => onUnbind(b) }, 'Unbind') : '',
      ]),
      'No bindings.');
  }

  function exchangeView(vhost, name) {
    const details = h('div', {});
    const bindings = h('div', {});
    const result = h('p', { id: 'publish-result', role: 'status' });
    const form = h('form', { id: 'publish-form', class: 'card' },
      formRow('Routing key', h('input', { name: 'routing_key', id: 'publish-routing-key' })),
      formRow('Delivery mode', h('select', { name: 'delivery_mode' },
        h('option', { value: '1' }, '1 - Non-persistent'), h('option', { value: '2' }, '2 - Persistent'))),
      formRow('Headers (JSON)', h('textarea', { name: 'headers', rows: 2, placeholder: '{"key": "value"}' })),
      formRow('Properties (JSON)', h('textarea', { name: 'properties', rows: 2, placeholder: '{"content_type": "text/plain"}' })),
      formRow('Payload', h('textarea', { name: 'payload', id: 'publish-payload', rows: 5 })),
      formRow('Payload encoding', h('select', { name: 'payload_encoding' },
        h('option', { value: 'string' }, 'String'), h('option', { value: 'base64' }, 'Base64'))),
      h('button', { type: 'submit', id: 'publish-submit' }, 'Publish message'),
      result);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      result.textContent = '';
      try {
        const properties = jsonObject(f.get('properties'), 'Properties');
        properties.delivery_mode = Number(f.get('delivery_mode'));
        const headers = jsonObject(f.get('headers'), 'Headers');
        if (Object.keys(headers).length) properties.headers = headers;
        const r = await api('POST', objectPath('exchanges', vhost, name) + '/publish', {
          properties,
          routing_key: f.get('routing_key'),
          payload: f.get('payload'),
          payload_encoding: f.get('payload_encoding'),
        });
        // RabbitMQ's wording.
        result.textContent = r.routed ? 'Message published.' : 'Message published, but not routed.';
        result.className = r.routed ? 'ok' : 'warn';
      } catch (e) {
        if (e instanceof LoggedOut) return;
        result.textContent = reasonOf(e);
        result.className = 'error';
      }
    });
    const del = h('button', { type: 'button', class: 'danger', id: 'delete-exchange' }, 'Delete this exchange');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete exchange ${name}?`)) return;
      try {
        await api('DELETE', objectPath('exchanges', vhost, name));
        flash(`Exchange ${name} deleted.`);
        flashSurvivesNavigation = true;
        location.hash = '#/exchanges';
      } catch (e) { showError(e); }
    });
    const builtin = name === '' || name.startsWith('amq.');
    const el = h('div', {},
      h('h2', {}, 'Exchange: ', h('span', { class: 'name' }, exchangeLabel(name)), h('small', {}, ` in ${vhost}`)),
      details,
      h('h3', {}, 'Bindings from this exchange'), bindings,
      h('h3', {}, 'Publish message'), form,
      builtin ? null : h('div', { class: 'actions' }, del));
    const refresh = async () => {
      const x = await get(objectPath('exchanges', vhost, name));
      details.replaceChildren(h('div', { class: 'card' }, facts([
        ['Type', x.type], ['Durable', String(x.durable)], ['Auto delete', String(x.auto_delete)],
        ['Internal', String(x.internal)], ['Arguments', argsText(x.arguments) || '–'],
      ])));
      if (name === '') {
        bindings.replaceChildren(h('p', { class: 'empty' }, 'The default exchange is bound to every queue by its name.'));
      } else {
        bindings.replaceChildren(bindingsTable(await get(objectPath('exchanges', vhost, name) + '/bindings/source'), vhost, false));
      }
    };
    return { title: `Exchange ${exchangeLabel(name)}`, tab: 'exchanges', el, refresh };
  }

  function queuesView() {
    const list = h('div', {});
    const form = h('form', { id: 'add-queue', class: 'card' });
    const el = h('div', {}, h('h2', {}, 'Queues'), list,
      h('details', { open: true }, h('summary', {}, 'Add a new queue'), form));
    vhostSelect('vhost').then((vs) => {
      append(form, [
        formRow('Virtual host', vs),
        formRow('Name', h('input', { name: 'name', id: 'queue-name', required: true })),
        formRow('Durability', h('select', { name: 'durable' },
          h('option', { value: 'true' }, 'Durable'), h('option', { value: 'false' }, 'Transient'))),
        formRow('Auto delete', yesNo('auto_delete', false)),
        formRow('Arguments (JSON)', h('textarea', { name: 'arguments', rows: 2, placeholder: '{"x-message-ttl": 60000}' })),
        h('button', { type: 'submit', id: 'add-queue-submit' }, 'Add queue'),
      ]);
    }).catch(showError);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const name = f.get('name');
      try {
        await api('PUT', objectPath('queues', f.get('vhost'), name), {
          durable: f.get('durable') === 'true',
          auto_delete: f.get('auto_delete') === 'true',
          arguments: jsonObject(f.get('arguments'), 'Arguments'),
        });
        flash(`Queue ${name} declared.`);
        form.elements.name.value = '';
        await refresh();
      } catch (e) { showError(e); }
    });
    const refresh = async () => {
      const qs = await get('queues');
      list.replaceChildren(table(
        ['Virtual host', 'Name', 'Type', 'Features', 'State', 'Ready', 'Unacked', 'Total', 'Consumers'],
        qs.map((q) => [q.vhost, h('a', { href: objectHref('queues', q.vhost, q.name) }, q.name), q.type, features(q), q.state,
          fmt(q.messages_ready), fmt(q.messages_unacknowledged), fmt(q.messages), fmt(q.consumers)]),
        'No queues.'));
    };
    return { title: 'Queues', tab: 'queues', el, refresh };
  }

  function messageCard(m, i) {
    const props = Object.entries(m.properties || {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    return h('div', { class: 'card message' },
      h('h4', {}, `Message ${i + 1}`),
      facts([
        ['Exchange', exchangeLabel(m.exchange)],
        ['Routing key', m.routing_key],
        ['Redelivered', String(m.redelivered)],
        ['Properties', props.length ? h('ul', { class: 'props' }, props.map((p) => h('li', {}, p))) : '–'],
        ['Payload', `${fmt(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`],
      ]),
      h('pre', { class: 'payload' }, m.payload));
  }

  function queueView(vhost, name) {
    const details = h('div', {});
    const bindings = h('div', {});
    const messages = h('div', { id: 'messages' });
    const path = objectPath('queues', vhost, name);
    const getForm = h('form', { id: 'get-form', class: 'card' },
      formRow('Ack mode', h('select', { name: 'ackmode' },
        h('option', { value: 'ack_requeue_true' }, 'Nack message requeue true'),
        h('option', { value: 'reject_requeue_true' }, 'Reject requeue true'),
        h('option', { value: 'ack_requeue_false' }, 'Automatic ack'),
        h('option', { value: 'reject_requeue_false' }, 'Reject requeue false'))),
      formRow('Encoding', h('select', { name: 'encoding' },
        h('option', { value: 'auto' }, 'Auto string / base64'), h('option', { value: 'base64' }, 'base64'))),
      formRow('Messages', h('input', { name: 'count', type: 'number', min: 1, value: 1 })),
      h('button', { type: 'submit', id: 'get-submit' }, 'Get message(s)'));
    getForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(getForm);
      try {
        const got = await api('POST', path + '/get', {
          count: Math.max(1, Number(f.get('count')) || 1),
          ackmode: f.get('ackmode'),
          encoding: f.get('encoding'),
          truncate: 50000,
        });
        messages.replaceChildren(got.length ? h('div', {}, got.map(messageCard)) : h('p', { class: 'empty' }, 'Queue is empty'));
        await refresh();
      } catch (e) { showError(e); }
    });
    const bindForm = h('form', { id: 'bind-form', class: 'card inline' },
      formRow('From exchange', h('input', { name: 'source', required: true })),
      formRow('Routing key', h('input', { name: 'routing_key' })),
      h('button', { type: 'submit' }, 'Bind'));
    bindForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(bindForm);
      try {
        await api('POST', `bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(f.get('source'))}/q/${encodeURIComponent(name)}`,
          { routing_key: f.get('routing_key'), arguments: {} });
        flash('Binding added.');
        bindForm.reset();
        await refresh();
      } catch (e) { showError(e); }
    });
    const unbind = async (b) => {
      try {
        await api('DELETE', `bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(b.source)}/q/${encodeURIComponent(name)}/${encodeURIComponent(b.properties_key)}`);
        flash('Binding removed.');
        await refresh();
      } catch (e) { showError(e); }
    };
    const purge = h('button', { type: 'button', id: 'purge-queue' }, 'Purge messages');
    purge.addEventListener('click', async () => {
      if (!confirm(`Purge all ready messages of ${name}?`)) return;
      try {
        await api('DELETE', path + '/contents');
        flash(`Queue ${name} purged.`);
        await refresh();
      } catch (e) { showError(e); }
    });
    const del = h('button', { type: 'button', class: 'danger', id: 'delete-queue' }, 'Delete queue');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete queue ${name}?`)) return;
      try {
        await api('DELETE', path);
        flash(`Queue ${name} deleted.`);
        flashSurvivesNavigation = true;
        location.hash = '#/queues';
      } catch (e) { showError(e); }
    });
    const el = h('div', {},
      h('h2', {}, 'Queue: ', h('span', { class: 'name' }, name), h('small', {}, ` in ${vhost}`)),
      details,
      h('h3', {}, 'Bindings'), bindings, bindForm,
      h('h3', {}, 'Get messages'),
      h('p', { class: 'hint' }, 'Getting messages with a requeue ack mode puts them back, marked redelivered.'),
      getForm, messages,
      h('h3', {}, 'Purge and delete'), h('div', { class: 'actions' }, purge, del));
    const refresh = async () => {
      const q = await get(path);
      details.replaceChildren(h('div', { class: 'card' }, facts([
        ['State', q.state], ['Type', q.type], ['Durable', String(q.durable)], ['Auto delete', String(q.auto_delete)],
        ['Exclusive', String(q.exclusive)], ['Arguments', argsText(q.arguments) || '–'], ['Consumers', fmt(q.consumers)],
        ['Ready', h('span', { id: 'queue-ready' }, fmt(q.messages_ready))],
        ['Unacked', h('span', { id: 'queue-unacked' }, fmt(q.messages_unacknowledged))],
        ['Total', h('span', { id: 'queue-total' }, fmt(q.messages))],
        ['Memory', `${fmt(q.memory)} bytes`],
      ])));
      bindings.replaceChildren(bindingsTable(await get(path + '/bindings'), vhost, true, unbind));
    };
    return { title: `Queue ${name}`, tab: 'queues', el, refresh };
  }

  // --- Routing and polling ------------------------------------------------------------------

  let current = null;
  let timer = null;

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
    const [kind, vhost, ...rest] = parts;
    const name = rest.join('/');
    if (kind === 'connections') return connectionsView();
    if (kind === 'exchanges' && vhost !== undefined) return exchangeView(vhost, name === 'amq.default' ? '' : name);
    if (kind === 'exchanges') return exchangesView();
    if (kind === 'queues' && vhost !== undefined) return queueView(vhost, name);
    if (kind === 'queues') return queuesView();
    return overviewView();
  }

  async function show() {
    if (!sessionStorage.getItem(CREDENTIALS)) return;
    let view;
    try {
      view = route();
    } catch (e) {
      // A malformed hash (bad percent-encoding) shows the overview.
      view = overviewView();
    }
    current = view;
    if (!flashSurvivesNavigation) $('flash').hidden = true;
    flashSurvivesNavigation = false;
    document.title = `${view.title} - Warren Management`;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.tab === view.tab);
    $('view').replaceChildren(view.el);
    await tick(view);
  }

  /** One poll: a new overview sample, then the current view. */
  async function tick(view) {
    try {
      await sample();
      if (view === current) await view.refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && view === current) {
        $('view').replaceChildren(h('p', { class: 'empty' }, 'Not found: it may have been deleted.'));
        return;
      }
      showError(e);
    }
  }

  function startPolling() {
    clearInterval(timer);
    timer = setInterval(() => { if (current) tick(current); }, POLL_MS);
  }

  // --- Session ------------------------------------------------------------------------------

  function showLogin(error) {
    clearInterval(timer);
    current = null;
    $('view').hidden = true;
    $('nav').hidden = true;
    $('session').hidden = true;
    $('flash').hidden = true;
    $('login').hidden = false;
    const err = $('login-error');
    err.textContent = error || '';
    err.hidden = !error;
    $('login-username').focus();
  }

  async function enterApp() {
    const me = await api('GET', 'whoami');
    $('login').hidden = true;
    $('view').hidden = false;
    $('nav').hidden = false;
    $('session').hidden = false;
    $('whoami').textContent = `User ${me.name}${me.tags && me.tags.length ? ` (${[].concat(me.tags).join(', ')})` : ''}`;
    startPolling();
    await show();
  }

  function logout(reason) {
    sessionStorage.removeItem(CREDENTIALS);
    samples.length = 0;
    showLogin(reason);
  }

  async function login(ev) {
    ev.preventDefault();
    const user = $('login-username').value;
    const pass = $('login-password').value;
    sessionStorage.setItem(CREDENTIALS, encodeCredentials(user, pass));
    sessionStorage.setItem(USERNAME, user);
    $('login-submit').disabled = true;
    try {
      await request('GET', 'whoami');
      $('login-password').value = '';
      await enterApp();
    } catch (e) {
      sessionStorage.removeItem(CREDENTIALS);
      showLogin(e instanceof ApiError ? reasonOf(e) : `Cannot reach the broker: ${reasonOf(e)}`);
    } finally {
      $('login-submit').disabled = false;
    }
  }

  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout());
    window.addEventListener('hashchange', () => { if (current) show(); });
    window.addEventListener('resize', () => { if (current && current.onResize) current.onResize(); });
    $('login-username').value = sessionStorage.getItem(USERNAME) || '';
    if (sessionStorage.getItem(CREDENTIALS)) {
      enterApp().catch((e) => { if (!(e instanceof LoggedOut)) showLogin(reasonOf(e)); });
    } else {
      showLogin();
    }
  }

  init();
})();
