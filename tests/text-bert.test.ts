/**
 * The BERT encoder, masked-LM pretraining and fine-tuning (issue 18 §1): Linear names adapters
 * target, padding never attended to (weights exactly 0), the tied MLM decoder, the 80/10/10
 * masking statistics (seeded, identical in Node and Chromium), `mlmStep` inside `fit`, pooling,
 * freezing, layer-wise LR decay, warm-up + linear decay, F1 and early stopping on it, config round
 * trip, typed errors and flat memory.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { expectEachTestFreesItsTensors, setup } from './helpers.js';
import { bits, fnv1a } from './explain-fixtures.js';

beforeAll(async () => {
  await setup();
});
expectEachTestFreesItsTensors();

const { nn } = eg;
const V = 40;
const CFG: eg.nn.BertConfig = { vocabSize: V, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 12, dropout: 0, seed: 7 };

/** `[rows, 8]` int32 ids: [CLS] tokens [SEP] then [PAD]s, row r holding 2 + (r % 5) real tokens. */
function batch(rows = 6, len = 8): { ids: eg.Tensor; real: number[] } {
  const ids = new Int32Array(rows * len);
  const real: number[] = [];
  for (let r = 0; r < rows; r++) {
    const n = 2 + (r % 5);
    ids[r * len] = 2;
    for (let i = 1; i <= n; i++) ids[r * len + i] = 5 + ((r * 7 + i * 3) % (V - 5));
    ids[r * len + n + 1] = 3;
    real.push(n + 2);
  }
  return { ids: eg.tensor(ids, [rows, len], 'int32'), real };
}

describe('BertEncoder', () => {
  it('names its Linear layers attn.q/k/v/out and mlp.fc1/fc2 and maps ids to [batch, length, hidden]', () => {
    const m = new nn.BertEncoder(CFG);
    const names = m.namedParameters().map(([n]) => n);
    for (const l of ['attn.q', 'attn.k', 'attn.v', 'attn.out', 'mlp.fc1', 'mlp.fc2']) expect(names).toContain(`layers.1.${l}.weight`);
    expect(names).toContain('embeddings.tok.weight');
    expect(names).toContain('embeddings.pos.weight');
    const { ids } = batch();
    const h = m.forward(ids);
    expect(h.shape).toEqual([6, 8, 16]);
    h.dispose();
    ids.dispose();
    m.dispose();
  });

  it('never attends to padding: weights on [PAD] keys are exactly 0, and extra padding changes nothing', () => {
    const m = new nn.BertEncoder(CFG).keepAttentionWeights();
    const { ids, real } = batch(5, 8);
    const h = m.forward(ids);
    for (const w of m.attentionMaps()) {
      const d = w!.dataSync();
      expect(w!.shape).toEqual([5, 2, 8, 8]);
      for (let b = 0; b < 5; b++) {
        for (let hd = 0; hd < 2; hd++) {
          for (let q = 0; q < 8; q++) {
            let sum = 0;
            for (let k = 0; k < 8; k++) {
              const v = d[((b * 2 + hd) * 8 + q) * 8 + k];
              if (k >= real[b]) expect(v).toBe(0);
              sum += v;
            }
            expect(sum).toBeCloseTo(1, 5);
          }
        }
      }
    }
    // The same rows padded to 12: real positions keep their states (to rounding).
    const wide = eg.tidy(() => eg.concat([ids, eg.zeros([5, 4], 'int32')], 1));
    const h2 = m.forward(wide);
    const a = h.dataSync();
    const b2 = h2.dataSync();
    for (let r = 0; r < 5; r++) {
      for (let t = 0; t < real[r]; t++) for (let c = 0; c < 16; c++) expect(Math.abs(a[(r * 8 + t) * 16 + c] - b2[(r * 12 + t) * 16 + c])).toBeLessThan(1e-5);
    }
    // An explicit attention mask means the same as the padding ids.
    const mask = eg.tidy(() => ids.cast('float32').notEqual(0));
    const h3 = m.forward(ids, mask);
    expect(bits(h3)).toEqual(bits(h));
    for (const t of [h, h2, h3, wide, mask, ids]) t.dispose();
    m.dispose();
  });

  it('refuses bad configs and inputs with typed errors', () => {
    expect(() => new nn.BertEncoder({ vocabSize: 0 })).toThrow(eg.ArgumentError);
    expect(() => new nn.BertEncoder({ vocabSize: 10, hiddenSize: 10, numHeads: 3 })).toThrow(/multiple of numHeads/);
    expect(() => new nn.BertEncoder({ vocabSize: 10, dropout: 1 })).toThrow(eg.ArgumentError);
    expect(() => new nn.BertEncoder({ vocabSize: 10, padTokenId: 10 })).toThrow(eg.ArgumentError);
    const m = new nn.BertEncoder(CFG);
    const f = eg.zeros([2, 4]);
    const long = eg.zeros([1, 13], 'int32');
    const ids = eg.zeros([2, 4], 'int32');
    const badMask = eg.ones([2, 3]);
    expect(() => m.forward(f)).toThrow(eg.DTypeError);
    expect(() => m.forward(long)).toThrow(/exceeds maxPositions/);
    expect(() => m.forward(ids, badMask)).toThrow(eg.ShapeError);
    for (const t of [f, long, ids, badMask]) t.dispose();
    m.dispose();
  });
});

