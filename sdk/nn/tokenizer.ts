/**
 * A WordPiece subword tokenizer (BERT's), trained on a corpus and saved as JSON next to a model.
 *
 * - Pre-tokenization is BERT's `BasicTokenizer`: optional lower-casing and accent stripping (NFD,
 *   combining marks removed), split on white space, every punctuation or symbol character its own
 *   word. Unicode property regexes and `toLowerCase` are specified by ECMAScript, so the same text
 *   gives the same tokens in Node and every browser.
 * - Training is what Hugging Face's `WordPieceTrainer` does: BPE merges over word counts where a
 *   piece inside a word carries the `##` prefix; ties go to the pair of the smallest ids (the
 *   earliest learnt symbols), so a corpus always gives the same vocabulary.
 * - Encoding is WordPiece's greedy longest-match-first; a word that cannot be pieced together (or is
 *   longer than `maxInputCharsPerWord`) becomes `[UNK]`.
 *
 * The maintained tokenizer packages on npm are a native addon (`@huggingface/tokenizers`, Node
 * only) or part of a whole model runtime (transformers.js); this one is small, dependency-free and
 * the same in every runtime.
 */
import { checkBool, checkInt, checkOptions, checkSize, describe, checkLengths } from '../args.js';
import { tensor } from '../creation.js';
import { ArgumentError, FormatError } from '../errors.js';
import { parseJson } from '../io/json.js';
import { v, validate } from '../io/validate.js';
import type { Tensor } from '../tensor.js';

/** The special tokens, in vocabulary order (ids 0..4). */
export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
/** Most vocabulary entries a tokenizer (or a tokenizer file) may have. */
export const MAX_VOCAB = 1 << 20;
const MAX_TOKEN_CHARS = 512;
/** Most characters per word a tokenizer may piece (so every learnt token fits MAX_TOKEN_CHARS). */
const MAX_WORD_CHARS = 250;
const PREFIX = '##';

/** Options of `WordPieceTokenizer.train`. */
export interface WordPieceTrainOptions {
  /** Vocabulary size to reach, special tokens and alphabet included (default 2000; the alphabet is kept whole even when larger). */
  vocabSize?: number;
  /** A merge must occur at least this often (default 2). */
  minFrequency?: number;
  /** Keep at most this many distinct characters, the most frequent (default 1000); others become [UNK]. */
  limitAlphabet?: number;
  /** Lower-case and strip accents before splitting (BERT "uncased", default true). */
  lowercase?: boolean;
  /** Longer words become [UNK] (default 100, BERT's; at most 250). */
  maxInputCharsPerWord?: number;
}

/** Options of `encode`/`encodeBatch`. */
export interface EncodeOptions {
  /** Wrap as `[CLS] ... [SEP]` (default true). */
  addSpecialTokens?: boolean;
  /** Longest sequence, special tokens included (needed for `padding: 'maxLength'` and `truncation`). */
  maxLength?: number;
  /**
   * `'maxLength'`: pad to `maxLength`; `'longest'` (or true): pad to the longest sequence of the
   * batch; false: no padding (default false for `encode`, `'longest'` for `encodeBatch`).
   */
  padding?: boolean | 'longest' | 'maxLength';
  /** Cut sequences longer than `maxLength` (keeping the final [SEP]); default true when `maxLength` is set. */
  truncation?: boolean;
}

/** One encoded text. */
export interface Encoding {
  /** Token ids. */
  ids: Int32Array;
  /** 1 for a real token, 0 for padding. */
  attentionMask: Int32Array;
  /** The tokens themselves (padding included). */
  tokens: string[];
}

/** A batch of encoded texts as tensors `[batch, length]` (the caller disposes them). */
export interface BatchEncoding {
  /** int32 token ids. */
  inputIds: Tensor;
  /** int32: 1 for a real token, 0 for padding (the `keyMask` of attention). */
  attentionMask: Tensor;
}

/** The JSON form of a tokenizer (`toJSON()`), what `fromJSON` accepts. */
export interface WordPieceJson {
  /** The tokenizer kind. */
  type: 'WordPiece';
  /** The file format's version. */
  version: 1;
  /** See `WordPieceTokenizer.lowercase`. */
  lowercase: boolean;
  /** See `WordPieceTokenizer.maxInputCharsPerWord`. */
  maxInputCharsPerWord: number;
  /** Token of each id. */
  vocab: string[];
}

