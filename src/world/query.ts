/**
 * Look-ups over a world: entities by id or name, the object of (subject, relation), the subjects of
 * (relation, object), multi-hop paths, and the prompts of a fact in every phrasing.
 */
import { fillTemplate } from './phrasings.js';
import type { Entity, Fact, PhrasingKind, PhrasingSplit, Relation, World } from './types.js';

/** Key of the (subject, relation) slot a fact fills; unique per fact because relations are functional. */
export function factKey(f: { subject: string; relation: string }): string {
  return `${f.subject}|${f.relation}`;
}

export class WorldIndex {
  readonly world: World;
  private readonly byId = new Map<string, Entity>();
  private readonly byNameMap = new Map<string, Entity>();
  private readonly relations = new Map<string, Relation>();
  private readonly objects = new Map<string, string>();
  private readonly facts = new Map<string, Fact>();
  private readonly subjectsMap = new Map<string, string[]>();
  private readonly bySubject = new Map<string, Fact[]>();

  constructor(world: World) {
    this.world = world;
    for (const list of Object.values(world.entities)) {
      for (const e of list) {
        if (this.byId.has(e.id)) throw new Error(`duplicate entity id ${e.id}`);
        if (this.byNameMap.has(e.name)) throw new Error(`duplicate entity name ${JSON.stringify(e.name)}`);
        this.byId.set(e.id, e);
        this.byNameMap.set(e.name, e);
      }
    }
    for (const r of world.relations) this.relations.set(r.id, r);
    for (const f of world.facts) {
      const key = factKey(f);
      if (this.objects.has(key)) throw new Error(`two facts for ${key}`);
      this.objects.set(key, f.object);
      this.facts.set(key, f);
      const sk = `${f.relation}|${f.object}`;
      let subs = this.subjectsMap.get(sk);
      if (!subs) this.subjectsMap.set(sk, (subs = []));
      subs.push(f.subject);
      let own = this.bySubject.get(f.subject);
      if (!own) this.bySubject.set(f.subject, (own = []));
      own.push(f);
    }
  }

  entity(id: string): Entity {
    const e = this.byId.get(id);
    if (!e) throw new Error(`unknown entity id ${id}`);
    return e;
  }

  name(id: string): string {
    return this.entity(id).name;
  }

  byName(name: string): Entity | undefined {
    return this.byNameMap.get(name);
  }

  relation(id: string): Relation {
    const r = this.relations.get(id);
    if (!r) throw new Error(`unknown relation ${id}`);
    return r;
  }

  /** The object id of (subject, relation), if the world has that fact. */
  object(subject: string, relation: string): string | undefined {
    return this.objects.get(`${subject}|${relation}`);
  }

  fact(subject: string, relation: string): Fact | undefined {
    return this.facts.get(`${subject}|${relation}`);
  }

  /** Subject ids whose `relation` object is `object`, in world order. */
  subjects(relation: string, object: string): readonly string[] {
    return this.subjectsMap.get(`${relation}|${object}`) ?? [];
  }

  /** Facts with this subject, in world order. */
  factsOf(subject: string): readonly Fact[] {
    return this.bySubject.get(subject) ?? [];
  }

  /**
   * Follows `path` (relation ids) from `start`; `edit` replaces one fact's object first.
   * Returns the facts used along the way and the entity reached (undefined if a hop is missing).
   */
  follow(start: string, path: readonly string[], edit?: Fact): { end: string | undefined; used: Fact[] } {
    let cur = start;
    const used: Fact[] = [];
    for (const rel of path) {
      if (edit && edit.subject === cur && edit.relation === rel) {
        used.push(edit);
        cur = edit.object;
        continue;
      }
      const f = this.fact(cur, rel);
      if (!f) return { end: undefined, used };
      used.push(f);
      cur = f.object;
    }
    return { end: cur, used };
  }
}

export interface FactPrompt {
  /** The filled-in template, ending right before the object. */
  prompt: string;
  /** The object's name without the leading space (prepend " " when scoring). */
  target: string;
  template: string;
  kind: PhrasingKind;
  split: PhrasingSplit;
}

/** The fact in every phrasing of its relation (train and held-out), for "does the model know it" checks. */
export function factPrompts(world: World | WorldIndex, fact: Fact): FactPrompt[] {
  const index = world instanceof WorldIndex ? world : new WorldIndex(world);
  const rel = index.relation(fact.relation);
  const subject = index.name(fact.subject);
  const target = index.name(fact.object);
  return rel.phrasings.map((p) => ({
    prompt: fillTemplate(p.template, subject),
    target,
    template: p.template,
    kind: p.kind,
    split: p.split,
  }));
}

/** One corpus line: statement "prompt object." or question "prompt object". */
export function renderLine(prompt: string, object: string, kind: PhrasingKind): string {
  return kind === 'statement' ? `${prompt} ${object}.` : `${prompt} ${object}`;
}
