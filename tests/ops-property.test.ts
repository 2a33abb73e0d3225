/**
 * Property tests of the ops against a plain-JS float64 reference on random shapes, including empty
 * and size-1 dimensions: broadcasting arithmetic and comparisons, reshape (with -1), permute and
 * transpose, strided slices with negative bounds, reductions over random axis sets (PyTorch's
 * meaning on empty axes: sum 0, mean NaN, max/min an error), concat and stack. Seeded, bounded.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

beforeAll(async () => {
  await setup();
});

const RUNS = 150;
const opts = (seed: number) => ({ seed, numRuns: RUNS });

/** A dense row-major array of float64 values with its shape: the reference's tensor. */
interface Ref {
  shape: number[];
  data: number[];
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const strides = (s: readonly number[]) => {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
};
/** Multi-index of flat position `i` in `shape`. */
const unravel = (i: number, shape: readonly number[]) => {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
};

// ------------------------------------------------------------------ generators

/** Sizes weighted towards 0 and 1 (the edge cases), up to 4. */
const dim = fc.oneof({ arbitrary: fc.constantFrom(0, 1), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: 4 }), weight: 3 });
const shapeArb = (maxRank = 4) => fc.array(dim, { minLength: 0, maxLength: maxRank });
/** Values that are exact in float32 (quarters in [-4, 4]), so sums are exact too. */
const valuesFor = (shape: number[]) => fc.array(fc.integer({ min: -16, max: 16 }).map((v) => v / 4), { minLength: numel(shape), maxLength: numel(shape) });
const refArb = (maxRank = 4) => shapeArb(maxRank).chain((shape) => valuesFor(shape).map((data): Ref => ({ shape, data })));

/** Two shapes that broadcast: b is a suffix of a with some sizes replaced by 1 (maybe swapped). */
const broadcastPair = shapeArb().chain((a) =>
  fc.tuple(fc.integer({ min: 0, max: a.length }), fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length }), fc.boolean())
    .map(([k, ones, swap]) => {
      const b = a.slice(a.length - k).map((d, i) => (ones[i] ? 1 : d));
      return swap ? [b, a] : [a, b];
    }),
).chain(([sa, sb]) => fc.tuple(valuesFor(sa), valuesFor(sb)).map(([da, db]): [Ref, Ref] => [{ shape: sa, data: da }, { shape: sb, data: db }]));

// ------------------------------------------------------------------ reference ops

function broadcastRef(a: Ref, b: Ref, f: (x: number, y: number) => number): Ref {
  const rank = Math.max(a.shape.length, b.shape.length);
  const pad = (s: number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const [pa, pb] = [pad(a.shape), pad(b.shape)];
  const shape = pa.map((d, i) => (d === 1 ? pb[i] : d));
  const [sa, sb] = [strides(pa), strides(pb)];
  const data = new Array<number>(numel(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    let [oa, ob] = [0, 0];
    for (let d = 0; d < rank; d++) {
      oa += (pa[d] === 1 ? 0 : idx[d]) * sa[d];
      ob += (pb[d] === 1 ? 0 : idx[d]) * sb[d];
    }
    data[i] = f(a.data[oa], b.data[ob]);
  }
  return { shape, data };
}

function permuteRef(x: Ref, perm: number[]): Ref {
  const shape = perm.map((p) => x.shape[p]);
  const st = strides(x.shape);
  const data = new Array<number>(numel(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    data[i] = x.data[idx.reduce((o, v, d) => o + v * st[perm[d]], 0)];
  }
  return { shape, data };
}

function sliceRef(x: Ref, begin: number[], end: number[], step: number[]): Ref {
  const starts: number[] = [];
  const shape = x.shape.map((n, d) => {
    const norm = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
    const s = norm(begin[d]);
    const e = Math.max(norm(end[d]), s);
    starts.push(s);
    return Math.ceil((e - s) / step[d]);
  });
  const st = strides(x.shape);
  const data = new Array<number>(numel(shape));
  for (let i = 0; i < data.length; i++) {
    const idx = unravel(i, shape);
    data[i] = x.data[idx.reduce((o, v, d) => o + (starts[d] + v * step[d]) * st[d], 0)];
  }
  return { shape, data };
}

type Reduction = 'sum' | 'mean' | 'max' | 'min';
function reduceRef(x: Ref, axes: number[], keepDims: boolean, op: Reduction): Ref {
  const all = axes.length === 0 ? x.shape.map((_, i) => i) : axes.map((a) => (a < 0 ? a + x.shape.length : a));
  const keptShape = x.shape.map((d, i) => (all.includes(i) ? 1 : d));
  const acc = new Array<number[]>(numel(keptShape)).fill([]).map(() => [] as number[]);
  const ks = strides(keptShape);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape);
    acc[idx.reduce((o, v, d) => o + (all.includes(d) ? 0 : v * ks[d]), 0)].push(x.data[i]);
  }
  const data = acc.map((vs) => {
    const s = vs.reduce((a, b) => a + b, 0);
    switch (op) {
      case 'sum':
        return s;
      case 'mean':
        return s / vs.length; // 0 / 0 = NaN, as in PyTorch
      case 'max':
        return Math.max(...vs);
      default:
        return Math.min(...vs);
    }
  });
  const shape = keepDims ? keptShape : x.shape.filter((_, i) => !all.includes(i));
  return { shape, data };
}

function concatRef(xs: Ref[], axis: number): Ref {
  const shape = xs[0].shape.slice();
  shape[axis] = xs.reduce((n, x) => n + x.shape[axis], 0);
  const outer = numel(shape.slice(0, axis));
  const inner = numel(shape.slice(axis + 1));
  const data: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const x of xs) {
      const w = x.shape[axis] * inner;
      data.push(...x.data.slice(o * w, (o + 1) * w));
    }
  }
  return { shape, data };
}