const PUNCT = /^[\p{P}\p{S}]$/u;
const MARK = /\p{Mn}/gu;
const CONTROL = /[\p{Cc}\p{Cf}\uFFFD]/gu;

/** BERT's basic pre-tokenization: the words of `text`. */
export function preTokenize(text: string, lowercase = true): string[] {
  if (typeof text !== 'string') throw new ArgumentError(`preTokenize needs a string, got ${describe(text)}`);
  checkBool(lowercase, 'preTokenize lowercase');
  let t = text.replace(CONTROL, ' ');
  if (lowercase) t = t.toLowerCase().normalize('NFD').replace(MARK, '');
  const words: string[] = [];
  for (const chunk of t.split(/\s+/u)) {
    let cur = '';
    for (const ch of chunk) {
      if (PUNCT.test(ch)) {
        if (cur) words.push(cur);
        words.push(ch);
        cur = '';
      } else cur += ch;
    }
    if (cur) words.push(cur);
  }
  return words;
}

const JSON_SCHEMA = v.object({
  type: v.literal('WordPiece'),
  version: v.literal(1),
  lowercase: v.boolean(),
  maxInputCharsPerWord: v.int({ min: 1, max: MAX_WORD_CHARS }),
  vocab: v.array(v.string({ minLength: 1, maxLength: MAX_TOKEN_CHARS }), { min: SPECIAL_TOKENS.length, max: MAX_VOCAB }),
});

/** A WordPiece tokenizer: a vocabulary (id → token) with BERT's special tokens at ids 0..4. */
export class WordPieceTokenizer {
  /** Token of each id. */
  readonly vocab: readonly string[];
  /** Lower-case and strip accents before splitting ("uncased"). */
  readonly lowercase: boolean;
  /** Longer words become `[UNK]`. */
  readonly maxInputCharsPerWord: number;
  readonly #ids = new Map<string, number>();

