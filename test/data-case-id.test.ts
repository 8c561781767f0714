// Case ids from benchmark records: a number or a string is the case's id, an absent or null one
// gives the record's index, and anything else is refused rather than quietly replaced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AmendError } from '../src/errors.js';
import { parseCases } from '../src/data/index.js';

const counterfact = (caseId: unknown) => ({
  case_id: caseId,
  requested_rewrite: { prompt: '{} is in', subject: 'Paris', target_new: { str: 'Rome' }, target_true: { str: 'France' } },
  paraphrase_prompts: [],
  neighborhood_prompts: [],
});
const knowns = (knownId: unknown) => ({ known_id: knownId, subject: 'Paris', attribute: 'France', template: '{} is in', prompt: 'Paris is in' });
const request = (id: unknown) => ({ id, prompt: '{} is in', subject: 'Paris', targetNew: 'Rome' });

function refused(records: unknown[], re: RegExp): void {
  assert.throws(() => parseCases(records, { source: 'ids.json' }), (e: Error) => {
    assert.ok(e instanceof AmendError, `not an AmendError: ${e}`);
    assert.ok(!e.message.includes('\n'), `not one line: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('a number or a string is the case id; an absent or null one is the record index', () => {
  const ids = parseCases([counterfact(7), counterfact('cf-8'), counterfact(null), { ...counterfact(0), case_id: undefined }]).cases.map((c) => c.id);
  assert.deepEqual(ids, [7, 'cf-8', 2, 3]);
  assert.deepEqual(parseCases([request('a'), request(null)]).cases.map((c) => c.id), ['a', 1]);
});

test('a case id that is an object, a list, a boolean or a blank string is refused, naming the record and the field', () => {
  refused([counterfact(1), counterfact({ id: 2 })], /^ids\.json: record 2 \(index 1, counterfact\) field "case_id" should be a case id \(a number or a string\), not an object; fix it, or leave the field out/);
  refused([counterfact([3])], /record 1 \(index 0, counterfact\) field "case_id" should be a case id .*, not a list;/);
  refused([knowns(true)], /record 1 \(index 0, rome-knowns\) field "known_id" should be a case id .*, not a boolean;/);
  refused([request('  ')], /record 1 \(index 0, amend-cases\) field "id" should be a case id .*, not a blank string;/);
  // 1e999 parses as Infinity, which a report would write as null
  refused([counterfact(JSON.parse('1e999'))], /field "case_id" should be a case id .*, not Infinity;/);
  // an edit inside an Amend case record is checked the same way
  refused([{ ...request(1), edits: [request({})] }], /record 1 \(index 0, amend-cases\) field "edits\.0\.id" should be a case id/);
});
