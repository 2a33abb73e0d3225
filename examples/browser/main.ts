/**
 * The browser demo (`npm run demo`): the digits CNN trained in the page with a live loss/accuracy
 * chart and a progress bar; a drawing pad whose digit the model classifies as you draw (probability
 * bars), with an Integrated Gradients or Grad-CAM overlay saying why (`eg.explain`); a float32 /
 * int8 toggle with each model's test accuracy, size and latency (`eg.compress`); the engine build
 * and threads in use (a thread picker when the page is cross-origin isolated, the single-threaded
 * build otherwise); and a robust twin (`eg.robust.adversarialStep`) to attack side by side with
 * the standard model (`eg.attacks`).
 *
 * For end-to-end tests (tests/e2e) the page keeps its state in `document.body.dataset.state`
 * (`loading`, `ready`, `training`, `trained`, `error`) and on `window.edgegradDemo`, including
 * every uncaught error; `?epochs=N` sets the epochs field.
 */
import * as eg from '../../sdk/index.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** What tests (and the curious) can read from the page. */
interface DemoState {
  state: 'loading' | 'ready' | 'training' | 'trained' | 'error';
  info: eg.BackendInfo | null;
  errors: string[];
  history: { loss: number[]; valLoss: number[]; valAccuracy: number[] };
  prediction: { model: Precision; digit: number; probs: number[]; ms: number } | null;
  reports: Partial<Record<Precision, eg.compress.CompressionStats>>;
}
type Precision = 'float32' | 'int8';

const demo: DemoState = { state: 'loading', info: null, errors: [], history: { loss: [], valLoss: [], valAccuracy: [] }, prediction: null, reports: {} };
(window as unknown as { edgegradDemo: DemoState }).edgegradDemo = demo;
window.addEventListener('error', (e) => demo.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', (e) => demo.errors.push(String((e.reason as Error)?.message ?? e.reason)));

function setState(s: DemoState['state']): void {
  demo.state = s;
  document.body.dataset.state = s;
}
function log(s: string): void {
  const el = $('log');
  el.textContent += `${s}\n`;
  el.scrollTop = el.scrollHeight;
}
/** Lets the browser paint (fit awaits async callbacks, so the page stays live while training). */
const nextFrame = () => new Promise<void>((r) => requestAnimationFrame(() => r()));

const BATCH = 32;
const crossEntropy = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

/** The digits CNN of the main job: two conv + batch-norm + max-pool blocks and a linear classifier. */
function digitsCnn(): eg.nn.Sequential {
  const { nn } = eg;
  return new nn.Sequential(
    new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false, seed: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false, seed: 2 }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(256, 10, { seed: 3 }),
  );
}

/** An 8x8 digit (values in [0, 1], 1 = ink) as a grey VizImage, dark ink on white, enlarged `scale` times. */
function digitImage(px: ArrayLike<number>, scale: number): eg.viz.VizImage {
  const rgba = new Uint8ClampedArray(64 * 4);
  for (let p = 0; p < 64; p++) {
    const v = 255 - Math.round(Math.min(1, Math.max(0, px[p])) * 255);
    rgba.set([v, v, v, 255], p * 4);
  }
  return eg.viz.upscale(new eg.viz.VizImage(8, 8, rgba), scale);
}

// ------------------------------------------------------------------------------------- engine

const info = await eg.init();
demo.info = info;

function showEngine(): void {
  const b = eg.backendInfo();
  const badge = (label: string, value: string) => `<span class="badge">${label} <b>${value}</b></span>`;
  $('engine').innerHTML = [
    badge('build', b.build), badge('threads', `${b.threads} of ${b.maxThreads}`),
    badge('cross-origin isolated', b.crossOriginIsolated ? 'yes' : 'no'), badge('runtime', b.runtime),
  ].join('') + (b.fallbackReason ? `<span class="note">single-threaded: ${b.fallbackReason}</span>` : '');
}
showEngine();
const threadPick = $<HTMLSelectElement>('threads');
for (let t = 1; t <= info.maxThreads; t++) threadPick.add(new Option(String(t), String(t), t === info.threads, t === info.threads));
threadPick.disabled = info.maxThreads === 1;
threadPick.title = info.maxThreads === 1 ? 'one thread: the page is not cross-origin isolated (no SharedArrayBuffer)' : 'kernels split over this many threads; results are bitwise identical for any count';
threadPick.onchange = () => {
  eg.setNumThreads(Number(threadPick.value));
  showEngine();
};

