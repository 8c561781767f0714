// The edit session of a model: which patches are applied, in which order, and the original values
// of every tensor any of them touched, so that any patch can be reverted exactly.
//
// Semantics (design: "Edits"):
//   - A session is created the first time a model is edited or asked for its base fingerprint; it
//     computes the fingerprint of the model as it is then (the unedited base) and keeps it, so that
//     patches stacked later are still checked against the base, not against the edited weights.
//   - apply(patch): checks the fingerprint and every delta against the model, saves the original
//     values of each tensor the session has not touched yet (once, before the first change), then
//     adds the deltas. If anything throws half-way (including a delta that would make a weight NaN
//     or ±Inf), every tensor the patch touched is put back exactly as it was and nothing is recorded.
//   - A model loaded from an Amend export is also its first base plus the patches the export
//     recorded. A patch computed on it records that origin; it applies to the export itself (by
//     fingerprint) and to that first base once those patches are applied, in that order, before
//     it (applying P1 then P2 to A rebuilds the export E1 = A + P1 plus P2, made on E1). Any other
//     order or base is refused like another model's patch. That holds only while the weights are
//     the ones the export wrote: its record names their fingerprint, and when the model's own
//     differs (changed since by other means) the record is not trusted — one warning, and the
//     model counts as a base of its own (no origin; an export of it does not carry the record on).
//     An export without that fingerprint (written before it was recorded) is trusted as it is.
//     Applying such a patch to the first base does not fingerprint the weights again once the
//     export's patches are applied: the base is checked by fingerprint and those patches by their
//     content ids, and applying them is deterministic, so that would sample the same values again
//     and catch nothing more — while it would refuse exports written in another dtype than the base
//     (their rounding shows in the sampled values) and the origin does not say which dtype it was.
//   - revert(p?): removes the last patch (or any given one). Each tensor that patch touched is reset
//     from its original values and the deltas of the remaining patches for that tensor are replayed
//     in order. Deltas of different tensors never interact and application is deterministic, so
//     the result is bit-identical to applying the remaining patches to the base, in order.
//     A tensor no patch touches any more gets its original values and its copy is freed.
//   - revertAll(): every touched tensor back to its original values: bit-identical to the base.
//   - Nothing is reverted implicitly: dropping the model, exporting it (src/patch/export.ts, the
//     "commit") or loading another model never restores anything, and an export of an edited model
//     records the patches it carries in its weight files' metadata.
// The session lives in a WeakMap keyed by the model, so CausalLM needs no field for it and the
// session (with its copies of original values) goes away with the model.
import { AmendError, requireObject } from '../errors.js';
import type { CausalLM } from '../models/model.js';
import { assertNotHeld } from '../models/hold.js';
import { modelFingerprint, shortFingerprint } from '../models/fingerprint.js';
import { addDeltaInPlace, shapeMismatch } from './delta.js';
import { EditPatch } from './patch.js';
import { exportProvenance, type ExportProvenance } from './provenance.js';
import type { PatchOrigin } from './types.js';

export interface ApplyOptions {
  /**
   * Apply even when the patch was made for a model with another fingerprint (the escape hatch
   * behind `--ignore-fingerprint`). Tensor names and shapes are still checked.
   */
  force?: boolean;
  /** No warning when the patch was computed on other patches than those applied now (see apply). */
  quiet?: boolean;
  /** What the caller's own options call `force`, for the refusal's advice (exportPatched: ignoreFingerprint). */
  forceName?: string;
}

const sessions = new WeakMap<CausalLM, EditSession>();

function describeModel(model: CausalLM): string {
  return `${model.config.modelType} model ${model.dir ?? '(in memory)'}`;
}

/** `no patch` / `1 patch (1a2b3c4d5e6f)` / `2 patches (…, …)`. */
function patchList(ids: readonly string[]): string {
  if (ids.length === 0) return 'no patch';
  return `${ids.length} patch${ids.length > 1 ? 'es' : ''} (${ids.map((id) => id.slice(0, 12)).join(', ')})`;
}

export class EditSession {
  readonly model: CausalLM;
  /** Fingerprint of the model before any patch of this session (the base patches must match). */
  readonly baseFingerprint: string;
  private readonly stack: EditPatch[] = [];
  /** Original values of every tensor some applied patch touches. */
  private readonly originals = new Map<string, Float32Array>();
  /** The export record of the model's folder: read when first needed (undefined until then). */
  private record: ExportProvenance | null | undefined;
  /** Set once the warning that the export record does not match these weights has been given. */
  private warnedUntrusted = false;

