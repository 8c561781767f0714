// mom2_dataset as a path: the two questions both the hparams check and the statistics step ask of it.
import fs from 'node:fs';
import path from 'node:path';

/** A corpus file's extension: a mom2_dataset with one is a corpus path, not the name of imported statistics. */
export function hasCorpusExtension(ds: string): boolean {
  return /\.(txt|jsonl|md|text)$/i.test(ds);
}

/** `ds` as an existing file or folder: as given, else (a relative path) inside the model folder; null when neither exists. */
export function existingCorpusPath(ds: string, modelDir: string | null): string | null {
  if (fs.existsSync(ds)) return ds;
  if (modelDir && !path.isAbsolute(ds) && fs.existsSync(path.join(modelDir, ds))) return path.join(modelDir, ds);
  return null;
}