// --------------------------------------------------------------------------------------- data

const { images, labels, n } = await eg.loadDigits();
const [xTrain, yTrain, xTest, yTest] = eg.tidy(() => eg.data.trainTestSplit(
  [eg.tensor(images, [n, 8, 8, 1]).div(16), eg.tensor(labels, [n], 'int32')], { testSize: 0.2, seed: 7 }));
const testPixels = xTest.dataSync() as Float32Array;
const testLabels = yTest.dataSync() as Int32Array;

const epochsField = $<HTMLInputElement>('epochs');
const urlEpochs = Number(new URLSearchParams(location.search).get('epochs'));
if (Number.isInteger(urlEpochs) && urlEpochs >= 1 && urlEpochs <= 50) epochsField.value = String(urlEpochs);

// ------------------------------------------------------------------------------------- models

let model: eg.nn.Sequential | null = null;
let quantized: eg.compress.QuantizedModel | null = null;
let robust: eg.nn.Sequential | null = null;
let precision: Precision = 'float32';

function disposeModels(): void {
  model?.dispose();
  quantized?.dispose();
  robust?.dispose();
  model = quantized = robust = null;
}

/** Progress bar, status line and live chart, fed by fit's batch and epoch hooks. */
class LiveProgress extends eg.train.Callback {
  #chartBusy = false;
  override async onBatchEnd(batch: number): Promise<void> {
    const per = this.ctx.batchesPerEpoch ?? 1;
    const done = (this.ctx.epoch + (batch + 1) / per) / this.ctx.epochs;
    $<HTMLProgressElement>('progress').value = done;
    $('status').textContent = `epoch ${this.ctx.epoch + 1} of ${this.ctx.epochs}, batch ${batch + 1} of ${per}`;
    if (batch % 8 === 7) await nextFrame();
  }
  override async onEpochEnd(e: number, l: eg.train.Logs): Promise<void> {
    const h = demo.history;
    h.loss.push(l.loss);
    h.valLoss.push(l.val_loss);
    h.valAccuracy.push(l.val_accuracy);
    log(`epoch ${e + 1}: loss ${l.loss.toFixed(4)}, validation loss ${l.val_loss.toFixed(4)}, validation accuracy ${(l.val_accuracy * 100).toFixed(1)}%`);
    if (!this.#chartBusy) {
      this.#chartBusy = true;
      await drawChart().finally(() => { this.#chartBusy = false; });
    }
  }
}

/** The loss and accuracy curves so far, drawn by eg.viz (Vega-Lite → SVG). */
async function drawChart(): Promise<void> {
  const h = demo.history;
  const x = h.loss.map((_, i) => i + 1);
  const chart = eg.viz.lineChart({
    series: [
      { name: 'train loss', x, y: h.loss },
      { name: 'validation loss', x, y: h.valLoss },
      { name: 'validation accuracy', x, y: h.valAccuracy },
    ],
    xTitle: 'epoch', yTitle: 'loss / accuracy', integerX: true, width: 620, height: 200,
  });
  $('chart').innerHTML = await chart.toSVG();
}

const trainButton = $<HTMLButtonElement>('train');
trainButton.onclick = async () => {
  trainButton.disabled = true;
  setState('training');
  disposeModels();
  demo.history = { loss: [], valLoss: [], valAccuracy: [] };
  $('log').textContent = '';
  const epochs = Math.min(50, Math.max(1, Math.round(Number(epochsField.value) || 8)));
  const m = digitsCnn();
  const opt = new eg.optim.Adam(m.parameters(), { lr: 3e-3 });
  m.compile({ optimizer: opt, loss: crossEntropy, metrics: ['accuracy'] });
  const t0 = performance.now();
  await m.fit(xTrain, yTrain, { epochs, batchSize: BATCH, validationSplit: 0.1, verbose: 0, seed: 1, callbacks: [new LiveProgress()] });
  opt.dispose();
  m.eval();
  const seconds = (performance.now() - t0) / 1000;
  $('status').textContent = `trained ${epochs} epochs in ${seconds.toFixed(1)} s on ${eg.backendInfo().threads} thread(s)`;
  // int8 post-training quantization, calibrated on 256 training digits; both timed on the test set.
  const calib = xTrain.slice([0, 0, 0, 0], [256, 8, 8, 1]);
  const q = eg.compress.quantize(m, calib);
  calib.dispose();
  const base = eg.compress.compressionReport(m, { name: 'float32', data: [xTest, yTest], latency: { x: xTest } });
  const q8 = eg.compress.compressionReport(q, { name: 'int8', data: [xTest, yTest], latency: { x: xTest, against: m }, baseline: base });
  demo.reports = { float32: base, int8: q8 };
  $('batchLatency').textContent = `latency, ${xTest.shape[0]} digits`;
  log(`test accuracy: float32 ${(base.accuracy! * 100).toFixed(2)}%, int8 ${(q8.accuracy! * 100).toFixed(2)}% ` +
    `(${q8.vsBaseline!.sizeRatio.toFixed(1)}x smaller, ${q8.vsBaseline!.speedup!.toFixed(2)}x the speed on ${xTest.shape[0]} digits)`);
  model = m;
  quantized = q;
  document.querySelectorAll<HTMLInputElement>('input[name=precision]').forEach((r) => { r.disabled = false; });
  $<HTMLButtonElement>('sample').disabled = false;
  $<HTMLButtonElement>('robustBtn').disabled = false;
  showTestGrid();
  predict();
  trainButton.disabled = false;
  trainButton.textContent = 'Train again';
  setState('trained');
};

// ---------------------------------------------------------------------------------- the pad

/**
 * The drawing pad. Strokes are drawn on a transparent canvas (ink = alpha); the model's 8x8 input
 * is made the way the UCI digits were: the ink's bounding box scaled into a 32x32 frame (aspect
 * kept, centred), then the ink counted in 4x4 blocks (0..16, divided by 16).
 */
const pad = (() => {
  const canvas = $<HTMLCanvasElement>('pad');
  const g = canvas.getContext('2d', { willReadFrequently: true })!;
  const small = document.createElement('canvas');
  small.width = small.height = 32;
  const sg = small.getContext('2d', { willReadFrequently: true })!;
  const pixels = new Float32Array(64);
  let drawn = false;
  let last: [number, number] | null = null;

  const clear = () => {
    g.clearRect(0, 0, canvas.width, canvas.height);
    pixels.fill(0);
    drawn = false;
  };
  const toPixels = () => {
    const { data, width, height } = g.getImageData(0, 0, canvas.width, canvas.height);
    let x0 = width, y0 = height, x1 = -1, y1 = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (data[(y * width + x) * 4 + 3] > 20) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    }
    pixels.fill(0);
    if (x1 < 0) return;
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    const s = 30 / Math.max(bw, bh);
    const dw = Math.max(1, bw * s), dh = Math.max(1, bh * s);
    sg.clearRect(0, 0, 32, 32);
    sg.imageSmoothingQuality = 'high';
    sg.drawImage(canvas, x0, y0, bw, bh, (32 - dw) / 2, (32 - dh) / 2, dw, dh);
    const px = sg.getImageData(0, 0, 32, 32).data;
    for (let by = 0; by < 8; by++) {
      for (let bx = 0; bx < 8; bx++) {
        let ink = 0;
        for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) ink += px[((by * 4 + y) * 32 + bx * 4 + x) * 4 + 3] / 255;
        pixels[by * 8 + bx] = Math.min(1, ink / 16);
      }
    }
  };
  const at = (e: PointerEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * canvas.width, ((e.clientY - r.top) / r.height) * canvas.height];
  };
  const stroke = (p: [number, number]) => {
    g.strokeStyle = '#1d2733';
    g.fillStyle = '#1d2733';
    g.lineWidth = 22;
    g.lineCap = g.lineJoin = 'round';
    g.beginPath();
    if (last) {
      g.moveTo(...last);
      g.lineTo(...p);
      g.stroke();
    } else {
      g.arc(p[0], p[1], 11, 0, 2 * Math.PI);
      g.fill();
    }
    last = p;
  };
  let down = false;
  let pending = false;
  const update = () => {
    toPixels();
    $('inputInfo').textContent = 'your drawing';
    onInput();
  };
  canvas.onpointerdown = (e) => {
    if (!drawn) clear();
    drawn = true;
    down = true;
    last = null;
    canvas.setPointerCapture(e.pointerId);
    stroke(at(e));
  };
  canvas.onpointermove = (e) => {
    if (!down) return;
    stroke(at(e));
    // Predict live, at most once per frame.
    if (!pending) {
      pending = true;
      requestAnimationFrame(() => { pending = false; update(); });
    }
  };
  canvas.onpointerup = canvas.onpointercancel = () => {
    if (!down) return;
    down = false;
    last = null;
    update();
  };
  return {
    pixels,
    clear,
    /** Shows an 8x8 digit (a test digit) on the pad and makes it the input. */
    set(v: ArrayLike<number>, what: string): void {
      clear();
      pixels.set(v);
      digitImage(v, canvas.width / 8).drawTo(canvas);
      $('inputInfo').textContent = what;
      onInput();
    },
  };
})();