  /** A tokenizer over `vocab` (id → token); it must start with `[PAD] [UNK] [CLS] [SEP] [MASK]` and hold no duplicate. */
  constructor(vocab: string[], opts: { lowercase?: boolean; maxInputCharsPerWord?: number } = {}) {
    checkOptions(opts, 'WordPieceTokenizer options');
    if (!Array.isArray(vocab)) throw new ArgumentError(`WordPieceTokenizer needs a vocabulary (an array of tokens), got ${describe(vocab)}`);
    if (vocab.length > MAX_VOCAB) throw new ArgumentError(`WordPieceTokenizer: ${vocab.length} tokens, more than the ${MAX_VOCAB} allowed`);
    this.lowercase = opts.lowercase === undefined ? true : checkBool(opts.lowercase, 'WordPieceTokenizer lowercase');
    this.maxInputCharsPerWord = opts.maxInputCharsPerWord === undefined ? 100 : checkInt(opts.maxInputCharsPerWord, 'WordPieceTokenizer maxInputCharsPerWord', 1, MAX_WORD_CHARS);
    SPECIAL_TOKENS.forEach((s, i) => {
      if (vocab[i] !== s) throw new ArgumentError(`WordPieceTokenizer: vocabulary entry ${i} must be ${s}, got ${describe(vocab[i])}`);
    });
    vocab.forEach((tok, i) => {
      if (typeof tok !== 'string' || tok.length === 0 || tok.length > MAX_TOKEN_CHARS) throw new ArgumentError(`WordPieceTokenizer: token ${i} must be a string of 1 to ${MAX_TOKEN_CHARS} characters, got ${describe(tok)}`);
      if (this.#ids.has(tok)) throw new ArgumentError(`WordPieceTokenizer: token ${JSON.stringify(tok)} appears twice (ids ${this.#ids.get(tok)} and ${i})`);
      this.#ids.set(tok, i);
    });
    this.vocab = Object.freeze(vocab.slice());
  }

  /** Learns a vocabulary from `texts` (see the module comment); deterministic. */
  static train(texts: string[], opts: WordPieceTrainOptions = {}): WordPieceTokenizer {
    checkOptions(opts, 'WordPieceTokenizer.train options');
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) throw new ArgumentError(`WordPieceTokenizer.train needs an array of strings, got ${describe(texts)}`);
    const vocabSize = opts.vocabSize === undefined ? 2000 : checkInt(opts.vocabSize, 'WordPieceTokenizer.train vocabSize', SPECIAL_TOKENS.length + 1, MAX_VOCAB);
    const minFrequency = opts.minFrequency === undefined ? 2 : checkInt(opts.minFrequency, 'WordPieceTokenizer.train minFrequency', 1);
    const limitAlphabet = opts.limitAlphabet === undefined ? 1000 : checkSize(opts.limitAlphabet, 'WordPieceTokenizer.train limitAlphabet', 1);
    const lowercase = opts.lowercase === undefined ? true : checkBool(opts.lowercase, 'WordPieceTokenizer.train lowercase');
    const maxChars = opts.maxInputCharsPerWord === undefined ? 100 : checkInt(opts.maxInputCharsPerWord, 'WordPieceTokenizer.train maxInputCharsPerWord', 1, MAX_WORD_CHARS);

    const counts = new Map<string, number>();
    for (const t of texts) {
      for (const w of preTokenize(t, lowercase)) if ([...w].length <= maxChars) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    // Alphabet: the most frequent characters (ties by code point), each as a word start and as `##c`.
    const charCount = new Map<string, number>();
    for (const [w, n] of counts) for (const c of w) charCount.set(c, (charCount.get(c) ?? 0) + n);
    const alphabet = [...charCount.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, limitAlphabet).map(([c]) => c).sort();
    const keep = new Set(alphabet);
    const vocab: string[] = [...SPECIAL_TOKENS];
    const idOf = new Map<string, number>();
    const add = (tok: string): number => {
      let id = idOf.get(tok);
      if (id === undefined) {
        id = vocab.length;
        vocab.push(tok);
        idOf.set(tok, id);
      }
      return id;
    };
    for (const c of alphabet) add(c);
    for (const c of alphabet) add(PREFIX + c);
    // Words as id sequences, in sorted order; a word with a character outside the alphabet is [UNK] anyway.
    const words: number[][] = [];
    const freq: number[] = [];
    for (const [w, n] of [...counts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      const chars = [...w];
      if (!chars.every((c) => keep.has(c))) continue;
      words.push(chars.map((c, i) => idOf.get(i === 0 ? c : PREFIX + c)!));
      freq.push(n);
    }
    mergePairs(words, freq, vocab, add, vocabSize, minFrequency);
    return new WordPieceTokenizer(vocab.slice(0, Math.max(vocabSize, SPECIAL_TOKENS.length + 2 * alphabet.length)), { lowercase, maxInputCharsPerWord: maxChars });
  }

  /** Number of tokens. */
  get vocabSize(): number {
    return this.vocab.length;
  }
  /** Id of `[PAD]` (0). */
  get padId(): number { return 0; }
  /** Id of `[UNK]` (1). */
  get unkId(): number { return 1; }
  /** Id of `[CLS]` (2). */
  get clsId(): number { return 2; }
  /** Id of `[SEP]` (3). */
  get sepId(): number { return 3; }
  /** Id of `[MASK]` (4). */
  get maskId(): number { return 4; }
  /** Number of special tokens (they hold ids `0..numSpecial-1`). */
  get numSpecial(): number { return SPECIAL_TOKENS.length; }

  /** The id of `token`, or undefined. */
  tokenToId(token: string): number | undefined {
    if (typeof token !== 'string') throw new ArgumentError(`tokenToId needs a string, got ${describe(token)}`);
    return this.#ids.get(token);
  }

  /** The WordPiece tokens of `text` (no special tokens). */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new ArgumentError(`tokenize needs a string, got ${describe(text)}`);
    const out: string[] = [];
    for (const w of preTokenize(text, this.lowercase)) this.#pieces(w, out);
    return out;
  }

  #pieces(word: string, out: string[]): void {
    const chars = [...word];
    if (chars.length > this.maxInputCharsPerWord) {
      out.push('[UNK]');
      return;
    }
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | null = null;
      while (start < end) {
        const sub = (start > 0 ? PREFIX : '') + chars.slice(start, end).join('');
        if (this.#ids.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === null) {
        out.push('[UNK]');
        return;
      }
      pieces.push(found);
      start = end;
    }
    out.push(...pieces);
  }

