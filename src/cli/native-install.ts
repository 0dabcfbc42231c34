/**
 * `npm run native:install [-- --wheel FILE] [--force]`: puts @tensorflow/tfjs-node (the 'node' backend) in place
 * from a TensorFlow CPU wheel, for machines that cannot reach tfjs-node's own download host. See
 * src/native/tfjs-node-install.ts for the steps. A later plain `npm ci` removes it again.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CommandHelp, type FlagTable, readCommandLine } from '../options/parse-flags.ts';
import { installNative } from '../native/tfjs-node-install.ts';
import { runCli } from './run-cli.ts';

interface NativeInstallFlags {
  wheel: string | undefined;
  force: boolean;
}

const FLAGS: FlagTable<NativeInstallFlags> = {
  wheel: { kind: 'string', key: 'wheel', help: 'TensorFlow CPU wheel to take the libraries from (default: cached, else pip download tensorflow-cpu==2.21.0)' },
  force: { kind: 'boolean', key: 'force', help: 'Unpack and rebuild even when everything is in place' },
};

const HELP: CommandHelp = {
  usage: 'npm run native:install -- [flags]',
  description:
    "Puts @tensorflow/tfjs-node (the 'node' backend) in place from TensorFlow's CPU wheel and builds its binding from source: " +
    "for machines that cannot reach tfjs-node's own download host. Run it after every npm ci, which removes it.",
  examples: ['npm run native:install', 'npm run native:install -- --wheel ~/tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl'],
  environment: [['XDG_CACHE_HOME', 'where the downloaded wheel is cached (default ~/.cache), under cifar-dp-trainer/wheels']],
};

async function main(): Promise<number> {
  const flags = readCommandLine(process.argv.slice(2), HELP, FLAGS, { wheel: undefined, force: false });
  if (!flags) return 0;
  const started = Date.now();
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const result = await installNative({ root, wheel: flags.wheel && path.resolve(flags.wheel), force: flags.force, log: (line) => console.log(line) });
  console.log(`native:install ${result.alreadyInstalled ? 'checked' : 'done'} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${path.relative(root, result.bindingPath)}.`);
  return 0;
}

runCli(main);