$('clear').onclick = () => {
  pad.clear();
  $('inputInfo').textContent = 'draw with the mouse or a finger';
  onInput();
};
$('sample').onclick = () => {
  const i = Math.floor(Math.random() * testLabels.length);
  pad.set(testPixels.subarray(i * 64, (i + 1) * 64), `test digit ${i} (label ${testLabels[i]})`);
};
document.querySelectorAll<HTMLInputElement>('input[name=precision]').forEach((r) => {
  r.onchange = () => {
    precision = r.value as Precision;
    predict();
  };
});
$('explainer').onchange = () => explain();

/** The pad changed: show the model's input, predict and explain. */
function onInput(): void {
  digitImage(pad.pixels, 1).drawTo($<HTMLCanvasElement>('pixels'));
  predict();
}

// ----------------------------------------------------------------------- predict and explain

function bars(probs: ArrayLike<number>, top: number): void {
  const el = $('bars');
  if (el.childElementCount === 0) {
    el.innerHTML = Array.from({ length: 10 }, (_, d) => `<span>${d}</span><span class="bar"><i></i></span><span class="p"></span>`).join('');
  }
  for (let d = 0; d < 10; d++) {
    const bar = el.children[d * 3 + 1] as HTMLElement;
    bar.className = d === top ? 'bar top' : 'bar';
    (bar.firstElementChild as HTMLElement).style.width = `${(probs[d] * 100).toFixed(1)}%`;
    el.children[d * 3 + 2].textContent = `${(probs[d] * 100).toFixed(1)}%`;
  }
}

