import { TrainerError } from '../errors/index.ts';

/**
 * Runs a command's main function: a TrainerError (bad input, missing data, unreachable Redis...) prints its
 * message alone and exits with its code; anything else is a bug and keeps its stack trace.
 */
export function runCli(main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      process.exitCode = code ?? 0;
    },
    (error: unknown) => {
      if (error instanceof TrainerError) {
        process.stderr.write(`\nError: ${error.message}\n`);
        process.exitCode = error.exitCode;
      } else {
        process.stderr.write(`\nUnexpected error (a bug; please report it):\n${(error as Error)?.stack ?? String(error)}\n`);
        process.exitCode = 70;
      }
    },
  );
}

/** Sets a flag on the first SIGINT/SIGTERM (so the loop can checkpoint); a second one exits at once. */
export function stopSignal(onFirst: (signal: string) => void): () => boolean {
  let requested = false;
  const handler = (signal: NodeJS.Signals) => {
    if (requested) {
      process.stderr.write(`\n${signal} again: exiting without waiting.\n`);
      process.exit(130);
    }
    requested = true;
    onFirst(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => requested;
}
