// What an installed amend needs is in the package: npm pack's file list holds the compiled CLI and
// library, the native sources with their build script, the demo world and the hparams presets
// (both read at run time from beside the code; an installed copy once lacked each of them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { repoRoot } from './helpers.js';

const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
const noNpm = npm.status === 0 ? false : 'npm is not on the PATH';

let packed: Set<string> | null = null;
/** The paths `npm pack` would put in the tarball (scripts skipped: dist/ is the one the tests run from). */
function packedFiles(): Set<string> {
  if (packed) return packed;
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  packed = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
  return packed;
}

interface PackageJson {
  main: string; types: string; bin: Record<string, string>; files: string[]; scripts: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
}
const pkg = (): PackageJson => JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as PackageJson;

test('npm pack ships the CLI, the native sources, the demo world and every preset', { skip: noNpm }, () => {
  const files = packedFiles();
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

// Everything else in a checkout stays out: benchmarks, sources other than the presets, the lock file,
// build outputs (an install builds its own addon), packs made earlier.
test('npm pack ships nothing but the runtime: no benchmarks, sources, build outputs or tarballs', { skip: noNpm }, () => {
  const topLevel = new Set(['dist', 'src', 'native', 'scripts', 'world', 'binding.gyp', 'package.json', 'README.md', 'LICENSE']);
  for (const f of packedFiles()) {
    assert.ok(topLevel.has(f.split('/')[0]!), `${f} is not part of the package`);
    if (f.startsWith('dist/')) assert.ok(f.startsWith('dist/src/'), `${f}: only dist/src is shipped (no tests, no benchmarks)`);
    if (f.startsWith('src/')) assert.ok(f.startsWith('src/editors/presets/'), `${f}: of src/, only the presets are read at run time`);
  }
});

// What `import ... from 'amend/…'` and the bin reach must be in the tarball, not only in a checkout.
test('the bin, main, types and every export target are packed', { skip: noNpm }, () => {
  const p = pkg();
  const targets = [p.main, p.types, ...Object.values(p.bin)];
  for (const e of Object.values(p.exports)) targets.push(...(typeof e === 'string' ? [e] : [e.types, e.default]));
  for (const t of targets) assert.ok(packedFiles().has(path.posix.normalize(t)), `${t} is packed`);
});

// The README's examples import these names: each must be a subpath of the exports map.
test('every module the README imports from is in the exports map', () => {
  const readme = fs.readFileSync(path.join(repoRoot(), 'README.md'), 'utf8');
  const specs = new Set([...readme.matchAll(/from '(amend(?:\/[\w-]+)?)'/g)].map((m) => m[1]!));
  assert.ok(specs.size >= 4, 'the README shows imports from amend');
  const exported = Object.keys(pkg().exports);
  for (const s of specs) assert.ok(exported.includes(s === 'amend' ? '.' : `.${s.slice('amend'.length)}`), `"${s}" is exported`);
});

// A consumer project beside the package (node_modules/amend linking to this checkout): every export
// loads by its package name in Node, and TypeScript finds its declarations under node16 and bundler
// resolution. A missing or misspelt target in the exports map fails here.
test('a consumer imports every exported subpath by name, and tsc resolves its types', async (t) => {
  const consumer = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-consumer-'));
  t.after(() => fs.rmSync(consumer, { recursive: true, force: true }));
  fs.mkdirSync(path.join(consumer, 'node_modules'));
  fs.symlinkSync(repoRoot(), path.join(consumer, 'node_modules', 'amend'), 'dir');
  const specs = Object.keys(pkg().exports).filter((k) => k !== './package.json').map((k) => (k === '.' ? 'amend' : `amend${k.slice(1)}`));
  const script = `for (const s of ${JSON.stringify(specs)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s + ' exports nothing'); }
const { createRequire } = await import('node:module'); console.log(createRequire(process.cwd() + '/')('amend/package.json').version);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer, encoding: 'utf8', env: { ...process.env, AMEND_BACKEND: 'js' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')).version);
  const from = path.join(consumer, 'index.mts');
  for (const moduleResolution of [ts.ModuleResolutionKind.Node16, ts.ModuleResolutionKind.Bundler]) {
    const options = { moduleResolution, module: moduleResolution === ts.ModuleResolutionKind.Bundler ? ts.ModuleKind.ESNext : ts.ModuleKind.Node16 };
    for (const s of specs) {
      const resolved = ts.resolveModuleName(s, from, options, ts.sys).resolvedModule;
      assert.ok(resolved, `tsc (${ts.ModuleResolutionKind[moduleResolution]}) resolves "${s}"`);
      assert.equal(resolved.extension, ts.Extension.Dts, `"${s}" resolves to a declaration file`);
      assert.ok(fs.existsSync(resolved.resolvedFileName), `${resolved.resolvedFileName} exists`);
    }
  }
});

// npm pack runs prepack, then prepare (tsc). tsc never deletes, so a module whose source was
// removed would stay in dist/src and ship unless prepack empties dist/src first; dist/test stays.
test('prepack empties dist/src (and only it) before the package is compiled and packed', { skip: noNpm }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-prepack-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.copyFileSync(path.join(repoRoot(), 'package.json'), path.join(dir, 'package.json'));
  for (const f of ['dist/src/removed-module.js', 'dist/test/kept.test.js']) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), '');
  }
  const r = spawnSync('npm', ['run', '--silent', 'prepack'], { cwd: dir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!fs.existsSync(path.join(dir, 'dist', 'src')), 'dist/src is gone');
  assert.ok(fs.existsSync(path.join(dir, 'dist', 'test', 'kept.test.js')), 'dist/test is left alone');
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

test('AMEND_SKIP_NATIVE says which backend will run, and keeps the last build log', (t) => {
  // A copy of the install script in a scratch root: it finds build/ beside its own folder.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'amend-skipnative-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.mkdirSync(path.join(root, 'scripts'));
  fs.copyFileSync(path.join(repoRoot(), 'scripts', 'build-native.mjs'), path.join(root, 'scripts', 'build-native.mjs'));
  const install = () => spawnSync(process.execPath, [path.join(root, 'scripts', 'build-native.mjs')], {
    encoding: 'utf8', env: { ...process.env, AMEND_SKIP_NATIVE: '1' },
  });
  const none = install();
  assert.equal(none.status, 0, none.stderr);
  assert.match(none.stdout, /not built; the js backend will be used/);
  fs.mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
  fs.writeFileSync(path.join(root, 'build', 'Release', 'amend.node'), 'an earlier build');
  fs.writeFileSync(path.join(root, 'build', 'native-build.log'), 'the earlier log');
  const earlier = install();
  assert.equal(earlier.status, 0, earlier.stderr);
  assert.match(earlier.stdout, /not rebuilt; the earlier build \(.*amend\.node\) stays in use/);
  assert.doesNotMatch(earlier.stdout, /js backend will be used/);
  assert.equal(fs.readFileSync(path.join(root, 'build', 'native-build.log'), 'utf8'), 'the earlier log');
});
