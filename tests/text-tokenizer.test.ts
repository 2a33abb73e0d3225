/**
 * The WordPiece tokenizer (issue 18 §1): BERT pre-tokenization, deterministic training (the same
 * vocabulary in Node and Chromium), greedy longest-match encoding, special tokens, padding,
 * truncation and attention masks, decoding, and the JSON file (round trip; hostile files are
 * FormatErrors).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';
import { fnv1a } from './explain-fixtures.js';

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

const { WordPieceTokenizer, preTokenize } = eg.nn;

const CORPUS = [
  'Free entry in 2 a weekly competition to win FA Cup final tickets! Text FA to 87121.',
  'Ok lar... Joking with you, only.',
  'Winner!! As a valued network customer you have been selected to receive a prize reward.',
  'I am going to the cinema tonight, are you coming?',
  'Going home now; winning is fun and the winners are coming home.',
  'Café crème for the winners: free tickets and free entries.',
  'Had your mobile 11 months or more? You are entitled to update to the latest colour mobiles.',
  'I will call you later, I am in a meeting. Call me when you are free.',
];

function trained(): eg.nn.WordPieceTokenizer {
  return WordPieceTokenizer.train(CORPUS, { vocabSize: 120, minFrequency: 2 });
}

describe('pre-tokenization', () => {
  it('lower-cases, strips accents, splits on white space and makes punctuation its own word', () => {
    expect(preTokenize('Café  crème,brûlée! 2x$5')).toEqual(['cafe', 'creme', ',', 'brulee', '!', '2x', '$', '5']);
    expect(preTokenize('Café', false)).toEqual(['Café']);
    expect(preTokenize('  \t\n ')).toEqual([]);
  });
});

describe('training', () => {
  it('starts with the special tokens, holds the alphabet, reaches the size and merges frequent words', () => {
    const t = trained();
    expect(t.vocab.slice(0, 5)).toEqual(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
    expect([t.padId, t.unkId, t.clsId, t.sepId, t.maskId]).toEqual([0, 1, 2, 3, 4]);
    expect(t.vocabSize).toBe(120);
    for (const c of 'abcdefghiklmnoprstuvwy') expect(t.tokenToId(c), c).toBeDefined();
    expect(t.tokenToId('##e')).toBeDefined();
    // Frequent words end up whole.
    for (const w of ['free', 'the', 'you']) expect(t.tokenize(w), w).toEqual([w]);
    expect(new Set(t.vocab).size).toBe(t.vocabSize);
  });

  it('is deterministic: the same corpus gives the same vocabulary (and the same one in every runtime)', () => {
    const a = trained();
    const b = trained();
    expect(b.vocab).toEqual(a.vocab);
    // A digest of the vocabulary, fixed: Node and Chromium must both produce it.
    const codes = a.vocab.flatMap((tok) => [...tok].map((c) => c.codePointAt(0)!).concat(0));
    expect(fnv1a(codes)).toBe(VOCAB_DIGEST);
  });

  it('stops early when no pair reaches minFrequency', () => {
    const t = WordPieceTokenizer.train(['abc xyz'], { vocabSize: 500, minFrequency: 2 });
    expect(t.vocabSize).toBe(5 + 2 * 6);
  });

  it('refuses bad arguments with typed errors', () => {
    expect(() => WordPieceTokenizer.train('text' as never)).toThrow(eg.ArgumentError);
    expect(() => WordPieceTokenizer.train(CORPUS, { vocabSize: 3 })).toThrow(eg.ArgumentError);
    expect(() => WordPieceTokenizer.train(CORPUS, { minFrequency: 0 })).toThrow(eg.ArgumentError);
    expect(() => new WordPieceTokenizer(['a', 'b'])).toThrow(/entry 0 must be \[PAD\]/);
  });
});

/** The vocabulary digest of `trained()` (see the determinism test). */
const VOCAB_DIGEST = '41418cca';

