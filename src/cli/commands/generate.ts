// amend generate: continue a prompt with a model (greedy or sampled, KV cache).
import { AmendError } from '../../errors.js';
import { generate, generationRoom } from '../../models/index.js';
import { intOption, numberOption, seedOption, type CommandSpec, type Parsed } from '../args.js';
import { loadModel } from '../load.js';

export const spec: CommandSpec = {
  name: 'generate',
  summary: 'continue a prompt with a model',
  usage: 'amend generate --model M "prompt" [--max-new-tokens N] [--greedy | --temperature T --top-k K --top-p P --seed S]',
  options: {
    model: { type: 'string', short: 'm', help: 'M  model directory or Hugging Face id (local cache)' },
    'max-new-tokens': { type: 'string', short: 'n', help: 'N  tokens to generate (default 40)' },
    greedy: { type: 'boolean', help: 'argmax decoding instead of sampling' },
    temperature: { type: 'string', help: 'T  sampling temperature (default 1)' },
    'top-k': { type: 'string', help: 'K  sample among the K most likely tokens' },
    'top-p': { type: 'string', help: 'P  nucleus sampling mass (0 < P ≤ 1)' },
    seed: { type: 'string', help: 'S  random seed for sampling (default 0)' },
  },
  examples: [
    'amend generate --model world "Q: Where was" --greedy',
    'amend generate --model ../shared/models/stories260K "Once upon a time" --temperature 0.8 --seed 3',
    'amend generate --model gpt2 "The Eiffel Tower is in" -n 20 --top-k 40 --seed 1 --json',
  ],
};

export async function run(args: Parsed): Promise<void> {
  const v = args.values;
  if (args.positionals.length !== 1) throw new AmendError('give exactly one prompt, in quotes (see amend generate --help)');
  const prompt = args.positionals[0];
  if (prompt.trim() === '') throw new AmendError('the prompt is empty; give some text to continue');
  const maxNewTokens = intOption(v['max-new-tokens'], 'max-new-tokens', 40);
  const temperature = numberOption(v.temperature, 'temperature');
  const topP = numberOption(v['top-p'], 'top-p');
  if (temperature !== undefined && !(temperature > 0)) throw new AmendError(`--temperature must be > 0 (use --greedy for argmax), got ${String(v.temperature)}`);
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new AmendError(`--top-p must be in (0, 1] (the share of probability to sample from; 1 keeps every token), got ${String(v['top-p'])}`);
  if (v.greedy === true && (temperature !== undefined || topP !== undefined || v['top-k'] !== undefined)) {
    throw new AmendError('--greedy takes the most likely token, so --temperature, --top-k and --top-p do nothing with it; drop one or the other');
  }
  const topK = v['top-k'] === undefined ? undefined : intOption(v['top-k'], 'top-k', 0, 1);
  const seed = seedOption(v.seed, 0);
  const model = await loadModel(v.model, v.json === true);
  const tok = model.tok();
  const ids = tok.encode(prompt);
  if (ids.length === 0) throw new AmendError('the prompt encodes to no tokens');
  const started = Date.now();
  const [out] = generate(model, [ids], {
    maxNewTokens, greedy: v.greedy === true, temperature, topK, topP, seed,
  });
  const seconds = (Date.now() - started) / 1000;
  // A padded embedding can produce ids the tokenizer lacks: they are left out of the text (the ids
  // themselves are in --json's "ids") and named in a warning.
  const unknown = out.filter((id) => id >= tok.vocabSize);
  if (unknown.length) {
    process.emitWarning(`the model produced ${unknown.length} token id(s) its tokenizer does not have (${[...new Set(unknown)].slice(0, 5).map((id) => `#${id}`).join(', ')}); they are left out of the text`);
  }
  const dec = { skipSpecialTokens: true, skipUnknownIds: true };
  const completion = tok.decodeContinuation(ids, out, dec);
  if (v.json) {
    console.log(JSON.stringify({ prompt, promptIds: ids, ids: out, completion, text: tok.decode([...ids, ...out], dec), seconds }));
  } else {
    console.log(tok.decode([...ids, ...out], dec));
    const cut = out.length < maxNewTokens && out.length === generationRoom(model.config, ids.length) ? `, stopped at the model's ${model.config.maxPositions} positions` : '';
    process.stderr.write(`(${out.length} tokens in ${seconds.toFixed(2)} s${cut})\n`);
  }
}
