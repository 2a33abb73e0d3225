/**
 * The browser demo: the same CNN as the main job, trained in the page on the bundled digits, with
 * a live loss curve, its int8 post-training-quantized twin (accuracy, size, speed-up) and
 * predictions on held-out digits; then a robust twin adversarially trained through `fit`
 * (`eg.robust.adversarialStep`) and a "try to fool it" panel that attacks both models on a drawn
 * or selected digit with FGSM or PGD (`eg.attacks`), side by side. Threads are used when the page
 * is served cross-origin isolated (`npm run demo` does that).
 */
import * as eg from '../../sdk/index.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = (s: string) => { $('log').textContent += `${s}\n`; };

/** How the robust twin is trained: fast FGSM adversarial training with a random start (Wong et al. 2020), ε ramped up over 3 epochs. */
const ROBUST = { method: 'fgsm', eps: 0.2, warmupEpochs: 3, seed: 5 } as const;
const EPOCHS = 12;

const info = await eg.init();
$('backend').textContent = `engine: ${info.build}, ${info.threads} thread(s)${info.fallbackReason ? ` — ${info.fallbackReason}` : ''}`;
const button = $<HTMLButtonElement>('train');
button.disabled = false;

function drawCurve(losses: number[], val: number[]): void {
  const c = $<HTMLCanvasElement>('curve');
  const g = c.getContext('2d')!;
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(...losses, ...val, 0.1);
  const plot = (ys: number[], color: string) => {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    ys.forEach((y, i) => {
      const px = 30 + (i / Math.max(ys.length - 1, 1)) * (c.width - 40);
      const py = c.height - 20 - (y / max) * (c.height - 30);
      if (i === 0) g.moveTo(px, py); else g.lineTo(px, py);
    });
    g.stroke();
  };
  plot(losses, '#4c78a8');
  plot(val, '#f58518');
  g.fillStyle = '#444';
  g.fillText('loss (blue: train, orange: validation)', 34, 12);
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

/** The digits CNN of the main job (batch norm, two conv blocks, linear classifier). */
function digitsCnn(): eg.nn.Sequential {
  const { nn } = eg;
  return new nn.Sequential(
    new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false, seed: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false, seed: 2 }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(256, 10, { seed: 3 }),
  );
}

const crossEntropy = (l: eg.Tensor, y: eg.Tensor) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true });

/** The attack of the panel, built for one model. */
function makeAttack(model: eg.nn.Module, kind: string, eps: number): eg.attacks.Attack {
  return kind === 'fgsm'
    ? new eg.attacks.FGSM(model, { eps })
    : new eg.attacks.PGD(model, { eps, stepSize: eps / 4, steps: 20, seed: 1 });
}

/** Test accuracy of `model` on `x` (already adversarial or clean) against labels `y`. */
function accuracy(model: eg.nn.Module, x: eg.Tensor, y: Int32Array): number {
  const pred = eg.noGrad(() => eg.tidy(() => model.forward(x).argMax(-1).dataSync()));
  return pred.filter((p, i) => p === y[i]).length / y.length;
}

