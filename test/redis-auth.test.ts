// Redis AUTH (password, ACL user) and TLS (rediss://) against private redis-servers: connections that work,
// refusals that say what to fix without showing the password, and a whole run over TLS with an ACL user.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { writeCifar10Fixture } from './fixtures/cifar10-fixture.ts';
import { freePort, runCoordinator, startPrivateRedis, startWorker, tempDir, testNamespace, trainArgs, type PrivateRedis, type Proc } from './fixtures/redis-harness.ts';
import { checkRedis, parseRedisUrl } from '../src/pool/redis/connection.ts';
import { RedisConnectionError } from '../src/errors/index.ts';

const servers: PrivateRedis[] = [];
const procs: Proc[] = [];
test.after.always(async () => {
  for (const p of procs) p.kill('SIGKILL');
  for (const s of servers) await s.kill();
});

async function addAclUser(port: number, tls?: { ca: Buffer }): Promise<void> {
  const admin = new Redis({ host: '127.0.0.1', port, password: 'pw', ...(tls ? { tls: { ca: tls.ca, servername: 'localhost' } } : {}), retryStrategy: () => null });
  // Keys of the test namespaces only (test-*), as the README's scaling section suggests for a real namespace.
  await admin.call('ACL', 'SETUSER', 'alice', 'on', '>alice-pw', '~test-*', '+@all');
  await admin.quit();
}

test('AUTH: password and ACL user in the URL work; a wrong or missing password is refused with advice, never echoed', async (t) => {
  const server = await startPrivateRedis(['--requirepass', 'pw']);
  servers.push(server);
  await addAclUser(server.port);
  await t.notThrowsAsync(checkRedis(parseRedisUrl(`redis://:pw@127.0.0.1:${server.port}`)));
  await t.notThrowsAsync(checkRedis(parseRedisUrl(`redis://alice:alice-pw@127.0.0.1:${server.port}`)));
  for (const url of [`redis://:wrong-secret@127.0.0.1:${server.port}`, `redis://alice:wrong-secret@127.0.0.1:${server.port}`, `redis://127.0.0.1:${server.port}`]) {
    const error = await t.throwsAsync(checkRedis(parseRedisUrl(url)), { instanceOf: RedisConnectionError });
    t.regex(error!.message, /Redis refused the credentials\. Put the right user and password in the URL/, url);
    t.false(error!.message.includes('wrong-secret'), 'the password is not shown');
  }
  const closed = await t.throwsAsync(checkRedis(parseRedisUrl(`redis://127.0.0.1:${await freePort()}`)), { instanceOf: RedisConnectionError });
  t.regex(closed!.message, /ECONNREFUSED.*Is redis-server running and reachable there\?/);
});

test('TLS: rediss:// with the server\'s CA works, without it the handshake fails with advice; a whole run over TLS with an ACL user', async (t) => {
  let hasOpenssl = true;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    hasOpenssl = false;
  }
  if (!hasOpenssl) {
    t.log('openssl is not installed: cannot make certificates, TLS not tested here');
    t.pass();
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'ext.cnf');
  const ca = path.join(dir, 'ca.crt');

  const port = await freePort();
  const server = await startPrivateRedis(
    ['--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(dir, 'server.crt'), '--tls-key-file', path.join(dir, 'server.key'),
      '--tls-ca-cert-file', ca, '--tls-auth-clients', 'no', '--requirepass', 'pw'],
    { port },
  );
  servers.push(server);
  await addAclUser(port, { ca: readFileSync(ca) });
  const url = `rediss://alice:alice-pw@localhost:${port}`;

  await t.notThrowsAsync(checkRedis(parseRedisUrl(url, { REDIS_TLS_CA_FILE: ca })));
  const untrusted = await t.throwsAsync(checkRedis(parseRedisUrl(url, {})), { instanceOf: RedisConnectionError });
  t.regex(untrusted!.message, /TLS handshake failed.*REDIS_TLS_CA_FILE/);

  const fixture = await writeCifar10Fixture({ perFile: 8, testCount: 20 });
  t.teardown(fixture.cleanup);
  const ns = testNamespace('tls');
  const env = { REDIS_TLS_CA_FILE: ca, TRAINER_NAMESPACE: ns };
  procs.push(await startWorker({ namespace: ns, data: fixture.dir, name: 'wTLS', redis: url, env }));
  const out = tempDir('tls');
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const run = await runCoordinator(trainArgs(fixture.dir, out, ['--epochs', '1', '--redis', url]), env);
  t.is(run.code, 0, run.output);
  t.regex(run.output, /Run \S+ announced on Redis rediss:\/\/alice:\*\*\*@localhost:\d+/);
  t.regex(run.output, /^epoch: 1 /m);
  t.regex(run.output, /^Acc: /m);
  t.false(run.output.includes('alice-pw'), 'the password is not shown');
});