function predict(): void {
  const net = precision === 'int8' ? quantized : model;
  if (net === null) return;
  if (pad.pixels.every((v) => v === 0)) {
    $('guess').innerHTML = '?<small>draw a digit</small>';
    bars(new Float32Array(10), -1);
    demo.prediction = null;
    eg.viz.upscale(new eg.viz.VizImage(8, 8), 28).drawTo($<HTMLCanvasElement>('overlay'));
    return;
  }
  const t0 = performance.now();
  const probs = eg.tidy(() => net.predict(eg.tensor(pad.pixels, [1, 8, 8, 1])).softmax(-1).dataSync() as Float32Array);
  const ms = performance.now() - t0;
  const digit = probs.indexOf(Math.max(...probs));
  demo.prediction = { model: precision, digit, probs: Array.from(probs), ms };
  $('guess').innerHTML = `${digit}<small id="confidence">${(probs[digit] * 100).toFixed(1)}% sure</small>`;
  bars(probs, digit);
  $('latency').textContent = `this prediction: ${ms.toFixed(2)} ms (${precision})`;
  showComparison(ms);
  explain();
}

function showComparison(lastMs: number): void {
  const rows = (['float32', 'int8'] as const).flatMap((k) => {
    const r = demo.reports[k];
    if (!r) return [];
    return [`<tr class="${k === precision ? 'active' : ''}"><td>${k}</td><td>${(r.accuracy! * 100).toFixed(2)}%</td>` +
      `<td>${(r.bytesOnDisk / 1024).toFixed(1)} KiB</td><td>${r.latencyMs!.toFixed(2)} ms</td>` +
      `<td>${k === precision ? `${lastMs.toFixed(2)} ms` : ''}</td></tr>`];
  });
  $('compare').querySelector('tbody')!.innerHTML = rows.join('');
  $('compare').hidden = rows.length === 0;
}

