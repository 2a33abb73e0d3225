/**
 * Pretraining a character-level GPT on Tiny Shakespeare: next-character prediction, validation
 * loss (nats per character) on the held-out last 10%, then text generation with temperature and
 * top-k, a checkpoint (model.json + model.safetensors) that is reloaded and checked, attention
 * maps of the last layer, and a report in reports/char-gpt/.
 *
 *   time npx tsx examples/char-gpt.ts                 # trains for a wall-clock budget (default 8 min)
 *   npx tsx examples/char-gpt.ts --steps 600          # a fixed number of steps instead
 *   npx tsx examples/char-gpt.ts --minutes 2 --prompt "ROMEO:"
 *
 * With a time budget the learning-rate schedule (warm-up, then cosine) follows the elapsed
 * fraction of the budget, so the run adapts to the machine; with --steps it follows the step count.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as eg from 'edgegrad';

const { values: a } = parseArgs({
  options: {
    minutes: { type: 'string', default: '8' },
    steps: { type: 'string' },
    batch: { type: 'string', default: '16' },
    block: { type: 'string', default: '64' },
    layers: { type: 'string', default: '4' },
    heads: { type: 'string', default: '4' },
    embd: { type: 'string', default: '128' },
    lr: { type: 'string', default: '3e-3' },
    dropout: { type: 'string', default: '0' },
    'eval-every': { type: 'string', default: '100' },
    'eval-batches': { type: 'string', default: '8' },
    tokens: { type: 'string', default: '500' },
    temperature: { type: 'string', default: '0.8' },
    'top-k': { type: 'string', default: '10' },
    prompt: { type: 'string', default: 'ROMEO:\n' },
    seed: { type: 'string', default: '1' },
    threads: { type: 'string' },
    out: { type: 'string', default: 'reports/char-gpt' },
  },
});
const num = (k: keyof typeof a) => Number(a[k]);
const t0 = performance.now();
const info = await eg.init(a.threads ? { threads: num('threads') } : {});
console.log(`edgegrad ${info.build} · ${info.threads} thread(s) · ${info.runtime}`);
eg.manualSeed(num('seed'));

// ---------------------------------------------------------------- data
const text = await readFile(new URL('./data/tinyshakespeare/input.txt', import.meta.url), 'utf8');
const tok = eg.nn.text.CharTokenizer.fromText(text);
const ids = tok.encode(text);
const nTrain = Math.floor(ids.length * 0.9);
const train = ids.subarray(0, nTrain);
const val = ids.subarray(nTrain);
console.log(`data: ${ids.length} characters, vocabulary ${tok.vocabSize}; ${train.length} for training, ${val.length} for validation`);

const [batch, block] = [num('batch'), num('block')];
const random = eg.nn.text.seededRandom(num('seed'));
// Fixed validation windows, spread evenly over the validation text.
const evalBatches = num('eval-batches');
const valWindows: { x: eg.Tensor; y: eg.Tensor }[] = [];
{
  const starts = evalBatches * batch;
  const stride = Math.floor((val.length - block - 1) / starts);
  for (let b = 0; b < evalBatches; b++) {
    const xs = new Int32Array(batch * block);
    const ys = new Int32Array(batch * block);
    for (let i = 0; i < batch; i++) {
      const o = (b * batch + i) * stride;
      xs.set(val.subarray(o, o + block), i * block);
      ys.set(val.subarray(o + 1, o + block + 1), i * block);
    }
    valWindows.push({ x: eg.keep(eg.tensor(xs, [batch, block], 'int32')), y: eg.keep(eg.tensor(ys, [batch, block], 'int32')) });
  }
}

// ---------------------------------------------------------------- model
const model = new eg.nn.GPT({
  vocabSize: tok.vocabSize, blockSize: block, nLayer: num('layers'), nHead: num('heads'), nEmbd: num('embd'),
  dropout: num('dropout'), seed: num('seed'),
});
// Weight decay on matrices only (not on biases and LayerNorm parameters), as in nanoGPT.
const named = model.namedParameters();
const decay = named.filter(([, p]) => p.rank >= 2).map(([, p]) => p);
const noDecay = named.filter(([, p]) => p.rank < 2).map(([, p]) => p);
const baseLr = num('lr');
const optimizer = new eg.optim.AdamW([{ params: decay, weightDecay: 0.1 }, { params: noDecay, weightDecay: 0 }], { lr: baseLr, beta2: 0.99 });
console.log(`model: GPT ${num('layers')} layers × ${num('heads')} heads × ${num('embd')} dims, context ${block}: ${model.numParameters()} parameters`);

const lossOf = (x: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(model.forward(x), y, { fromLogits: true });
function validationLoss(): number {
  model.eval();
  let s = 0;
  for (const w of valWindows) s += eg.tidy(() => eg.noGrad(() => lossOf(w.x, w.y).item()));
  model.train();
  return s / valWindows.length;
}

// ---------------------------------------------------------------- training
const budgetMs = num('minutes') * 60_000;
const maxSteps = a.steps ? num('steps') : Infinity;
const warmup = 100;
const minLrFrac = 0.1;
/** Progress in [0, 1]: by steps when given, else by elapsed time. */
const progress = (step: number, elapsed: number) => (Number.isFinite(maxSteps) ? step / maxSteps : elapsed / budgetMs);
const lrAt = (step: number, frac: number) => {
  if (step < warmup) return baseLr * (step + 1) / warmup;
  const c = Math.min(frac, 1);
  return baseLr * (minLrFrac + (1 - minLrFrac) * 0.5 * (1 + Math.cos(Math.PI * c)));
};