describe('BertForMaskedLM', () => {
  it('ties the decoder to the token embedding (one tensor, one state-dict entry)', () => {
    const m = new nn.BertForMaskedLM(CFG);
    const keys = Object.keys(m.stateDict());
    expect(keys.filter((k) => m.stateDict()[k] === m.bert.embeddings.tokenWeight)).toEqual(['bert.embeddings.tok.weight']);
    expect(keys.some((k) => /decoder/.test(k))).toBe(false);
    const { ids } = batch();
    const h = m.bert.forward(ids);
    const [logits, manual] = eg.tidy(() => {
      const t = m.getModule('mlm').forward(h).reshape([-1, 16]);
      const man = t.matmul(m.bert.embeddings.tokenWeight.transpose(0, 1)).add(m.stateDict().mlm_bias).reshape([6, 8, V]);
      return [m.forward(ids), man];
    });
    expect(logits.shape).toEqual([6, 8, V]);
    const a = logits.dataSync();
    const b = manual.dataSync();
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
    // The MLM loss's gradient reaches the embedding table through the decoder too.
    const labels = eg.tensor(Int32Array.from({ length: 48 }, (_, i) => (i % 8 === 1 ? 9 : -100)), [6, 8], 'int32');
    const r = m.maskedLoss(ids, labels);
    expect(r.count).toBe(6);
    r.loss.backward();
    const g = m.bert.embeddings.tokenWeight.grad!.dataSync();
    expect(Math.abs(g[9 * 16])).toBeGreaterThan(0);
    for (const t of [h, logits, manual, labels, r.loss, ids]) t.dispose();
    m.dispose();
  });

  it('masks 15% of non-special tokens: 80% [MASK], 10% random, 10% kept (seeded, same bits everywhere)', () => {
    const rows = 400;
    const len = 100;
    const src = new Int32Array(rows * len);
    for (let i = 0; i < src.length; i++) src[i] = i % 10 === 0 ? i % 5 : 5 + ((i * 7919) % 995);
    const ids = eg.tensor(src, [rows, len], 'int32');
    const { inputIds, labels } = nn.maskTokens(ids, { vocabSize: 1000, seed: 11 });
    const out = inputIds.dataSync();
    const lab = labels.dataSync();
    let eligible = 0;
    let sel = 0;
    let masked = 0;
    let kept = 0;
    let random = 0;
    let broken = 0; // positions that break the rule (counted, not asserted one by one: 40,000 of them)
    for (let i = 0; i < src.length; i++) {
      if (src[i] < 5) {
        if (lab[i] !== -100 || out[i] !== src[i]) broken++;
        continue;
      }
      eligible++;
      if (lab[i] === -100) {
        if (out[i] !== src[i]) broken++;
        continue;
      }
      sel++;
      if (lab[i] !== src[i]) broken++;
      if (out[i] === 4) masked++;
      else if (out[i] === src[i]) kept++;
      else {
        random++;
        if (out[i] < 5 || out[i] >= 1000) broken++;
      }
    }
    expect(broken).toBe(0);
    // Binomial tolerances of about 4 standard deviations.
    expect(Math.abs(sel / eligible - 0.15)).toBeLessThan(4 * Math.sqrt((0.15 * 0.85) / eligible));
    expect(Math.abs(masked / sel - 0.8)).toBeLessThan(4 * Math.sqrt((0.8 * 0.2) / sel));
    expect(Math.abs(random / sel - 0.1)).toBeLessThan(4 * Math.sqrt((0.1 * 0.9) / sel) + 0.002);
    expect(Math.abs(kept / sel - 0.1)).toBeLessThan(4 * Math.sqrt((0.1 * 0.9) / sel) + 0.002);
    // Seeded: the same draw again; another seed, another draw; fixed bits in Node and Chromium.
    const again = nn.maskTokens(ids, { vocabSize: 1000, seed: 11 });
    const other = nn.maskTokens(ids, { vocabSize: 1000, seed: 12 });
    expect(Array.from(again.inputIds.dataSync())).toEqual(Array.from(out));
    expect(Array.from(other.labels.dataSync())).not.toEqual(Array.from(lab));
    expect(fnv1a([...out, ...lab].map((x) => x >>> 0))).toBe(MASK_DIGEST);
    for (const t of [ids, inputIds, labels, again.inputIds, again.labels, other.inputIds, other.labels]) t.dispose();
  });

  it('refuses bad masking options and all-ignored labels with typed errors', () => {
    const ids = eg.zeros([2, 4], 'int32');
    const f = eg.zeros([2, 4]);
    expect(() => nn.maskTokens(f, { vocabSize: 10 })).toThrow(eg.DTypeError);
    expect(() => nn.maskTokens(ids, { vocabSize: 10, probability: 2 })).toThrow(eg.ArgumentError);
    expect(() => nn.maskTokens(ids, { vocabSize: 10, maskFraction: 0.95, randomFraction: 0.1 })).toThrow(eg.ArgumentError);
    const m = new nn.BertForMaskedLM(CFG);
    const none = eg.full([2, 4], -100, 'int32');
    const wrong = eg.full([2, 4], V, 'int32');
    expect(() => m.maskedLoss(ids, none)).toThrow(/no position is labelled/);
    expect(() => m.maskedLoss(ids, wrong)).toThrow(eg.ArgumentError);
    for (const t of [ids, f, none, wrong]) t.dispose();
    m.dispose();
  });

  it('pretrains inside fit with mlmStep: the masked-LM loss falls, memory stays flat', async () => {
    const m = new nn.BertForMaskedLM({ ...CFG, hiddenSize: 32 });
    const { ids } = batch(20, 8);
    const opt = new eg.optim.AdamW(m.parameters(), { lr: 1e-2 });
    m.compile({ optimizer: opt, loss: 'mse', clipGradNorm: 1 });
    const seen: number[] = [];
    const h = await m.fit(ids, ids, { epochs: 30, batchSize: 10, verbose: 0, shuffle: false, trainStep: nn.mlmStep({ seed: 1, probability: 0.3, onBatch: (r) => seen.push(r.count) }) });
    const loss = h.history.loss;
    expect(seen.length).toBe(60);
    expect(seen.every((c) => c > 0)).toBe(true);
    const first = (loss[0] + loss[1]) / 2;
    const last = (loss.at(-1)! + loss.at(-2)!) / 2;
    expect(last).toBeLessThan(first * 0.8);
    opt.dispose();
    ids.dispose();
    m.dispose();
  });
});