describe('encoding', () => {
  it('pieces words greedily, longest first, with ## continuations; unknown characters become [UNK]', () => {
    const t = trained();
    const toks = t.tokenize('winnings');
    expect(toks[0]).toMatch(/^win/);
    expect(toks.slice(1).every((p) => p.startsWith('##'))).toBe(true);
    expect(toks.join('').replace(/##/g, '')).toBe('winnings');
    expect(t.tokenize('free 😀 win')).toEqual(['free', '[UNK]', 'win']);
    const long = new WordPieceTokenizer(t.vocab.slice(), { maxInputCharsPerWord: 4 });
    expect(long.tokenize('winners')).toEqual(['[UNK]']);
  });

  it('wraps in [CLS] … [SEP], pads to maxLength with a 0 attention mask, truncates keeping [SEP]', () => {
    const t = trained();
    const e = t.encode('Free tickets!', { maxLength: 10, padding: 'maxLength' });
    expect(e.tokens.slice(0, 5)).toEqual(['[CLS]', 'free', ...t.tokenize('tickets'), '!', '[SEP]'].slice(0, 5));
    expect(e.ids.length).toBe(10);
    const real = e.tokens.filter((x) => x !== '[PAD]').length;
    expect(Array.from(e.attentionMask)).toEqual([...Array(real).fill(1), ...Array(10 - real).fill(0)]);
    expect(Array.from(e.ids.slice(real))).toEqual(Array(10 - real).fill(0));
    const cut = t.encode(CORPUS[2], { maxLength: 6 });
    expect(cut.ids.length).toBe(6);
    expect(cut.tokens[0]).toBe('[CLS]');
    expect(cut.tokens[5]).toBe('[SEP]');
    expect(Array.from(cut.attentionMask)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(() => t.encode(CORPUS[2], { maxLength: 6, truncation: false })).toThrow(eg.ArgumentError);
    const bare = t.encode('free', { addSpecialTokens: false });
    expect(bare.tokens).toEqual(['free']);
  });

  it('encodeBatch gives int32 [batch, length] ids and masks, padded to the longest or to maxLength', () => {
    const t = trained();
    const texts = ['free', 'call me later', 'ok'];
    const b = t.encodeBatch(texts);
    expect(b.inputIds.dtype).toBe('int32');
    const len = Math.max(...texts.map((x) => t.tokenize(x).length + 2));
    expect(b.inputIds.shape).toEqual([3, len]);
    const ids = b.inputIds.dataSync();
    const mask = b.attentionMask.dataSync();
    texts.forEach((x, i) => {
      const one = t.encode(x);
      expect(Array.from(ids.slice(i * len, i * len + one.ids.length))).toEqual(Array.from(one.ids));
      expect(Array.from(mask.slice(i * len, (i + 1) * len)).reduce((s, v) => s + v, 0)).toBe(one.ids.length);
    });
    b.inputIds.dispose();
    b.attentionMask.dispose();
    const f = t.encodeBatch(texts, { maxLength: 16, padding: 'maxLength' });
    expect(f.inputIds.shape).toEqual([3, 16]);
    f.inputIds.dispose();
    f.attentionMask.dispose();
    expect(() => t.encodeBatch(texts, { padding: 'maxLength' })).toThrow(/needs maxLength/);
    expect(() => t.encodeBatch(texts, { padding: false })).toThrow(eg.ArgumentError);
    expect(() => t.encodeBatch([1] as never)).toThrow(eg.ArgumentError);
    expect(() => t.encode('x', { padding: 'yes' as never })).toThrow(eg.ArgumentError);
  });

  it('decode glues pieces back into the pre-tokenized words and skips special tokens', () => {
    const t = trained();
    for (const text of CORPUS.slice(0, 4)) {
      const e = t.encode(text, { maxLength: 64, padding: 'maxLength' });
      expect(t.decode(e.ids)).toBe(preTokenize(text).join(' '));
    }
    expect(t.decode([2, t.tokenToId('free')!, 3], { skipSpecialTokens: false })).toBe('[CLS] free [SEP]');
    expect(() => t.decode([t.vocabSize])).toThrow(eg.ArgumentError);
    expect(() => t.decode([0.5])).toThrow(eg.ArgumentError);
  });
});

describe('tokenizer files', () => {
  it('round-trips through JSON text and bytes with identical encodings', () => {
    const t = trained();
    const text = JSON.stringify(t.toJSON());
    for (const src of [text, new TextEncoder().encode(text), JSON.parse(text)]) {
      const u = WordPieceTokenizer.fromJSON(src);
      expect(u.vocab).toEqual(t.vocab);
      for (const s of CORPUS) expect(Array.from(u.encode(s).ids)).toEqual(Array.from(t.encode(s).ids));
    }
    const cased = WordPieceTokenizer.fromJSON({ ...t.toJSON(), lowercase: false });
    expect(cased.lowercase).toBe(false);
  });

  it('refuses hostile or malformed files with a FormatError, never a crash', () => {
    const good = trained().toJSON();
    const bad: [string, unknown][] = [
      ['not JSON', '{"type": "WordPiece",'],
      ['not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
      ['deep nesting', '['.repeat(10_000) + ']'.repeat(10_000)],
      ['wrong type', { ...good, type: 'BPE' }],
      ['wrong version', { ...good, version: 2 }],
      ['vocab not an array', { ...good, vocab: 'abc' }],
      ['missing specials', { ...good, vocab: ['a', 'b', 'c', 'd', 'e', 'f'] }],
      ['duplicate token', { ...good, vocab: [...good.vocab, good.vocab[7]] }],
      ['empty token', { ...good, vocab: [...good.vocab, ''] }],
      ['over-long token', { ...good, vocab: [...good.vocab, 'x'.repeat(513)] }],
      ['number token', { ...good, vocab: [...good.vocab, 7] }],
      ['bad maxInputCharsPerWord', { ...good, maxInputCharsPerWord: -1 }],
      ['huge maxInputCharsPerWord', { ...good, maxInputCharsPerWord: 251 }],
      ['missing field', { type: 'WordPiece', version: 1, vocab: good.vocab }],
      ['null', 'null'],
      ['array', '[]'],
    ];
    for (const [what, src] of bad) expect(() => WordPieceTokenizer.fromJSON(src as string), what).toThrow(eg.FormatError);
    // Over the size limit: refused before parsing.
    expect(() => WordPieceTokenizer.fromJSON(' '.repeat(64 * 1024 * 1024 + 1))).toThrow(/bytes, more than/);
  });
});
