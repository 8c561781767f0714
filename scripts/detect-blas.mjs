// Build-time OpenBLAS detection for binding.gyp: `node scripts/detect-blas.mjs enabled|cflags|libs`
// prints "1"/"0", the include flags, or the link flags. It compiles and links a two-line program
// against each candidate location, so a header without a library (or the reverse) counts as absent.
// AMEND_OPENBLAS=0 forces the own-GEMM-only build. `march` prints the -march value (AMEND_MARCH, by
// default "native"; e.g. x86-64-v3 for an addon that must also run on other machines).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = [
  { cflags: [], libs: ['-lopenblas'] },
  { cflags: ['-I/usr/include/openblas'], libs: ['-lopenblas'] },
  { cflags: ['-I/usr/local/include'], libs: ['-L/usr/local/lib', '-lopenblas'] },
  { cflags: ['-I/opt/homebrew/opt/openblas/include'], libs: ['-L/opt/homebrew/opt/openblas/lib', '-lopenblas'] },
  { cflags: ['-I/usr/local/opt/openblas/include'], libs: ['-L/usr/local/opt/openblas/lib', '-lopenblas'] },
];

function detect() {
  if (process.env.AMEND_OPENBLAS === '0') return null;
  const dir = mkdtempSync(join(tmpdir(), 'amend-blas-'));
  try {
    const src = join(dir, 't.c');
    writeFileSync(src, '#include <cblas.h>\nint main(void) { return openblas_get_config() == 0; }\n');
    const cc = process.env.CC || 'cc';
    for (const c of CANDIDATES) {
      const r = spawnSync(cc, [...c.cflags, src, '-o', join(dir, 't'), ...c.libs], { stdio: 'ignore' });
      if (r.status === 0) return c;
    }
    return null;
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const what = process.argv[2] ?? 'enabled';
const found = what === 'march' ? null : detect();
if (what === 'march') console.log(process.env.AMEND_MARCH || 'native');
else if (what === 'enabled') console.log(found ? '1' : '0');
else if (what === 'cflags') console.log(found ? found.cflags.join(' ') : '');
else if (what === 'libs') console.log(found ? found.libs.join(' ') : '');
else {
  console.error(`usage: detect-blas.mjs enabled|cflags|libs|march (got ${what})`);
  process.exit(1);
}
