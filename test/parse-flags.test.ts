import test from 'ava';
import { flagsHelp, parseFlags, type FlagTable } from '../src/options/parse-flags.ts';
import { InvalidOptionError } from '../src/errors/index.ts';

interface Opts { epochs: number; lr: number; name: string; fast: boolean; limit: number | undefined }
const FLAGS: FlagTable<Opts> = {
  epochs: { kind: 'integer', key: 'epochs', help: '', min: 1 },
  lr: { kind: 'number', key: 'lr', help: '', min: 0, exclusiveMin: true },
  name: { kind: 'string', key: 'name', help: '', choices: ['a', 'b'] },
  fast: { kind: 'boolean', key: 'fast', help: '' },
  limit: { kind: 'integer', key: 'limit', help: '', min: 1 },
};
const DEFAULTS: Opts = { epochs: 10, lr: 1e-3, name: 'a', fast: true, limit: undefined };

test('flags override defaults with typed values', (t) => {
  const o = parseFlags(['--epochs', '3', '--lr=0.01', '--name', 'b', '--no-fast', '--limit', '50'], FLAGS, DEFAULTS);
  t.like(o, { epochs: 3, lr: 0.01, name: 'b', fast: false, limit: 50, help: false });
  t.like(parseFlags([], FLAGS, DEFAULTS), DEFAULTS);
});

test('bad values are InvalidOptionErrors naming the flag and the value', (t) => {
  for (const [args, text] of [
    [['--epochs', '0'], /--epochs .*'0'/],
    [['--epochs', '2.5'], /--epochs .*'2.5'/],
    [['--lr=-1'], /--lr .*'-1'/],
    [['--lr', 'abc'], /--lr .*'abc'/],
    [['--name', 'c'], /--name must be one of a, b; got 'c'/],
    [['--bogus'], /Unknown flag --bogus\. Run with --help/],
    [['--lr', '-1'], /^--lr must be a number > 0; got '-1'\.$/],
    [['--epochs', '-3'], /^--epochs must be a whole number ≥ 1; got '-3'\.$/],
    [['--epochs', '--fast'], /^--epochs needs a value \(--epochs <integer>\)/],
    [['--epochs'], /^--epochs needs a value/],
    [['--fast=yes'], /--fast takes no value/],
  ] as const) {
    const error = t.throws(() => parseFlags(args, FLAGS, DEFAULTS), { instanceOf: InvalidOptionError });
    t.regex(error!.message, text);
  }
});

test('a misspelt flag gets the nearest known one; a stray argument gets the hint that npm wants -- before the flags', (t) => {
  t.throws(() => parseFlags(['--epoch', '3'], FLAGS, DEFAULTS), { instanceOf: InvalidOptionError, message: /^Unknown flag --epoch\. Did you mean --epochs\?/ });
  t.throws(() => parseFlags(['--limt=3'], FLAGS, DEFAULTS), { message: /Did you mean --limit\?/ });
  t.throws(() => parseFlags(['-x'], FLAGS, DEFAULTS), { message: /^Unknown flag -x\. Run with --help/ });
  const stray = t.throws(() => parseFlags(['5'], FLAGS, DEFAULTS, { command: 'npm run coordinator' }), { instanceOf: InvalidOptionError });
  t.regex(stray!.message, /^Unexpected argument '5': this command takes only flags\. With npm, put `--` before them \(npm run coordinator -- --flag value\)/);
  t.is(stray!.exitCode, 2, 'a usage error');
});

test('-h, --help and --version; positional arguments where the command takes them, and after --', (t) => {
  t.true(parseFlags(['-h'], FLAGS, DEFAULTS).help);
  t.true(parseFlags(['--version'], FLAGS, DEFAULTS).version);
  const o = parseFlags(['a.png', '--name', 'b', 'b.jpg', '--fast', '--epochs=2', 'c.png', '--', '--d.png'], FLAGS, DEFAULTS, { positionals: true });
  t.deepEqual(o.positionals, ['a.png', 'b.jpg', 'c.png', '--d.png']);
  t.like(o, { name: 'b', fast: true, epochs: 2 });
});

test('help lines up every description in one column, two spaces past the longest flag', (t) => {
  interface Help { mode: string; count: number; quiet: boolean }
  const table: FlagTable<Help> = {
    mode: { kind: 'string', key: 'mode', help: 'Describes mode', choices: ['constant', 'cosine', 'onecycle-with-a-long-name'] },
    count: { kind: 'integer', key: 'count', help: 'Describes count' },
    quiet: { kind: 'boolean', key: 'quiet', help: 'Describes quiet' },
  };
  const lines = flagsHelp('cmd [flags]', table, { mode: 'cosine', count: 3, quiet: false }).split('\n').filter((l) => l.startsWith('  -'));
  t.is(lines.length, 5);
  const columns = lines.map((l) => l.search(/Describes|Show this help|Print the version/));
  t.is(new Set(columns).size, 1, `descriptions start at ${columns.join(', ')}`);
  t.true(lines[0].includes('onecycle-with-a-long-name>  Describes mode'));
});