/** Digest of `maskTokens`' output in the statistics test (fixed: Node and Chromium must match it). */
const MASK_DIGEST = '355ebb0e';

describe('BertForSequenceClassification and fine-tuning options', () => {
  it('pools [CLS] or the mean of real tokens (padding does not change the mean)', () => {
    for (const pooling of ['cls', 'mean'] as const) {
      const m = new nn.BertForSequenceClassification(CFG, { numClasses: 3, pooling });
      m.eval();
      const { ids, real } = batch(4, 8);
      const wide = eg.tidy(() => eg.concat([ids, eg.zeros([4, 3], 'int32')], 1));
      const [a, b, f] = eg.tidy(() => [m.forward(ids), m.forward(wide), m.features(ids)]);
      expect(a.shape).toEqual([4, 3]);
      expect(f.shape).toEqual([4, 16]);
      const da = a.dataSync();
      const db = b.dataSync();
      for (let i = 0; i < da.length; i++) expect(Math.abs(da[i] - db[i])).toBeLessThan(1e-5);
      if (pooling === 'mean') {
        const h = m.bert.forward(ids);
        const hd = h.dataSync();
        const fd = f.dataSync();
        for (let c = 0; c < 16; c++) {
          let s = 0;
          for (let t = 0; t < real[0]; t++) s += hd[t * 16 + c];
          expect(Math.abs(fd[c] - s / real[0])).toBeLessThan(1e-5);
        }
        h.dispose();
      }
      for (const t of [a, b, f, ids, wide]) t.dispose();
      m.dispose();
    }
  });

  it('loads a pretrained encoder, freezes it, and gives layer-wise decayed learning rates', async () => {
    const pre = new nn.BertForMaskedLM(CFG);
    const clf = new nn.BertForSequenceClassification({ ...CFG, seed: 99 });
    clf.bert.loadStateDict(pre.bert.stateDict());
    expect(bits(clf.bert.embeddings.tokenWeight)).toEqual(bits(pre.bert.embeddings.tokenWeight));
    const groups = nn.layerwiseLrGroups(clf, { lr: 1, decay: 0.5 });
    // head + ln_f: 1; layer 1: 0.5; layer 0: 0.25; embeddings: 0.125.
    expect(groups.map((g) => g.lr)).toEqual([1, 0.5, 0.25, 0.125]);
    expect(groups.map((g) => g.params.length)).toEqual([4, 16, 16, 2]);
    expect(groups.reduce((n, g) => n + g.params.length, 0)).toBe(clf.parameters().length);
    clf.freeze('bert');
    expect(nn.layerwiseLrGroups(clf, { lr: 1, decay: 0.5 }).map((g) => g.params.length)).toEqual([2]);
    const before = bits(clf.bert.embeddings.tokenWeight);
    const { ids } = batch(6, 8);
    const y = eg.tensor([0, 1, 0, 1, 0, 1], [6], 'int32');
    const opt = new eg.optim.Adam(clf.trainableParameters(), { lr: 0.01 });
    clf.compile({ optimizer: opt, loss: (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true }) });
    await clf.fit(ids, y, { epochs: 2, batchSize: 3, verbose: 0 });
    expect(bits(clf.bert.embeddings.tokenWeight)).toEqual(before);
    expect(() => nn.layerwiseLrGroups(clf, { lr: 1, decay: 0 })).toThrow(eg.ArgumentError);
    const plain = new eg.nn.Sequential(new eg.nn.Linear(2, 2));
    expect(() => nn.layerwiseLrGroups(plain, { lr: 1, decay: 0.9 })).toThrow(/holds no BertEncoder/);
    for (const t of [ids, y]) t.dispose();
    for (const m of [pre, clf, plain]) m.dispose();
    opt.dispose();
  });

  it('warm-up then linear decay (LinearWarmup + LinearLR) follows the expected rates', () => {
    const w = eg.zeros([1]);
    const opt = new eg.optim.SGD([w], { lr: 1 });
    const s = new eg.optim.LinearWarmup(opt, 4, new eg.optim.LinearLR(opt, 1, 0, 8), 0);
    const lrs = [opt.lr];
    for (let i = 0; i < 14; i++) {
      s.step();
      lrs.push(opt.lr);
    }
    expect(lrs.map((x) => Math.round(x * 1000) / 1000)).toEqual([0, 0.25, 0.5, 0.75, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0, 0, 0]);
    expect(() => new eg.optim.LinearLR(opt, 0, 1, 5)).toThrow(eg.ArgumentError);
    expect(() => new eg.optim.LinearLR(opt, 1, 0, 0)).toThrow(eg.ArgumentError);
    opt.dispose();
    w.dispose();
  });

  it('f1Score matches the definition; ValidationF1 logs val_f1 and EarlyStopping stops on it', async () => {
    const pred = eg.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]]);
    const y = eg.tensor([0, 1, 0, 1, 1], [5], 'int32');
    // class 1: tp 2, fp 1, fn 1 → 4/6; class 0: tp 1, fp 1, fn 1 → 0.5.
    expect(eg.train.f1Score(pred, y)).toBeCloseTo(2 / 3, 12);
    expect(eg.train.f1Score(pred, y, { average: 'macro' })).toBeCloseTo((2 / 3 + 0.5) / 2, 12);
    expect(eg.train.f1Score(pred, y, { positiveClass: 0 })).toBeCloseTo(0.5, 12);
    const probs = eg.tensor([0.9, 0.2, 0.6]);
    const y3 = eg.tensor([1, 0, 0], [3], 'int32');
    expect(eg.train.f1Score(probs, y3)).toBeCloseTo(2 / 3, 12);
    const wrong = eg.tensor([1, 0], [2], 'int32');
    expect(() => eg.train.f1Score(pred, wrong)).toThrow(eg.ShapeError);

    const clf = new nn.BertForSequenceClassification({ ...CFG, numLayers: 1 });
    const { ids } = batch(6, 8);
    const labels = eg.tensor([0, 1, 0, 1, 0, 1], [6], 'int32');
    const opt = new eg.optim.Adam(clf.parameters(), { lr: 0 }); // lr 0: F1 cannot improve, so it stops
    clf.compile({ optimizer: opt, loss: (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true }) });
    const stop = new eg.train.EarlyStopping({ monitor: 'val_f1', mode: 'max', patience: 1 });
    const h = await clf.fit(ids, labels, { epochs: 10, batchSize: 6, verbose: 0, callbacks: [new eg.train.ValidationF1(ids, labels), stop] });
    expect(h.history.val_f1.length).toBe(3);
    expect(stop.stoppedEpoch).toBe(2);
    for (const t of [pred, y, probs, y3, wrong, ids, labels]) t.dispose();
    clf.dispose();
    opt.dispose();
  });
});

