// The package's install script: builds the native backend (build/Release/amend.node) with node-gyp.
//
// It never fails the install. Without a C++ compiler, without node-gyp, or when the build fails,
// it says so in one line and Amend runs on its js backend. AMEND_SKIP_NATIVE=1 skips the build;
// AMEND_OPENBLAS=0 builds without OpenBLAS; AMEND_MARCH sets -march (default native).
// The full compiler output goes to build/native-build.log.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'amend.node');
const logFile = join(root, 'build', 'native-build.log');
let log = '';

function done(message) {
  // Nothing run, nothing to log: the log of an earlier build is kept.
  if (log) try {
    mkdirSync(dirname(logFile), { recursive: true });
    writeFileSync(logFile, log);
  } catch {
    // the log is a convenience
  }
  console.log(`amend: ${message}`);
  process.exit(0);
}

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  log += `$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) + '\n' : ''}\n`;
  return r;
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** [command, args] that run node-gyp: npm's own copy when possible, npx as the last resort. */
function nodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const npm = onPath('npm');
  if (npm) {
    try {
      candidates.push(join(dirname(realpathSync(npm)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    } catch {
      // a dangling npm link
    }
  }
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const c of candidates) if (existsSync(c)) return [process.execPath, [c]];
  if (onPath('node-gyp')) return ['node-gyp', []];
  return onPath('npx') ? ['npx', ['--yes', 'node-gyp']] : null;
}

/** Node's headers next to the running node (distribution packages), so no download is needed. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** Loads the addon in a child process: a build can link yet fail to load (a missing .so). */
function loads() {
  const r = run(process.execPath, ['-e', `require(${JSON.stringify(addon)}).info()`]);
  return r.status === 0;
}

// An addon from an earlier build stays in build/ and is still loaded, so say which backend runs.
if (process.env.AMEND_SKIP_NATIVE === '1') {
  done(existsSync(addon)
    ? `AMEND_SKIP_NATIVE=1: native backend not rebuilt; the earlier build (${addon}) stays in use (AMEND_BACKEND=js selects the js backend).`
    : 'AMEND_SKIP_NATIVE=1: native backend not built; the js backend will be used.');
}

const cxx = process.env.CXX || 'c++';
const probe = run(cxx, ['--version']);
if (probe.status !== 0) done(`no C++ compiler (${cxx}): native backend not built; the js backend will be used.`);

const gyp = nodeGyp();
if (!gyp) done('node-gyp not found: native backend not built; the js backend will be used.');

function build(env) {
  const r = run(gyp[0], [...gyp[1], 'rebuild', ...nodedirArgs()], env);
  return r.status === 0 && existsSync(addon) && loads();
}

if (build(process.env)) done(`native backend built (${addon}).`);
if (process.env.AMEND_OPENBLAS !== '0' && build({ ...process.env, AMEND_OPENBLAS: '0' })) {
  done('native backend built without OpenBLAS (the build with it failed; see build/native-build.log).');
}
rmSync(addon, { force: true });
const firstError = log.split('\n').find((l) => /error/i.test(l))?.trim().slice(0, 160);
done(`native build failed${firstError ? ` (${firstError})` : ''}; the js backend will be used. Log: ${logFile}`);
