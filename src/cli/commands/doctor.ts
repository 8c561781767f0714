// amend doctor: which backend, BLAS, threads and libraries this installation uses.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AmendError } from '../../errors.js';
import { kernels, nativeStatus } from '../../backend/index.js';
import { linalgBackend } from '../../linalg/index.js';
import type { CommandSpec, Parsed } from '../args.js';

export const spec: CommandSpec = {
  name: 'doctor',
  summary: 'show the compute backend, BLAS library and thread count in use',
  usage: 'amend doctor [--json]',
  options: {},
  examples: ['amend doctor', 'AMEND_BACKEND=js amend doctor --json'],
};

export async function run(args: Parsed): Promise<void> {
  if (args.positionals.length > 0) throw new AmendError(`unexpected argument "${args.positionals[0]}" (amend doctor takes no arguments)`);
  const info = kernels().info();
  const native = nativeStatus();
  const version = (pkg: string): string => {
    // package.json is hidden by these packages' "exports" maps, so read it from node_modules.
    for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
      const file = path.join(dir, 'node_modules', pkg, 'package.json');
      if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
      if (path.dirname(dir) === dir) return 'not installed';
    }
  };
  const report = {
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    backend: info.name,
    blas: info.blas,
    threads: info.threads,
    // AMEND_BACKEND=js leaves a working addon unused: say so rather than imply it computes.
    native: !native.ok ? `unavailable: ${native.reason}` : info.name === 'native' ? 'built and loaded' : `built and loaded, not used (backend ${info.name})`,
    linalg: linalgBackend() === 'lapack' ? 'LAPACK (through the native addon)' : 'plain TypeScript',
    notes: info.notes ?? [],
    tokenizers: version('@huggingface/tokenizers'),
    hub: version('@huggingface/hub'),
  };
  if (args.values.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const rows: [string, string][] = [
    ['node', `${report.node} (${report.platform})`],
    ['cpus', report.cpus],
    ['backend', report.backend],
    ['blas', report.blas],
    ['threads', String(report.threads)],
    ['native addon', report.native],
    ['linear algebra', report.linalg],
    ['tokenizers', report.tokenizers],
    ['hub client', report.hub],
    ...report.notes.map((n): [string, string] => ['note', n]),
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(16)} ${v}`);
}