describe('saving and memory', () => {
  it('rebuilds from its config with the same outputs after loading the state dict', () => {
    for (const m of [new nn.BertForMaskedLM(CFG), new nn.BertForSequenceClassification(CFG, { pooling: 'mean', numClasses: 4 })]) {
      const copy = nn.moduleFromConfig(m.toConfig());
      copy.loadStateDict(m.stateDict());
      const { ids } = batch();
      const [a, b] = eg.tidy(() => [m.forward(ids), copy.forward(ids)]);
      expect(bits(b)).toEqual(bits(a));
      for (const t of [a, b, ids]) t.dispose();
      m.dispose();
      copy.dispose();
    }
  });

  it('leaves the tensor count flat over 100 forwards and masked losses', () => {
    const m = new nn.BertForMaskedLM({ ...CFG, dropout: 0.1 });
    const { ids } = batch();
    const step = () => {
      const { inputIds, labels } = nn.maskTokens(ids, { vocabSize: V, probability: 0.5, seed: 3 });
      const r = m.maskedLoss(inputIds, labels);
      r.loss.backward();
      const y = m.forward(ids);
      for (const t of [inputIds, labels, r.loss, y]) t.dispose();
    };
    step();
    const live = eg.memory().numTensors;
    for (let i = 0; i < 100; i++) step();
    expect(eg.memory().numTensors).toBe(live);
    ids.dispose();
    m.dispose();
  });
});
