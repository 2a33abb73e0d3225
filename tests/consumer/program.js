// The fixed program every consumer runs (Node, Bun, a Vite app, a plain module page): seeded
// draws, ops, three SGD steps of a small MLP and int8 inference. It returns the build in use and
// an FNV-1a digest of the output bits, which must be the same in every runtime. Integer-only
// hashing (Math.imul), so the digest itself cannot differ between engines.
export async function run(eg, threads) {
  await eg.init(threads ? { threads } : {});
  const bits = [];
  const take = (t) => { bits.push(new Uint8Array(t.dataSync().slice().buffer)); t.dispose(); };
  eg.tidy(() => {
    const a = eg.randn([64, 64], 0, 1, { seed: 7 });
    const b = eg.rand([64, 32], 0, 1, { seed: 8 });
    take(eg.keep(a.matmul(b).tanh().sum([1])));
    take(eg.keep(eg.softmax(a.slice([0, 0], [4, 64]), -1)));
    take(eg.keep(eg.randint([16], 0, 10, { seed: 9 }).cast('float32')));
  });
  const x = eg.randn([32, 8], 0, 1, { seed: 1 });
  const y = eg.randint([32], 0, 3, { seed: 2 });
  eg.manualSeed(3);
  const model = new eg.nn.Sequential(new eg.nn.Linear(8, 16), new eg.nn.ReLU(), new eg.nn.Linear(16, 3));
  const opt = new eg.optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
  for (let step = 0; step < 3; step++) {
    eg.tidy(() => {
      opt.zeroGrad();
      const loss = eg.losses.sparseCategoricalCrossEntropy(model.forward(x), y, { fromLogits: true });
      loss.backward();
      opt.step();
      take(eg.keep(loss.detach()));
    });
  }
  const q = eg.compress.quantize(model, x);
  take(q.predict(x));
  q.dispose?.();
  opt.dispose?.();
  model.dispose();
  x.dispose();
  y.dispose();
  let h = 0x811c9dc5;
  for (const part of bits) for (const v of part) h = Math.imul(h ^ v, 0x01000193);
  const info = eg.backendInfo();
  return { build: info.build, threads: info.threads, runtime: info.runtime, digest: (h >>> 0).toString(16).padStart(8, '0'), liveTensors: eg.memory().numTensors };
}
