// The helper process of cleanUpIfKilled (interrupt.ts): reads {pid, leftovers} lines on stdin, waits
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
  const requests: Request[] = [];
  // One line per call; a line cut short by the kill is dropped (its write never finished).
  for (const line of input.split('\n')) {
    try {
      if (line.trim() !== '') requests.push(JSON.parse(line) as Request);
    } catch {
      // the process ended while saying what to watch
    }
  }
  if (requests.length === 0) return;
  const pid = requests[0]!.pid;
  const until = Date.now() + REAP_WAIT_MS;
  while (processAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  // The same leftovers handed over twice (an export inside an edit) are looked at once.
  const leftovers = new Map(requests.flatMap((r) => r.leftovers).map((l) => [JSON.stringify(l), l]));
  for (const l of leftovers.values()) {
    if (l.restoreReplaced) restoreReplacedFolders(l.dir);
    removeDeadTemps(l.dir, new RegExp(l.pattern));
  }
}
