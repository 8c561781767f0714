// Ctrl-C (SIGINT) and SIGTERM on the command line.
//
// A signal handler written in JavaScript runs only when the event loop turns, never in the middle
// of synchronous work (a training epoch, an edit's optimisation, a checkpoint being written). So:
// - amend eval, whose run turns the loop between units, stops there on a first signal (stopOnSignal):
//   a checkpoint, one line, exit 130 (143 for SIGTERM). Its handlers then go, so that a second
//   signal ends the process at once, even inside a long unit.
// - the commands whose long work is synchronous (export, edit, world build) keep the default
//   action, which ends them at once; what they were writing is only ever under a temporary name
//   (the final names appear by rename), and a small helper process removes those temporary files
//   and folders once this process is gone (cleanUpIfKilled), instead of leaving gigabytes for the
//   next run into the same folder to find.
// - amend stats, whose long work turns the loop between batches, ends with one line (exitOnSignal).
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { escapeRegExp } from '../io/dirs.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';
const SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM'];

/** The exit status of a command a signal stopped: 128 + its number, as a shell reports one it killed. */
export const exitCodeFor = (sig: StopSignal): number => 128 + os.constants.signals[sig];

/** What the handlers are installed on: the process, or a stand-in in tests. */
export interface SignalTarget {
  on(event: StopSignal, listener: (sig: StopSignal) => void): unknown;
  removeListener(event: StopSignal, listener: (sig: StopSignal) => void): unknown;
}

export interface StopOnSignal {
  /** Aborted by the first SIGINT or SIGTERM. */
  signal: AbortSignal;
  /** The signal received, or null. */
  received(): StopSignal | null;
  /** Removes the handlers (the work is over; a signal now has its default action again). */
  dispose(): void;
}

/**
 * For work that can stop cleanly at its next boundary: the first SIGINT / SIGTERM aborts `signal`
 * and removes the handlers, so that a second one ends the process at once (its default action).
 */
export function stopOnSignal(target: SignalTarget = process): StopOnSignal {
  const controller = new AbortController();
  let received: StopSignal | null = null;
  const dispose = () => {
    for (const s of SIGNALS) target.removeListener(s, onSignal);
  };
  function onSignal(sig: StopSignal): void {
    received ??= sig;
    dispose();
    controller.abort(sig);
  }
  for (const s of SIGNALS) target.on(s, onSignal);
  return { signal: controller.signal, received: () => received, dispose };
}

/**
 * For work that turns the event loop often and writes nothing under a final name before its end:
 * a signal prints `amend: interrupted (SIG...)` and what `whatIsLost` says, and exits with 130 / 143.
 */
export function exitOnSignal(whatIsLost: string, target: SignalTarget = process): () => void {
  const onSignal = (sig: StopSignal) => {
    // (a progress bar on a terminal has no line end yet)
    process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}amend: interrupted (${sig}); ${whatIsLost}\n`);
    process.exit(exitCodeFor(sig));
  };
  for (const s of SIGNALS) target.on(s, onSignal);
  return () => {
    for (const s of SIGNALS) target.removeListener(s, onSignal);
  };
}

/**
 * Temporary names a killed process may leave in `dir`: those `pattern` matches, whose first group
 * is the writer's process id (this process's only: a writer of another PID namespace sharing the
 * folder may look gone from here); `restoreReplaced`: also a folder that was being replaced
 * (replaceFolder's `.NAME.amend-old-PID-x`), put back when its place is empty.
 */
export interface Leftovers {
  dir: string;
  pattern: RegExp;
  restoreReplaced?: boolean;
}

/** The temporary folders tempDirBeside(out, tag) makes, and the folder replaceFolder moves aside. */
export function tempFoldersBeside(out: string, tag: string, pid = process.pid): Leftovers {
  const abs = path.resolve(out);
  return { dir: path.dirname(abs), pattern: new RegExp(`^\\.${escapeRegExp(path.basename(abs))}\\.${escapeRegExp(tag)}-(${pid})-[a-z0-9]+$`), restoreReplaced: true };
}

/** The temporary copies tempPathFor(file) makes beside `file` (an atomic write in progress). */
export function tempFilesOf(file: string, pid = process.pid): Leftovers {
  const abs = path.resolve(file);
  return { dir: path.dirname(abs), pattern: new RegExp(`^\\.${escapeRegExp(path.basename(abs))}\\.(${pid})\\.[a-z0-9]+\\.tmp$`) };
}

/** The helper of this process (undefined: not started yet; null: it could not start). */
let janitor: ChildProcess | null | undefined;

/**
 * Hands `leftovers` to a helper process that waits for this one to end, however it ends (a signal,
 * a crash, SIGKILL), and then removes them as the next run into the same folder would
 * (removeDeadTemps, restoreReplacedFolders: only names whose process is gone). One helper serves
 * every call of a process: each call is one more line on its stdin, which it reads to the end.
 * After a run that finished there is nothing left to remove. The helper is in a process group of
 * its own, so the Ctrl-C that ends this process does not end it too, and it holds nothing that
 * keeps this process alive. Best-effort: a helper that cannot start leaves the leftovers to the
 * next run.
 */
export function cleanUpIfKilled(leftovers: readonly Leftovers[]): void {
  if (leftovers.length === 0) return;
  janitor ??= startJanitor();
  janitor?.stdin!.write(`${JSON.stringify({ pid: process.pid, leftovers: leftovers.map((l) => ({ dir: l.dir, pattern: l.pattern.source, restoreReplaced: l.restoreReplaced === true })) })}\n`);
}

function startJanitor(): ChildProcess | null {
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [fileURLToPath(new URL('./janitor.js', import.meta.url))], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    return null;
  }
  child.on('error', () => {});
  child.stdin!.on('error', () => {});
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return child;
}
