/**
 * The browser demo: the same CNN as the main job, trained in the page on the bundled digits, with
 * a live loss curve, its int8 post-training-quantized twin (accuracy, size, speed-up) and
 * predictions on held-out digits. Threads are used when the page is served
 * cross-origin isolated (`npm run demo` does that).
 */
import * as eg from '../../sdk/index.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = (s: string) => { $('log').textContent += `${s}\n`; };

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

button.onclick = async () => {
  button.disabled = true;
  const { images, labels, n } = await eg.loadDigits();
  const [xTrain, yTrain, xTest, yTest] = eg.tidy(() => eg.data.trainTestSplit(
    [eg.tensor(images, [n, 8, 8, 1]).div(16), eg.tensor(labels, [n], 'int32')], { testSize: 0.2, seed: 7 }));
  const { nn } = eg;
  const model = new nn.Sequential(
    new nn.Conv2d(1, 32, 3, { padding: 'same', bias: false, seed: 1 }), new nn.BatchNorm2d(32), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3, { padding: 'same', bias: false, seed: 2 }), new nn.BatchNorm2d(64), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(256, 10, { seed: 3 }),
  );
  model.compile({ optimizer: new eg.optim.Adam(model.parameters(), { lr: 3e-3 }), loss: (l, y) => eg.losses.sparseCategoricalCrossEntropy(l, y, { fromLogits: true }), metrics: ['accuracy'] });
  const losses: number[] = [];
  const vals: number[] = [];
  const t0 = performance.now();
  await model.fit(xTrain, yTrain, {
    epochs: 12, batchSize: 32, validationSplit: 0.1, verbose: 0,
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
    const ctx = cv.getContext('2d')!;
    const img = ctx.createImageData(8, 8);
    for (let p = 0; p < 64; p++) {
      const v = 255 - Math.round(px[i * 64 + p] * 255);
      img.data.set([v, v, v, 255], p * 4);
    }
    ctx.putImageData(img, 0, 0);
    const cap = document.createElement('figcaption');
    cap.textContent = `${pred[i]}`;
    if (pred[i] !== truth[i]) cap.className = 'wrong';
    fig.append(cv, cap);
    grid.append(fig);
  }
};
