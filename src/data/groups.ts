// A case's named prompt groups and the flat list beside them, as every loader with groups sets them.
import type { EditCase, PromptAnswer } from '../editors/types.js';

/**
 * Sets a case's named groups (`portabilityGroups` / `localityGroups`) and, after them, the flat list
 * (`portability` / `locality`): every group's pairs, in group order, which metrics that ignore the
 * groups score. Empty groups are left out; with none left the case is left as it was.
 */
export function setGroups(c: EditCase, kind: 'portability' | 'locality', groups: Record<string, PromptAnswer[]>): void {
  const kept = Object.fromEntries(Object.entries(groups).filter(([, pairs]) => pairs.length > 0));
  if (Object.keys(kept).length === 0) return;
  const flat = Object.values(kept).flat();
  if (kind === 'portability') {
    c.portabilityGroups = kept;
    c.portability = flat;
  } else {
    c.localityGroups = kept;
    c.locality = flat;
  }
}
