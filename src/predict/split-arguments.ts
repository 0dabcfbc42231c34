// Commands that take files as well as flags: the files are every argument that is not a flag or a flag's value.
import type { FlagTable } from '../options/parse-flags.ts';

/**
 * Splits argv into the flags (with their values, for parseFlags) and the other arguments, in order. A flag
 * of the table that takes a value swallows the next argument unless written `--flag=value`; after `--`,
 * everything is an argument (for a file whose name starts with '-').
 */
export function splitArguments<T>(argv: readonly string[], flags: FlagTable<T>): { flags: string[]; positionals: string[] } {
  const flagArgs: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg !== '-') {
      flagArgs.push(arg);
      const name = arg.replace(/^--?/, '');
      const spec = flags[name];
      if (!name.includes('=') && spec !== undefined && spec.kind !== 'boolean' && i + 1 < argv.length) flagArgs.push(argv[++i]);
      continue;
    }
    positionals.push(arg);
  }
  return { flags: flagArgs, positionals };
}
