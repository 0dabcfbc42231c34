// The pieces of the Redis transport on their own: URLs, key names, job ids, the msgpack codec, signatures,
// the weights store and run cleanup (against the real Redis), and the weights gate of a worker.
import test from 'ava';
import { Packr } from 'msgpackr';
import { InvalidOptionError } from '../src/errors/index.ts';
import { parseRedisUrl, redactUrl } from '../src/pool/redis/connection.ts';
import { RunKeys, jobId, newRunId, parseJobId, resolveNamespace } from '../src/pool/redis/keys.ts';
import {
  CodecError, type GradientJobData, RESULT_FORMAT, decodeEvalPayload, decodeGradientPayload, decodeIndices, decodeResult, decodeWeights, encodeWeights,
  encodeEvalPayload, encodeGradientPayload, encodeIndices, encodeResult, parseJobData, taskDigest,
} from '../src/pool/redis/payload-codec.ts';
import { secretCheck, signResult, verifyResult } from '../src/pool/redis/result-signing.ts';
import { WeightsStore, WeightsUnavailable, latestWeights, takeBackJobs } from '../src/pool/redis/weights-store.ts';
import { WeightsFeed } from '../src/pool/redis/weights-feed.ts';
import { announceRun, listRuns, type RunAnnouncement } from '../src/pool/redis/run-announcement.ts';
import { countRunKeys, deleteRunKeys, sweepAbandonedRuns } from '../src/pool/redis/run-cleanup.ts';
import { RESULT_TTL_S, decodeResultEntry, encodeResultEntry, popResult, pushResult } from '../src/pool/redis/result-list.ts';
import { WeightsGate } from '../src/pool/redis/weights-gate.ts';
import { redisClient, scanKeys, sleep, testNamespace, until } from './fixtures/redis-harness.ts';

