import { parseArgs } from 'node:util';
import { InvalidOptionError } from '../errors/index.ts';

/**
 * A typed command-line flag: its kind, its help line, and where its value goes. Each CLI lists its flags once
 * (see src/cli/*.ts); parsing, validation and `--help` come from that list.
 */
export type FlagSpec<T> =
  | { kind: 'string'; key: keyof T; help: string; choices?: readonly string[] }
  | { kind: 'integer'; key: keyof T; help: string; min?: number }
  | { kind: 'number'; key: keyof T; help: string; min?: number; exclusiveMin?: boolean }
  | { kind: 'boolean'; key: keyof T; help: string };

export type FlagTable<T> = Readonly<Record<string, FlagSpec<T>>>;

/** Applies argv onto a copy of `defaults`; a bad value is an InvalidOptionError that names the flag and the value. */
export function parseFlags<T extends object>(argv: readonly string[], flags: FlagTable<T>, defaults: T): T & { help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(flags)) {
    options[name] = { type: spec.kind === 'boolean' ? 'boolean' : 'string' };
    if (spec.kind === 'boolean') options[`no-${name}`] = { type: 'boolean' };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new InvalidOptionError(`${(error as Error).message}. Run with --help to see the flags.`);
  }
  const out: Record<string, unknown> = { ...defaults, help: parsed.values.help === true };
  for (const [name, spec] of Object.entries(flags)) {
    const raw = parsed.values[name];
    const key = spec.key as string;
    if (spec.kind === 'boolean') {
      if (raw === true) out[key] = true;
      if (parsed.values[`no-${name}`] === true) out[key] = false;
      continue;
    }
    if (raw === undefined) continue;
    const text = String(raw);
    switch (spec.kind) {
      case 'string':
        if (spec.choices && !spec.choices.includes(text)) {
          throw new InvalidOptionError(`--${name} must be one of ${spec.choices.join(', ')}; got '${text}'.`);
        }
        out[key] = text;
        break;
      case 'integer': {
        const value = Number(text);
        if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value) || value < (spec.min ?? -Infinity)) {
          throw new InvalidOptionError(`--${name} must be a whole number${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}; got '${text}'.`);
        }
        out[key] = value;
        break;
      }
      case 'number': {
        const value = Number(text);
        const min = spec.min ?? -Infinity;
        const tooSmall = spec.exclusiveMin ? value <= min : value < min;
        if (text.trim() === '' || !Number.isFinite(value) || tooSmall) {
          throw new InvalidOptionError(`--${name} must be a number ${spec.exclusiveMin ? '>' : '≥'} ${min}; got '${text}'.`);
        }
        out[key] = value;
        break;
      }
    }
  }
  return out as T & { help: boolean };
}

/** The `--help` text: one line per flag with its default. */
export function flagsHelp<T extends object>(usage: string, flags: FlagTable<T>, defaults: T): string {
  const rows: [string, string][] = Object.entries(flags).map(([name, spec]) => {
    const value = (defaults as Record<string, unknown>)[spec.key as string];
    const shown = spec.kind === 'boolean' ? '' : ` <${spec.kind === 'string' ? (spec.choices ? spec.choices.join('|') : 'value') : spec.kind}>`;
    const dflt = value === undefined || spec.kind === 'boolean' ? '' : ` (default: ${value})`;
    return [`  --${name}${shown}`, spec.help + dflt];
  });
  rows.push(['  --help', 'Show this help and exit']);
  // The widest flag sets the column, so a long list of choices never runs into its description.
  const column = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return [`Usage: ${usage}`, '', 'Flags:', ...rows.map(([flag, help]) => flag.padEnd(column) + help)].join('\n');
}
