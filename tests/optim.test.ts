/** Optimizers against the reference formulas, schedules, clipping, and exact resume from state. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, vals } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const { optim } = eg;

/** Runs `steps` updates of f(p) = Σ c·p² (gradient 2c·p) and returns the parameter values. */
function run(make: (ps: eg.Tensor[]) => eg.optim.Optimizer<{ lr: number }>, steps: number, p0: Float32Array): Float32Array {
  return eg.tidy(() => {
    const p = eg.keep(eg.tensor(p0).requiresGrad_());
    const c = eg.tensor(vals(p0.length, 9, 0.5, 2));
    const opt = make([p]);
    for (let s = 0; s < steps; s++) {
      eg.tidy(() => {
        opt.zeroGrad();
        p.square().mul(c).sum().backward();
        opt.step();
      });
    }
    opt.dispose();
    const out = p.dataSync() as Float32Array;
    p.dispose();
    return out;
  });
}

/** The same in plain float64 JS, from the textbook (PyTorch) formulas. */
function reference(kind: string, h: Record<string, number | boolean>, steps: number, p0: Float32Array): number[] {
  const c = Array.from(vals(p0.length, 9, 0.5, 2));
  const p = Array.from(p0);
  const st = p.map(() => ({ m: 0, v: 0, buf: 0, gavg: 0, sum: (h.init as number) ?? 0 }));
  for (let t = 1; t <= steps; t++) {
    p.forEach((pv, i) => {
      let g = 2 * c[i] * pv;
      const s = st[i];
      const lr = h.lr as number;
      const wd = (h.wd as number) ?? 0;
      switch (kind) {
        case 'sgd': {
          g += wd * pv;
          if (h.momentum) {
            s.buf = t === 1 ? g : (h.momentum as number) * s.buf + g;
            g = h.nesterov ? g + (h.momentum as number) * s.buf : s.buf;
          }
          p[i] = pv - lr * g;
          break;
        }
        case 'adam':
        case 'adamw': {
          let q = pv;
          if (kind === 'adamw') q = pv * (1 - lr * wd);
          else g += wd * pv;
          const [b1, b2, eps] = [h.b1 as number, h.b2 as number, h.eps as number];
          s.m = b1 * s.m + (1 - b1) * g;
          s.v = b2 * s.v + (1 - b2) * g * g;
          p[i] = q - (lr * (s.m / (1 - b1 ** t))) / (Math.sqrt(s.v / (1 - b2 ** t)) + eps);
          break;
        }
        case 'rmsprop': {
          g += wd * pv;
          const [a, eps, mom] = [h.alpha as number, h.eps as number, (h.momentum as number) ?? 0];
          s.v = a * s.v + (1 - a) * g * g;
          let avg = Math.sqrt(s.v);
          if (h.centered) {
            s.gavg = a * s.gavg + (1 - a) * g;
            avg = Math.sqrt(s.v - s.gavg * s.gavg);
          }
          avg += eps;
          if (mom > 0) {
            s.buf = mom * s.buf + g / avg;
            p[i] = pv - lr * s.buf;
          } else p[i] = pv - (lr * g) / avg;
          break;
        }
        case 'adagrad': {
          g += wd * pv;
          const clr = lr / (1 + (t - 1) * ((h.lrDecay as number) ?? 0));
          s.sum += g * g;
          p[i] = pv - (clr * g) / (Math.sqrt(s.sum) + (h.eps as number));
          break;
        }
      }
    });
  }
  return p;
}

describe('optimizers follow their formulas over many steps', () => {
  const p0 = vals(37, 1, -2, 2);
  const cases: [string, string, Record<string, number | boolean>, (ps: eg.Tensor[]) => eg.optim.Optimizer<{ lr: number }>][] = [
    ['SGD', 'sgd', { lr: 0.05 }, (ps) => new optim.SGD(ps, { lr: 0.05 })],
    ['SGD + momentum + weight decay', 'sgd', { lr: 0.05, momentum: 0.9, wd: 0.01 }, (ps) => new optim.SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: 0.01 })],
    ['SGD Nesterov', 'sgd', { lr: 0.05, momentum: 0.8, nesterov: true }, (ps) => new optim.SGD(ps, { lr: 0.05, momentum: 0.8, nesterov: true })],
    ['Adam + L2', 'adam', { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01 }, (ps) => new optim.Adam(ps, { lr: 0.01, weightDecay: 0.01 })],
    ['AdamW', 'adamw', { lr: 0.01, b1: 0.8, b2: 0.99, eps: 1e-6, wd: 0.1 }, (ps) => new optim.AdamW(ps, { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 })],
    ['RMSProp', 'rmsprop', { lr: 0.01, alpha: 0.99, eps: 1e-8 }, (ps) => new optim.RMSProp(ps, { lr: 0.01 })],
    ['RMSProp centered + momentum', 'rmsprop', { lr: 0.005, alpha: 0.9, eps: 1e-8, momentum: 0.5, centered: true }, (ps) => new optim.RMSProp(ps, { lr: 0.005, alpha: 0.9, momentum: 0.5, centered: true })],
    ['Adagrad', 'adagrad', { lr: 0.1, eps: 1e-10, lrDecay: 0.01, init: 0.1 }, (ps) => new optim.Adagrad(ps, { lr: 0.1, lrDecay: 0.01, initialAccumulatorValue: 0.1 })],
  ];
  for (const [name, kind, h, make] of cases) {
    it(name, () => {
      const got = run(make, 25, p0);
      const want = reference(kind, h, 25, p0);
      got.forEach((g, i) => expect(Math.abs(g - want[i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(want[i]))));
    });
  }
  it('validates hyper-parameters', () => {
    const p = eg.zeros([2]).requiresGrad_();
    expect(() => new optim.SGD([p], { lr: -1 })).toThrow(eg.ArgumentError);
    expect(() => new optim.Adam([p], { beta1: 1 })).toThrow(/beta1/);
    expect(() => new optim.SGD([p], { nesterov: true })).toThrow(/Nesterov/);
    expect(() => new optim.SGD([])).toThrow(eg.ArgumentError);
  });
});