  /** Encodes one text: ids, attention mask and tokens. */
  encode(text: string, opts: EncodeOptions = {}): Encoding {
    if (typeof text !== 'string') throw new ArgumentError(`encode needs a string, got ${describe(text)}`);
    const o = this.#checkEncode(opts, 'encode', false);
    const toks = this.#withSpecials(this.tokenize(text), o);
    const len = o.padding === 'maxLength' ? o.maxLength! : toks.length;
    return this.#pack(toks, len);
  }

  /** Encodes texts into `[batch, length]` int32 tensors of ids and attention masks (padded, default to the longest). */
  encodeBatch(texts: string[], opts: EncodeOptions = {}): BatchEncoding {
    if (!Array.isArray(texts) || texts.some((t) => typeof t !== 'string')) throw new ArgumentError(`encodeBatch needs an array of strings, got ${describe(texts)}`);
    const o = this.#checkEncode(opts, 'encodeBatch', true);
    const seqs = texts.map((t) => this.#withSpecials(this.tokenize(t), o));
    const longest = seqs.reduce((m, s) => Math.max(m, s.length), 0);
    if (o.padding === false && seqs.some((s) => s.length !== longest)) throw new ArgumentError('encodeBatch with padding: false needs texts of the same token length; pad them (padding: "longest" or "maxLength")');
    const len = o.padding === 'maxLength' ? o.maxLength! : longest;
    const ids = new Int32Array(texts.length * len);
    const mask = new Int32Array(texts.length * len);
    seqs.forEach((s, b) => {
      const e = this.#pack(s, len);
      ids.set(e.ids, b * len);
      mask.set(e.attentionMask, b * len);
    });
    const inputIds = tensor(ids, [texts.length, len], 'int32');
    return { inputIds, attentionMask: tensor(mask, [texts.length, len], 'int32') };
  }

  /** Text of `ids`: pieces glued back into words, words joined by spaces (special tokens skipped by default). */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    checkLengths(ids, 'decode');
    checkOptions(opts, 'decode options');
    const skip = opts.skipSpecialTokens === undefined ? true : checkBool(opts.skipSpecialTokens, 'decode skipSpecialTokens');
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const tok = Number.isInteger(id) ? this.vocab[id] : undefined;
      if (tok === undefined) throw new ArgumentError(`decode: token id ${describe(id)} is outside the vocabulary (size ${this.vocabSize})`);
      if (skip && id < SPECIAL_TOKENS.length) continue;
      if (tok.startsWith(PREFIX) && tok.length > PREFIX.length) s += tok.slice(PREFIX.length);
      else s += (s ? ' ' : '') + tok;
    }
    return s;
  }

  /** The tokenizer as JSON data (`WordPieceJson`); `JSON.stringify` it to save. */
  toJSON(): WordPieceJson {
    return { type: 'WordPiece', version: 1, lowercase: this.lowercase, maxInputCharsPerWord: this.maxInputCharsPerWord, vocab: [...this.vocab] };
  }

  /** A tokenizer from `toJSON()`'s output, as text, UTF-8 bytes or parsed data; FormatError for anything malformed. */
  static fromJSON(source: string | Uint8Array | WordPieceJson): WordPieceTokenizer {
    const data = typeof source === 'string' || source instanceof Uint8Array
      ? parseJson(source, 'tokenizer file', { maxBytes: 64 * 1024 * 1024, maxDepth: 4 })
      : source;
    const j = validate(JSON_SCHEMA, data, 'tokenizer file');
    try {
      return new WordPieceTokenizer(j.vocab, { lowercase: j.lowercase, maxInputCharsPerWord: j.maxInputCharsPerWord });
    } catch (e) {
      if (e instanceof ArgumentError) throw new FormatError(`tokenizer file: ${e.message}`);
      throw e;
    }
  }

  #checkEncode(opts: EncodeOptions, who: string, batch: boolean): Required<Omit<EncodeOptions, 'maxLength'>> & { maxLength?: number } {
    const o = checkOptions(opts, `${who} options`);
    const maxLength = o.maxLength === undefined ? undefined : checkInt(o.maxLength, `${who} maxLength`, 2, 1 << 20);
    const add = o.addSpecialTokens === undefined ? true : checkBool(o.addSpecialTokens, `${who} addSpecialTokens`);
    let padding: false | 'longest' | 'maxLength';
    if (o.padding === undefined) padding = batch ? 'longest' : false;
    else if (o.padding === true || o.padding === 'longest') padding = 'longest';
    else if (o.padding === false || o.padding === 'maxLength') padding = o.padding;
    else throw new ArgumentError(`${who} padding must be true, false, 'longest' or 'maxLength', got ${describe(o.padding)}`);
    if (padding === 'maxLength' && maxLength === undefined) throw new ArgumentError(`${who}: padding 'maxLength' needs maxLength`);
    const truncation = o.truncation === undefined ? maxLength !== undefined : checkBool(o.truncation, `${who} truncation`);
    if (truncation && maxLength === undefined) throw new ArgumentError(`${who}: truncation needs maxLength`);
    return { addSpecialTokens: add, maxLength, padding: padding as Required<EncodeOptions>['padding'], truncation };
  }

  #withSpecials(toks: string[], o: { addSpecialTokens: boolean; maxLength?: number; truncation: boolean; padding: unknown }): string[] {
    const room = o.maxLength === undefined ? Infinity : o.maxLength - (o.addSpecialTokens ? 2 : 0);
    if (toks.length > room) {
      if (!o.truncation) throw new ArgumentError(`a text of ${toks.length} tokens does not fit maxLength ${o.maxLength}; set truncation: true`);
      toks = toks.slice(0, room);
    }
    const seq = o.addSpecialTokens ? ['[CLS]', ...toks, '[SEP]'] : toks;
    if (o.padding === 'maxLength' && seq.length > o.maxLength!) throw new ArgumentError(`a text of ${seq.length} tokens does not fit maxLength ${o.maxLength}`);
    return seq;
  }

  #pack(toks: string[], len: number): Encoding {
    const ids = new Int32Array(len);
    const mask = new Int32Array(len);
    const tokens = toks.slice();
    toks.forEach((t, i) => {
      ids[i] = this.#ids.get(t) ?? 1;
      mask[i] = 1;
    });
    for (let i = toks.length; i < len; i++) tokens.push('[PAD]');
    return { ids, attentionMask: mask, tokens };
  }
}

