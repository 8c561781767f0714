// Loader of the native addon (build/Release/amend.node, built from native/ at install time).
//
// The addon exports one function per kernel with exactly the signature of the Kernels interface,
// so the kernels object hands those functions out as they are: a kernel call from TS is one
// N-API call, with no wrapper in between. Loading never throws; a missing or broken addon is
// reported as an error string and the js backend takes over (see index.ts).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../version.js';
import type { Kernels } from './kernels.js';

const KERNEL_NAMES = [
  'gemm', 'binary', 'unary', 'unaryBackward', 'affine', 'reduce', 'copyStrided',
  'softmax', 'softmaxBackward', 'logSoftmax', 'logSoftmaxBackward',
  'layerNorm', 'layerNormBackward', 'rmsNorm', 'rmsNormBackward',
  'gatherRows', 'scatterAddRows', 'rope', 'attention', 'attentionBackward',
] as const satisfies readonly (keyof Kernels)[];

// Every kernel of the interface is in the list: this fails to compile when one is missing.
type Unlisted = Exclude<keyof Kernels, (typeof KERNEL_NAMES)[number] | 'info' | 'setThreads'>;
const everyKernelListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyKernelListed;

let addon: any | null | undefined;
let addonError = '';

/** The raw addon (kernels plus the linalg* LAPACK functions), or null when it cannot be loaded. */
export function nativeAddon(): any | null {
  if (addon !== undefined) return addon;
  addon = null;
  const root = packageRoot();
  if (!root) {
    addonError = 'cannot find the amend package root (package.json) above ' + fileURLToPath(import.meta.url);
    return addon;
  }
  const file = join(root, 'build', 'Release', 'amend.node');
  if (!existsSync(file)) {
    addonError = `${file} is not built (npm ci builds it in a checkout, npm rebuild amend where amend is installed; needs a C++ compiler and node-gyp)`;
    return addon;
  }
  try {
    addon = createRequire(import.meta.url)(file);
  } catch (e) {
    addonError = `cannot load ${file}: ${e instanceof Error ? e.message : String(e)}`;
  }
  return addon;
}

let loaded: { kernels: Kernels } | { error: string } | undefined;

/** The native kernels, or why they are unavailable. Cached; never throws. */
export function loadNative(): { kernels: Kernels } | { error: string } {
  if (loaded) return loaded;
  const a = nativeAddon();
  if (!a) return (loaded = { error: addonError });
  const missing = KERNEL_NAMES.filter((name) => typeof a[name] !== 'function');
  if (missing.length > 0) {
    return (loaded = { error: `native addon is out of date (missing ${missing.join(', ')}); rebuild it with npm rebuild` });
  }
  const kernels = {
    info: () => a.info(),
    setThreads: (n: number) => a.setThreads(n),
    ...Object.fromEntries(KERNEL_NAMES.map((name) => [name, a[name]])),
  } as Kernels;
  return (loaded = { kernels });
}
