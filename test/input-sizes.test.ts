// Files read whole (hparams, held-out text) are refused by size before they are read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { AmendError } from '../src/errors.js';
import { readHparamsFile } from '../src/editors/index.js';
import { readHeldOutText } from '../src/eval/metrics-ppl.js';
import { assertOneLineError, runCli } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-sizes-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file of `size` bytes that takes no disk (sparse), with `text` at its start. */
function sized(name: string, text: string, size: number): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  fs.truncateSync(file, size);
  return file;
}

const refused = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof AmendError && re.test(e.message));

test('an hparams file over 1 MiB is refused with its size; one at 1 MiB is read', () => {
  const big = sized('big.yaml', 'layers: [5]\n', 2 ** 20 + 1);
  refused(() => readHparamsFile(big), /big\.yaml: is 1048577 bytes, more than a YAML or JSON hparams file can be \(1048576 bytes at most\); is it the file meant\?$/);
  refused(() => readHparamsFile(sized('weights.json', '{}', 3 * 2 ** 30)), /weights\.json: is 3072\.0 MiB, more than a YAML or JSON hparams file can be \(1\.0 MiB at most\)/);
  const edge = path.join(tmp, 'edge.yaml');
  fs.writeFileSync(edge, `layers: [5]\n${'#'.repeat(2 ** 20 - 13)}\n`);
  assert.equal(fs.statSync(edge).size, 2 ** 20);
  assert.deepEqual(readHparamsFile(edge), { layers: [5] });
  // the command line: one line, before the model loads
  assertOneLineError(runCli(['edit', '--model', 'world', '--method', 'rome', '--hparams', big, '--prompt', '{} lives in', '--subject', 'x', '--target', 'y']),
    /big\.yaml: is 1048577 bytes, more than a YAML or JSON hparams file/);
});

test('a held-out text over the string limit is refused with its size, not read', () => {
  const big = sized('heldout.txt', 'some text\n', bufferConstants.MAX_STRING_LENGTH + 1);
  refused(() => readHeldOutText(big), /heldout\.txt: is 536870889 bytes, more than a held-out text can be \(536870888 bytes at most\); is it the file meant\?$/);
  refused(() => readHeldOutText(sized('huge.txt', 'x', 3 * 2 ** 30)), /huge\.txt: is 3072\.0 MiB, more than a held-out text can be \(512\.0 MiB at most\)/);
  const small = sized('small.txt', 'some text\n', 10);
  assert.equal(readHeldOutText(small), 'some text\n');
});