test('Redis URLs: AUTH user and password, database, TLS with rediss://, and passwords never shown', (t) => {
  const plain = parseRedisUrl('redis://redis.example:6380/2');
  t.like(plain.options, { host: 'redis.example', port: 6380, db: 2 });
  t.is(plain.options.tls, undefined);
  t.is(plain.options.password, undefined);

  const auth = parseRedisUrl('redis://alice:p%40ss%3Aword@10.0.0.5');
  t.like(auth.options, { host: '10.0.0.5', port: 6379, db: 0, username: 'alice', password: 'p@ss:word' });
  t.is(auth.display, 'redis://alice:***@10.0.0.5');
  t.false(auth.display.includes('word'));

  const passwordOnly = parseRedisUrl('redis://:secret@localhost:7000');
  t.is(passwordOnly.options.password, 'secret');
  t.is(passwordOnly.options.username, undefined);

  const tls = parseRedisUrl('rediss://bob:pw@cache.example.com:6390');
  t.deepEqual(tls.options.tls, { servername: 'cache.example.com' });
  t.regex(redactUrl('rediss://bob:pw@cache.example.com:6390'), /^rediss:\/\/bob:\*\*\*@cache\.example\.com:6390$/);

  t.throws(() => parseRedisUrl('http://localhost:6379'), { instanceOf: InvalidOptionError, message: /must start with redis:\/\/ \(or rediss:\/\/ for TLS\)/ });
  t.throws(() => parseRedisUrl('localhost:6379'), { instanceOf: InvalidOptionError });
  t.throws(() => parseRedisUrl('redis://localhost/abc'), { instanceOf: InvalidOptionError, message: /database .* must be a number/ });
  t.throws(() => parseRedisUrl('rediss://h', { REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' }), { instanceOf: InvalidOptionError, message: /REDIS_TLS_CA_FILE/ });
});

test('keys: every key of a run under its prefix; job ids round-trip; namespaces validated', (t) => {
  const keys = new RunKeys('ns-1', '20260101-120000-abcdef');
  for (const key of [keys.announce, keys.weightsFeed, keys.takeBacks, keys.results, keys.worker('host:42'), keys.events]) {
    t.true(key.startsWith(`${keys.prefix}:`), key);
  }
  t.is(keys.pattern, 'ns-1:run:20260101-120000-abcdef:*');
  t.regex(newRunId(new Date('2026-03-04T05:06:07Z')), /^20260304-050607-[0-9a-f]{6}$/);
  const name = { kind: 'gradient', round: 17, index: 3, attempt: 2 } as const;
  t.is(jobId(name), 'g17-3-2');
  t.deepEqual(parseJobId('g17-3-2'), name);
  t.deepEqual(parseJobId('e4-0-1'), { kind: 'evaluate', round: 4, index: 0, attempt: 1 });
  for (const bad of ['17', 'x1-2-3', 'g1-2', 'g1-2-3-4', 5, undefined]) t.is(parseJobId(bad), undefined);
  t.is(resolveNamespace(undefined, {}), 'cifar-dp');
  t.is(resolveNamespace(undefined, { TRAINER_NAMESPACE: 'lab.b' }), 'lab.b');
  t.throws(() => resolveNamespace('bad:ns', {}), { instanceOf: InvalidOptionError });
});

const gradientJob: GradientJobData = { v: 1, kind: 'gradient', round: 3, index: 1, step: 12, shard: 1, weightsVersion: 12, indices: encodeIndices(new Int32Array([5, 0, 99, 2 ** 31 - 1])) };

test('codec: job data validated; indices, gradients and predictions travel as raw bytes, not JSON numbers', (t) => {
  t.deepEqual([...decodeIndices(gradientJob.indices)], [5, 0, 99, 2 ** 31 - 1]);
  t.deepEqual(parseJobData(JSON.parse(JSON.stringify(gradientJob))), gradientJob);
  t.throws(() => parseJobData({ ...gradientJob, v: 2 }), { instanceOf: CodecError, message: /different versions/ });
  t.throws(() => parseJobData({ ...gradientJob, step: -1 }), { instanceOf: CodecError });
  t.throws(() => parseJobData({ ...gradientJob, indices: 'abc' }), { instanceOf: CodecError });
  t.throws(() => parseJobData({ v: 1, kind: 'evaluate', round: 1, index: 0, weightsVersion: 3, start: 10, end: 10 }), { instanceOf: CodecError });
  t.not(taskDigest(gradientJob), taskDigest({ ...gradientJob, indices: encodeIndices(new Int32Array([5, 0, 99, 3])) }));

  const values = new Float32Array(81304).map((_, i) => Math.sin(i) * 1e-3);
  const payload = encodeGradientPayload(values);
  t.is(payload.byteLength, values.byteLength, 'the floats\' own bytes: no decimal text, no framing');
  const back = decodeGradientPayload(payload);
  t.true(back instanceof Float32Array);
  t.true(Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(Buffer.from(values.buffer)), 'bit-exact');
  const reused = new Float32Array(values.length).fill(Number.NaN);
  t.is(decodeGradientPayload(payload, reused), reused, 'decoded into the array given when it has the right length');
  t.deepEqual(reused, values);
  t.is(decodeGradientPayload(payload, new Float32Array(3)).length, values.length, 'a fresh array otherwise');
  t.throws(() => decodeGradientPayload(payload.subarray(0, 4001)), { instanceOf: CodecError, message: /4001 bytes, not a whole number of float32s/ });

  const envelope = { format: RESULT_FORMAT, runId: 'r', jobId: 'g3-1-1', worker: 'w1', kind: 'gradient', step: 12, shard: 1, weightsVersion: 12, payload } as const;
  const decoded = decodeResult(encodeResult(envelope));
  t.like(decoded, { runId: 'r', jobId: 'g3-1-1', worker: 'w1', step: 12, shard: 1, weightsVersion: 12 });
  t.true(Buffer.from(decoded.payload).equals(Buffer.from(payload)));
  t.is(decoded.signature, undefined);

  const packr = new Packr({ useRecords: false, moreTypes: true });
  t.throws(() => decodeResult(Buffer.from([0x92, 0x01])), { instanceOf: CodecError });
  t.throws(() => decodeResult(encodeResult(envelope).subarray(0, 50)), { instanceOf: CodecError, message: /not valid msgpack/ });
  t.throws(() => decodeResult(packr.pack({ ...envelope, payload: [1, 2, 3] })), { instanceOf: CodecError, message: /binary payload/ });

  const evalPayload = encodeEvalPayload({ start: 500, lossSum: 812.5, predictions: new Int32Array([1, 9, 0]) });
  t.deepEqual(decodeEvalPayload(evalPayload, { start: 500, end: 503 }, 10), { start: 500, lossSum: 812.5, predictions: new Int32Array([1, 9, 0]) });
  t.throws(() => decodeEvalPayload(evalPayload, { start: 500, end: 504 }, 10), { message: /3 predictions, expected 4/ });
  t.throws(() => decodeEvalPayload(encodeEvalPayload({ start: 0, lossSum: 1, predictions: new Int32Array([10]) }), { start: 0, end: 1 }, 10), { message: /class 10/ });
  t.throws(() => decodeEvalPayload(encodeEvalPayload({ start: 0, lossSum: Number.NaN, predictions: new Int32Array([1]) }), { start: 0, end: 1 }, 10), { message: /loss sum is NaN/ });
});

test('signatures cover run, kind, step, shard, weights version, task and every payload byte', (t) => {
  const subject = { runId: 'r1', kind: 'gradient', step: 4, shard: 1, weightsVersion: 4, taskDigest: taskDigest(gradientJob) };
  const payload = encodeGradientPayload(new Float32Array([1, 2, 3]));
  const signature = signResult('s3cret', subject, payload);
  t.true(verifyResult('s3cret', subject, payload, signature));
  t.false(verifyResult('other', subject, payload, signature));
  for (const change of [{ runId: 'r2' }, { kind: 'evaluate' }, { step: 5 }, { shard: 0 }, { weightsVersion: 3 }, { taskDigest: '00' }]) {
    t.false(verifyResult('s3cret', { ...subject, ...change }, payload, signature), JSON.stringify(change));
  }
  const tampered = Buffer.from(payload);
  tampered[tampered.length - 1] ^= 1;
  t.false(verifyResult('s3cret', subject, tampered, signature));
  t.false(verifyResult('s3cret', subject, payload, signature.subarray(0, 31)));
  t.not(secretCheck('a', 'r1'), secretCheck('b', 'r1'));
  t.not(secretCheck('a', 'r1'), secretCheck('a', 'r2'));
});

test('weights store (real Redis): one binary feed entry per version, the last 4 kept, signatures checked', async (t) => {
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const keys = new RunKeys(testNamespace('weights'), newRunId());
  t.teardown(() => deleteRunKeys(redis, keys));
  t.is(await latestWeights(redis, keys, 1000, 'k'), undefined, 'nothing published yet');
  const store = new WeightsStore(redis, keys, 'k');
  const w = new Float32Array(1000).map((_, i) => i / 7);
  const bytes = await store.publish(0, w);
  t.true(bytes < w.byteLength + 200, `${bytes} bytes`);
  for (let v = 1; v <= 5; v++) await store.publish(v, w.map((x) => x + v));
  const entries = (await redis.xrangeBuffer(keys.weightsFeed, '-', '+')) as [Buffer, Buffer[]][];
  t.deepEqual(entries.map(([, fields]) => decodeWeights(fields[1]).version), [2, 3, 4, 5], 'older versions fall off the feed');
  t.is(await redis.exists(`${keys.prefix}:weights:5`), 0, 'stored once: in the feed only');
  t.deepEqual(await latestWeights(redis, keys, 1000, 'k'), { version: 5, values: w.map((x) => x + 5) });
  await t.throwsAsync(latestWeights(redis, keys, 999, 'k'), { instanceOf: WeightsUnavailable, message: /hold 1000 values, the model has 999/ });
  await t.throwsAsync(latestWeights(redis, keys, 1000, 'other'), { instanceOf: WeightsUnavailable, message: /bad signature/ });
  // Someone without the secret publishes weights.
  await new WeightsStore(redis, keys, undefined).publish(6, new Float32Array(1000));
  await t.throwsAsync(latestWeights(redis, keys, 1000, 'k'), { instanceOf: WeightsUnavailable, message: /unsigned/ });
  // Take-backs have a stream of their own: however many, the newest weights stay in the feed.
  for (let i = 0; i < 10; i++) await takeBackJobs(redis, keys, [`g${i}-0-1`]);
  t.is(await redis.xlen(keys.weightsFeed), 4);
  t.is(await redis.xlen(keys.takeBacks), 10);
});

test('result list (real Redis): entries arrive whole and in order, name their job and worker, and expire with the run', async (t) => {
  const redis = redisClient();
  const popper = redisClient();
  t.teardown(() => Promise.all([redis.quit(), popper.quit()]));
  const keys = new RunKeys(testNamespace('results'), newRunId());
  t.teardown(() => deleteRunKeys(redis, keys));
  const envelope = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 255)); // newlines included
  await pushResult(redis, keys, encodeResultEntry('g3-1-1', 'host:42', envelope));
  await pushResult(redis, keys, encodeResultEntry('g3-0-1', 'name with "quotes"\nand a newline', Buffer.alloc(0)));
  const ttl = await redis.ttl(keys.results);
  t.true(ttl > RESULT_TTL_S - 5 && ttl <= RESULT_TTL_S, `ttl ${ttl}`);
  const first = decodeResultEntry((await popResult(popper, keys, 1000))!);
  t.deepEqual({ ...first, envelope: first.envelope.equals(envelope) }, { jobId: 'g3-1-1', worker: 'host:42', envelope: true });
  const second = decodeResultEntry((await popResult(popper, keys, 1000))!);
  t.is(second.worker, 'name with "quotes"\nand a newline');
  t.is(second.envelope.length, 0);
  const started = Date.now();
  t.is(await popResult(popper, keys, 200), null, 'an empty list: null after the wait');
  t.true(Date.now() - started >= 150);

  t.throws(() => decodeResultEntry(Buffer.alloc(2000, 1)), { instanceOf: CodecError, message: /no header line within its first 1024 bytes/ });
  t.throws(() => decodeResultEntry(Buffer.from('{"job": 3\nxyz')), { instanceOf: CodecError, message: /header is not JSON/ });
  t.throws(() => decodeResultEntry(Buffer.from('{"job": 3, "worker": "w"}\nxyz')), { instanceOf: CodecError, message: /names no job and worker/ });
  t.throws(() => decodeResultEntry(Buffer.from('null\n')), { instanceOf: CodecError, message: /names no job and worker/ });
});

test('weights feed (real Redis): a job waits for weights published later; superseded, taken-back and unreadable entries; the fallback after a silence; close', async (t) => {
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const keys = new RunKeys(testNamespace('feed'), newRunId());
  t.teardown(() => deleteRunKeys(redis, keys));
  const store = new WeightsStore(redis, keys, 'k');
  const errors: string[] = [];
  const feed = new WeightsFeed(redisClient(), redis, keys, 1000, 'k', (message) => errors.push(message));
  const w = (v: number) => new Float32Array(1000).map((_, i) => i / 7 + v);

  const early = feed.waitFor(1, 'g1-0-1'); // handed out ahead: nothing published yet
  await sleep(100);
  await store.publish(1, w(1));
  t.deepEqual(await early, w(1));
  await store.publish(2, w(2));
  t.deepEqual(await feed.waitFor(2, 'g2-0-1'), w(2));
  await t.throwsAsync(feed.waitFor(1, 'g1-1-1'), { instanceOf: WeightsUnavailable, message: /version 1 is superseded by version 2/ });

  const held = feed.waitFor(3, 'g3-0-1');
  await takeBackJobs(redis, keys, ['g3-0-1', 'g3-1-1']);
  await t.throwsAsync(held, { instanceOf: WeightsUnavailable, message: /took back job g3-0-1 while it waited for weights version 3/ });

  await redis.xadd(keys.weightsFeed, '*', 'w', 'not weights');
  await until(async () => errors.length > 0, 5000, 'the unreadable entry to be reported');
  t.regex(errors[0], /the weights feed holds an entry this worker cannot use: weights version \? in Redis are unreadable/);

  // An entry the blocking read never delivers (here: written where the reader had already passed, as a feed
  // re-created by a restarted Redis can be) is found by reading the newest entry after a second of silence.
  const behind = new RunKeys(keys.namespace, newRunId());
  t.teardown(() => deleteRunKeys(redis, behind));
  const late = new WeightsFeed(redisClient(), redis, behind, 1000, undefined, (message) => errors.push(message));
  await new WeightsStore(redis, behind, undefined).publish(4, w(4));
  t.deepEqual(await late.waitFor(4, 'g4-0-1'), w(4));
  await redis.del(behind.weightsFeed);
  await redis.xadd(behind.weightsFeed, '1-1', 'w', encodeWeights({ runId: behind.runId, version: 5, values: w(5) }));
  const started = Date.now();
  t.deepEqual(await late.waitFor(5, 'g5-0-1'), w(5));
  t.true(Date.now() - started >= 900, 'after a silence of about a second');
  await late.close();

  const pending = feed.waitFor(5, 'g5-0-1');
  await feed.close();
  await t.throwsAsync(pending, { instanceOf: WeightsUnavailable, message: /gave up waiting for weights version 5: the worker left the run/ });
});

test('run cleanup (real Redis): a run\'s keys all go; abandoned runs and earlier attempts are swept, live runs kept', async (t) => {
  const redis = redisClient();
  t.teardown(() => redis.quit());
  const ns = testNamespace('sweep');
  const announcement = (keys: RunKeys, owner: string): RunAnnouncement => ({
    protocol: 1, runId: keys.runId, state: 'running', model: 'tutorial', parameterCount: 1, classes: 10, backend: 'wasm', numerics: 'wasm',
    dataFingerprint: 'f', trainCount: 1, testCount: 1, recipe: { seed: 0, augmentation: 'none', labelSmoothing: 0, stepsPerEpoch: 1 }, signed: false, owner, host: 'h', pid: 1,
    startedAt: new Date().toISOString(),
  });
  const [live, dead, earlier, mine] = ['a', 'b', 'c', 'd'].map((s) => new RunKeys(ns, `20260101-000000-00000${s}`));
  await announceRun(redis, live, announcement(live, 'h:/other'), 60_000);
  await announceRun(redis, dead, announcement(dead, 'h:/x'), 50);
  await announceRun(redis, earlier, announcement(earlier, 'h:/out'), 60_000);
  await announceRun(redis, mine, announcement(mine, 'h:/out'), 60_000);
  for (const k of [live, dead, earlier, mine]) await redis.set(`${k.prefix}:weights:3`, 'x');
  await sleep(100);
  t.deepEqual((await listRuns(redis, ns)).map((r) => [r.keys.runId, r.announcement?.owner]), [
    [live.runId, 'h:/other'], [dead.runId, undefined], [earlier.runId, 'h:/out'], [mine.runId, 'h:/out'],
  ]);
  const lines: string[] = [];
  const removed = await sweepAbandonedRuns(redis, ns, { except: mine.runId, owner: 'h:/out', log: (l) => lines.push(l) });
  t.deepEqual(removed.sort(), [dead.runId, earlier.runId].sort());
  t.regex(lines.join('\n'), /left behind by a coordinator that stopped without cleaning up/);
  t.regex(lines.join('\n'), /an earlier attempt of this run \(h:\/out\)/);
  t.is(await countRunKeys(redis, dead), 0);
  t.is(await countRunKeys(redis, earlier), 0);
  t.is(await countRunKeys(redis, live), 2);
  t.is(await deleteRunKeys(redis, live), 2);
  t.is(await deleteRunKeys(redis, mine), 2);
  t.deepEqual(await scanKeys(redis, `${ns}:*`), [], 'the namespace\'s run list goes with its last run');
});

test('weights gate: one version at a time; a newer version waits for the older jobs; older versions refused', async (t) => {
  const gate = new WeightsGate();
  const events: string[] = [];
  const load = async (v: number) => {
    events.push(`load ${v}`);
    await sleep(5);
  };
  const job = (v: number, ms: number) => gate.use(v, load, async () => {
    events.push(`start ${v}`);
    await sleep(ms);
    events.push(`end ${v}`);
    return v;
  });
  const a = job(1, 40);
  const b = job(1, 10);
  await sleep(5);
  const c = job(2, 1);
  t.deepEqual(await Promise.all([a, b, c]), [1, 1, 2]);
  t.deepEqual(events, ['load 1', 'start 1', 'start 1', 'end 1', 'end 1', 'load 2', 'start 2', 'end 2']);
  await t.throwsAsync(job(1, 1), { message: /version 1 is superseded by version 2/ });
  await t.throwsAsync(gate.use(3, async () => {
    throw new Error('weights version 3 are not in Redis');
  }, async () => 3), { message: /not in Redis/ });
  t.is(await job(2, 1), 2, 'a failed load leaves the loaded version usable');
});
