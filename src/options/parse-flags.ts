import { readFileSync } from 'node:fs';
import { InvalidOptionError } from '../errors/index.ts';

/**
 * The command line of every CLI: a typed flag table (kind, help line, where the value goes), parsed, checked
 * and explained from that one list. Written here rather than with node:util's parseArgs for its messages: a
 * negative number is a value (`--lr -1` is "--lr must be > 0", not "argument is ambiguous"), a misspelt flag gets
 * "did you mean", and a stray argument gets the hint that npm wants `--` before the flags.
 */
export type FlagSpec<T> =
  | { kind: 'string'; key: keyof T; help: string; choices?: readonly string[] }
  | { kind: 'integer'; key: keyof T; help: string; min?: number }
  | { kind: 'number'; key: keyof T; help: string; min?: number; exclusiveMin?: boolean }
  | { kind: 'boolean'; key: keyof T; help: string };

export type FlagTable<T> = Readonly<Record<string, FlagSpec<T>>>;

/** What `--help` says about a command besides its flags. */
export interface CommandHelp {
  /** `npm run coordinator -- [flags]`. */
  readonly usage: string;
  /** One line: what the command does. */
  readonly description: string;
  readonly examples: readonly string[];
  /** Environment variables the command reads, with what each means. */
  readonly environment?: readonly (readonly [name: string, meaning: string])[];
}

export interface ParsedFlags {
  /** -h / --help was given. */
  readonly help: boolean;
  /** --version was given. */
  readonly version: boolean;
  /** Arguments that are not flags (only where the command takes them: `positionals: true`). */
  readonly positionals: readonly string[];
}

export interface ParseOptions {
  /** The command takes arguments besides flags (files, say); without this a stray argument is an error. */
  readonly positionals?: boolean;
  /** How the command is run (`npm run coordinator`), for the hint about `--`. */
  readonly command?: string;
}

/** A value for a flag may start with '-' when it is a number (`--lr -1`); anything else that does is a flag. */
const NUMBER_LIKE = /^-(\d|\.\d|Infinity)/;

/**
 * Applies argv onto a copy of `defaults`. Every mistake is an InvalidOptionError (exit code 2) that names the
 * flag and the value: an unknown flag (with the nearest known one), a missing or bad value, a flag given a
 * value it does not take, a stray argument. After `--`, everything is a positional argument.
 */
export function parseFlags<T extends object>(
  argv: readonly string[], flags: FlagTable<T>, defaults: T, parse: ParseOptions = {},
): T & ParsedFlags {
  const out: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  const positionals: string[] = [];
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (arg === '--version') {
      version = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const negated = name.startsWith('no-') && flags[name.slice(3)]?.kind === 'boolean';
    const spec = negated ? flags[name.slice(3)] : flags[name];
    if (spec === undefined || !arg.startsWith('--')) throw unknownFlag(arg.slice(0, eq < 0 ? undefined : eq), flags);
    if (spec.kind === 'boolean') {
      if (inline !== undefined) throw new InvalidOptionError(`--${name} takes no value; got '${arg}'. Write --${name}${negated ? '' : ` or --no-${name}`}.`);
      out[spec.key as string] = !negated;
      continue;
    }
    let text = inline;
    if (text === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && !NUMBER_LIKE.test(next))) {
        throw new InvalidOptionError(`--${name} needs a value (--${name} <${valueName(spec)}>). Run with --help to see the flags.`);
      }
      text = next;
      i += 1;
    }
    out[spec.key as string] = flagValue(name, spec, text);
  }
  if (positionals.length > 0 && !parse.positionals) {
    const command = parse.command ?? 'npm run <command>';
    throw new InvalidOptionError(
      `Unexpected argument '${positionals[0]}': this command takes only flags. With npm, put \`--\` before them ` +
        `(${command} -- --flag value); without it npm keeps flags such as --epochs for itself and passes on only their values.`,
    );
  }
  return { ...(out as T), help, version, positionals };
}

