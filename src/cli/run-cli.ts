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

/** The exit code of a process stopped by a signal, by the shell's convention (128 + the signal's number). */
export const SIGNAL_EXIT_CODES: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * A repeat of the signal this soon after the first is the same request, not a second one: one Ctrl-C reaches a
 * command through several routes (the terminal signals the whole process group; wrappers such as tsx's CLI or
 * npm 10 relay it to their child again), and under load those copies arrive milliseconds to a few hundred
 * milliseconds apart.
 */
export const REPEAT_WINDOW_MS = 1000;

export interface StopRequest {
  /** The first SIGINT/SIGTERM received, or undefined while none has come. */
  readonly signal: () => 'SIGINT' | 'SIGTERM' | undefined;
  /** 130 after SIGINT, 143 after SIGTERM (0 while no signal came). */
  readonly exitCode: () => number;
}

/**
 * Listens for SIGINT/SIGTERM: the first one calls `onFirst` (the command then stops gracefully, and checks
 * `signal()`); another one, arriving more than REPEAT_WINDOW_MS later, calls `onAgain` (which should stop at
 * once), or by default exits at once with the signal's code.
 */
export function listenForStop(
  onFirst: (signal: 'SIGINT' | 'SIGTERM') => void,
  onAgain: (signal: 'SIGINT' | 'SIGTERM', code: number) => void = (signal, code) => {
    process.stderr.write(`\n${signal} again: exiting without waiting.\n`);
    process.exit(code);
  },
): StopRequest {
  let first: 'SIGINT' | 'SIGTERM' | undefined;
  let at = 0;
  let again = false;
  const handler = (signal: 'SIGINT' | 'SIGTERM') => {
    if (first === undefined) {
      first = signal;
      at = Date.now();
      onFirst(signal);
    } else if (!again && Date.now() - at > REPEAT_WINDOW_MS) {
      again = true;
      onAgain(signal, SIGNAL_EXIT_CODES[first]);
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return { signal: () => first, exitCode: () => (first ? SIGNAL_EXIT_CODES[first] : 0) };
}