  /** Use editSession(model); a second session on the same model would not know the first's edits. */
  constructor(model: CausalLM, baseFingerprint?: string) {
    this.model = model;
    this.baseFingerprint = baseFingerprint ?? modelFingerprint(model);
  }

  /** The applied patches, first applied first. */
  applied(): readonly EditPatch[] {
    return [...this.stack];
  }

  /** True while at least one patch is applied. */
  get edited(): boolean {
    return this.stack.length > 0;
  }

  /** Names of the tensors the applied patches change (those whose originals the session keeps). */
  touched(): string[] {
    return [...this.originals.keys()];
  }

  /** The base (pre-edit) values of a touched tensor; undefined for an untouched one. Do not modify. */
  original(name: string): Float32Array | undefined {
    return this.originals.get(name);
  }

  /**
   * Whether an export record read from the model's folder describes these weights: true when it
   * names no fingerprint of its own (an older export) or the base fingerprint (the weights before
   * any patch of this session) is that one. When not, warns (once per session) that the record is
   * not trusted.
   */
  trusts(record: ExportProvenance): boolean {
    if (record.weightsFingerprint === null || record.weightsFingerprint === this.baseFingerprint) return true;
    if (!this.warnedUntrusted) {
      this.warnedUntrusted = true;
      process.emitWarning(`${this.model.dir}: its weights (fingerprint ${shortFingerprint(this.baseFingerprint)}) are not those its Amend export wrote ` +
        `(${shortFingerprint(record.weightsFingerprint)}), so they were changed since; its record (the model with fingerprint ` +
        `${shortFingerprint(record.baseFingerprint)} plus ${patchList(record.patches.map((p) => p.id))}) is not trusted: ` +
        'patches made on it record no origin and apply to it as it is, and its exports do not carry that record on');
    }
    return false;
  }

  /**
   * The export record of the folder the model was loaded from, or null (not an edited export, or a
   * record these weights no longer match: see trusts). One that cannot be read (the folder changed
   * since) costs a patch its origin, not the edit: a warning.
   */
  private carried(): ExportProvenance | null {
    if (this.record !== undefined) return this.record;
    this.record = null;
    try {
      this.record = trustedExportRecord(this.model, this);
    } catch (err) {
      if (!(err instanceof AmendError)) throw err;
      process.emitWarning(`cannot read the export record of ${this.model.dir} (${err.message}); patches made on it record no origin`);
    }
    return this.record;
  }

  /** The base as the first base plus the patches its export applied (a patch's origin), or null. */
  exportOrigin(): PatchOrigin | null {
    const r = this.carried();
    return r && r.baseFingerprint ? { baseFingerprint: r.baseFingerprint, patches: r.patches.map((p) => p.id) } : null;
  }

  /**
   * Where `patch` goes by fingerprint: the ids of the patches applied after the model it was made
   * on (what its appliedOn is compared with), or why it was made for another model (one clause).
   */
  placement(patch: EditPatch): { after: string[] } | { problem: string } {
    const stack = this.stack.map((p) => p.id);
    const fp = patch.metadata.modelFingerprint;
    if (fp === this.baseFingerprint) return { after: stack };
    const m = patch.metadata.model;
    const here = `this ${describeModel(this.model)} (fingerprint ${shortFingerprint(this.baseFingerprint)})`;
    const origin = patch.metadata.origin;
    if (!origin) {
      return { problem: `was made for ${m?.modelType ?? 'another'} model ${m?.source ?? '(unknown path)'} (fingerprint ${shortFingerprint(String(fp))}), not for ${here}` };
    }
    const chain = this.chainFrom(origin.baseFingerprint);
    if (chain && origin.patches.every((id, i) => chain[i] === id)) return { after: chain.slice(origin.patches.length) };
    const made = `was made on ${m?.modelType ?? 'a'} model ${m?.source ?? '(unknown path)'} (fingerprint ${shortFingerprint(fp)}), ` +
      `an export of the model with fingerprint ${shortFingerprint(origin.baseFingerprint)} plus ${patchList(origin.patches)}`;
    if (!chain) return { problem: `${made}; ${here} is neither` };
    return { problem: `${made}; ${here} has ${patchList(chain)} before it — apply the export's patches first, in order` };
  }

  /**
   * The ids of the patches that make this model from the model with fingerprint `base`: this
   * session's, after those of the export it was loaded from when that export's record starts at
   * `base`; null when `base` is not where it comes from.
   */
  private chainFrom(base: string): string[] | null {
    const stack = this.stack.map((p) => p.id);
    if (base === this.baseFingerprint) return stack;
    const record = this.carried();
    return record?.baseFingerprint === base ? [...record.patches.map((p) => p.id), ...stack] : null;
  }

