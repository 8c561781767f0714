// The helper process of cleanUpIfKilled (interrupt.ts): reads {pid, leftovers} on stdin, waits
// until that process has ended (its end of the pipe closes, then its process id is gone), and
// removes the temporary files and folders it left, as the next run into those folders would.
import { processAlive, removeDeadTemps, restoreReplacedFolders } from '../io/dirs.js';

interface Request {
  pid: number;
  leftovers: { dir: string; pattern: string; restoreReplaced: boolean }[];
}

/** How long a process that has closed its pipe may stay visible (not yet reaped by its parent). */
const REAP_WAIT_MS = 10_000;

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  input += chunk;
});
process.stdin.on('end', () => {
  void cleanUp();
});

async function cleanUp(): Promise<void> {
  let req: Request;
  try {
    req = JSON.parse(input.split('\n')[0]!) as Request;
  } catch {
    return; // the process ended before it said what to watch
  }
  const until = Date.now() + REAP_WAIT_MS;
  while (processAlive(req.pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  for (const l of req.leftovers) {
    if (l.restoreReplaced) restoreReplacedFolders(l.dir);
    removeDeadTemps(l.dir, new RegExp(l.pattern));
  }
}
