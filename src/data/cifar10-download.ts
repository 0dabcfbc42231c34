// Fetches CIFAR-10 (binary version) when the data folder lacks it: download (Node's fetch), MD5 check, unpack
// (the tar package, ./cifar10-archive.ts) into a temporary folder beside the target, then one rename, so the
// folder is either complete or absent.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { DatasetDownloadError, DatasetError } from '../errors/index.ts';
import { ProgressBar } from '../terminal/progress-bar.ts';
import { unpackArchive } from './cifar10-archive.ts';
import { CIFAR10_FILES, missingCifar10Files } from './cifar10-files.ts';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530';
/** The folder the official archive unpacks to. */
export const ARCHIVE_FOLDER = 'cifar-10-batches-bin';

export interface EnsureCifar10Options {
  /** Where to download from (tests serve a small archive on 127.0.0.1). */
  readonly url?: string;
  /** Expected hex MD5 of the archive. */
  readonly md5?: string;
  /** Receives one line per step (what is downloaded from where, the check, where it went). */
  readonly log?: (line: string) => void;
  /** Draw a progress bar on stderr; never drawn when stderr is not a terminal. Default true. */
  readonly progress?: boolean;
  /** Give up when the server sends nothing for this long (ms). Default 60,000. */
  readonly idleTimeoutMs?: number;
}

/**
 * Makes sure `dir` holds the CIFAR-10 files. Returns at once when it does; otherwise downloads the archive,
 * verifies its MD5 and unpacks it so that `dir` holds the files (the archive's cifar-10-batches-bin folder is
 * renamed to `dir`). On any failure nothing is left behind and a DatasetDownloadError names the URL and the
 * folder to fill by hand. A folder that exists but holds only some of the files is a DatasetError: it is
 * never overwritten.
 */
export async function ensureCifar10(dir: string, opts: EnsureCifar10Options = {}): Promise<void> {
  const target = path.resolve(dir);
  const missing = await missingCifar10Files(target);
  if (missing.length === 0) return;
  await refuseUnusableFolder(target, missing);

  const url = opts.url ?? CIFAR10_URL;
  const md5 = (opts.md5 ?? CIFAR10_MD5).toLowerCase();
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const fail = (reason: string, cause?: unknown): DatasetDownloadError =>
    new DatasetDownloadError(
      `Could not download CIFAR-10 from ${url}: ${reason}. Download cifar-10-binary.tar.gz yourself from ` +
        `${CIFAR10_URL}, unpack it and put the files of its ${ARCHIVE_FOLDER} folder ` +
        `(${CIFAR10_FILES.join(', ')}) in ${target}, or point --data / CIFAR10_DIR at a folder that holds them.`,
      cause === undefined ? undefined : { cause },
    );

  const parent = path.dirname(target);
  let createdRoot: string | undefined;
  try {
    createdRoot = await mkdir(parent, { recursive: true });
  } catch (err) {
    throw fail(`cannot create the folder ${parent} (${(err as Error).message})`, err);
  }
  let work: string | undefined;
  let done = false;
  try {
    work = await mkdtemp(path.join(parent, '.cifar10-download-'));
    log(`CIFAR-10 is not in ${target}; downloading ${url}`);
    const archive = path.join(work, 'cifar-10-binary.tar.gz');
    let got: string;
    try {
      got = await download(url, archive, {
        progress: (opts.progress ?? true) && process.stderr.isTTY === true,
        idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
        log,
      });
    } catch (err) {
      throw fail(describeNetworkError(err, url), err);
    }
    if (got !== md5) {
      throw fail(`the file's MD5 is ${got}, not the expected ${md5} (a damaged or different download)`);
    }
    log(`MD5 ${got} is correct; unpacking`);

    const unpacked = path.join(work, 'unpacked');
    await mkdir(unpacked);
    try {
      await unpackArchive(archive, unpacked);
    } catch (err) {
      throw fail(`unpacking the archive failed: ${(err as Error).message}`, err);
    }
    await rm(archive, { force: true });
    const source = path.join(unpacked, ARCHIVE_FOLDER);
    const lacking = await missingCifar10Files(source);
    if (lacking.length > 0) {
      throw fail(`the archive's ${ARCHIVE_FOLDER} folder lacks ${lacking.join(', ')}`);
    }

    await rmdir(target).catch(() => {}); // an empty folder of that name is replaced; anything else stays
    try {
      await rename(source, target);
    } catch (err) {
      // Someone else (another process) may have put the data there meanwhile; that is just as good.
      if ((await missingCifar10Files(target)).length > 0) {
        throw fail(`moving the unpacked files to ${target} failed (${(err as Error).message})`, err);
      }
    }
    done = true;
    log(`CIFAR-10 is in ${target}`);
  } catch (err) {
    if (err instanceof DatasetDownloadError) throw err;
    throw fail((err as Error).message, err);
  } finally {
    if (work !== undefined) await rm(work, { recursive: true, force: true }).catch(() => {});
    if (!done && createdRoot !== undefined) await removeEmptyFolders(parent, createdRoot);
  }
}

