import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Rebuilds a committed .wasm with its package.json script (`asc … -o FILE`) into a temp folder and checks the
 * committed bytes are the same, so nobody commits a binary that its source no longer builds.
 */
export async function assertCommittedWasmIsFresh(t: ExecutionContext, script: string, committed: URL): Promise<void> {
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.truthy(pkg.scripts[script], `package.json has a ${script} script`);
  t.true(pkg.scripts['build:wasm']?.includes(script), `npm run build:wasm runs ${script}`);
  const args = pkg.scripts[script].split(/\s+/);
  t.is(args[0], 'asc');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wasm-build-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'fresh.wasm');
  const o = args.indexOf('-o');
  t.true(o > 0, 'the build script names its output with -o');
  args[o + 1] = out;
  const asc = path.join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [asc, ...args.slice(1)], { cwd: root, timeout: 120_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`asc failed: ${err.message}\n${stderr}`)) : resolve(),
    ),
  );
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.is(sha(await readFile(committed)), sha(await readFile(out)), `stale ${fileURLToPath(committed)}: run npm run build:wasm and commit it`);
}
