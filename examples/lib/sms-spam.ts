/**
 * The SMS Spam Collection shipped in examples/data/sms_spam (5,574 messages, 747 spam; see its
 * ATTRIBUTION.md): loading, a seeded train / dev / test split, stratified label subsets (1%, 5%...)
 * and encoding into `[N, maxLength]` int32 token ids.
 */
import { readFile } from 'node:fs/promises';
import * as eg from 'edgegrad';

export interface SmsSpam {
  texts: string[];
  /** 1 = spam, 0 = ham. */
  labels: Int32Array;
}

/** All messages, in file order. */
export async function loadSmsSpam(): Promise<SmsSpam> {
  const text = await readFile(new URL('../data/sms_spam/SMSSpamCollection', import.meta.url), 'utf8');
  const texts: string[] = [];
  const labels: number[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const tab = line.indexOf('\t');
    const label = line.slice(0, tab);
    if (tab < 0 || (label !== 'ham' && label !== 'spam')) throw new Error(`unexpected SMSSpamCollection line: ${line.slice(0, 40)}`);
    texts.push(line.slice(tab + 1));
    labels.push(label === 'spam' ? 1 : 0);
  }
  return { texts, labels: Int32Array.from(labels) };
}

/** Message indices in three disjoint parts, shuffled with the engine's seeded permutation. */
export function splitSms(n: number, o: { seed?: number; testSize?: number; devSize?: number } = {}): { train: number[]; dev: number[]; test: number[] } {
  const perm = eg.tidy(() => Array.from(eg.randperm(n, { seed: o.seed ?? 2024 }).dataSync()));
  const nTest = Math.round(n * (o.testSize ?? 0.2));
  const nDev = o.devSize ?? 400;
  return { test: perm.slice(0, nTest), dev: perm.slice(nTest, nTest + nDev), train: perm.slice(nTest + nDev) };
}

/** A stratified `fraction` of `pool` (each class keeps its share, at least one message), chosen by `seed`. */
export function labelSubset(pool: number[], labels: Int32Array, fraction: number, seed: number): number[] {
  if (fraction >= 1) return pool.slice();
  const out: number[] = [];
  for (const c of [0, 1]) {
    const members = pool.filter((i) => labels[i] === c);
    const k = Math.max(1, Math.round(members.length * fraction));
    const order = eg.tidy(() => Array.from(eg.randperm(members.length, { seed: seed * 2 + c }).dataSync()));
    out.push(...order.slice(0, k).map((j) => members[j]));
  }
  return out.sort((a, b) => a - b);
}

/** Token ids `[indices.length, maxLength]` (int32, [CLS] … [SEP] then [PAD]) and labels `[indices.length]` (int32). */
export function encodeSms(tok: eg.nn.WordPieceTokenizer, d: SmsSpam, indices: number[], maxLength: number): { ids: eg.Tensor; labels: eg.Tensor } {
  const enc = tok.encodeBatch(indices.map((i) => d.texts[i]), { maxLength, padding: 'maxLength', truncation: true });
  enc.attentionMask.dispose(); // the models rebuild it from the [PAD] ids
  return { ids: enc.inputIds, labels: eg.tensor(Int32Array.from(indices, (i) => d.labels[i]), [indices.length], 'int32') };
}