/** The chosen explainer's attribution for the predicted class, blended over the input. */
function explain(): void {
  if (model === null || demo.prediction === null) return;
  const m = model;
  const target = demo.prediction.digit;
  const kind = $<HTMLSelectElement>('explainer').value;
  eg.tidy(() => {
    const x = eg.tensor(pad.pixels, [1, 8, 8, 1]);
    const attr = kind === 'gradcam'
      ? new eg.explain.LayerGradCam(m, '4').attribute(x, { target, reluAttributions: true, upsample: 'bilinear' })
      : new eg.explain.IntegratedGradients(m).attribute(x, { target, nSteps: 32 });
    const img = eg.viz.visualizeImageAttr(attr.reshape([8, 8, 1]), x.reshape([8, 8, 1]),
      { method: 'blended_heat_map', sign: kind === 'gradcam' ? 'positive' : 'all', alphaOverlay: 0.6 });
    eg.viz.upscale(img, 28).drawTo($<HTMLCanvasElement>('overlay'));
    const total = attr.sum().item();
    $('explainInfo').textContent = kind === 'gradcam'
      ? `Grad-CAM: where the second conv layer's features that raise "${target}" are active (4×4 map, upsampled).`
      : `Integrated Gradients from a blank pad: each pixel's share of the change in the "${target}" logit; the shares sum to ${total.toFixed(3)} (completeness).`;
  });
}

/** 30 held-out digits with the float model's predictions; click one to put it on the pad. */
function showTestGrid(): void {
  const grid = $('digits');
  grid.textContent = '';
  const shown = 30;
  const pred = eg.tidy(() => model!.predict(xTest.slice([0, 0, 0, 0], [shown, 8, 8, 1])).argMax(-1).dataSync());
  for (let i = 0; i < shown; i++) {
    const fig = document.createElement('figure');
    const cv = document.createElement('canvas');
    cv.width = cv.height = 8;
    const px = testPixels.subarray(i * 64, (i + 1) * 64);
    digitImage(px, 1).drawTo(cv);
    const cap = document.createElement('figcaption');
    cap.textContent = `${pred[i]}`;
    if (pred[i] !== testLabels[i]) cap.className = 'wrong';
    fig.append(cv, cap);
    fig.title = `test digit ${i} (label ${testLabels[i]}): click to put it on the pad`;
    fig.onclick = () => pad.set(px, `test digit ${i} (label ${testLabels[i]})`);
    grid.append(fig);
  }
}

// ------------------------------------------------------------------------------ the robust twin

/** How the robust twin is trained: fast FGSM adversarial training with a random start (Wong et al. 2020), ε ramped up over 3 epochs. */
const ROBUST = { method: 'fgsm', eps: 0.2, warmupEpochs: 3, seed: 5 } as const;

function makeAttack(m: eg.nn.Module, kind: string, eps: number): eg.attacks.Attack {
  return kind === 'fgsm'
    ? new eg.attacks.FGSM(m, { eps })
    : new eg.attacks.PGD(m, { eps, stepSize: eps / 4, steps: 20, seed: 1 });
}

