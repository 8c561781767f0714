// Output folders replaced whole, and what a killed process leaves beside them (src/io/dirs.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkCanWriteAt, replaceFolder, restoreReplacedFolders, tempDirBeside } from '../src/io/dirs.js';

/** The pid of a process that has exited: what a killed run's leftovers are named with. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

test('replaceFolder swaps a finished folder in and leaves nothing beside it', () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-dirs-'));
  try {
    const out = path.join(parent, 'out');
    for (const content of ['first', 'second']) {
      const tmp = tempDirBeside(out, 'amend-test');
      assert.match(path.basename(tmp), new RegExp(`^\\.out\\.amend-test-${process.pid}-[a-z0-9]+$`));
      fs.writeFileSync(path.join(tmp, 'f.txt'), content);
      replaceFolder(tmp, out);
      assert.equal(fs.readFileSync(path.join(out, 'f.txt'), 'utf8'), content);
      assert.deepEqual(fs.readdirSync(parent), ['out']);
    }
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

test('restoreReplacedFolders puts back a folder moved aside by a killed process, and removes one it had replaced', () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-dirs-'));
  try {
    const pid = deadPid();
    // Killed between the renames: "a" is missing, its old self is beside it.
    fs.mkdirSync(path.join(parent, `.a.amend-old-${pid}-x1`));
    fs.writeFileSync(path.join(parent, `.a.amend-old-${pid}-x1`, 'kept.txt'), 'a');
    // Killed after the second rename: "b" is the new folder, the old one is only a leftover.
    fs.mkdirSync(path.join(parent, 'b'));
    fs.mkdirSync(path.join(parent, `.b.amend-old-${pid}-x2`));
    // A live process's folder is its own.
    fs.mkdirSync(path.join(parent, `.c.amend-old-${process.pid}-x3`));
    restoreReplacedFolders(parent);
    assert.deepEqual(fs.readdirSync(parent).sort(), [`.c.amend-old-${process.pid}-x3`, 'a', 'b']);
    assert.equal(fs.readFileSync(path.join(parent, 'a', 'kept.txt'), 'utf8'), 'a');
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

test('checkCanWriteAt removes the probe folder a killed process left, and leaves none of its own', () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-dirs-'));
  try {
    const left = path.join(parent, `.amend-probe-${deadPid()}-abc123`);
    fs.mkdirSync(left);
    checkCanWriteAt(path.join(parent, 'out'));
    assert.deepEqual(fs.readdirSync(parent), []);
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});
