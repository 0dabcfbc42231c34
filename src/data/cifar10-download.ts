// Fetches CIFAR-10 (binary version) when the data folder lacks it: download, MD5 check, gunzip + untar into
// a temporary folder beside the target, then one rename, so the folder is either complete or absent.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DatasetDownloadError, DatasetError } from '../errors/index.ts';
import { CIFAR10_FILES, missingCifar10Files } from './cifar10-files.ts';
import { extractTar } from './tar-extract.ts';

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

const MAX_REDIRECTS = 10;

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
      throw fail(describeNetworkError(err), err);
    }
    if (got !== md5) {
      throw fail(`the file's MD5 is ${got}, not the expected ${md5} (a damaged or different download)`);
    }
    log(`MD5 ${got} is correct; unpacking`);

    const unpacked = path.join(work, 'unpacked');
    await mkdir(unpacked);
    try {
      // Big chunks: with the default 16 KiB ones, unpacking the real archive takes several times longer.
      const input = createReadStream(archive, { highWaterMark: 1 << 20 });
      const gunzip = createGunzip({ chunkSize: 1 << 20 });
      input.on('error', (err) => gunzip.destroy(err));
      try {
        await extractTar(input.pipe(gunzip), unpacked);
      } finally {
        input.destroy();
        gunzip.destroy();
      }
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

function describeNetworkError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { hostname?: string };
  switch (e.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host ${e.hostname ?? 'of the URL'} could not be found (offline, or DNS failed)`;
    case 'ECONNREFUSED':
      return 'the connection was refused';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'ETIMEDOUT':
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
      return `the server could not be reached (${e.code}; offline?)`;
    default:
      return e.message || String(err);
  }
}

interface DownloadSettings {
  readonly progress: boolean;
  readonly idleTimeoutMs: number;
  readonly log: (line: string) => void;
}

/** GETs `url` (following redirects) into `file`; returns the hex MD5 of what was received. */
async function download(url: string, file: string, settings: DownloadSettings): Promise<string> {
  const response = await get(url, settings.idleTimeoutMs);
  const lengthHeader = response.headers['content-length'];
  const total = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
  const bar = settings.progress ? new ProgressBar(path.basename(new URL(url).pathname) || 'download', total) : undefined;
  const md5 = createHash('md5');
  let received = 0;
  const started = Date.now();
  try {
    await pipeline(
      response,
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          md5.update(chunk);
          received += chunk.length;
          bar?.update(received);
          yield chunk;
        }
      },
      createWriteStream(file, { flags: 'wx' }),
    );
  } finally {
    bar?.finish(received);
  }
  if (total !== undefined && received !== total) {
    throw new Error(`the connection closed after ${received} of ${total} bytes`);
  }
  const seconds = Math.max((Date.now() - started) / 1000, 1e-3);
  settings.log(`Downloaded ${(received / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s`);
  return md5.digest('hex');
}

/** The 200 response for `url`, after following up to MAX_REDIRECTS redirects. */
async function get(url: string, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  let current = new URL(url);
  for (let hop = 0; ; hop++) {
    const response = await getOnce(current, idleTimeoutMs);
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location !== undefined) {
      response.resume();
      if (hop >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
      current = new URL(response.headers.location, current);
      continue;
    }
    if (status !== 200) {
      response.resume();
      throw new Error(`the server answered HTTP ${status} ${response.statusMessage ?? ''}`.trimEnd() +
        (current.href !== url ? ` for ${current.href}` : ''));
    }
    return response;
  }
}

function getOnce(url: URL, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  const client = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (client === undefined) return Promise.reject(new Error(`unsupported protocol ${url.protocol}`));
  return new Promise((resolve, reject) => {
    const request = client.get(url, { headers: { 'user-agent': 'cifar-dp-trainer' } }, resolve);
    request.setTimeout(idleTimeoutMs, () => {
      request.destroy(new Error(`the server sent nothing for ${idleTimeoutMs / 1000} s`));
    });
    request.on('error', reject);
  });
}

/**
 * One progress line: `name [#####-----]  45.2%  73.5/162.6 MB  12.3 MB/s` (MB = 10^6 bytes); without a
 * known total, just the MB received and the rate.
 */
export function formatProgress(
  name: string,
  received: number,
  total: number | undefined,
  elapsedSeconds: number,
  barWidth = 24,
): string {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const rate = elapsedSeconds > 0 ? received / 1e6 / elapsedSeconds : 0;
  if (total === undefined || total <= 0) return `${name}  ${mb(received)} MB  ${rate.toFixed(1)} MB/s`;
  const fraction = Math.min(1, received / total);
  const filled = Math.round(fraction * barWidth);
  const bar = '#'.repeat(filled) + '-'.repeat(barWidth - filled);
  const percent = `${(fraction * 100).toFixed(1)}%`.padStart(6);
  return `${name} [${bar}] ${percent}  ${mb(received)}/${mb(total)} MB  ${rate.toFixed(1)} MB/s`;
}

/** Redraws one stderr line at most ten times a second. */
class ProgressBar {
  private readonly started = Date.now();
  private lastDraw = 0;

  constructor(
    private readonly name: string,
    private readonly total: number | undefined,
  ) {}

  update(received: number): void {
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.draw(received);
  }

  finish(received: number): void {
    this.draw(received);
    process.stderr.write('\n');
  }

  private draw(received: number): void {
    const line = formatProgress(this.name, received, this.total, (Date.now() - this.started) / 1000);
    process.stderr.write(`\r${line}\x1b[K`);
  }
}
