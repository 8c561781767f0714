/**
 * An editing benchmark over the demo world, in the original ROME CounterFact format, plus
 * multi-hop portability questions and locality questions.
 *
 * Conventions (as in CounterFact):
 * - `requested_rewrite.prompt` contains "{}" where the subject goes and ends right before the object;
 * - every target / answer string is stored WITHOUT its leading space ("Quenmark"); scorers prepend
 *   " " before tokenizing, exactly as ROME does with CounterFact's target_new / target_true.
 *
 * Guarantees:
 * - every case edits a fact that `isKnown` accepts, and target_new ≠ target_true;
 * - neighborhood_prompts are other subjects with the same relation and the same true object;
 *   attribute_prompts are subjects whose true object is target_new; all of these facts are known;
 * - portability answers follow from the new fact plus unedited, known facts;
 * - with `disjoint` (the default) no prompt of any case depends on a fact that another case edits,
 *   so the whole benchmark stays valid when every case is applied at once (batch editing,
 *   sequential "apply-all-then-score").
 */
import { requireCount } from '../errors.js';
import { EDITABLE_RELATIONS, MULTI_HOP_TEMPLATES, fillTemplate, type MultiHopTemplate } from './phrasings.js';
import { Rng } from './rng.js';
import { WorldIndex, factKey } from './query.js';
import type { Fact, Relation, World } from './types.js';

export interface RewriteTarget {
  /** Entity name without the leading space. */
  str: string;
  /** Entity id in the world (CounterFact uses Wikidata ids here). */
  id: string;
}

export interface RequestedRewrite {
  prompt: string;
  relation_id: string;
  target_new: RewriteTarget;
  target_true: RewriteTarget;
  subject: string;
}

/** A multi-hop question whose answer follows from the edited fact and unedited facts. */
export interface PortabilityQuestion {
  prompt: string;
  /** Name of the entity reached, without the leading space. */
  answer: string;
  /** Name of the entity the question starts from (the edited subject, or another one whose path passes through it). */
  subject: string;
  /** Relations followed from `subject`; the answer is where the path ends in the edited world. */
  relation_path: string[];
  /** Position in relation_path of the edited fact. */
  edit_hop: number;
}

/** A fact the edit must not change. */
export interface LocalityQuestion {
  prompt: string;
  answer: string;
  subject: string;
  relation_id: string;
}

export interface CounterFactRecord {
  case_id: number;
  requested_rewrite: RequestedRewrite;
  paraphrase_prompts: string[];
  neighborhood_prompts: string[];
  attribute_prompts: string[];
  generation_prompts: string[];
  portability: PortabilityQuestion[];
  locality: LocalityQuestion[];
}

export interface BenchmarkOptions {
  seed?: number;
  /** Maximum number of cases (default: as many as the world allows). */
  n?: number;
  /** Whether the model knows a fact in every phrasing; only known facts are edited or used in prompts (default: all known). */
  isKnown?: (fact: Fact) => boolean;
  /** Keep every prompt independent of the facts other cases edit (default true). */
  disjoint?: boolean;
  /**
   * With `disjoint`, how many neighbourhood (and attribute) subjects each case keeps unedited at
   * least, where the world has that many (default 3). Larger values give richer neighbourhoods and
   * fewer cases.
   */
  minNeighbours?: number;
  maxNeighborhood?: number;
  maxAttribute?: number;
  maxPortability?: number;
  maxLocality?: number;
}

interface Plan {
  fact: Fact;
  newObject: string;
}

/** What both phases of a build read: the world, the options with their defaults, and which facts are known and edited. */
interface BenchState {
  world: World;
  index: WorldIndex;
  seed: number;
  n: number;
  disjoint: boolean;
  /** minNeighbours: how many neighbour and attribute facts each case keeps unedited. */
  keep: number;
  maxNeighborhood: number; maxAttribute: number; maxPortability: number; maxLocality: number;
  known: Set<string>;
  /** The facts the planned cases edit: final once phase 1 is done. */
  edited: Set<string>;
}

