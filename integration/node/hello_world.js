#!/usr/bin/env node
// Tutorial 1, "Hello World!": send.js and receive.js on a named queue. The first
// message is sent before any consumer exists; the second while it consumes.

const c = require('./_common');

const queue = c.name('hello');

async function send(text) {
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false });
  channel.sendToQueue(queue, Buffer.from(text));
  console.log(" [x] Sent '%s'", text);
  await channel.close();
  await connection.close();
}

async function body() {
  await send('Hello World!');

  const received = [];
  const connection = await c.connect();
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false });
  await channel.consume(
    queue,
    (message) => {
      if (!message) return; // cancelled by the server (the queue is deleted below)
      console.log(" [x] Received '%s'", message.content.toString());
      received.push(message.content.toString());
    },
    { noAck: true },
  );

  await send('Hello again!');
  await c.waitFor(() => received.length >= 2, 'two messages');
  await c.sleep(100);
  c.expect(
    JSON.stringify(received) === JSON.stringify(['Hello World!', 'Hello again!']),
    `received ${JSON.stringify(received)}`,
  );
  await channel.deleteQueue(queue);
  await connection.close();
}

c.main('hello_world', body);