const PAIR = 2 ** 20; // > any id (MAX_VOCAB): a pair (a, b) is the number a·PAIR + b

/**
 * The merge loop of `train`: repeatedly merges the most frequent adjacent pair (count >=
 * `minFrequency`; ties: the smallest ids, i.e. the earliest learned) until the vocabulary reaches
 * `vocabSize`. Pair counts are kept incrementally: only the words holding the merged pair are recounted.
 */
function mergePairs(words: number[][], freq: number[], vocab: string[], add: (tok: string) => number, vocabSize: number, minFrequency: number): void {
  const count = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const account = (wi: number, sign: 1 | -1): void => {
    const w = words[wi];
    for (let i = 0; i + 1 < w.length; i++) {
      const k = w[i] * PAIR + w[i + 1];
      count.set(k, (count.get(k) ?? 0) + sign * freq[wi]);
      if (sign > 0) {
        let s = where.get(k);
        if (!s) where.set(k, (s = new Set()));
        s.add(wi);
      } else where.get(k)?.delete(wi);
    }
  };
  for (let wi = 0; wi < words.length; wi++) account(wi, 1);
  while (vocab.length < vocabSize) {
    let best = -1;
    let bestN = 0;
    for (const [k, n] of count) if (n > bestN || (n === bestN && n > 0 && k < best)) [best, bestN] = [k, n];
    if (best < 0 || bestN < minFrequency) break;
    const a = Math.floor(best / PAIR);
    const b = best - a * PAIR;
    const merged = add(vocab[a] + vocab[b].slice(PREFIX.length));
    for (const wi of [...(where.get(best) ?? [])].sort((x, y) => x - y)) {
      account(wi, -1);
      const w = words[wi];
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(w[i]);
      }
      words[wi] = out;
      account(wi, 1);
    }
    count.delete(best);
    where.delete(best);
  }
}
