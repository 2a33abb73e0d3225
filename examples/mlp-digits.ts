/**
 * The smallest end-to-end example: a 2-layer MLP trained with plain SGD on the bundled digits
 * data, written with raw tensor ops and autograd (no layers or optimizers).
 *
 *   npx tsx examples/mlp-digits.ts
 */
import * as eg from 'edgegrad';

const info = await eg.init();
console.log(`edgegrad ${info.build}, ${info.threads} thread(s)`);

const { images, labels, n } = await eg.loadDigits();
const perm = eg.randperm(n, { seed: 0 }).dataSync();
const nTrain = Math.floor(n * 0.8);
const x = eg.tensor(images, [n, 64]).div(16);
const y = eg.tensor(labels, [n, 1]);
const pick = (idx: Int32Array) => eg.tensor(idx, [idx.length], 'int32');
const trainIdx = pick(perm.slice(0, nTrain) as Int32Array);
const testIdx = pick(perm.slice(nTrain) as Int32Array);
const [xTrain, yTrain, xTest, yTest] = [x.indexSelect(0, trainIdx), y.indexSelect(0, trainIdx).cast('int32'),
  x.indexSelect(0, testIdx), y.indexSelect(0, testIdx).cast('int32')];

const hidden = 128;
const w1 = eg.randn([64, hidden], 0, Math.sqrt(2 / 64), { seed: 1 }).requiresGrad_();
const b1 = eg.zeros([hidden]).requiresGrad_();
const w2 = eg.randn([hidden, 10], 0, Math.sqrt(1 / hidden), { seed: 2 }).requiresGrad_();
const b2 = eg.zeros([10]).requiresGrad_();
const params = [w1, b1, w2, b2];
const forward = (xb: eg.Tensor) => xb.matmul(w1).add(b1).relu().matmul(w2).add(b2);

const lr = 0.2;
const batch = 32;
const t0 = performance.now();
for (let epoch = 1; epoch <= 40; epoch++) {
  const order = eg.randperm(nTrain, { seed: 100 + epoch }).dataSync();
  let total = 0;
  for (let s = 0; s < nTrain; s += batch) {
    total += eg.tidy(() => {
      const idx = pick(order.slice(s, Math.min(s + batch, nTrain)) as Int32Array);
      const logp = forward(xTrain.indexSelect(0, idx)).logSoftmax();
      const loss = logp.gather(1, yTrain.indexSelect(0, idx)).mean().neg();
      loss.backward();
      eg.noGrad(() => {
        for (const p of params) {
          p.assign(p.sub(p.grad!.mul(lr)));
          p.zeroGrad();
        }
      });
      return loss.item() * idx.size;
    });
  }
  if (epoch % 10 === 0) console.log(`epoch ${epoch}: train loss ${(total / nTrain).toFixed(4)}`);
}
const acc = eg.tidy(() => eg.noGrad(() =>
  forward(xTest).argMax(1).cast('float32').equal(yTest.reshape([-1]).cast('float32')).mean().item()));
console.log(`test accuracy: ${(acc * 100).toFixed(2)}% (${n - nTrain} held-out digits), ` +
  `training took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