  /** Why `patch` cannot be applied (fingerprint aside), or null. (One delta per tensor is the EditPatch constructor's check.) */
  private incompatibility(patch: EditPatch): string | null {
    for (const d of patch.deltas) {
      const t = this.model.weights.get(d.name);
      if (!t) return `the model has no tensor "${d.name}" (is the patch for another architecture?)`;
      const why = shapeMismatch(d, t.shape);
      if (why) return why;
    }
    return null;
  }

  /** Checks what apply() checks, without changing anything; throws the same one-line errors. */
  check(patch: EditPatch, opts: ApplyOptions | null = {}): void {
    if (!(patch instanceof EditPatch)) {
      throw new AmendError(`apply takes an EditPatch (EditPatch.load(file) reads one from a file), not ${patch === null ? 'null' : typeof patch === 'string' ? `the string "${patch}"` : typeof patch}`);
    }
    opts ??= {};
    if (this.stack.includes(patch) || this.stack.some((p) => p.id === patch.id)) {
      throw new AmendError(`${patch.label} is already applied to this model; applying it again would add its change twice`);
    }
    const place = opts.force ? null : this.placement(patch);
    if (place && 'problem' in place) {
      throw new AmendError(`${patch.label} ${place.problem}; refusing to apply it (pass --ignore-fingerprint (${opts.forceName ?? 'force'}: true) to apply it anyway)`);
    }
    const why = this.incompatibility(patch);
    if (why) throw new AmendError(`${patch.label} cannot be applied to this ${describeModel(this.model)}: ${why}`);
  }

  /**
   * A patch computed on the model with other patches applied (sequential editing) records them in
   * metadata.appliedOn; applied on top of different ones, or on the bare model, its change is not
   * the one it was computed to make. That can be meant (stacking by hand): a warning, not a refusal.
   */
  private stackingSurprise(patch: EditPatch): string | null {
    const on = patch.metadata.appliedOn ?? [];
    // Patches computed on the base stack freely (independent edits); only a recorded order is checked.
    if (on.length === 0) return null;
    const place = this.placement(patch); // forced past the fingerprint: counted from this base
    const now = 'after' in place ? place.after : this.stack.map((p) => p.id);
    if (on.length === now.length && on.every((id, i) => id === now[i])) return null;
    const ids = (xs: readonly string[]) => (xs.length === 0 ? 'none' : xs.map((id) => id.slice(0, 12)).join(', '));
    return `${patch.label} was computed on the model with ${on.length} other patch(es) applied (${ids(on)}); here it follows ${ids(now)}`;
  }

  /** Adds the patch's deltas to the model's weights and records it (see the file comment). */
  apply(patch: EditPatch, opts: ApplyOptions | null = {}): void {
    assertNotHeld(this.model, 'applying a patch');
    opts ??= {};
    this.check(patch, opts);
    const order = opts.quiet ? null : this.stackingSurprise(patch);
    const saved: string[] = [];
    const done: string[] = [];
    try {
      for (const d of patch.deltas) {
        const t = this.model.weights.get(d.name)!;
        if (!this.originals.has(d.name)) {
          this.originals.set(d.name, t.data.slice());
          saved.push(d.name);
        }
        done.push(d.name);
        addDeltaInPlace(t.data, d);
        const bad = firstNewNonFinite(t.data, this.originals.get(d.name)!);
        if (bad >= 0) {
          throw new AmendError(
            `${patch.label} would make "${d.name}"[${bad}] ${t.data[bad]} (the delta overflows float32); the model is unchanged`,
          );
        }
      }
    } catch (err) {
      // Put every tensor this patch began to change back exactly as it was.
      for (const name of done) this.rebuild(name, this.stack);
      for (const name of saved) this.originals.delete(name);
      throw err;
    }
    this.stack.push(patch);
    if (order) process.emitWarning(order);
  }

