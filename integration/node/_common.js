// Shared helpers for the self-checking amqplib tutorial scripts: connection
// URL from AMQP_HOST/AMQP_PORT, per-run names, a hard timeout, pass/fail exit.

const amqp = require('amqplib');
const crypto = require('node:crypto');

const HOST = process.env.AMQP_HOST || '127.0.0.1';
const PORT = Number(process.env.AMQP_PORT || 5672);
const USER = process.env.AMQP_USER || 'guest';
const PASS = process.env.AMQP_PASS || 'guest';
const TIMEOUT_MS = Number(process.env.TEST_TIMEOUT || 30) * 1000;
// Names carry a per-run suffix so concurrent runs on one broker never collide.
const RUN_ID = crypto.randomBytes(4).toString('hex');

function name(base) {
  return `${base}.${RUN_ID}`;
}

function connect() {
  const url = `amqp://${encodeURIComponent(USER)}:${encodeURIComponent(PASS)}@${HOST}:${PORT}`;
  return amqp.connect(url);
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Resolves once predicate() is true; rejects after ms.
async function waitFor(predicate, what, ms = TIMEOUT_MS - 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// Runs body(); exits 0 on success, 1 on failure, 2 if it takes longer than TIMEOUT_MS.
function main(script, body) {
  console.log(`[${script}] broker ${HOST}:${PORT}, run id ${RUN_ID}`);
  const watchdog = setTimeout(() => {
    console.log(`FAIL ${script}: timed out after ${TIMEOUT_MS} ms`);
    process.exit(2);
  }, TIMEOUT_MS);
  const fail = (err) => {
    clearTimeout(watchdog);
    console.log(err && err.stack ? err.stack : err);
    console.log(`FAIL ${script}: ${err && err.message}`);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  body().then(
    () => {
      clearTimeout(watchdog);
      console.log(`PASS ${script}`);
      process.exit(0);
    },
    fail,
  );
}

module.exports = { connect, name, expect, sleep, waitFor, main, RUN_ID };
