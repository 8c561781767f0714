// What an installed amend needs is in the package: npm pack's file list holds the compiled CLI and
// library, the native sources with their build script, the demo world and the hparams presets
// (both read at run time from beside the code; an installed copy once lacked each of them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers.js';

const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });

test('npm pack ships the CLI, the native sources, the demo world and every preset', { skip: npm.status === 0 ? false : 'npm is not on the PATH' }, () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
  for (const f of ['dist/src/cli/main.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'binding.gyp', 'scripts/build-native.mjs']) {
    assert.ok(files.has(f), `${f} is packed`);
  }
  for (const f of fs.readdirSync(path.join(repoRoot(), 'world'))) assert.ok(files.has(`world/${f}`), `world/${f} is packed`);
  const presets = fs.readdirSync(path.join(repoRoot(), 'src', 'editors', 'presets'));
  assert.ok(presets.length > 0);
  for (const f of presets) assert.ok(files.has(`src/editors/presets/${f}`), `preset ${f} is packed`);
  assert.ok([...files].some((f) => f.startsWith('native/')), 'the native sources are packed');
  assert.ok(![...files].some((f) => f.startsWith('test/') || f.startsWith('dist/test/')), 'the tests are not');
  assert.ok(!files.has('amend'), 'nor the checkout\'s ./amend launcher (the package has its bin)');
});

// The package does not ship src/*.ts, so a source map is only useful to a user's debugger or stack
// traces when it carries the sources inside it.
test('the shipped source maps carry their TypeScript sources', () => {
  const map = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'dist', 'src', 'index.js.map'), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
  assert.equal(map.sourcesContent?.length, map.sources.length);
  assert.equal(map.sourcesContent![0], fs.readFileSync(path.join(repoRoot(), 'src', 'index.ts'), 'utf8'));
});

// A project whose tsconfig leaves "node" out of its types (or a bundler setup) reads our .d.ts files
// without Node's globals: a declaration naming Buffer must bring @types/node in itself.
test('every emitted declaration that names a Node global type references @types/node', () => {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.d.ts')) files.push(p);
    }
  };
  walk(path.join(repoRoot(), 'dist', 'src'));
  const users = files.filter((f) => {
    const code = fs.readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    return /\bBuffer\b|\bNodeJS\./.test(code);
  });
  assert.ok(users.some((f) => f.endsWith(path.join('eval', 'png.d.ts'))), 'the scan finds png.d.ts (encodePng returns a Buffer)');
  for (const f of users) assert.match(fs.readFileSync(f, 'utf8'), /^\/\/\/ <reference types="node"/m, `${path.relative(repoRoot(), f)} names a Node type`);
});