$('robustBtn').onclick = async () => {
  const btn = $<HTMLButtonElement>('robustBtn');
  btn.disabled = trainButton.disabled = true;
  setState('training');
  robust?.dispose();
  const epochs = Math.min(50, Math.max(1, Math.round(Number(epochsField.value) || 8)));
  const r = digitsCnn();
  const opt = new eg.optim.Adam(r.parameters(), { lr: 3e-3 });
  r.compile({ optimizer: opt, loss: crossEntropy, metrics: ['accuracy'] });
  log(`robust twin: eg.robust.adversarialStep (fast FGSM with random start, ε = ${ROBUST.eps}, warm-up ${ROBUST.warmupEpochs} epochs)`);
  await r.fit(xTrain, yTrain, {
    epochs, batchSize: BATCH, verbose: 0, seed: 1, trainStep: eg.robust.adversarialStep({ ...ROBUST }),
    callbacks: [new eg.train.LambdaCallback({
      onBatchEnd: async (b) => { if (b % 8 === 7) await nextFrame(); },
      onEpochEnd: (e, l) => {
        $<HTMLProgressElement>('progress').value = (e + 1) / epochs;
        log(`robust epoch ${e + 1}: loss ${l.loss.toFixed(4)} (on adversarial batches)`);
      },
    })],
  });
  opt.dispose();
  r.eval();
  robust = r;
  for (const [name, m] of [['standard', model!], ['robust', r]] as const) {
    const adv = makeAttack(m, 'pgd', ROBUST.eps).perturb(xTest, testLabels);
    const acc = (x: eg.Tensor) => {
      const pred = eg.noGrad(() => eg.tidy(() => m.forward(x).argMax(-1).dataSync()));
      return pred.filter((p, i) => p === testLabels[i]).length / testLabels.length;
    };
    log(`${name}: ${(acc(xTest) * 100).toFixed(1)}% clean, ${(acc(adv.adversarial) * 100).toFixed(1)}% under PGD-20 at ε = ${ROBUST.eps}`);
    adv.adversarial.dispose();
  }
  btn.disabled = trainButton.disabled = false;
  $<HTMLButtonElement>('attackBtn').disabled = false;
  setState('trained');
};

const epsField = $<HTMLInputElement>('eps');
epsField.oninput = () => { $('epsValue').textContent = Number(epsField.value).toFixed(2); };
$('attackBtn').onclick = () => {
  if (model === null || robust === null) return;
  const kind = $<HTMLSelectElement>('attack').value;
  const e = Number(epsField.value);
  const sides: [eg.nn.Module, HTMLElement][] = [[model, $('side-standard')], [robust, $('side-robust')]];
  eg.tidy(() => {
    const x = eg.tensor(pad.pixels, [1, 8, 8, 1]);
    for (const [m, el] of sides) {
      const probs = (z: eg.Tensor) => eg.noGrad(() => m.forward(z).softmax(-1).dataSync() as Float32Array);
      const top = (p: Float32Array) => p.indexOf(Math.max(...p));
      const before = probs(x);
      const c = top(before);
      const r = makeAttack(m, kind, e).perturb(x, [c]);
      const after = probs(r.adversarial);
      const a = top(after);
      const [advCanvas, deltaCanvas] = el.querySelectorAll('canvas');
      digitImage(r.adversarial.dataSync(), 12).drawTo(advCanvas);
      const delta = r.adversarial.sub(x).reshape([8, 8, 1]);
      eg.viz.upscale(eg.viz.visualizeImageAttr(delta, undefined, { method: 'heat_map', sign: 'all' }), 12).drawTo(deltaCanvas);
      el.querySelector('.clean')!.textContent = `on the drawing: ${c} (${(before[c] * 100).toFixed(1)}%)`;
      const adv = el.querySelector('.adv')!;
      adv.textContent = `after ${kind === 'fgsm' ? 'FGSM' : 'PGD-20'} at ε = ${e.toFixed(2)}: ${a} (${(after[a] * 100).toFixed(1)}%) — ${a === c ? 'held' : 'fooled'}`;
      adv.className = `adv ${a === c ? 'held' : 'fooled'}`;
    }
  });
};

trainButton.disabled = false;
setState('ready');