describe('parameter groups, schedules and clipping', () => {
  it('groups keep their own learning rates; schedulers scale each', () => {
    const a = eg.zeros([1]).requiresGrad_();
    const b = eg.zeros([1]).requiresGrad_();
    const opt = new optim.SGD([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01 }], { momentum: 0 });
    eg.tidy(() => a.add(b).sum().backward());
    opt.step();
    expect(a.item()).toBeCloseTo(-0.1, 6);
    expect(b.item()).toBeCloseTo(-0.01, 6);
    const s = new optim.StepLR(opt, 2, 0.5);
    s.step();
    expect(opt.groups.map((g) => g.options.lr)).toEqual([0.1, 0.01]);
    s.step();
    expect(opt.groups.map((g) => g.options.lr)).toEqual([0.05, 0.005]);
  });
  it('schedules: exponential, cosine, warm-up into cosine', () => {
    const p = eg.zeros([1]).requiresGrad_();
    const mk = () => new optim.SGD([p], { lr: 1 });
    const e = new optim.ExponentialLR(mk(), 0.9);
    e.step();
    e.step();
    expect(e.lr).toBeCloseTo(0.81, 10);
    const c = new optim.CosineAnnealingLR(mk(), 10, 0.1);
    for (let i = 0; i < 5; i++) c.step();
    expect(c.lr).toBeCloseTo(0.55, 10);
    for (let i = 0; i < 5; i++) c.step();
    expect(c.lr).toBeCloseTo(0.1, 10);
    for (let i = 0; i < 5; i++) c.step(); // past tMax the cosine goes on, as PyTorch's
    expect(c.lr).toBeCloseTo(0.55, 10);
    const o = mk();
    const w = new optim.LinearWarmup(o, 4, new optim.CosineAnnealingLR(o, 8), 0);
    expect(w.lr).toBe(0);
    w.step();
    expect(w.lr).toBeCloseTo(0.25, 10);
    for (let i = 0; i < 3; i++) w.step();
    expect(w.lr).toBeCloseTo(1, 10);
    for (let i = 0; i < 4; i++) w.step();
    expect(w.lr).toBeCloseTo(0.5, 10);
  });
  it('clips by global norm and by value', () => {
    const a = eg.zeros([2]).requiresGrad_();
    const b = eg.zeros([1]).requiresGrad_();
    eg.tidy(() => a.mul(eg.tensor([3, 0])).sum().add(b.mul(4).sum()).backward());
    const norm = optim.clipGradNorm([a, b], 1);
    expect(norm).toBeCloseTo(5, 5);
    expect(Array.from(a.grad!.dataSync()).map((v) => +v.toFixed(5))).toEqual([0.6, 0]);
    expect(b.grad!.item()).toBeCloseTo(0.8, 5);
    optim.clipGradValue([a, b], 0.7);
    expect(b.grad!.item()).toBeCloseTo(0.7, 6);
  });
});

describe('optimizer state', () => {
  it('stateDict/loadStateDict resumes training bit for bit', () => {
    const p0 = vals(10, 3);
    const train = (opt: eg.optim.Optimizer<{ lr: number }>, p: eg.Tensor, steps: number) => {
      for (let s = 0; s < steps; s++) eg.tidy(() => {
        opt.zeroGrad();
        p.square().sum().backward();
        opt.step();
      });
    };
    // uninterrupted: 6 steps
    const pa = eg.tensor(p0).requiresGrad_();
    const oa = new optim.Adam([pa], { lr: 0.05 });
    train(oa, pa, 6);
    // interrupted after 3: state copied into a fresh optimizer and parameter
    const pb = eg.tensor(p0).requiresGrad_();
    const ob = new optim.Adam([pb], { lr: 0.05 });
    train(ob, pb, 3);
    const pc = eg.tensor(pb.dataSync()).requiresGrad_();
    const oc = new optim.Adam([pc], { lr: 0.05 });
    oc.loadStateDict(ob.stateDict());
    train(oc, pc, 3);
    expect(Array.from(pc.dataSync())).toEqual(Array.from(pa.dataSync()));
    expect(oc.stateDict().params[0].step).toBe(6);
  });
});
