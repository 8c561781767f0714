// The patch layer: EditPatch (low-rank or dense weight deltas + metadata, saved as safetensors),
// the edit session of a model (apply / revert / revert all, exact), and export of a model as a
// complete Hugging Face checkpoint (the session's "commit").
export * from './types.js';
export {
  lowRankDelta,
  denseDelta,
  validateDelta,
  addDeltaInPlace,
  materialize,
  deltaNorm,
  deltaShape,
  storedValues,
} from './delta.js';
export {
  EditPatch,
  PATCH_FORMAT,
  PATCH_VERSION,
  amendVersion,
  type PatchInit,
  type SavePatchOptions,
  type PatchDescription,
  type DeltaDescription,
} from './patch.js';
export { EditSession, editSession, sessionOf, isEdited, baseFingerprint, holdModel, assertNotHeld, outsideHold, type ApplyOptions } from './session.js';
export {
  exportModel,
  exportPatched,
  checkExportDir,
  exportProvenance,
  applyPatchesInOrder,
  type ExportProvenance,
  parseExportDType,
  type ExportDType,
  type ExportOptions,
  type ExportPatchedOptions,
  type ExportResult,
} from './export.js';
export { modelFingerprint, shortFingerprint } from '../models/fingerprint.js';
