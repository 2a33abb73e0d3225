/**
 * The text encoder pretrained by `examples/pretrain-text.ts` (masked LM on the SMS texts), saved in
 * reports/pretrain-text/ as `pretrained.safetensors` (the `BertForMaskedLM` state dict, tied
 * decoder = `bert.embeddings.tok.weight`), `pretrained.json` (the `BertConfig` and the sequence
 * length) and `tokenizer.json` (the WordPiece vocabulary, read through `WordPieceTokenizer.fromJSON`).
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as eg from 'edgegrad';

/** Where `pretrain-text.ts` writes the checkpoint by default. */
export const PRETRAINED_DIR = 'reports/pretrain-text';

export interface PretrainedTextEncoder {
  tokenizer: eg.nn.WordPieceTokenizer;
  config: eg.nn.BertConfig;
  /** Sequence length the encoder was pretrained with. */
  maxLength: number;
  /** The `BertForMaskedLM` state dict (the caller disposes the tensors, e.g. after `bert.loadStateDict`). */
  state: Record<string, eg.Tensor>;
}

/** Writes the checkpoint of `model` and `tokenizer` into `dir`. */
export async function savePretrainedTextEncoder(dir: string, model: eg.nn.BertForMaskedLM, tokenizer: eg.nn.WordPieceTokenizer, maxLength: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { seed: _s, ...config } = model.config;
  await writeFile(join(dir, 'pretrained.safetensors'), eg.encodeSafetensors(model.stateDict()));
  await writeFile(join(dir, 'pretrained.json'), JSON.stringify({ config, maxLength }, null, 2));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizer.toJSON()));
}

/** Reads the checkpoint from `dir` (default `PRETRAINED_DIR`); run `examples/pretrain-text.ts` first. */
export async function loadPretrainedTextEncoder(dir = PRETRAINED_DIR): Promise<PretrainedTextEncoder> {
  const tokenizer = eg.nn.WordPieceTokenizer.fromJSON(await readFile(join(dir, 'tokenizer.json')));
  const meta = JSON.parse(await readFile(join(dir, 'pretrained.json'), 'utf8')) as { config: eg.nn.BertConfig; maxLength: number };
  const { tensors } = eg.decodeSafetensors(await readFile(join(dir, 'pretrained.safetensors')));
  return { tokenizer, config: meta.config, maxLength: meta.maxLength, state: tensors };
}

/**
 * A classifier whose encoder holds the pretrained weights (`bert.*` of the checkpoint; the MLM head
 * is left out), with a fresh `classifier` seeded by `seed`.
 */
export function classifierFromPretrained(p: PretrainedTextEncoder, o: eg.nn.BertClassifierOptions & { seed?: number; dropout?: number } = {}): eg.nn.BertForSequenceClassification {
  const { seed, dropout, ...head } = o;
  const clf = new eg.nn.BertForSequenceClassification({ ...p.config, seed, ...(dropout === undefined ? {} : { dropout }) }, head);
  const enc = Object.fromEntries(Object.entries(p.state).filter(([k]) => k.startsWith('bert.')).map(([k, t]) => [k.slice('bert.'.length), t]));
  clf.bert.loadStateDict(enc);
  return clf;
}