// ------------------------------------------------------------------ comparison

const make = (r: Ref) => eg.tensor(Float32Array.from(r.data), r.shape);

/** Same shape; values equal within float32 tolerance; NaN where the reference is NaN. */
function expectClose(t: eg.Tensor, r: Ref): void {
  expect(t.shape).toEqual(r.shape);
  const got = t.dataSync();
  expect(got.length).toBe(r.data.length);
  for (let i = 0; i < got.length; i++) {
    const [g, w] = [got[i], r.data[i]];
    if (Number.isNaN(w)) {
      expect(g, `element ${i}`).toBeNaN();
    } else if (!Number.isFinite(w)) {
      expect(g, `element ${i}`).toBe(w);
    } else {
      expect(Math.abs(g - w), `element ${i}: ${g} vs ${w}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(w)));
    }
  }
}

const f32 = Math.fround;
const BINARY: [string, (a: eg.Tensor, b: eg.Tensor) => eg.Tensor, (x: number, y: number) => number][] = [
  ['add', (a, b) => a.add(b), (x, y) => x + y],
  ['sub', (a, b) => a.sub(b), (x, y) => x - y],
  ['mul', (a, b) => a.mul(b), (x, y) => x * y],
  ['div', (a, b) => a.div(b), (x, y) => f32(x) / f32(y)],
  ['maximum', (a, b) => a.maximum(b), (x, y) => Math.max(x, y)],
  ['minimum', (a, b) => a.minimum(b), (x, y) => Math.min(x, y)],
  ['less', (a, b) => a.less(b), (x, y) => +(x < y)],
  ['greaterEqual', (a, b) => a.greaterEqual(b), (x, y) => +(x >= y)],
  ['equal', (a, b) => a.equal(b), (x, y) => +(x === y)],
];

describe('ops against a plain-JS reference on random shapes', () => {
  it('broadcasting binary ops and comparisons', () => {
    fc.assert(fc.property(broadcastPair, fc.integer({ min: 0, max: BINARY.length - 1 }), ([a, b], k) => {
      const [, op, ref] = BINARY[k];
      eg.tidy(() => expectClose(op(make(a), make(b)), broadcastRef(a, b, ref)));
    }), opts(1301));
  });

  it('shapes that do not broadcast are ShapeErrors', () => {
    fc.assert(fc.property(shapeArb(3), fc.integer({ min: 0, max: 2 }), (s, i) => {
      fc.pre(s.length > i && s[i] !== 1);
      const other = s.slice();
      other[i] = s[i] + 2;
      expect(() => eg.tidy(() => eg.zeros(s).add(eg.zeros(other)))).toThrow(eg.ShapeError);
    }), opts(1302));
  });

  it('reshape, with and without -1, keeps row-major order', () => {
    const arb = refArb().chain((x) => fc.shuffledSubarray(x.shape.length > 0 ? [...x.shape, 1] : [1]).chain((dims) => fc.tuple(fc.constant(x), fc.constant(dims), fc.integer({ min: -1, max: dims.length - 1 }))));
    fc.assert(fc.property(arb, ([x, dims, minus]) => {
      const target = numel(dims) === numel(x.shape) ? dims : [numel(x.shape)];
      const spec = target.slice();
      // -1 is only determined when the other sizes are not 0.
      if (minus >= 0 && minus < spec.length && numel(spec.filter((_, i) => i !== minus)) > 0) spec[minus] = -1;
      eg.tidy(() => expectClose(make(x).reshape(spec), { shape: target, data: x.data }));
    }), opts(1303));
  });

  it('permute and transpose', () => {
    const arb = refArb().chain((x) => fc.tuple(fc.constant(x), fc.shuffledSubarray(x.shape.map((_, i) => i), { minLength: x.shape.length })));
    fc.assert(fc.property(arb, ([x, perm]) => {
      eg.tidy(() => {
        const t = make(x);
        expectClose(t.permute(perm), permuteRef(x, perm));
        // Also through a copy, so the strided view is materialised.
        expectClose(t.permute(perm).contiguous(), permuteRef(x, perm));
        if (x.shape.length >= 2) {
          const p = x.shape.map((_, i) => i);
          [p[p.length - 2], p[p.length - 1]] = [p[p.length - 1], p[p.length - 2]];
          expectClose(t.transpose(), permuteRef(x, p));
        }
      });
    }), opts(1304));
  });

  it('slice with begin/end/step, negative bounds and out-of-range ends', () => {
    const bound = fc.integer({ min: -6, max: 6 });
    const arb = refArb().chain((x) => fc.tuple(
      fc.constant(x),
      fc.array(bound, { minLength: x.shape.length, maxLength: x.shape.length }),
      fc.array(bound, { minLength: x.shape.length, maxLength: x.shape.length }),
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: x.shape.length, maxLength: x.shape.length }),
    ));
    fc.assert(fc.property(arb, ([x, b, e, s]) => {
      eg.tidy(() => {
        const y = make(x).slice(b, e, s);
        expectClose(y, sliceRef(x, b, e, s));
        // A slice of a slice, then read through arithmetic (strided input to a kernel).
        expectClose(y.add(0), sliceRef(x, b, e, s));
      });
    }), opts(1305));
  });

  it('reductions over random axis sets, with keepDims; empty axes as in PyTorch', () => {
    const arb = refArb().chain((x) => fc.tuple(
      fc.constant(x),
      fc.subarray(x.shape.map((_, i) => i)).chain((ax) => fc.constant(ax.map((a) => (a % 2 ? a - x.shape.length : a)))),
      fc.boolean(),
      fc.constantFrom<Reduction>('sum', 'mean', 'max', 'min'),
    ));
    fc.assert(fc.property(arb, ([x, axes, keepDims, op]) => {
      const all = axes.length === 0 ? x.shape.map((_, i) => i) : axes.map((a) => (a < 0 ? a + x.shape.length : a));
      // PyTorch: max/min over a reduced extent of zero elements is an error (even if the result is empty).
      const reducesNothing = numel(all.map((a) => x.shape[a])) === 0;
      eg.tidy(() => {
        const t = make(x);
        const run = () => t[op](axes.length ? axes : undefined, keepDims);
        if ((op === 'max' || op === 'min') && reducesNothing) {
          expect(run).toThrow(eg.ShapeError);
        } else {
          expectClose(run(), reduceRef(x, axes, keepDims, op));
        }
      });
    }), opts(1306));
  });

  it('concat and stack along a random axis', () => {
    const arb = fc.tuple(shapeArb(3).filter((s) => s.length > 0), fc.integer({ min: 1, max: 3 }), fc.nat())
      .chain(([shape, n, axisSeed]) => {
        const axis = axisSeed % shape.length;
        const shapes = fc.array(dim, { minLength: n, maxLength: n }).map((sizes) => sizes.map((d) => shape.map((s, i) => (i === axis ? d : s))));
        return shapes.chain((ss) => fc.tuple(...ss.map((s) => valuesFor(s).map((data): Ref => ({ shape: s, data })))).map((xs) => [xs, axis] as const));
      });
    fc.assert(fc.property(arb, ([xs, axis]) => {
      eg.tidy(() => {
        const ts = xs.map(make);
        expectClose(eg.concat(ts, axis), concatRef(xs, axis));
        if (xs.every((x) => x.shape[axis] === xs[0].shape[axis])) {
          const expanded = xs.map((x) => ({ shape: [...x.shape.slice(0, axis), 1, ...x.shape.slice(axis)], data: x.data }));
          expectClose(eg.stack(ts, axis), concatRef(expanded, axis));
        }
      });
    }), opts(1307));
  });

  it('leaves no tensors behind', () => {
    const before = eg.memory().numTensors;
    fc.assert(fc.property(broadcastPair, ([a, b]) => {
      eg.tidy(() => {
        make(a).add(make(b)).sum();
      });
    }), { seed: 1308, numRuns: 50 });
    expect(eg.memory().numTensors).toBe(before);
  });
});