const history: { step: number; seconds: number; trainLoss: number; valLoss: number }[] = [];
const tTrain = performance.now();
let step = 0;
let ema = NaN;
let valLoss = validationLoss();
console.log(`step 0: validation loss ${valLoss.toFixed(4)} (uniform guess: ${Math.log(tok.vocabSize).toFixed(4)})`);
const evalEvery = num('eval-every');
for (;;) {
  const elapsed = performance.now() - tTrain;
  if (step >= maxSteps || (!Number.isFinite(maxSteps) && elapsed >= budgetMs)) break;
  optimizer.lr = lrAt(step, progress(step, elapsed));
  const loss = eg.tidy(() => {
    const { x, y } = eg.nn.text.randomWindows(train, batch, block, random);
    optimizer.zeroGrad();
    const l = lossOf(x, y);
    l.backward();
    eg.optim.clipGradNorm(model.parameters(), 1);
    optimizer.step();
    return l.item();
  });
  ema = Number.isNaN(ema) ? loss : 0.95 * ema + 0.05 * loss;
  step++;
  if (step % evalEvery === 0) {
    valLoss = validationLoss();
    const s = (performance.now() - tTrain) / 1000;
    history.push({ step, seconds: s, trainLoss: ema, valLoss });
    console.log(`step ${step} · ${s.toFixed(0)} s · lr ${optimizer.lr.toExponential(2)} · train ${ema.toFixed(4)} · validation ${valLoss.toFixed(4)} nats/char`);
  }
}
const trainSeconds = (performance.now() - tTrain) / 1000;
if (history.at(-1)?.step !== step) {
  valLoss = validationLoss();
  history.push({ step, seconds: trainSeconds, trainLoss: ema, valLoss });
}