/** A folder that exists with other content, or a file in its place, is the user's: refuse to touch it. */
async function refuseUnusableFolder(target: string, missing: string[]): Promise<void> {
  let entries: string[];
  try {
    const s = await stat(target);
    if (!s.isDirectory()) {
      throw new DatasetError(
        `${target} is a file, not a folder of CIFAR-10 files. Move it away so the data set can be downloaded ` +
          `there, or point --data / CIFAR10_DIR at the folder that holds the files.`,
      );
    }
    entries = await readdir(target);
  } catch (err) {
    if (err instanceof DatasetError) throw err;
    return; // absent (or unreadable, which the download reports): download
  }
  if (entries.length === 0) return;
  throw new DatasetError(
    `The folder ${target} exists but lacks ${missing.join(', ')}. Put the missing files there, or delete or ` +
      `empty the folder so the trainer downloads CIFAR-10 into it, or point --data / CIFAR10_DIR at a ` +
      `complete copy.`,
  );
}

/** Removes `from` and its parents up to and including `root`, while they are empty folders. */
async function removeEmptyFolders(from: string, root: string): Promise<void> {
  let current = from;
  for (;;) {
    try {
      await rmdir(current);
    } catch {
      return;
    }
    if (path.resolve(current) === path.resolve(root)) return;
    const up = path.dirname(current);
    if (up === current) return;
    current = up;
  }
}

/** Node's fetch reports the network's error as its `cause` (ENOTFOUND, ECONNREFUSED...). */
function describeNetworkError(err: unknown, url: string): string {
  const e = ((err as { cause?: unknown }).cause ?? err) as NodeJS.ErrnoException & { hostname?: string };
  switch (e.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host ${e.hostname ?? 'of the URL'} could not be found (offline, or DNS failed)`;
    case 'ECONNREFUSED':
      return 'the connection was refused';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'the connection was reset';
    case 'ETIMEDOUT':
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return `the server could not be reached (${e.code}; offline?)`;
    default:
      // fetch refuses a few ports outright (the ones browsers block), with just 'bad port'.
      if (e.message === 'bad port') return `fetch refuses to connect to port ${new URL(url).port}, one of the ports browsers block`;
      return e.message || (err as Error).message || String(err);
  }
}

interface DownloadSettings {
  readonly progress: boolean;
  readonly idleTimeoutMs: number;
  readonly log: (line: string) => void;
}

/** GETs `url` (fetch follows redirects) into `file`; returns the hex MD5 of what was received. */
async function download(url: string, file: string, settings: DownloadSettings): Promise<string> {
  const aborter = new AbortController();
  let idle: NodeJS.Timeout | undefined;
  const stillWaiting = () => {
    clearTimeout(idle);
    idle = setTimeout(() => aborter.abort(new Error(`the server sent nothing for ${settings.idleTimeoutMs / 1000} s`)), settings.idleTimeoutMs);
  };
  stillWaiting();
  try {
    let response: Response;
    try {
      response = await fetch(url, { signal: aborter.signal, headers: { 'user-agent': 'cifar-dp-trainer' } });
    } catch (err) {
      throw aborter.signal.aborted ? aborter.signal.reason : err;
    }
    if (response.status !== 200 || !response.body) {
      throw new Error(`the server answered HTTP ${response.status} ${response.statusText}`.trimEnd() + (response.url !== url ? ` for ${response.url}` : ''));
    }
    const lengthHeader = response.headers.get('content-length');
    const total = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const name = path.basename(new URL(url).pathname) || 'download';
    const bar = settings.progress ? new ProgressBar(`${name} {bar} {percentage}%  {mb}/{totalMb} MB  {speed} MB/s`) : undefined;
    const md5 = createHash('md5');
    let received = 0;
    const started = Date.now();
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    try {
      await pipeline(
        Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            stillWaiting();
            md5.update(chunk);
            received += chunk.length;
            const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
            bar?.update(received, total ?? received, { mb: mb(received), totalMb: total === undefined ? '?' : mb(total), speed: (received / 1e6 / seconds).toFixed(1) });
            yield chunk;
          }
        },
        createWriteStream(file, { flags: 'wx' }),
      );
    } catch (err) {
      throw aborter.signal.aborted ? aborter.signal.reason : err;
    } finally {
      bar?.clear();
    }
    if (total !== undefined && received !== total) {
      throw new Error(`the connection closed after ${received} of ${total} bytes`);
    }
    const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
    settings.log(`Downloaded ${mb(received)} MB in ${seconds.toFixed(1)} s`);
    return md5.digest('hex');
  } finally {
    clearTimeout(idle);
  }
}