export function buildBenchmark(world: World, opts: BenchmarkOptions = {}): CounterFactRecord[] {
  const state = benchState(world, opts);
  const plans = planEdits(state);
  // The edited set is now final, so "usable" means the same thing for every record.
  const build = Rng.stream(state.seed, 'benchmark/build');
  return plans.map((plan, caseId) => buildRecord(state, build, plan, caseId));
}

function benchState(world: World, opts: BenchmarkOptions): BenchState {
  const index = new WorldIndex(world);
  requireCount(opts.n, 'buildBenchmark: n (the number of cases)');
  const keep = opts.minNeighbours ?? 3;
  requireCount(keep, 'buildBenchmark: minNeighbours', 1);
  const isKnown = opts.isKnown ?? (() => true);
  const known = new Set<string>();
  for (const f of world.facts) if (isKnown(f)) known.add(factKey(f));
  return {
    world, index, seed: opts.seed ?? world.seed, n: opts.n ?? Number.POSITIVE_INFINITY, disjoint: opts.disjoint ?? true, keep,
    maxNeighborhood: opts.maxNeighborhood ?? 10, maxAttribute: opts.maxAttribute ?? 10,
    maxPortability: opts.maxPortability ?? 6, maxLocality: opts.maxLocality ?? 4,
    known, edited: new Set(),
  };
}

/** A fact that prompts may rely on: known, and (with `disjoint`) edited by no case. */
function usable(s: BenchState, g: Fact | undefined): g is Fact {
  return g !== undefined && s.known.has(factKey(g)) && !(s.disjoint && s.edited.has(factKey(g)));
}

/** The usable facts of other subjects with this relation and object. */
function sameObjectFacts(s: BenchState, relation: string, object: string, exceptSubject: string): Fact[] {
  return s.index
    .subjects(relation, object)
    .filter((x) => x !== exceptSubject)
    .map((x) => s.index.fact(x, relation))
    .filter((g) => usable(s, g));
}

// ---- 1. choose the edited facts and their new objects ----

/** The facts the cases edit and their new objects, at most `n`, in the order of the cases. */
function planEdits(s: BenchState): Plan[] {
  const select = Rng.stream(s.seed, 'benchmark/select');
  const objectsOf = objectsByRelation(s.world);
  // With `disjoint`: facts that the prompts of cases chosen so far rely on, which no later case may edit.
  const reserved = new Set<string>();
  const plans: Plan[] = [];
  for (const f of interleaveRelations(select, editCandidates(s))) {
    if (plans.length >= s.n) break;
    if (s.disjoint && reserved.has(factKey(f))) continue;
    const neighbours = sameObjectFacts(s, f.relation, f.object, f.subject);
    if (neighbours.length === 0) continue;
    const newObject = chooseNewObject(s, select, f, objectsOf.get(f.relation) ?? []);
    if (newObject === undefined) continue;
    reserveSome(s, select, reserved, neighbours);
    reserveSome(s, select, reserved, sameObjectFacts(s, f.relation, newObject, f.subject));
    if (s.disjoint) for (const c of forwardChains(s, f.relation, newObject)) for (const g of c.used) reserved.add(factKey(g));
    s.edited.add(factKey(f));
    plans.push({ fact: f, newObject });
  }
  return plans;
}

/** Known facts of the editable relations. */
function editCandidates(s: BenchState): Fact[] {
  const capitals = new Set(s.world.facts.filter((f) => f.relation === 'P36').map((f) => f.object));
  return s.world.facts.filter(
    (f) =>
      EDITABLE_RELATIONS.includes(f.relation) &&
      s.known.has(factKey(f)) &&
      // moving a capital to another country would contradict the capital fact
      !(f.relation === 'P17' && capitals.has(f.subject)),
  );
}

/** Every relation's distinct objects, in the order of the world's facts. */
function objectsByRelation(world: World): Map<string, string[]> {
  const objectsOf = new Map<string, string[]>();
  for (const f of world.facts) {
    let list = objectsOf.get(f.relation);
    if (!list) objectsOf.set(f.relation, (list = []));
    if (!list.includes(f.object)) list.push(f.object);
  }
  return objectsOf;
}

/**
 * Round-robin over the relations (each shuffled), so that any prefix of the benchmark mixes all
 * relations and the small relations (geography, organisations) are not crowded out.
 */
