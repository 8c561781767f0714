// Reading the JSON files of a model folder (config.json, tokenizer.json, the safetensors index...).
import fs from 'node:fs';
import { AmendError } from '../errors.js';

/**
 * A JSON file of a model folder, parsed. A folder or an unreadable file in its place is named as
 * such (the model folder is damaged), not as bad JSON; what it must hold is the caller's check.
 */
export function readModelJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AmendError(`${file}: ${code === 'EISDIR' ? 'is a folder, not a JSON file' : `cannot be read (${code ?? (e as Error).message})`}; the model folder is damaged — re-download or re-create it`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AmendError(`${file}: not valid JSON (${(e as Error).message}) — re-download it`);
  }
}
