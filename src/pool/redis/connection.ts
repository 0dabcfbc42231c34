/**
 * How to reach Redis: a redis:// or rediss:// URL (user and password for AUTH, /N for the database, rediss for
 * TLS) turned into ioredis/BullMQ connection options, a first connection check whose failures say what to fix,
 * and long-lived clients that reconnect on their own.
 */
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisOptions as BullRedisOptions } from 'bullmq';
import { InvalidOptionError, RedisConnectionError } from '../../errors/index.ts';

export interface RedisTarget {
  /** Options for ioredis and BullMQ (host, port, AUTH, db, TLS); no URL inside, so no password in logs. */
  readonly options: RedisOptions;
  /** The URL with the password replaced by ***, for messages. */
  readonly display: string;
}

export interface RedisTargetEnv {
  /** PEM file of the CA that signed the Redis server's TLS certificate (rediss:// only; else the system CAs). */
  readonly REDIS_TLS_CA_FILE?: string;
}

/**
 * Parses a Redis URL: `redis://[user][:password]@host[:port][/db]`, or `rediss://...` for TLS. The password
 * may be percent-encoded. For TLS with a private CA, set REDIS_TLS_CA_FILE (or NODE_EXTRA_CA_CERTS).
 */
export function parseRedisUrl(url: string, env: RedisTargetEnv = process.env): RedisTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidOptionError(`The Redis URL '${url}' is not a URL. Write it as redis://[user:password@]host[:port][/db] (or rediss:// for TLS).`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new InvalidOptionError(
      `The Redis URL must start with redis:// (or rediss:// for TLS); got '${redactUrl(url)}'.`,
    );
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const dbText = parsed.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) {
    throw new InvalidOptionError(`The database in the Redis URL must be a number (redis://host:6379/0); got '/${dbText}'.`);
  }
  const options: RedisOptions = { host, port, db: dbText === '' ? 0 : Number(dbText) };
  if (parsed.username !== '') options.username = decodeURIComponent(parsed.username);
  if (parsed.password !== '') options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') {
    const tls: { servername?: string; ca?: Buffer } = {};
    if (!/^[\d.:]+$/.test(host)) tls.servername = host;
    if (env.REDIS_TLS_CA_FILE) {
      try {
        tls.ca = readFileSync(env.REDIS_TLS_CA_FILE);
      } catch (error) {
        throw new InvalidOptionError(`REDIS_TLS_CA_FILE=${env.REDIS_TLS_CA_FILE} cannot be read (${(error as Error).message}).`);
      }
    }
    options.tls = tls;
  }
  return { options, display: redactUrl(url) };
}

/** The URL with its password (if any) replaced by ***. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** Connection options for long-lived clients (ours and BullMQ's): reconnect forever, at most every 2 s. */
export function reconnectingOptions(target: RedisTarget, name: string): BullRedisOptions & RedisOptions {
  const { retryStrategy: _ignored, ...base } = target.options;
  return {
    ...base,
    connectionName: name,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
  };
}

/** One client that reconnects on its own (commands wait while Redis is away: callers bound their waits). */
export function openClient(target: RedisTarget, name: string): Redis {
  const client = new Redis(reconnectingOptions(target, name));
  // Without a listener ioredis prints every failed reconnection attempt; callers watch 'close'/'ready' instead.
  client.on('error', () => undefined);
  return client;
}

/**
 * Connects once, without retrying, and pings: the first contact, whose failure must say what to fix (address,
 * password, TLS) instead of retrying forever in silence.
 */
export async function checkRedis(target: RedisTarget, timeoutMs = 5000): Promise<void> {
  const client = new Redis({
    ...target.options,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let lastError: unknown;
  client.on('error', (error: unknown) => {
    lastError = error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw redisConnectionError(target, lastError ?? error);
  } finally {
    client.disconnect();
  }
}

/** A RedisConnectionError that names the server and says what to do about `error`. */
export function redisConnectionError(target: RedisTarget, error: unknown): RedisConnectionError {
  const raw = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string } | undefined)?.code ?? '';
  const where = `Redis at ${target.display}`;
  let advice: string;
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password|AUTH.*without any password/i.test(raw)) {
    advice = 'Redis refused the credentials. Put the right user and password in the URL: redis://user:password@host:6379 (percent-encode special characters).';
  } else if (/SSL|TLS|certificate|EPROTO|wrong version number|self.signed/i.test(raw + code)) {
    advice = 'The TLS handshake failed. Use rediss:// only for a TLS port; for a private CA set REDIS_TLS_CA_FILE to its PEM file.';
  } else if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|connect/i.test(raw + code)) {
    advice = 'Is redis-server running and reachable there? Pass the right --redis URL or set REDIS_URL.';
  } else {
    advice = 'Check the --redis URL (or REDIS_URL).';
  }
  return new RedisConnectionError(`Cannot use ${where}: ${raw || code || 'connection closed'}. ${advice}`, { cause: error });
}

/** Rejects with `makeError()` when `promise` has not settled within `ms` (the promise itself keeps running). */
export function withDeadline<T>(promise: Promise<T>, ms: number, makeError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(makeError()), ms);
    timer.unref(); // a deadline never keeps the process alive by itself
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
