// Drives Warren's web management UI in headless Chromium (Debian's /usr/bin/chromium) through
// playwright-core, against a release binary this script starts on free ports with its own data
// dir. Prints PASS/FAIL per case and ends with "ui/chromium: N/M passed"; takes screenshots.
//
//   node ui_suite.js --bin target/release/warren [--work DIR] [--screenshots DIR]
//
// Environment: CHROMIUM (default /usr/bin/chromium), SUITE_TIMEOUT (seconds, default 90).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const amqp = require('amqplib');
const { chromium } = require('playwright-core');

const LABEL = 'ui/chromium';
const SUITE_TIMEOUT_MS = Number(process.env.SUITE_TIMEOUT || 90) * 1000;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Waits for one UI reaction; polling refreshes the page every 5 s, so this covers two polls.
const STEP_MS = 15000;

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const BIN = arg('--bin');
const WORK = arg('--work') || fs.mkdtempSync(path.join(os.tmpdir(), 'warren-ui-'));
const SHOTS = arg('--screenshots', path.join(__dirname, 'screenshots'));
const RUN_ID = Math.random().toString(16).slice(2, 10);

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function eventually(what, check, ms = STEP_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(100);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// --- The broker -----------------------------------------------------------------------------

async function startWarren() {
  expect(BIN && fs.existsSync(BIN), `no warren binary at ${BIN} (pass --bin)`);
  const [amqpPort, httpPort] = [await freePort(), await freePort()];
  fs.mkdirSync(WORK, { recursive: true });
  const logPath = path.join(WORK, 'warren.log');
  const log = fs.openSync(logPath, 'w');
  const child = spawn(BIN, [
    '--bind', '127.0.0.1', '--port', String(amqpPort), '--http-port', String(httpPort),
    '--metrics-port', '0', '--data-dir', path.join(WORK, 'data'),
  ], { stdio: ['ignore', log, log] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await eventually('warren to be ready', async () => {
    expect(child.exitCode === null, `warren exited: ${fs.readFileSync(logPath, 'utf8')}`);
    return fs.readFileSync(logPath, 'utf8').includes('ready to accept connections');
  }, 30000);
  return { child, exited, amqpPort, httpPort, logPath };
}

// --- The management API, for checking what the UI shows ------------------------------------

function apiClient(base) {
  const auth = 'Basic ' + Buffer.from('guest:guest').toString('base64');
  return async (method, p, body) => {
    const resp = await fetch(`${base}/api/${p}`, {
      method,
      headers: { Authorization: auth, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    return { status: resp.status, body: text ? JSON.parse(text) : null };
  };
}

// --- Cases ----------------------------------------------------------------------------------

async function main() {
  const results = [];
  let broker;
  let context;
  let conn;
  const watchdog = setTimeout(() => {
    console.log(`FAIL suite: watchdog fired after ${SUITE_TIMEOUT_MS / 1000}s`);
    console.log(`${LABEL}: ${results.filter((r) => r).length}/${results.length + 1} passed`);
    if (broker) broker.child.kill('SIGKILL');
    process.exit(1);
  }, SUITE_TIMEOUT_MS);

  const pageErrors = [];
  let page;
  let skipRest = false;
  async function test(name, fn) {
    if (skipRest) {
      console.log(`FAIL ${name}: skipped, the UI could not be started`);
      results.push(false);
      return;
    }
    const start = Date.now();
    try {
      await fn();
      console.log(`PASS ${name} (${Date.now() - start} ms)`);
      results.push(true);
    } catch (e) {
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
      results.push(false);
      if (page) {
        const shot = path.join(SHOTS, `failed-${name}.png`);
        await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
        console.log(`    screenshot of the failure: ${shot}`);
      }
    }
  }

  fs.mkdirSync(SHOTS, { recursive: true });
  let base;
  let api;
  const queue = `ui-queue-${RUN_ID}`;
  const seeded = `ui-seeded-${RUN_ID}`;
  const payload = `hello from the web UI <b>${RUN_ID}</b> & "quotes"`;

  await test('start', async () => {
    broker = await startWarren();
    base = `http://127.0.0.1:${broker.httpPort}`;
    api = apiClient(base);
    // Some state for the overview to count: a queue with three ready messages.
    expect((await api('PUT', `queues/%2F/${seeded}`, { durable: false })).status === 201, 'seed queue');
    for (let i = 0; i < 3; i++) {
      const r = await api('POST', 'exchanges/%2F/amq.default/publish',
        { properties: {}, routing_key: seeded, payload: `seed ${i}`, payload_encoding: 'string' });
      expect(r.status === 200 && r.body.routed === true, `seed publish: ${JSON.stringify(r.body)}`);
    }
    const userDataDir = fs.mkdtempSync(path.join(WORK, 'chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      // Without the background-networking switches Chromium reaches for Google's servers.
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
    // Chromium logs every non-2xx fetch as a console error; the API's refusals are expected
    // (the wrong-password case makes some), so only the page's own files count there.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !new URL(r.url()).pathname.startsWith('/api/')) pageErrors.push(`${r.status()} for ${r.url()}`);
    });
    // The UI's confirm() dialogs (purge, delete, close) are accepted.
    page.on('dialog', (d) => d.accept());
    const resp = await page.goto(base + '/');
    expect(resp.status() === 200, `GET / answered ${resp.status()}`);
    expect((resp.headers()['content-security-policy'] || '').includes("script-src 'self'"), 'CSP header on the page');
  });
  skipRest = !page;

  await test('static_files_need_no_login', async () => {
    for (const f of ['/ui/app.js', '/ui/style.css', '/ui/favicon.svg']) {
      const r = await fetch(base + f);
      expect(r.status === 200, `${f}: ${r.status}`);
    }
    expect((await fetch(base + '/ui/../api/overview')).status !== 200, 'no API data without credentials');
    expect((await fetch(base + '/ui/missing.js')).status === 404, 'unknown asset is 404');
  });

  await test('wrong_password_shows_an_error', async () => {
    await page.locator('#login-username').fill('guest');
    await page.locator('#login-password').fill('not-the-password');
    await page.locator('#login-submit').click();
    const err = page.locator('#login-error');
    await err.waitFor({ state: 'visible', timeout: STEP_MS });
    const text = await err.textContent();
    expect(text.includes('Login failed'), `login error says: ${text}`);
    expect(await page.locator('#nav').isHidden(), 'navigation hidden while logged out');
    expect(await page.evaluate(() => sessionStorage.getItem('warren.credentials')) === null,
      'failed credentials are not kept');
    const shot = path.join(SHOTS, 'login-failed.png');
    await page.screenshot({ path: shot });
    console.log(`    screenshot: ${shot}`);
  });

  await test('login', async () => {
    await page.locator('#login-password').fill('guest');
    await page.locator('#login-submit').click();
    await page.locator('#nav').waitFor({ state: 'visible', timeout: STEP_MS });
    const who = await page.locator('#whoami').textContent();
    expect(who.includes('guest') && who.includes('administrator'), `whoami: ${who}`);
    expect(await page.locator('#login').isHidden(), 'login form hidden');
  });

  await test('overview_matches_the_api', async () => {
    await page.locator('#ov-queues').waitFor({ timeout: STEP_MS });
    const o = (await api('GET', 'overview')).body;
    const shown = async (id) => Number((await page.locator(id).textContent()).replace(/,/g, ''));
    const pairs = [
      ['#ov-queues', o.object_totals.queues],
      ['#ov-exchanges', o.object_totals.exchanges],
      ['#ov-connections', o.object_totals.connections],
      ['#ov-consumers', o.object_totals.consumers],
      ['#ov-messages-ready', o.queue_totals.messages_ready],
      ['#ov-messages-unacked', o.queue_totals.messages_unacknowledged],
      ['#ov-messages', o.queue_totals.messages],
    ];
    for (const [id, want] of pairs) expect(await shown(id) === want, `${id} shows ${await shown(id)}, the API says ${want}`);
    expect(o.queue_totals.messages_ready === 3, `seeded ready messages: ${o.queue_totals.messages_ready}`);
    expect(o.object_totals.exchanges >= 6, `exchanges: ${o.object_totals.exchanges}`);
  });

  await test('depth_chart_rendered', async () => {
    const canvas = page.locator('#chart-depth');
    // Two polls give a line; the poll interval is 5 s.
    await eventually('two samples in the depth chart',
      async () => Number(await canvas.getAttribute('data-samples')) >= 2);
    const last = JSON.parse(await canvas.getAttribute('data-last'));
    expect(last.Ready === 3 && last.Unacked === 0 && last.Total === 3, `chart's last point: ${JSON.stringify(last)}`);
    const drawn = await canvas.evaluate((c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      let ready = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 0) ink++;
        // The Ready series' colour, #d9b32b.
        if (Math.abs(d[i] - 0xd9) < 24 && Math.abs(d[i + 1] - 0xb3) < 24 && Math.abs(d[i + 2] - 0x2b) < 24 && d[i + 3] > 200) ready++;
      }
      return { ink, ready, width: c.width, height: c.height };
    });
    expect(drawn.width > 0 && drawn.height > 0, `canvas size ${JSON.stringify(drawn)}`);
    expect(drawn.ink > 1000, `too little drawn on the depth chart: ${JSON.stringify(drawn)}`);
    expect(drawn.ready > 50, `the Ready line is missing: ${JSON.stringify(drawn)}`);
    const rates = page.locator('#chart-rates');
    expect(Number(await rates.getAttribute('data-samples')) >= 2, 'rate chart sampled too');
    const legend = await page.locator('.chart-card').first().locator('.legend').textContent();
    expect(legend.includes('Ready') && legend.includes('Unacked'), `legend: ${legend}`);
  });

  // Warren's overview may not report message_stats yet; the UI takes RabbitMQ's *_details.rate
  // when present, otherwise the change in the cumulative count between polls, otherwise 0.
  // The overview response is rewritten here to exercise all three.
  await test('message_rates_from_message_stats', async () => {
    let polls = 0;
    await page.route('**/api/overview', async (route) => {
      const real = await route.fetch();
      const body = await real.json();
      polls++;
      body.message_stats = {
        publish: 1000 + polls, publish_details: { rate: 42.5 },
        deliver_get: 40 + 20 * polls,
      };
      await route.fulfill({ response: real, json: body });
    });
    try {
      const rates = page.locator('#chart-rates');
      await eventually('two rewritten overview polls', async () => polls >= 2, 20000);
      const last = await eventually('the rate chart to show them', async () => {
        const l = JSON.parse(await rates.getAttribute('data-last'));
        return l['Deliver / get'] > 0 ? l : null;
      });
      expect(last.Publish === 42.5, `publish rate ${last.Publish}, reported 42.5`);
      // 20 more deliveries per poll, polls 5 s apart: about 4/s.
      expect(last['Deliver / get'] > 1.5 && last['Deliver / get'] < 10, `deliver_get rate ${last['Deliver / get']}`);
      expect(last.Ack === 0, `ack rate ${last.Ack} without any ack count`);
      const legend = await page.locator('.chart-card').nth(1).locator('.legend').textContent();
      expect(legend.includes('42.5/s'), `rate legend: ${legend}`);
    } finally {
      await page.unroute('**/api/overview');
    }
  });

  await test('screenshot_overview', async () => {
    const shot = path.join(SHOTS, 'overview.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(fs.statSync(shot).size > 10000, 'screenshot written');
    console.log(`    screenshot: ${shot}`);
  });

  await test('declare_queue', async () => {
    await page.locator('#nav a[data-tab="queues"]').click();
    await page.locator('#queue-name').waitFor({ timeout: STEP_MS });
    await page.locator('#queue-name').fill(queue);
    await page.locator('#add-queue-submit').click();
    await page.locator('#flash.ok').filter({ hasText: `Queue ${queue} declared.` }).waitFor({ timeout: STEP_MS });
    await page.locator(`a:text-is("${queue}")`).waitFor({ timeout: STEP_MS });
    const q = await api('GET', `queues/%2F/${queue}`);
    expect(q.status === 200 && q.body.durable === true, `the API sees ${JSON.stringify(q.body)}`);
    const shot = path.join(SHOTS, 'queues.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`    screenshot: ${shot}`);
  });

  await test('declare_queue_error_is_shown', async () => {
    await page.locator('#queue-name').fill(`amq.${RUN_ID}`);
    await page.locator('#add-queue-submit').click();
    await page.locator('#flash.error').waitFor({ timeout: STEP_MS });
    expect((await api('GET', `queues/%2F/amq.${RUN_ID}`)).status === 404, 'amq. queue refused');
  });

  await test('publish_through_the_form', async () => {
    await page.locator('#nav a[data-tab="exchanges"]').click();
    await page.locator('a:text-is("(AMQP default)")').click();
    await page.locator('#publish-routing-key').fill(queue);
    await page.locator('#publish-payload').fill(payload);
    await page.locator('#publish-submit').click();
    await page.locator('#publish-result.ok').filter({ hasText: 'Message published.' }).waitFor({ timeout: STEP_MS });
    await eventually('the message in the queue', async () => (await api('GET', `queues/%2F/${queue}`)).body.messages_ready === 1);
    // A key no queue is bound with: published, not routed.
    await page.locator('#publish-routing-key').fill(`nowhere-${RUN_ID}`);
    await page.locator('#publish-submit').click();
    await page.locator('#publish-result.warn').filter({ hasText: 'Message published, but not routed.' }).waitFor({ timeout: STEP_MS });
    const shot = path.join(SHOTS, 'exchange.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`    screenshot: ${shot}`);
  });

  await test('publish_error_is_shown', async () => {
    await page.locator('textarea[name="properties"]').fill('{"user_id": "somebody-else"}');
    await page.locator('#publish-submit').click();
    await page.locator('#publish-result.error').filter({ hasText: 'PRECONDITION_FAILED' }).waitFor({ timeout: STEP_MS });
    await page.locator('textarea[name="properties"]').fill('');
  });

  await test('peek_on_the_queue_page', async () => {
    await page.locator('#nav a[data-tab="queues"]').click();
    await page.locator(`a:text-is("${queue}")`).click();
    await page.locator('#queue-ready').filter({ hasText: /^1$/ }).waitFor({ timeout: STEP_MS });
    await page.locator('#get-submit').click();
    const shown = page.locator('#messages pre.payload');
    await shown.waitFor({ timeout: STEP_MS });
    expect(await shown.textContent() === payload, `payload shown: ${await shown.textContent()}`);
    // The payload is text on the page, not markup.
    expect(await page.locator('#messages pre.payload b').count() === 0, 'payload rendered as HTML');
    const facts = await page.locator('#messages .message').textContent();
    expect(facts.includes('(AMQP default)') && facts.includes(queue), `message facts: ${facts}`);
    // ack_requeue_true puts it back.
    const q = (await api('GET', `queues/%2F/${queue}`)).body;
    expect(q.messages_ready === 1, `after the peek the API says ${q.messages_ready} ready`);
    const shot = path.join(SHOTS, 'queue.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`    screenshot: ${shot}`);
  });

  await test('connections_list_and_close', async () => {
    conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${broker.amqpPort}`);
    let closedWith = null;
    conn.on('error', (e) => { closedWith = e; });
    conn.on('close', (e) => { closedWith = closedWith || e || 'closed'; });
    await page.locator('#nav a[data-tab="connections"]').click();
    const close = page.locator('table.list button:text-is("Close")');
    await close.first().waitFor({ timeout: STEP_MS });
    const row = await page.locator('table.list tbody tr').first().textContent();
    expect(row.includes('guest') && row.includes('AMQP 0-9-1'), `connection row: ${row}`);
    await close.first().click();
    await eventually('the client to be closed by the broker', async () => closedWith !== null);
    expect(String(closedWith.message || closedWith).includes('320') || closedWith.code === 320,
      `closed with: ${closedWith.message || closedWith}`);
    await eventually('the connection to leave the list', async () =>
      (await page.locator('table.list button:text-is("Close")').count()) === 0);
    conn = null;
  });

  await test('purge_and_delete_queue', async () => {
    await page.locator('#nav a[data-tab="queues"]').click();
    await page.locator(`a:text-is("${queue}")`).click();
    await page.locator('#purge-queue').click();
    await eventually('the purge', async () => (await api('GET', `queues/%2F/${queue}`)).body.messages_ready === 0);
    await page.locator('#delete-queue').click();
    await eventually('the delete', async () => (await api('GET', `queues/%2F/${queue}`)).status === 404);
    await page.waitForURL(/#\/queues$/, { timeout: STEP_MS });
  });

  await test('logout', async () => {
    await page.locator('#logout').click();
    await page.locator('#login-form').waitFor({ state: 'visible', timeout: STEP_MS });
    expect(await page.evaluate(() => sessionStorage.getItem('warren.credentials')) === null, 'credentials dropped');
  });

  await test('no_script_errors', async () => {
    expect(pageErrors.length === 0, pageErrors.join('\n'));
  });

  if (conn) await conn.close().catch(() => {});
  if (context) await context.close().catch(() => {});
  if (broker) {
    broker.child.kill('SIGTERM');
    const { code, signal } = await Promise.race([broker.exited, sleep(20000).then(() => ({ code: null, signal: 'timeout' }))]);
    if (code !== 0) {
      console.log(`FAIL warren_exit: code ${code}, signal ${signal}; log in ${broker.logPath}`);
      broker.child.kill('SIGKILL');
      results.push(false);
    }
  }
  clearTimeout(watchdog);
  const passed = results.filter((r) => r).length;
  console.log(`${LABEL}: ${passed}/${results.length} passed`);
  process.exit(passed === results.length ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL suite: ${e && e.stack ? e.stack : e}`);
  console.log(`${LABEL}: 0/1 passed`);
  process.exit(1);
});
