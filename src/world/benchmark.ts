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
import { EDITABLE_RELATIONS, MULTI_HOP_TEMPLATES, fillTemplate } from './phrasings.js';
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

export function buildBenchmark(world: World, opts: BenchmarkOptions = {}): CounterFactRecord[] {
  const index = new WorldIndex(world);
  const seed = opts.seed ?? world.seed;
  requireCount(opts.n, 'buildBenchmark: n (the number of cases)');
  const n = opts.n ?? Number.POSITIVE_INFINITY;
  const isKnown = opts.isKnown ?? (() => true);
  const disjoint = opts.disjoint ?? true;
  const maxNeighborhood = opts.maxNeighborhood ?? 10;
  const maxAttribute = opts.maxAttribute ?? 10;
  const maxPortability = opts.maxPortability ?? 6;
  const maxLocality = opts.maxLocality ?? 4;
  const keep = opts.minNeighbours ?? 3;
  requireCount(keep, 'buildBenchmark: minNeighbours', 1);

  const known = new Set<string>();
  for (const f of world.facts) if (isKnown(f)) known.add(factKey(f));
  const edited = new Set<string>();
  const usable = (g: Fact | undefined): g is Fact =>
    g !== undefined && known.has(factKey(g)) && !(disjoint && edited.has(factKey(g)));

  const capitals = new Set(world.facts.filter((f) => f.relation === 'P36').map((f) => f.object));
  const objectsOf = new Map<string, string[]>();
  for (const f of world.facts) {
    let list = objectsOf.get(f.relation);
    if (!list) objectsOf.set(f.relation, (list = []));
    if (!list.includes(f.object)) list.push(f.object);
  }

  const sameObjectFacts = (relation: string, object: string, exceptSubject: string): Fact[] =>
    index
      .subjects(relation, object)
      .filter((x) => x !== exceptSubject)
      .map((x) => index.fact(x, relation))
      .filter(usable);

  // ---- 1. choose the edited facts and their new objects ----
  const select = Rng.stream(seed, 'benchmark/select');
  const candidates = world.facts.filter(
    (f) =>
      EDITABLE_RELATIONS.includes(f.relation) &&
      known.has(factKey(f)) &&
      // moving a capital to another country would contradict the capital fact
      !(f.relation === 'P17' && capitals.has(f.subject)),
  );
  const reserved = new Set<string>();
  // Keep at least min(keep, available) neighbour and attribute facts of every case unedited.
  const reserveSome = (facts: Fact[]) => {
    if (!disjoint) return;
    const want = Math.min(keep, facts.length);
    let have = facts.filter((g) => reserved.has(factKey(g))).length;
    for (const g of select.shuffled(facts.filter((x) => !reserved.has(factKey(x))))) {
      if (have >= want) break;
      reserved.add(factKey(g));
      have++;
    }
  };
  const plans: Plan[] = [];
  // Round-robin over the relations (each shuffled), so that any prefix of the benchmark mixes all
  // relations and the small relations (geography, organisations) are not crowded out.
  const groups = EDITABLE_RELATIONS.map((r) => select.shuffled(candidates.filter((f) => f.relation === r)));
  const order: Fact[] = [];
  for (let round = 0; groups.some((g) => round < g.length); round++) {
    for (const g of groups) if (round < g.length) order.push(g[round]!);
  }
  for (const f of order) {
    if (plans.length >= n) break;
    if (disjoint && reserved.has(factKey(f))) continue;
    const neighbours = sameObjectFacts(f.relation, f.object, f.subject);
    if (neighbours.length === 0) continue;
    const options = (objectsOf.get(f.relation) ?? []).filter(
      (o) => o !== f.object && sameObjectFacts(f.relation, o, f.subject).length > 0,
    );
    if (options.length === 0) continue;
    // Prefer new objects whose own multi-hop chains are usable (known, unedited) and whose answers
    // differ from the current ones; the chain facts are then kept unedited.
    const forward = MULTI_HOP_TEMPLATES.filter((t) => t.path[0] === f.relation);
    const chains = (o: string) => forward.map((t) => index.follow(o, t.path.slice(1)));
    const chainsUsable = (o: string) => chains(o).every((c) => c.end !== undefined && c.used.every((g) => usable(g)));
    const changesAll = (o: string) =>
      forward.every((t) => {
        const before = index.follow(f.object, t.path.slice(1)).end;
        const after = index.follow(o, t.path.slice(1)).end;
        return before === undefined || after === undefined || before !== after;
      });
    const tiers = [
      options.filter((o) => chainsUsable(o) && changesAll(o)),
      options.filter(chainsUsable),
      options.filter(changesAll),
      options,
    ];
    const newObject = select.pick(tiers.find((t) => t.length > 0)!);
    reserveSome(neighbours);
    reserveSome(sameObjectFacts(f.relation, newObject, f.subject));
    if (disjoint) for (const c of chains(newObject)) for (const g of c.used) reserved.add(factKey(g));
    edited.add(factKey(f));
    plans.push({ fact: f, newObject });
  }

  // ---- 2. build the records (the edited set is now final) ----
  const build = Rng.stream(seed, 'benchmark/build');
  const trainPhrasings = (rel: Relation) => rel.phrasings.filter((p) => p.split === 'train');
  const promptsFor = (facts: Fact[], rel: Relation, max: number): string[] => {
    const phr = trainPhrasings(rel);
    const order = build.shuffled(facts);
    const offsets = order.map(() => build.int(phr.length));
    const out: string[] = [];
    for (let round = 0; round < phr.length && out.length < max; round++) {
      for (let i = 0; i < order.length && out.length < max; i++) {
        const p = phr[(offsets[i]! + round) % phr.length]!;
        out.push(fillTemplate(p.template, index.name(order[i]!.subject)));
      }
    }
    return out;
  };
  const allUsableFacts = () => world.facts.filter(usable);

  const records: CounterFactRecord[] = [];
  plans.forEach((plan, caseId) => {
    const f = plan.fact;
    const rel = index.relation(f.relation);
    const subject = index.name(f.subject);
    const statements = rel.phrasings.filter((p) => p.split === 'train' && p.kind === 'statement');
    const edit: Fact = { subject: f.subject, relation: f.relation, object: plan.newObject };

    // Portability: every multi-hop template whose path passes through the edited relation, from the
    // edited subject itself (edit at hop 0) or from subjects whose path reaches it (ripple effects).
    const forwardQs: PortabilityQuestion[] = [];
    const rippleGroups: PortabilityQuestion[][] = [];
    for (const t of MULTI_HOP_TEMPLATES) {
      t.path.forEach((r, hop) => {
        if (r !== f.relation) return;
        // Starts whose first `hop` steps lead to the edited subject through usable facts.
        let starts = [f.subject];
        for (let h = hop - 1; h >= 0; h--) {
          const rr = t.path[h]!;
          starts = starts.flatMap((x) => index.subjects(rr, x).filter((y) => usable(index.fact(y, rr))));
        }
        const qs: PortabilityQuestion[] = [];
        for (const x of build.shuffled(starts)) {
          const res = index.follow(x, t.path, edit);
          if (res.end === undefined) continue;
          if (!res.used.every((g) => g === edit || usable(g))) continue;
          qs.push({
            prompt: fillTemplate(t.template, index.name(x)),
            answer: index.name(res.end),
            subject: index.name(x),
            relation_path: t.path.slice(),
            edit_hop: hop,
          });
        }
        if (hop === 0) forwardQs.push(...qs);
        else if (qs.length > 0) rippleGroups.push(qs);
      });
    }
    const portability = forwardQs.slice(0, maxPortability);
    for (let round = 0; portability.length < maxPortability; round++) {
      let added = false;
      for (const g of rippleGroups) {
        if (round < g.length && portability.length < maxPortability) {
          portability.push(g[round]!);
          added = true;
        }
      }
      if (!added) break;
    }

    // Locality: other relations of the same subject, then facts of other subjects.
    const locality: LocalityQuestion[] = [];
    const localityOf = (g: Fact): LocalityQuestion => {
      const r = index.relation(g.relation);
      return {
        prompt: fillTemplate(build.pick(trainPhrasings(r)).template, index.name(g.subject)),
        answer: index.name(g.object),
        subject: index.name(g.subject),
        relation_id: g.relation,
      };
    };
    const sameSubject = build.shuffled(index.factsOf(f.subject).filter((g) => g.relation !== f.relation && usable(g)));
    const half = Math.ceil(maxLocality / 2);
    for (const g of sameSubject.slice(0, half)) locality.push(localityOf(g));
    const others = allUsableFacts().filter((g) => g.subject !== f.subject);
    for (const g of build.sample(others, maxLocality - locality.length)) locality.push(localityOf(g));

    records.push({
      case_id: caseId,
      requested_rewrite: {
        prompt: build.pick(statements).template,
        relation_id: f.relation,
        target_new: { str: index.name(plan.newObject), id: plan.newObject },
        target_true: { str: index.name(f.object), id: f.object },
        subject,
      },
      paraphrase_prompts: rel.phrasings.filter((p) => p.split === 'heldOut').map((p) => fillTemplate(p.template, subject)),
      neighborhood_prompts: promptsFor(sameObjectFacts(f.relation, f.object, f.subject), rel, maxNeighborhood),
      attribute_prompts: promptsFor(sameObjectFacts(f.relation, plan.newObject, f.subject), rel, maxAttribute),
      generation_prompts: rel.generation.map((g) => fillTemplate(g, subject)),
      portability,
      locality,
    });
  });
  return records;
}