/** Mean loss over the WHOLE validation text: non-overlapping windows, every character predicted once. */
function fullValidationLoss(): { loss: number; chars: number } {
  model.eval();
  const windows = Math.floor((val.length - 1) / block);
  let total = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const nb = Math.min(batch, windows - w0);
    const xs = new Int32Array(nb * block);
    const ys = new Int32Array(nb * block);
    for (let i = 0; i < nb; i++) {
      const o = (w0 + i) * block;
      xs.set(val.subarray(o, o + block), i * block);
      ys.set(val.subarray(o + 1, o + block + 1), i * block);
    }
    total += eg.tidy(() => eg.noGrad(() => eg.losses.sparseCategoricalCrossEntropy(
      model.forward(eg.tensor(xs, [nb, block], 'int32')), eg.tensor(ys, [nb, block], 'int32'), { fromLogits: true, reduction: 'sum' }).item()));
  }
  model.train();
  return { loss: total / (windows * block), chars: windows * block };
}
const full = fullValidationLoss();
valLoss = full.loss;
console.log(`\nfinal validation loss over the whole validation text (${full.chars} characters): ${valLoss.toFixed(4)} nats/char (${(valLoss / Math.LN2).toFixed(3)} bits/char)`);
console.log(`trained ${step} steps on ${(step * batch * block / 1e6).toFixed(2)} M characters in ${trainSeconds.toFixed(0)} s (${(trainSeconds / step * 1000).toFixed(0)} ms/step)`);

// ---------------------------------------------------------------- checkpoint
const outDir = a.out!;
await mkdir(outDir, { recursive: true });
await eg.saveModel(model, join(outDir, 'model'), { userData: { tokenizer: tok.toJSON(), validationLoss: valLoss } });
const { model: reloaded, json } = await eg.loadModel(join(outDir, 'model'));
const tok2 = new eg.nn.text.CharTokenizer((json.userData!.tokenizer as { chars: string }).chars);
const same = eg.tidy(() => {
  const w = valWindows[0];
  reloaded.eval();
  model.eval();
  const p = eg.noGrad(() => reloaded.forward(w.x).sub(model.forward(w.x)).abs().max().item());
  return p === 0;
});
console.log(`checkpoint ${outDir}/model reloaded: ${same ? 'identical logits' : 'LOGITS DIFFER'}`);

// ---------------------------------------------------------------- generation
const prompt = a.prompt!;
const gen = eg.nn.text.generate(reloaded, tok2.encode(prompt), num('tokens'), {
  blockSize: block, temperature: num('temperature'), topK: num('top-k'), seed: num('seed'),
});
const sample = prompt + tok2.decode(gen);
console.log(`\n--- generated (temperature ${a.temperature}, top-k ${a['top-k']}) ---\n${sample}\n---`);

// Attention of the last layer for the first characters of the sample (every head).
const gpt = reloaded as eg.nn.GPT;
gpt.keepAttentionWeights();
eg.tidy(() => eg.noGrad(() => gpt.forward(eg.tensor(tok2.encode(sample.slice(0, 24)), [1, 24], 'int32'))));
const maps = gpt.attentionMaps();
const last = maps[maps.length - 1]!;
const heads = last.shape[1];
const attn = last.arraySync() as number[][][][];
console.log(`attention of the last layer, query = character 23 (${JSON.stringify(sample[23])}), strongest key per head:`);
for (let h = 0; h < heads; h++) {
  const row = attn[0][h][23];
  const k = row.indexOf(Math.max(...row));
  console.log(`  head ${h}: key ${k} (${JSON.stringify(sample[k])}), weight ${row[k].toFixed(3)}`);
}

await writeFile(join(outDir, 'summary.json'), JSON.stringify({
  task: 'char-gpt', data: 'Tiny Shakespeare (karpathy/char-rnn), 90/10 split',
  backend: { build: info.build, threads: info.threads },
  model: { ...gpt.getConfig(), parameters: model.numParameters() },
  batch, block, steps: step, trainSeconds, totalSeconds: (performance.now() - t0) / 1000,
  validationLoss: valLoss, validationCharacters: full.chars, history, sample,
}, null, 2));
console.log(`\nreport written to ${outDir}/ (summary.json, model/) · total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
if (!(valLoss < 2.0)) {
  console.error(`validation loss ${valLoss.toFixed(4)} is not below 2.0 nats/char`);
  process.exitCode = 1;
}
for (const w of valWindows) eg.dispose(w);
model.dispose();
reloaded.dispose();