  /**
   * Reverts the last applied patch, or the given one (an applied patch object, its id, or its
   * position in applied()), exactly; returns it.
   */
  revert(which?: EditPatch | string | number): EditPatch {
    assertNotHeld(this.model, 'reverting a patch');
    if (this.stack.length === 0) throw new AmendError('no patch is applied to this model; nothing to revert');
    let i: number;
    if (which === undefined) i = this.stack.length - 1;
    else if (typeof which === 'number') i = Number.isInteger(which) && which >= 0 && which < this.stack.length ? which : -1;
    else if (typeof which === 'string') {
      // An id or an unambiguous prefix of one: '' or a prefix of two ids must not pick one silently.
      i = this.stack.findIndex((p) => p.id === which);
      if (i < 0 && which !== '') {
        const hits = this.stack.filter((p) => p.id.startsWith(which));
        if (hits.length > 1) throw new AmendError(`"${which}" starts the ids of ${hits.length} applied patches (${hits.map((p) => p.label).join(', ')}); give more of the id`);
        i = hits.length === 1 ? this.stack.indexOf(hits[0]!) : -1;
      }
    } else if (which instanceof EditPatch) {
      // The applied object, or the same patch loaded again (apply knows a patch by its content id).
      i = this.stack.indexOf(which);
      if (i < 0) i = this.stack.findIndex((p) => p.id === which.id);
    }
    else throw new AmendError(`revert takes an applied EditPatch, its id or its position in applied(), not ${which === null ? 'null' : typeof which}`);
    if (i < 0) {
      const what = typeof which === 'object' ? which.label : JSON.stringify(which);
      throw new AmendError(`${what} is not applied to this model (applied: ${this.stack.map((p) => p.label).join(', ')})`);
    }
    const [removed] = this.stack.splice(i, 1);
    const names = new Set(removed!.deltas.map((d) => d.name));
    for (const name of names) {
      const still = this.stack.some((p) => p.deltas.some((d) => d.name === name));
      this.rebuild(name, this.stack);
      if (!still) this.originals.delete(name);
    }
    // A patch still applied that was computed on top of the removed one no longer sits on what it
    // was computed on (the same warning apply gives for a patch applied out of its order).
    const dependants = this.stack.filter((p) => p.metadata.appliedOn?.includes(removed!.id) || p.metadata.origin?.patches.includes(removed!.id));
    if (dependants.length > 0) {
      process.emitWarning(`${dependants.map((p) => p.label).join(', ')} ${dependants.length > 1 ? 'were' : 'was'} computed on the model with ${removed!.label} applied, which is now reverted`);
    }
    return removed!;
  }

  /** Reverts every applied patch: the weights are bit-identical to the base. Returns them, in applied order. */
  revertAll(): EditPatch[] {
    assertNotHeld(this.model, 'reverting the patches');
    for (const [name, orig] of this.originals) this.model.weights.get(name)!.data.set(orig);
    this.originals.clear();
    return this.stack.splice(0, this.stack.length);
  }

  /** Tensor `name` := original + the deltas for it of `patches`, in order. */
  private rebuild(name: string, patches: readonly EditPatch[]): void {
    const orig = this.originals.get(name);
    if (!orig) return;
    const data = this.model.weights.get(name)!.data;
    data.set(orig);
    for (const p of patches) for (const d of p.deltas) if (d.name === name) addDeltaInPlace(data, d);
  }
}

/** Index of the first value that is NaN/±Inf in `now` but finite in `before`, or -1. */
function firstNewNonFinite(now: Float32Array, before: Float32Array): number {
  for (let i = 0; i < now.length; i++) {
    const v = now[i]!;
    if (v - v !== 0) {
      const b = before[i]!;
      if (b - b === 0) return i;
    }
  }
  return -1;
}

/**
 * The export record of the folder `model` was loaded from, when its weights are still those the
 * record describes (EditSession.trusts, asked of `session`, by default the model's); null when the
 * folder has none or they are not. Throws when the record cannot be read. Without a record, no
 * session is made.
 */
export function trustedExportRecord(model: CausalLM, session?: EditSession): ExportProvenance | null {
  const record = model.dir ? exportProvenance(model.dir) : null;
  return record && (session ?? editSession(model)).trusts(record) ? record : null;
}

/** The model's edit session, created (and the base fingerprint computed) on first use. */
export function editSession(model: CausalLM): EditSession {
  requireObject(model, 'editSession takes a loaded model (CausalLM.load(dir))');
  let s = sessions.get(model);
  if (!s) sessions.set(model, (s = new EditSession(model)));
  return s;
}

/** The model's edit session if it has one (no fingerprint is computed). */
export function sessionOf(model: CausalLM): EditSession | undefined {
  return sessions.get(model);
}

/** True when at least one patch is applied to the model. */
export function isEdited(model: CausalLM): boolean {
  return sessions.get(model)?.edited ?? false;
}

/**
 * The fingerprint of the model's unedited base: what a patch computed on this model records (also
 * when earlier patches are applied, so stacked patches all match the same base).
 */
export function baseFingerprint(model: CausalLM): string {
  return editSession(model).baseFingerprint;
}

// Holding a model across awaits lives with the models (forward passes check it too).
export { assertNotHeld, holdModel, outsideHold } from '../models/hold.js';