function interleaveRelations(select: Rng, candidates: Fact[]): Fact[] {
  const groups = EDITABLE_RELATIONS.map((r) => select.shuffled(candidates.filter((f) => f.relation === r)));
  const order: Fact[] = [];
  for (let round = 0; groups.some((g) => round < g.length); round++) {
    for (const g of groups) if (round < g.length) order.push(g[round]!);
  }
  return order;
}

/** Where the multi-hop templates that start with `relation` lead from `object` (their remaining hops). */
function forwardChains(s: BenchState, relation: string, object: string): ReturnType<WorldIndex['follow']>[] {
  return MULTI_HOP_TEMPLATES.filter((t) => t.path[0] === relation).map((t) => s.index.follow(object, t.path.slice(1)));
}

/**
 * A new object for `f` that other subjects hold with usable facts (so the case has attribute
 * prompts), or undefined when there is none.
 */
function chooseNewObject(s: BenchState, select: Rng, f: Fact, objects: string[]): string | undefined {
  const options = objects.filter((o) => o !== f.object && sameObjectFacts(s, f.relation, o, f.subject).length > 0);
  if (options.length === 0) return undefined;
  // Prefer new objects whose own multi-hop chains are usable (known, unedited) and whose answers
  // differ from the current ones; the chain facts are then kept unedited.
  const endsNow = forwardChains(s, f.relation, f.object).map((c) => c.end);
  const chainsUsable = (o: string) => forwardChains(s, f.relation, o).every((c) => c.end !== undefined && c.used.every((g) => usable(s, g)));
  const changesAll = (o: string) =>
    forwardChains(s, f.relation, o).every((c, i) => endsNow[i] === undefined || c.end === undefined || endsNow[i] !== c.end);
  const tiers = [
    options.filter((o) => chainsUsable(o) && changesAll(o)),
    options.filter(chainsUsable),
    options.filter(changesAll),
    options,
  ];
  return select.pick(tiers.find((t) => t.length > 0)!);
}

/** Keep at least min(keep, available) neighbour and attribute facts of every case unedited. */
function reserveSome(s: BenchState, select: Rng, reserved: Set<string>, facts: Fact[]): void {
  if (!s.disjoint) return;
  const want = Math.min(s.keep, facts.length);
  let have = facts.filter((g) => reserved.has(factKey(g))).length;
  for (const g of select.shuffled(facts.filter((x) => !reserved.has(factKey(x))))) {
    if (have >= want) break;
    reserved.add(factKey(g));
    have++;
  }
}

// ---- 2. build the records (the edited set is now final) ----

/** The CounterFact record of one planned edit, with its portability and locality questions. */
function buildRecord(s: BenchState, build: Rng, plan: Plan, caseId: number): CounterFactRecord {
  const f = plan.fact;
  const rel = s.index.relation(f.relation);
  const subject = s.index.name(f.subject);
  const statements = rel.phrasings.filter((p) => p.split === 'train' && p.kind === 'statement');
  const edit: Fact = { subject: f.subject, relation: f.relation, object: plan.newObject };
  const portability = portabilityQuestions(s, build, edit);
  const locality = localityQuestions(s, build, f);
  return {
    case_id: caseId,
    requested_rewrite: {
      prompt: build.pick(statements).template,
      relation_id: f.relation,
      target_new: { str: s.index.name(plan.newObject), id: plan.newObject },
      target_true: { str: s.index.name(f.object), id: f.object },
      subject,
    },
    paraphrase_prompts: rel.phrasings.filter((p) => p.split === 'heldOut').map((p) => fillTemplate(p.template, subject)),
    neighborhood_prompts: promptsFor(s, build, sameObjectFacts(s, f.relation, f.object, f.subject), rel, s.maxNeighborhood),
    attribute_prompts: promptsFor(s, build, sameObjectFacts(s, f.relation, plan.newObject, f.subject), rel, s.maxAttribute),
    generation_prompts: rel.generation.map((g) => fillTemplate(g, subject)),
    portability,
    locality,
  };
}

function trainPhrasings(rel: Relation): Relation['phrasings'] {
  return rel.phrasings.filter((p) => p.split === 'train');
}