button.onclick = async () => {
  button.disabled = true;
  const { images, labels, n } = await eg.loadDigits();
  const [xTrain, yTrain, xTest, yTest] = eg.tidy(() => eg.data.trainTestSplit(
    [eg.tensor(images, [n, 8, 8, 1]).div(16), eg.tensor(labels, [n], 'int32')], { testSize: 0.2, seed: 7 }));
  const model = digitsCnn();
  model.compile({ optimizer: new eg.optim.Adam(model.parameters(), { lr: 3e-3 }), loss: crossEntropy, metrics: ['accuracy'] });
  const losses: number[] = [];
  const vals: number[] = [];
  const t0 = performance.now();
  await model.fit(xTrain, yTrain, {
    epochs: EPOCHS, batchSize: 32, validationSplit: 0.1, verbose: 0,
    callbacks: [new eg.train.LambdaCallback({ onEpochEnd: (e, l) => {
      losses.push(l.loss);
      vals.push(l.val_loss);
      drawCurve(losses, vals);
      log(`epoch ${e + 1}: loss ${l.loss.toFixed(4)}, val accuracy ${(l.val_accuracy * 100).toFixed(1)}%`);
    } })],
  });
  const test = await model.evaluate(xTest, yTest, { batchSize: 128 });
  log(`test accuracy ${(test.accuracy * 100).toFixed(2)}% in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // int8 post-training quantization in the page: size, accuracy and speed against the float model.
  const C = eg.compress;
  const calib = xTrain.slice([0, 0, 0, 0], [256, 8, 8, 1]);
  const q = C.quantize(model, calib);
  const base = C.compressionReport(model, { name: 'float32', data: [xTest, yTest] });
  const q8 = C.compressionReport(q, { name: 'int8', data: [xTest, yTest], latency: { x: xTest, against: model }, baseline: base });
  log(`int8: ${(q8.accuracy! * 100).toFixed(2)}% test accuracy (float ${(base.accuracy! * 100).toFixed(2)}%), ` +
    `${q8.vsBaseline!.sizeRatio.toFixed(1)}x smaller, ${q8.vsBaseline!.speedup!.toFixed(2)}x faster on ${xTest.shape[0]} images`);
  document.title = `done: ${(test.accuracy * 100).toFixed(2)}%`;
  const pred = eg.tidy(() => model.predict(xTest.slice([0, 0, 0, 0], [30, 8, 8, 1])).argMax(-1).dataSync());
  const px = xTest.slice([0, 0, 0, 0], [30, 8, 8, 1]).dataSync();
  const truth = yTest.slice([0], [30]).dataSync();
  const grid = $('digits');
  for (let i = 0; i < 30; i++) {
    const fig = document.createElement('figure');
    const cv = document.createElement('canvas');
    cv.width = cv.height = 8;
    const digit = px.slice(i * 64, (i + 1) * 64) as Float32Array;
    digitImage(digit, 1).drawTo(cv);
    const cap = document.createElement('figcaption');
    cap.textContent = `${pred[i]}`;
    if (pred[i] !== truth[i]) cap.className = 'wrong';
    fig.append(cv, cap);
    fig.title = `test digit ${i} (label ${truth[i]}): click to copy it to the pad below`;
    fig.onclick = () => {
      grid.querySelectorAll('figure.selected').forEach((f) => f.classList.remove('selected'));
      fig.classList.add('selected');
      pad.set(digit, `test digit ${i}, label ${truth[i]}`);
    };
    grid.append(fig);
  }

  // The robust twin: the same CNN and optimizer, trained through fit with an adversarial step.
  log(`training the robust twin: eg.robust.adversarialStep (${ROBUST.method === 'fgsm' ? 'fast FGSM with random start' : 'PGD'}, ε = ${ROBUST.eps}, warm-up ${ROBUST.warmupEpochs} epochs)…`);
  const robust = digitsCnn();
  robust.compile({ optimizer: new eg.optim.Adam(robust.parameters(), { lr: 3e-3 }), loss: crossEntropy, metrics: ['accuracy'] });
  const t1 = performance.now();
  await robust.fit(xTrain, yTrain, {
    epochs: EPOCHS, batchSize: 32, verbose: 0, trainStep: eg.robust.adversarialStep({ ...ROBUST }),
    callbacks: [new eg.train.LambdaCallback({ onEpochEnd: (e, l) => log(`robust epoch ${e + 1}: loss ${l.loss.toFixed(4)} (on adversarial batches)`) })],
  });
  log(`robust twin trained in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  model.eval();
  robust.eval();
  const yArr = Int32Array.from(yTest.dataSync());
  for (const [name, m] of [['standard', model], ['robust', robust]] as const) {
    const adv = makeAttack(m, 'pgd', ROBUST.eps).perturb(xTest, yArr);
    log(`${name}: ${(accuracy(m, xTest, yArr) * 100).toFixed(1)}% clean, ${(accuracy(m, adv.adversarial, yArr) * 100).toFixed(1)}% under PGD-20 at ε = ${ROBUST.eps} (${yArr.length} test digits)`);
    adv.adversarial.dispose();
  }
  $('robustHow').textContent = `trained with eg.robust.adversarialStep: ${ROBUST.method === 'fgsm' ? 'fast FGSM with a random start (Wong et al. 2020)' : 'PGD (Madry et al.)'}, ε = ${ROBUST.eps}`;
  startFoolPanel(model, robust);
  pad.set(px.slice(0, 64) as Float32Array, `test digit 0, label ${truth[0]}`);
  (grid.firstElementChild as HTMLElement | null)?.classList.add('selected');
};

/** The 8x8 drawing pad: pointer strokes add ink with a soft round brush. */
const pad = (() => {
  const canvas = $<HTMLCanvasElement>('pad');
  const cell = canvas.width / 8;
  const pixels = new Float32Array(64);
  const render = () => digitImage(pixels, cell).drawTo(canvas);
  const ink = (e: PointerEvent) => {
    const r = canvas.getBoundingClientRect();
    const cx = ((e.clientX - r.left) / r.width) * 8 - 0.5;
    const cy = ((e.clientY - r.top) / r.height) * 8 - 0.5;
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const d = Math.hypot(x - cx, y - cy);
        if (d < 1.2) pixels[y * 8 + x] = Math.min(1, pixels[y * 8 + x] + 0.35 * (1.2 - d));
      }
    }
    render();
  };
  let down = false;
  canvas.onpointerdown = (e) => { down = true; canvas.setPointerCapture(e.pointerId); $('padInfo').textContent = 'your drawing'; ink(e); };
  canvas.onpointermove = (e) => { if (down) ink(e); };
  canvas.onpointerup = () => { down = false; };
  $('clear').onclick = () => { pixels.fill(0); $('padInfo').textContent = ''; render(); };
  render();
  return {
    pixels,
    set(v: ArrayLike<number>, what: string): void {
      pixels.set(v);
      $('padInfo').textContent = what;
      render();
    },
  };
})();

/** Wires the panel: the attack runs on both models against each one's own prediction on the pad. */
function startFoolPanel(standard: eg.nn.Module, robust: eg.nn.Module): void {
  const eps = $<HTMLInputElement>('eps');
  eps.oninput = () => { $('epsValue').textContent = Number(eps.value).toFixed(2); };
  const sides: [eg.nn.Module, HTMLElement][] = [[standard, $('side-standard')], [robust, $('side-robust')]];
  $('attackBtn').onclick = () => {
    const kind = $<HTMLSelectElement>('attack').value;
    const e = Number(eps.value);
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
  $('fool').hidden = false;
}