function flagValue<T>(name: string, spec: Exclude<FlagSpec<T>, { kind: 'boolean' }>, text: string): string | number {
  switch (spec.kind) {
    case 'string':
      if (spec.choices && !spec.choices.includes(text)) {
        throw new InvalidOptionError(`--${name} must be one of ${spec.choices.join(', ')}; got '${text}'.`);
      }
      return text;
    case 'integer': {
      const value = Number(text);
      if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value) || value < (spec.min ?? -Infinity)) {
        throw new InvalidOptionError(`--${name} must be a whole number${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}; got '${text}'.`);
      }
      return value;
    }
    case 'number': {
      const value = Number(text);
      const min = spec.min ?? -Infinity;
      const tooSmall = spec.exclusiveMin ? value <= min : value < min;
      if (text.trim() === '' || !Number.isFinite(value) || tooSmall) {
        throw new InvalidOptionError(`--${name} must be a number ${spec.exclusiveMin ? '>' : '≥'} ${min}; got '${text}'.`);
      }
      return value;
    }
  }
}

function unknownFlag<T>(given: string, flags: FlagTable<T>): InvalidOptionError {
  const name = given.replace(/^--?/, '');
  const known = [...Object.keys(flags), 'help', 'version'];
  const near = known
    .map((k) => ({ k, d: editDistance(name, k) }))
    .filter(({ k, d }) => d <= Math.max(1, Math.floor(k.length / 4)) || (name.length >= 3 && k.startsWith(name)))
    .sort((a, b) => a.d - b.d)[0];
  const hint = near ? ` Did you mean --${near.k}?` : '';
  return new InvalidOptionError(`Unknown flag ${given}.${hint} Run with --help to see the flags.`);
}

/** Levenshtein distance (names are short). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

function valueName<T>(spec: FlagSpec<T>): string {
  if (spec.kind === 'string') return spec.choices ? spec.choices.join('|') : 'value';
  return spec.kind;
}

/**
 * The `--help` text: usage, the command's one-line description, one line per flag with its default, the
 * environment variables it reads, and examples (when `about` is given).
 */
export function flagsHelp<T extends object>(usage: string, flags: FlagTable<T>, defaults: T, about?: Omit<CommandHelp, 'usage'>): string {
  const rows: [string, string][] = Object.entries(flags).map(([name, spec]) => {
    const value = (defaults as Record<string, unknown>)[spec.key as string];
    const shown = spec.kind === 'boolean' ? '' : ` <${valueName(spec)}>`;
    const dflt = value === undefined || spec.kind === 'boolean' ? '' : ` (default: ${value})`;
    return [`  --${name}${shown}`, spec.help + dflt];
  });
  rows.push(['  -h, --help', 'Show this help and exit'], ['  --version', 'Print the version and exit']);
  // The widest flag sets the column, so a long list of choices never runs into its description.
  const column = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  const lines = [`Usage: ${usage}`, ''];
  if (about) lines.push(about.description, '');
  lines.push('Flags:', ...rows.map(([flag, help]) => flag.padEnd(column) + help));
  if (about?.environment && about.environment.length > 0) {
    const width = Math.max(...about.environment.map(([name]) => name.length)) + 4;
    lines.push('', 'Environment:', ...about.environment.map(([name, meaning]) => `  ${name}`.padEnd(width) + meaning));
  }
  if (about && about.examples.length > 0) lines.push('', 'Examples:', ...about.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/**
 * A command's whole command line: parses argv onto `defaults` (the effective ones, environment included) and,
 * for -h/--help or --version, prints the help (with `shownDefaults`, the documented ones) or the version and
 * returns undefined: the command then exits with 0.
 */
export function readCommandLine<T extends object>(
  argv: readonly string[], help: CommandHelp, flags: FlagTable<T>, defaults: T, shownDefaults: T = defaults, parse: ParseOptions = {},
): (T & ParsedFlags) | undefined {
  const command = help.usage.replace(/ --.*$/, '');
  const options = parseFlags(argv, flags, defaults, { command, ...parse });
  if (options.help) console.log(flagsHelp(help.usage, flags, shownDefaults, help));
  else if (options.version) console.log(projectVersion());
  else return options;
  return undefined;
}

/** The project's version, from package.json (what `--version` prints). */
export function projectVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}