/** Up to `max` prompts about `facts`' subjects, each subject's train phrasings taken in turn from a random offset. */
function promptsFor(s: BenchState, build: Rng, facts: Fact[], rel: Relation, max: number): string[] {
  const phr = trainPhrasings(rel);
  const order = build.shuffled(facts);
  const offsets = order.map(() => build.int(phr.length));
  const out: string[] = [];
  for (let round = 0; round < phr.length && out.length < max; round++) {
    for (let i = 0; i < order.length && out.length < max; i++) {
      const p = phr[(offsets[i]! + round) % phr.length]!;
      out.push(fillTemplate(p.template, s.index.name(order[i]!.subject)));
    }
  }
  return out;
}

/**
 * Portability: every multi-hop template whose path passes through the edited relation, from the
 * edited subject itself (edit at hop 0) or from subjects whose path reaches it (ripple effects).
 * The questions from the edited subject come first, then the ripple questions one per template and hop in turn.
 */
function portabilityQuestions(s: BenchState, build: Rng, edit: Fact): PortabilityQuestion[] {
  const forwardQs: PortabilityQuestion[] = [];
  const rippleGroups: PortabilityQuestion[][] = [];
  for (const t of MULTI_HOP_TEMPLATES) {
    t.path.forEach((r, hop) => {
      if (r !== edit.relation) return;
      const qs = questionsThroughEdit(s, build, t, hop, edit);
      if (hop === 0) forwardQs.push(...qs);
      else if (qs.length > 0) rippleGroups.push(qs);
    });
  }
  const portability = forwardQs.slice(0, s.maxPortability);
  for (let round = 0; portability.length < s.maxPortability; round++) {
    let added = false;
    for (const g of rippleGroups) {
      if (round < g.length && portability.length < s.maxPortability) {
        portability.push(g[round]!);
        added = true;
      }
    }
    if (!added) break;
  }
  return portability;
}

/** The questions of template `t` whose path reaches the edited subject after `hop` steps and then follows the edit. */
function questionsThroughEdit(s: BenchState, build: Rng, t: MultiHopTemplate, hop: number, edit: Fact): PortabilityQuestion[] {
  // Starts whose first `hop` steps lead to the edited subject through usable facts.
  let starts = [edit.subject];
  for (let h = hop - 1; h >= 0; h--) {
    const rr = t.path[h]!;
    starts = starts.flatMap((x) => s.index.subjects(rr, x).filter((y) => usable(s, s.index.fact(y, rr))));
  }
  const qs: PortabilityQuestion[] = [];
  for (const x of build.shuffled(starts)) {
    const res = s.index.follow(x, t.path, edit);
    if (res.end === undefined) continue;
    if (!res.used.every((g) => g === edit || usable(s, g))) continue;
    qs.push({
      prompt: fillTemplate(t.template, s.index.name(x)),
      answer: s.index.name(res.end),
      subject: s.index.name(x),
      relation_path: t.path.slice(),
      edit_hop: hop,
    });
  }
  return qs;
}

/** Locality: other relations of the same subject, then facts of other subjects. */
function localityQuestions(s: BenchState, build: Rng, f: Fact): LocalityQuestion[] {
  const locality: LocalityQuestion[] = [];
  const sameSubject = build.shuffled(s.index.factsOf(f.subject).filter((g) => g.relation !== f.relation && usable(s, g)));
  const half = Math.ceil(s.maxLocality / 2);
  for (const g of sameSubject.slice(0, half)) locality.push(localityQuestion(s, build, g));
  const others = s.world.facts.filter((g) => usable(s, g) && g.subject !== f.subject);
  for (const g of build.sample(others, s.maxLocality - locality.length)) locality.push(localityQuestion(s, build, g));
  return locality;
}

function localityQuestion(s: BenchState, build: Rng, g: Fact): LocalityQuestion {
  const r = s.index.relation(g.relation);
  return {
    prompt: fillTemplate(build.pick(trainPhrasings(r)).template, s.index.name(g.subject)),
    answer: s.index.name(g.object),
    subject: s.index.name(g.subject),
    relation_id: g.relation,
  };
}
