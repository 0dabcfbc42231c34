// Large Redis writes through reused frames (src/pool/redis/frame-command.ts), against the real Redis: the bytes
// that arrive, the reuse of one buffer from command to command, commands in flight side by side, and the
// hand-written msgpack of the weights and result encoders (payload-codec.ts) against msgpackr's own.
import test from 'ava';
import { Packr } from 'msgpackr';
import { FramePool, frameLength, sendFrame, writeFrame } from '../src/pool/redis/frame-command.ts';
import {
  RESULT_FORMAT, decodeResult, decodeWeights, encodeResult, encodeResultParts, encodeWeights, encodeWeightsParts,
} from '../src/pool/redis/payload-codec.ts';
import { openClient, parseRedisUrl } from '../src/pool/redis/connection.ts';
import { redisClient, startPrivateRedis, testNamespace, until } from './fixtures/redis-harness.ts';

const joined = (parts: readonly Uint8Array[]) => Buffer.concat(parts);

test('a frame is the command in RESP, byte for byte, with parts of one argument written as one', (t) => {
  const words = ['rpush', 'k', [Buffer.from('ab'), Buffer.from('c\r\n')], 'é', Buffer.alloc(0)];
  const frame = Buffer.alloc(frameLength(words) + 10, 0xff);
  const n = writeFrame(words, frame);
  t.is(n, frameLength(words));
  t.is(frame.subarray(0, n).toString('latin1'), Buffer.from('*5\r\n$5\r\nrpush\r\n$1\r\nk\r\n$5\r\nabc\r\n\r\n$2\r\né\r\n$0\r\n\r\n').toString('latin1'));
  t.is(frame[n], 0xff, 'nothing written past the frame');
});

test('sendFrame (real Redis): values arrive whole, one buffer serves command after command, two in flight get two', async (t) => {
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const key = `${testNamespace('frames')}:list`;
  t.teardown(() => redis.unlink(key));
  const pool = new FramePool();
  const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 131) & 255)); // CR and LF bytes included
  const header = Buffer.from('{"job":"g1-0-1"}\n');

  t.is(await sendFrame(redis, pool, 'rpush', [key, [header, body]]), 1, 'the reply, as ioredis gives it');
  const first = pool.take(0);
  pool.give(first);
  t.is(await sendFrame(redis, pool, 'rpush', [key, [header, body]]), 2);
  const second = pool.take(0);
  t.is(second, first, 'the same buffer again: no fresh allocation per command');
  pool.give(second);

  // Two commands in flight at once: each holds a frame of its own until Redis has answered it.
  const other = Buffer.alloc(200_000, 7);
  await Promise.all([sendFrame(redis, pool, 'rpush', [key, body]), sendFrame(redis, pool, 'rpush', [key, other])]);
  const a = pool.take(0);
  const b = pool.take(0);
  t.not(a, b);
  pool.give(a);
  pool.give(b);

  const stored = await redis.lrangeBuffer(key, 0, -1);
  t.is(stored.length, 4);
  t.true(stored[0].equals(Buffer.concat([header, body])));
  t.true(stored[1].equals(Buffer.concat([header, body])));
  t.true(stored[2].equals(body));
  t.true(stored[3].equals(other));
  await t.throwsAsync(sendFrame(redis, pool, 'lpush', []), { message: /wrong number of arguments/ }, 'Redis errors reject the promise');
});

test('sendFrame (private Redis, restarted): a command sent while Redis is away goes out whole once it is back', async (t) => {
  const server = await startPrivateRedis();
  t.teardown(() => server.kill());
  // The clients workers and coordinators use: they reconnect, and keep commands meanwhile.
  const redis = openClient(parseRedisUrl(server.url), 'test-frames');
  t.teardown(() => redis.disconnect());
  const pool = new FramePool();
  const body = Buffer.from(Array.from({ length: 250_000 }, (_, i) => (i * 37) & 255));
  t.is(await sendFrame(redis, pool, 'rpush', ['list', body]), 1);

  await server.kill();
  await until(async () => redis.status !== 'ready', 5000, 'the client to notice');
  // Written to no socket yet: ioredis holds the command, and its frame is only made when it is written.
  const pending = sendFrame(redis, pool, 'rpush', ['list', [Buffer.from('head:'), body]]);
  await server.restart();
  t.is(await pending, 1, 'the restarted Redis is empty: this is the first entry of a new list');
  const stored = await redis.lrangeBuffer('list', 0, -1);
  t.is(stored.length, 1);
  t.true(stored[0].equals(Buffer.concat([Buffer.from('head:'), body])));
  // A frame that held the command is back in the pool (a new buffer for 0 bytes would be a few KB).
  t.true(pool.take(0).length >= body.length, 'the frame went back to the pool once answered');
});

test('weights and results in parts are msgpackr\'s own bytes, and decode as before', (t) => {
  const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true });
  const values = new Float32Array(70_000).map((_, i) => Math.sin(i) * 1e-3);
  const signature = Buffer.alloc(32, 5);
  for (const record of [{ runId: 'run-1', version: 41, values }, { runId: 'run-1', version: 42, values, signature }]) {
    const parts = encodeWeightsParts(record);
    t.is(parts[1].buffer, values.buffer, 'the floats are not copied');
    const { values: v, ...head } = record;
    t.true(joined(parts).equals(packr.pack({ format: 'cifar-dp-weights/1', ...head, values: v })));
    t.true(encodeWeights(record).equals(joined(parts)));
    t.deepEqual(decodeWeights(joined(parts)), record);
  }
  const payload = Buffer.from(values.buffer);
  const envelope = { format: RESULT_FORMAT, runId: 'r', jobId: 'g3-1-1', worker: 'w', kind: 'gradient', step: 3, shard: 1, weightsVersion: 3, payload } as const;
  const parts = encodeResultParts(envelope);
  t.is(parts[1], payload, 'the payload is not copied');
  t.true(joined(parts).equals(packr.pack(envelope)));
  t.true(encodeResult(envelope).equals(joined(parts)));
  const back = decodeResult(joined(parts));
  t.true(Buffer.from(back.payload).equals(payload));
  t.deepEqual(decodeResult(encodeResult({ ...envelope, signature })).signature, signature);
});
