/**
 * CNN building blocks (VGG block, ResNet basic/bottleneck blocks with identity and projection
 * shortcuts, Inception module), the model constructors, the functional graph API, fine-tuning
 * tools (freezing, head replacement, parameter groups, warm-up, checkpoints), and training on
 * digits in both runtimes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { nn } = eg;
const g = nn.graph;

const img = (n: number, h: number, w: number, c: number, seed: number) => eg.tensor(vals(n * h * w * c, seed), [n, h, w, c]);

function same(a: eg.Tensor, b: eg.Tensor | ArrayLike<number>, tol = 0): void {
  const x = a.dataSync();
  const y = b instanceof eg.Tensor ? b.dataSync() : b;
  expect(x.length).toBe(y.length);
  let err = 0;
  for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i] - y[i]));
  expect(err).toBeLessThanOrEqual(tol);
}

describe('blocks', () => {
  it('VGGBlock: convs with BN and ReLU, then a 2x2 max-pool', () => {
    const b = new nn.VGGBlock(3, 8, 2, { seed: 1 });
    expect(b.namedParameters().map(([n, p]) => `${n}:${p.shape}`)).toEqual([
      '0.conv.weight:3,3,3,8', '0.bn.weight:8', '0.bn.bias:8', '1.conv.weight:3,3,8,8', '1.bn.weight:8', '1.bn.bias:8',
    ]);
    eg.tidy(() => {
      expect(b.forward(img(2, 6, 6, 3, 1)).shape).toEqual([2, 3, 3, 8]);
    });
    b.dispose();
  });

  it('BasicBlock: identity shortcut when shapes match, projection otherwise', () => {
    const id = new nn.BasicBlock(8, 8, { seed: 2 });
    const proj = new nn.BasicBlock(8, 16, { stride: 2, seed: 3 });
    expect(id.namedChildren().map(([n]) => n)).toEqual(['conv1', 'bn1', 'conv2', 'bn2']);
    expect(proj.namedParameters().map(([n, p]) => `${n}:${p.shape}`)).toContain('downsample.0.weight:1,1,8,16');
    eg.tidy(() => {
      const x = img(2, 6, 6, 8, 2);
      expect(id.forward(x).shape).toEqual([2, 6, 6, 8]);
      expect(proj.forward(x).shape).toEqual([2, 3, 3, 16]);
      // With the residual branch zeroed, a block is relu(shortcut(x)).
      const z = new nn.BasicBlock(8, 8, { zeroInitResidual: true, seed: 4 });
      same(z.forward(x), x.relu());
      const zp = new nn.BasicBlock(8, 16, { stride: 2, zeroInitResidual: true, seed: 5 });
      same(zp.forward(x), zp.getModule('downsample').forward(x).relu());
      z.dispose();
      zp.dispose();
    });
    id.dispose();
    proj.dispose();
  });

  it('Bottleneck: 1x1 → 3x3 → 1x1 with expansion 4', () => {
    const b = new nn.Bottleneck(16, 4, { seed: 6 });
    const bs = new nn.Bottleneck(8, 4, { stride: 2, seed: 7 });
    expect(b.namedChildren().map(([n]) => n)).toEqual(['conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3']);
    expect(bs.namedChildren().map(([n]) => n)).toContain('downsample');
    eg.tidy(() => {
      expect(b.forward(img(1, 4, 4, 16, 3)).shape).toEqual([1, 4, 4, 16]);
      expect(bs.forward(img(1, 5, 5, 8, 4)).shape).toEqual([1, 3, 3, 16]);
    });
    b.dispose();
    bs.dispose();
  });

  it('InceptionModule: four branches concatenated on channels, in order', () => {
    const m = new nn.InceptionModule(6, { c1: 2, c3reduce: 3, c3: 4, c5reduce: 2, c5: 3, pool: 5 }, 8);
    expect(m.outChannels).toBe(14);
    m.eval();
    eg.tidy(() => {
      const x = img(2, 5, 5, 6, 5);
      const y = m.forward(x);
      expect(y.shape).toEqual([2, 5, 5, 14]);
      let c = 0;
      for (const [name, k] of [['branch1', 2], ['branch2', 4], ['branch3', 3], ['branch4', 5]] as const) {
        same(y.slice([0, 0, 0, c], [2, 5, 5, c + k]), m.getModule(name).forward(x));
        c += k;
      }
    });
    m.dispose();
  });
});

describe('model constructors', { timeout: 30_000 }, () => {
  it('resnet(18) has torchvision\'s names and parameter count', () => {
    const r = nn.resnet({ depth: 18, stem: 'imagenet', numClasses: 1000, seed: 1 });
    expect(r.numParameters()).toBe(11_689_512); // torchvision.models.resnet18()
    const names = r.namedParameters().map(([n]) => n);
    for (const n of ['conv1.weight', 'bn1.weight', 'layer1.0.conv1.weight', 'layer1.1.bn2.bias', 'layer2.0.downsample.0.weight', 'layer2.0.downsample.1.weight', 'layer4.1.conv2.weight', 'fc.weight', 'fc.bias']) {
      expect(names).toContain(n);
    }
    expect(r.namedBuffers().map(([n]) => n)).toContain('layer3.0.downsample.1.running_var');
    r.dispose();
  });

  it('resnet(50) uses bottlenecks; small variants run on 8x8 inputs', () => {
    const r50 = nn.resnet({ depth: 50, width: 4, numClasses: 10, seed: 2 });
    expect(r50.numFeatures).toBe(4 * 8 * 4);
    expect(r50.namedChildren().map(([n]) => n)).toEqual(['conv1', 'bn1', 'layer1', 'layer2', 'layer3', 'layer4', 'fc']);
    eg.tidy(() => {
      expect(r50.forward(img(2, 8, 8, 3, 9)).shape).toEqual([2, 10]);
      expect(r50.features(img(2, 8, 8, 3, 9)).shape).toEqual([2, 128]);
    });
    r50.dispose();
    const v = nn.vgg({ inChannels: 1, numClasses: 10, stages: [[1, 8], [2, 16]], seed: 3 });
    const inc = nn.inception({ inChannels: 1, numClasses: 10, width: 8, seed: 4 });
    eg.tidy(() => {
      expect(v.forward(img(3, 8, 8, 1, 10)).shape).toEqual([3, 10]);
      expect(inc.forward(img(3, 8, 8, 1, 11)).shape).toEqual([3, 10]);
    });
    v.dispose();
    inc.dispose();
  });

  it('every model saves and loads (configs round-trip), and replaceHead swaps the head', async () => {
    for (const m of [nn.resnet({ layers: [1, 1], width: 4, inChannels: 1, numClasses: 5, seed: 5 }),
      nn.vgg({ inChannels: 1, numClasses: 5, stages: [[1, 4]], dropout: 0.2, seed: 6 }),
      nn.inception({ inChannels: 1, numClasses: 5, width: 4, seed: 7 })]) {
      const old = m.getModule(m.headName);
      const head = m.replaceHead(3, 8);
      expect(old.parameters().every((p) => p.isDisposed)).toBe(true);
      expect(m.getModule(m.headName)).toBe(head);
      m.eval();
      const art = await eg.saveModel(m);
      const { model } = await eg.loadModel({ json: art.json, weights: art.weights });
      model.eval();
      eg.tidy(() => {
        const x = img(2, 8, 8, 1, 12);
        const y = m.forward(x);
        expect(y.shape).toEqual([2, 3]);
        same(model.forward(x), y);
      });
      m.dispose();
      model.dispose();
    }
  });
});

describe('graph (functional) API', () => {
  it('expresses skip connections and branches; equals the same computation by hand', () => {
    const conv1 = new nn.Conv2d(2, 4, 3, { padding: 'same', seed: 1 });
    const conv2 = new nn.Conv2d(4, 4, 3, { padding: 'same', seed: 2 });
    const side = new nn.Conv2d(2, 3, 1, { seed: 3 });
    const x = g.input('image');
    const c1 = g.call(conv1, x, 'conv1');
    const r1 = c1.pipe(new nn.ReLU());
    const c2 = g.call(conv2, r1, 'conv2');
    const res = g.add(c2, c1);
    const cat = g.concat([res, g.call(side, x, 'side')], -1);
    const out = g.call(new nn.GlobalAvgPool2d(), cat, 'pool');
    const model = new nn.Graph({ inputs: x, outputs: out });
    expect(model.namedParameters().map(([n]) => n)).toEqual(['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'side.weight', 'side.bias']);
    expect(model.summary()).toMatch(/conv2d 'conv1'.*\n.*relu/i);
    eg.tidy(() => {
      const xi = img(2, 5, 5, 2, 1);
      const a = conv1.forward(xi);
      const want = eg.concat([conv2.forward(a.relu()).add(a), side.forward(xi)], -1).mean([1, 2]);
      same(model.forward(xi), want);
    });
    model.dispose();
  });

  it('several inputs and outputs, shared layers, gradients, config round trip', async () => {
    const shared = new nn.Linear(3, 4, { seed: 5 });
    const a = g.input('a');
    const b = g.input('b');
    const ha = g.call(shared, a, 'shared');
    const hb = g.call(shared, b);
    const diff = g.sub(ha, hb);
    const avg = g.average(ha, hb);
    const head = g.call(new nn.Linear(4, 1, { seed: 6 }), g.mul(diff, diff), 'head');
    const model = new nn.Graph({ inputs: [a, b], outputs: [head, avg] });
    expect(model.namedChildren().map(([n]) => n)).toEqual(['shared', 'head']);
    const xa = eg.tensor(vals(6, 1), [2, 3]);
    const xb = eg.tensor(vals(6, 2), [2, 3]);
    const [y, m] = model.forwardAll(xa, xb);
    expect(y.shape).toEqual([2, 1]);
    same(m, shared.forward(xa).add(shared.forward(xb)).mul(0.5), 1e-6);
    y.sum().backward();
    expect(shared.weight.grad).not.toBeNull();
    const art = await eg.saveModel(model);
    const { model: back } = await eg.loadModel({ json: art.json, weights: art.weights });
    same((back as eg.nn.Graph).forwardAll(xa, xb)[0], y);
    for (const t of [xa, xb, y, m]) t.dispose();
    model.dispose();
    back.dispose();
  });

  it('reports wiring mistakes clearly', () => {
    const x = g.input('x');
    const y = g.input('y');
    const s = g.add(x, y);
    expect(() => new nn.Graph({ inputs: x, outputs: s })).toThrow(/depends on input 'y'/);
    expect(() => new nn.Graph({ inputs: [x, y], outputs: g.add(g.call(new nn.ReLU(), x, 'r'), g.call(new nn.Tanh(), y, 'r')) })).toThrow(/'r' is used twice/);
    const ok = new nn.Graph({ inputs: [x, y], outputs: s });
    expect(() => ok.forward(eg.zeros([1]))).toThrow(/takes 2 input/);
    const bad = new nn.Graph({ inputs: x, outputs: g.call(new nn.Conv2d(3, 2, 1), x, 'c') });
    eg.tidy(() => {
      expect(() => bad.forward(eg.zeros([1, 2, 2, 4]))).toThrow(/graph node .*'c'/);
    });
    bad.dispose();
  });
});

describe('training on digits and fine-tuning', { timeout: 30_000 }, () => {
  let data: { x: eg.Tensor; y: eg.Tensor } | null = null;
  async function digits(): Promise<{ x: eg.Tensor; y: eg.Tensor }> {
    if (data) return data;
    const d = await eg.loadDigits();
    const n = 480;
    data = {
      x: eg.keep(eg.tensor(d.images.subarray(0, n * 64), [n, 8, 8, 1]).div(16)),
      y: eg.keep(eg.tensor(d.labels.subarray(0, n), [n], 'int32')),
    };
    return data;
  }
  const builders: [string, () => eg.nn.Module, number, number][] = [
    ['vgg', () => nn.vgg({ inChannels: 1, numClasses: 10, stages: [[1, 8], [1, 16]], seed: 1 }), 0.01, 4],
    ['resnet', () => nn.resnet({ layers: [1, 1], width: 8, inChannels: 1, numClasses: 10, seed: 2 }), 0.01, 4],
    ['inception', () => nn.inception({ inChannels: 1, numClasses: 10, width: 8, seed: 3 }), 0.02, 6],
  ];
  for (const [name, build, lr, epochs] of builders) {
    it(`${name}() learns digits (loss falls, accuracy well above chance)`, async () => {
      const { x, y } = await digits();
      const m = build();
      m.compile({ optimizer: new eg.optim.Adam(m.parameters(), { lr }), loss: (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true }), metrics: ['accuracy'] });
      const before = await m.evaluate(x, y);
      const h = await m.fit(x, y, { epochs, batchSize: 32, verbose: 0, seed: 1 });
      const after = await m.evaluate(x, y);
      expect(h.history.loss.at(-1)!).toBeLessThan(h.history.loss[0]);
      expect(after.loss).toBeLessThan(before.loss * 0.5);
      expect(after.accuracy).toBeGreaterThan(0.8);
      m.dispose();
    });
  }

  it('fine-tuning: frozen backbone, new head, discriminative learning rates, warm-up, safetensors checkpoint', async () => {
    const { x, y } = await digits();
    const m = nn.resnet({ layers: [1, 1], width: 8, inChannels: 1, numClasses: 4, seed: 9 });
    m.replaceHead(10, 10);
    const backbone = m.namedParameters().filter(([n]) => !n.startsWith('fc.')).map(([n]) => n.split('.')[0]);
    m.freeze(...new Set(backbone));
    expect(m.trainableParameters()).toEqual([m.stateDict()['fc.weight'], m.stateDict()['fc.bias']]);
    const convBefore = Float32Array.from(m.stateDict()['layer1.0.conv1.weight'].dataSync());
    const opt = new eg.optim.Adam([{ params: m.trainableParameters(), lr: 0.01 }]);
    m.compile({ optimizer: opt, loss: (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true }), metrics: ['accuracy'] });
    await m.fit(x, y, { epochs: 1, batchSize: 32, verbose: 0 });
    expect(Array.from(m.stateDict()['layer1.0.conv1.weight'].dataSync())).toEqual(Array.from(convBefore));
    // Unfreeze everything: backbone at a 10x smaller rate, linear warm-up.
    m.unfreeze();
    const head = m.getModule('fc').parameters();
    const rest = m.parameters().filter((p) => !head.includes(p));
    const opt2 = new eg.optim.Adam([{ params: rest, lr: 1e-3 }, { params: head, lr: 1e-2 }]);
    const warm = new eg.optim.LinearWarmup(opt2, 5);
    expect(opt2.groups.map((gr) => gr.options.lr)).toEqual([1e-4, 1e-3]);
    m.compile({ optimizer: opt2, loss: (p, t) => eg.losses.sparseCategoricalCrossEntropy(p, t, { fromLogits: true }), metrics: ['accuracy'] });
    await m.fit(x, y, { epochs: 1, batchSize: 32, verbose: 0, callbacks: [new eg.train.LambdaCallback({ onBatchEnd: () => warm.step() })] });
    expect(opt2.groups.map((gr) => gr.options.lr)).toEqual([1e-3, 1e-2]);
    expect(Array.from(m.stateDict()['layer1.0.conv1.weight'].dataSync())).not.toEqual(Array.from(convBefore));
    // Checkpoint through safetensors.
    const bytes = eg.saveWeights(m.stateDict());
    const m2 = nn.resnet({ layers: [1, 1], width: 8, inChannels: 1, numClasses: 10, seed: 11 });
    eg.loadWeights(m2, bytes);
    m.eval();
    m2.eval();
    eg.tidy(() => same(m2.forward(x.slice([0, 0, 0, 0], [8, 8, 8, 1])), m.forward(x.slice([0, 0, 0, 0], [8, 8, 8, 1]))));
    m.dispose();
    m2.dispose();
    opt.dispose();
    opt2.dispose();
  });
});
