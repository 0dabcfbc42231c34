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
    [['--bogus'], /bogus/],
  ] as const) {
    const error = t.throws(() => parseFlags(args, FLAGS, DEFAULTS), { instanceOf: InvalidOptionError });
    t.regex(error!.message, text);
  }
});

test('help lines up every description in one column, two spaces past the longest flag', (t) => {
  interface Help { mode: string; count: number; quiet: boolean }
  const table: FlagTable<Help> = {
    mode: { kind: 'string', key: 'mode', help: 'Describes mode', choices: ['constant', 'cosine', 'onecycle-with-a-long-name'] },
    count: { kind: 'integer', key: 'count', help: 'Describes count' },
    quiet: { kind: 'boolean', key: 'quiet', help: 'Describes quiet' },
  };
  const lines = flagsHelp('cmd [flags]', table, { mode: 'cosine', count: 3, quiet: false }).split('\n').filter((l) => l.startsWith('  --'));
  t.is(lines.length, 4);
  const columns = lines.map((l) => l.search(/Describes|Show this help/));
  t.is(new Set(columns).size, 1, `descriptions start at ${columns.join(', ')}`);
  t.true(lines[0].includes('onecycle-with-a-long-name>  Describes mode'));
});
