/**
 * Issue 14 §3: `eg.viz` — Captum's visualize_image_attr (normalization, signs, methods), grids of
 * feature maps and filters, attention rollout and labeled maps, bar charts, text highlighting,
 * PNG output identical in Node and Chromium, typed errors, no tensor leaks.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decode } from 'fast-png';
import { interpolateBlues, interpolatePiYG } from 'd3-scale-chromatic';
import * as eg from '../sdk/index.js';
import { BAD_ARGUMENTS, isBrowser, setup, vals } from './helpers.js';

const v = eg.viz;

let live = 0;
beforeAll(async () => {
  await setup();
  live = eg.memory().numTensors;
});
// Each test frees what it made: a leaked tensor that the GC frees later would shift another
// test's baseline.
afterEach(() => {
  expect(eg.memory().numTensors).toBe(live);
});

/** d3's color at t as [r, g, b] (the reference the tables are sampled from). */
function d3rgb(f: (t: number) => string, t: number): number[] {
  const s = f(t);
  const m = /^rgb\((\d+), ?(\d+), ?(\d+)\)$/.exec(s);
  if (m) return [Number(m[1]), Number(m[2]), Number(m[3])];
  return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16));
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

// A 2x3 two-channel attribution whose channel sums are [1, 2, 3, -6, 5, 4] (|sum| 1..6, total 21).
const ATTR = { data: [0.5, 0.5, 1, 1, 1, 2, -4, -2, 2, 3, 3, 1], shape: [1, 2, 3, 2] };

describe('normalizeAttribution (Captum _normalize_attr)', () => {
  it('sums channels and divides by the cumulative-sum threshold, clipping outliers', () => {
    // |sums| sorted 1,2,3,4,5,6; cumsum 1,3,6,10,15,21. outlierPerc 30: 21*0.7 = 14.7 → first cumsum >= is 15 → threshold 5.
    const n = v.normalizeAttribution(ATTR, { sign: 'all', outlierPerc: 30 });
    expect([n.height, n.width, n.threshold]).toEqual([2, 3, 5]);
    expect(Array.from(n.values)).toEqual([0.2, 0.4, 0.6, -1, 1, 0.8]); // -6/5 and clipped to -1
    // Default outlierPerc 2: 21*0.98 = 20.58 → threshold 6, nothing clipped.
    const d = v.normalizeAttribution(ATTR, { sign: 'all' });
    expect(d.threshold).toBe(6);
    expect(Array.from(d.values)).toEqual([1 / 6, 2 / 6, 3 / 6, -1, 5 / 6, 4 / 6]);
  });

  it('sign modes keep the asked part (negative divides by a negative threshold)', () => {
    const pos = v.normalizeAttribution(ATTR, { sign: 'positive', outlierPerc: 0 });
    expect(pos.threshold).toBe(5);
    expect(Array.from(pos.values)).toEqual([0.2, 0.4, 0.6, 0, 1, 0.8]);
    const neg = v.normalizeAttribution(ATTR, { sign: 'negative' });
    expect(neg.threshold).toBe(-6);
    expect(Array.from(neg.values).map((x) => x + 0)).toEqual([0, 0, 0, 1, 0, 0]);
    const abs = v.normalizeAttribution(ATTR, { sign: 'absolute_value', outlierPerc: 0 });
    expect(abs.threshold).toBe(6);
    expect(Array.from(abs.values)).toEqual([1 / 6, 2 / 6, 3 / 6, 1, 5 / 6, 4 / 6]);
    // Nothing of the sign: a blank map, not a division by zero.
    const none = v.normalizeAttribution({ data: [1, 2, 3, 4], shape: [2, 2, 1] }, { sign: 'negative' });
    expect(Array.from(none.values)).toEqual([0, 0, 0, 0]);
  });
});

describe('visualizeImageAttr (Captum methods)', () => {
  // Original image, values in [0, 1]: Captum scales by 255 and truncates.
  const orig = { data: [0.2, 0.4, 1, 0, 0, 0, 1, 1, 1, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.9, 0.8, 0.7], shape: [2, 3, 3] };
  const origBytes = orig.data.map((x) => Math.trunc(x * 255));

  it('heat_map: the diverging colormap for sign all, sequential otherwise', () => {
    const all = v.visualizeImageAttr(ATTR, undefined, { sign: 'all', outlierPerc: 30 });
    expect([all.width, all.height]).toEqual([3, 2]);
    // (0, 1) is -1 → the diverging map's low end; (1, 1) is +1 → its high end; (0, 0) is 0.2 → index floor(0.6*256) = 153.
    expect(all.pixel(0, 1)).toEqual([...d3rgb(interpolatePiYG, 0), 255]);
    expect(all.pixel(1, 1)).toEqual([...d3rgb(interpolatePiYG, 1), 255]);
    expect(all.pixel(0, 0)).toEqual([...d3rgb(interpolatePiYG, 153 / 255), 255]);
    const abs = v.visualizeImageAttr(ATTR, undefined, { outlierPerc: 0 }); // default sign absolute_value → blues
    expect(abs.pixel(0, 1)).toEqual([...d3rgb(interpolateBlues, 1), 255]);
    expect(abs.pixel(2, 0)).toEqual([...d3rgb(interpolateBlues, 128 / 255), 255]); // 0.5 → index 128
  });

  it('masked_image, alpha_scaling, original_image and blended_heat_map pixels', () => {
    const masked = v.visualizeImageAttr(ATTR, orig, { method: 'masked_image', sign: 'positive', outlierPerc: 0 });
    // Pixel (2, 0): norm 0.6, original bytes [255, 255, 255] → trunc(255 * 0.6) = 153.
    expect(masked.pixel(0, 1)).toEqual([0, 0, 0, 255]); // negative sum: masked out
    expect(masked.pixel(2, 0)).toEqual([153, 153, 153, 255]);
    expect(masked.pixel(0, 0)).toEqual([Math.trunc(origBytes[0] * 0.2), Math.trunc(origBytes[1] * 0.2), Math.trunc(origBytes[2] * 0.2), 255]);
    const alpha = v.visualizeImageAttr(ATTR, orig, { method: 'alpha_scaling', sign: 'positive', outlierPerc: 0 });
    expect(alpha.pixel(1, 1)).toEqual([...origBytes.slice(12, 15), 255]);
    expect(alpha.pixel(2, 1)).toEqual([...origBytes.slice(15, 18), Math.trunc(0.8 * 255)]);
    const original = v.visualizeImageAttr(ATTR, orig, { method: 'original_image' });
    expect(original.pixel(1, 0)).toEqual([0, 0, 0, 255]);
    expect(original.pixel(2, 1)).toEqual([...origBytes.slice(15, 18), 255]);
    // Blended: gray = channel mean stretched min..max (min 0 at (1,0), max 255 at (2,0)), heat at alpha 0.5.
    const blended = v.visualizeImageAttr(ATTR, orig, { method: 'blended_heat_map', sign: 'all', outlierPerc: 30 });
    // (2, 0): norm 0.6 → colormap index floor(0.8 * 256) = 204, over the brightest gray (255).
    const heat204 = d3rgb(interpolatePiYG, 204 / 255);
    expect(blended.pixel(2, 0)).toEqual([...heat204.map((c) => Math.round(0.5 * c + 0.5 * 255)), 255]);
    // (1, 1): norm 1 → the high end, over gray index floor(mean(25, 51, 76) / 255 * 256) = 50.
    const grayIdx = Math.floor(((25 + 51 + 76) / 3 / 255) * 256);
    expect(grayIdx).toBe(50);
    expect(blended.pixel(1, 1)).toEqual([...d3rgb(interpolatePiYG, 1).map((c) => Math.round(0.5 * c + 0.5 * grayIdx)), 255]);
    // alphaOverlay 1 is the plain heat map.
    expect(v.visualizeImageAttr(ATTR, orig, { method: 'blended_heat_map', sign: 'all', outlierPerc: 30, alphaOverlay: 1 }).data).toEqual(v.visualizeImageAttr(ATTR, undefined, { sign: 'all', outlierPerc: 30 }).data);
    // A single-channel original is gray in RGB.
    const gray = v.visualizeImageAttr(ATTR, { data: [0, 0.5, 1, 1, 1, 1], shape: [2, 3, 1] }, { method: 'original_image' });
    expect(gray.pixel(1, 0)).toEqual([127, 127, 127, 255]);
  });

  it('typed errors for bad arguments, and the engine keeps working', () => {
    expect(() => v.visualizeImageAttr(ATTR, orig, { method: 'masked_image', sign: 'all' })).toThrow(eg.ArgumentError);
    expect(() => v.visualizeImageAttr(ATTR, undefined, { method: 'blended_heat_map' })).toThrow(/needs the original image/);
    expect(() => v.visualizeImageAttr(ATTR, undefined, { sign: 'both' as never })).toThrow(eg.ArgumentError);
    expect(() => v.visualizeImageAttr(ATTR, undefined, { method: 'heatmap' as never })).toThrow(/method must be one of/);
    expect(() => v.visualizeImageAttr(ATTR, undefined, { outlierPerc: 100 })).toThrow(eg.ArgumentError);
    expect(() => v.visualizeImageAttr(ATTR, undefined, { colormap: 'jet' as never })).toThrow(eg.ArgumentError);
    expect(() => v.visualizeImageAttr({ data: [1, NaN], shape: [1, 2, 1] })).toThrow(/non-finite/);
    expect(() => v.visualizeImageAttr({ data: [1, 2, 3], shape: [1, 2, 1] })).toThrow(eg.ShapeError);
    expect(() => v.visualizeImageAttr({ data: [1, 2], shape: [2, 1, 2, 1] })).toThrow(eg.ShapeError);
    expect(() => v.visualizeImageAttr(ATTR, { data: [1, 2, 3], shape: [1, 3, 1] }, { method: 'original_image' })).toThrow(/is 1x3 but the attribution is 2x3/);
    expect(() => v.visualizeImageAttr(null as never)).toThrow(eg.ArgumentError);
    const dead = eg.ones([2, 2, 1]);
    dead.dispose();
    expect(() => v.visualizeImageAttr(dead)).toThrow(eg.DisposedError);
    expect(() => v.grid([])).toThrow(eg.ArgumentError);
    expect(() => v.grid([new v.VizImage(1, 1)], { background: [0, 0, 0] as never })).toThrow(eg.ArgumentError);
    expect(() => new v.VizImage(0, 3)).toThrow(eg.ArgumentError);
    expect(() => v.barChart({ names: ['a', 'a'], values: [1, 2] })).toThrow(/distinct/);
    expect(() => v.barChart({ names: ['a'], values: [1, 2] })).toThrow(eg.ArgumentError);
    expect(() => v.textHighlight(['a'], [Infinity])).toThrow(eg.ArgumentError);
    expect(() => v.attentionRollout([])).toThrow(eg.ArgumentError);
    expect(eg.tidy(() => eg.tensor([1, 2]).add(1).dataSync())).toEqual(new Float32Array([2, 3]));
  });
});

describe('PNG output', () => {
  it('has a valid signature and IHDR, and decodes back to the pixels', () => {
    const img = v.visualizeImageAttr({ data: vals(5 * 7 * 3, 3), shape: [5, 7, 3] }, undefined, { sign: 'all' });
    const png = img.toPNG();
    expect(Array.from(png.slice(0, 8))).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
    const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
    expect(String.fromCharCode(...png.slice(12, 16))).toBe('IHDR');
    expect([dv.getUint32(16), dv.getUint32(20), png[24], png[25]]).toEqual([7, 5, 8, 6]); // 7x5, 8-bit RGBA
    const back = decode(png);
    expect([back.width, back.height, back.channels]).toEqual([7, 5, 4]);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
  });

  it('the same bytes in Node and Chromium (stored hash)', async () => {
    const attr = { data: vals(24 * 24 * 3, 11), shape: [1, 24, 24, 3] };
    const orig = { data: vals(24 * 24 * 3, 12, 0, 1), shape: [24, 24, 3] };
    const parts = [
      v.visualizeImageAttr(attr, orig, { method: 'blended_heat_map', sign: 'all' }),
      v.visualizeImageAttr(attr, orig, { method: 'heat_map', sign: 'positive' }),
      v.visualizeImageAttr(attr, orig, { method: 'masked_image', sign: 'absolute_value' }),
      v.featureMaps({ data: vals(8 * 8 * 4, 13), shape: [8, 8, 4] }, { scale: 3 }),
    ];
    const png = v.grid(parts, { cols: 2, padding: 2 }).toPNG();
    expect(await sha256(png)).toBe('eca39f2780cadc199ba231946861e4ef038155760ecae6940b6f1af0e8979189');
  });
});

describe('grids, feature maps, filters', () => {
  it('grid layout: cell = largest image, padding around and between', () => {
    const red = new v.VizImage(2, 3, new Uint8ClampedArray(24).fill(200));
    const wide = new v.VizImage(4, 1, new Uint8ClampedArray(16).fill(100));
    const g = v.grid([red, wide, red], { cols: 2, padding: 1, background: [0, 0, 255, 255] });
    expect([g.width, g.height]).toEqual([2 * 4 + 3, 2 * 3 + 3]);
    expect(g.pixel(0, 0)).toEqual([0, 0, 255, 255]);
    expect(g.pixel(1, 1)).toEqual([200, 200, 200, 200]);
    expect(g.pixel(6, 1)).toEqual([100, 100, 100, 100]);
    expect(g.pixel(6, 2)).toEqual([0, 0, 255, 255]); // below the 1-row image: background
    expect(g.pixel(1, 5)).toEqual([200, 200, 200, 200]); // third image, second row
    expect(v.grid([red, red, red, red, red]).width).toBe(3 * 2 + 4); // default cols ceil(sqrt(5)) = 3
  });

  it('feature maps of a conv and a pool layer: one tile per channel, each min-max normalized', () => {
    const before = eg.memory().numTensors;
    const model = new eg.nn.Sequential(new eg.nn.Conv2d(1, 6, 3, { seed: 1 }), new eg.nn.ReLU(), new eg.nn.MaxPool2d(2));
    const x = eg.rand([1, 10, 10, 1], 0, 1, { seed: 2 });
    const { result, activations } = eg.explain.captureActivations(model, ['0', '2'], () => eg.tidy(() => model.forward(x)));
    const conv = activations.get('0')!;
    const [, h, w, c] = conv.shape;
    expect(c).toBe(6);
    const fm = v.featureMaps(conv, { cols: 3, padding: 1 });
    expect([fm.width, fm.height]).toEqual([3 * w + 4, 2 * h + 3]);
    const pool = v.featureMaps(activations.get('2')!, { cols: 6, padding: 0, scale: 2 });
    expect([pool.width, pool.height]).toEqual([6 * 2 * activations.get('2')!.shape[2], 2 * activations.get('2')!.shape[1]]);
    // Each tile spans the whole colormap: its min and max pixels are the table's ends.
    const one = v.featureMaps({ data: [3, 1, 2, 5], shape: [2, 2, 1] }, { padding: 0, colormap: 'gray' });
    expect([one.pixel(0, 0)[0], one.pixel(1, 0)[0], one.pixel(0, 1)[0], one.pixel(1, 1)[0]]).toEqual([128, 0, 64, 255]);
    // Learned first-layer filters: Conv2d weight HWIO [3, 3, 1, 6] → 6 tiles; RGB filters of a 3-channel conv.
    const filt = v.filters(model.layers[0].parameters()[0], { cols: 6, padding: 1, scale: 4 });
    expect([filt.width, filt.height]).toEqual([6 * 12 + 7, 12 + 2]);
    const rgb = new eg.nn.Conv2d(3, 4, [2, 3], { seed: 3 });
    const rf = v.filters(rgb.parameters()[0], { cols: 4, padding: 0 });
    expect([rf.width, rf.height]).toEqual([12, 2]);
    for (const t of [result, x, ...activations.values(), ...model.parameters(), ...rgb.parameters()]) t.dispose();
    expect(eg.memory().numTensors).toBe(before);
  });
});

describe('attention', () => {
  it('rollout on a hand-computed 2-layer, 2-head example', () => {
    const before = eg.memory().numTensors;
    // Layer 1 heads average to [[0.5, 0.5], [0.2, 0.8]]; + I, row-normalized: [[0.75, 0.25], [0.1, 0.9]].
    const l1 = eg.tensor([[[0.6, 0.4], [0.3, 0.7]], [[0.4, 0.6], [0.1, 0.9]]]);
    // Layer 2: [[1, 0], [0.6, 0.4]] + I → [[1, 0], [0.3, 0.7]].
    const l2 = eg.tensor([[[1, 0], [0.6, 0.4]], [[1, 0], [0.6, 0.4]]]);
    const r = v.attentionRollout([l1, l2]);
    // [[1, 0], [0.3, 0.7]] · [[0.75, 0.25], [0.1, 0.9]] = [[0.75, 0.25], [0.295, 0.705]].
    expect(r.shape).toEqual([2, 2]);
    const got = Array.from(r.dataSync());
    [0.75, 0.25, 0.295, 0.705].forEach((e, i) => expect(got[i]).toBeCloseTo(e, 6));
    // Batched form: [batch, heads, T, T] → [batch, T, T].
    const b = eg.tidy(() => v.attentionRollout([l1.reshape([1, 2, 2, 2]), l2.reshape([1, 2, 2, 2])]));
    expect(b.shape).toEqual([1, 2, 2]);
    expect(Array.from(b.dataSync())).toEqual(got);
    eg.tidy(() => {
      expect(() => v.attentionRollout([l1, eg.ones([2, 3, 3])])).toThrow(eg.ShapeError);
    });
    for (const t of [l1, l2, r, b]) t.dispose();
    expect(eg.memory().numTensors).toBe(before);
  });

  it('per layer and head maps with token labels (repeated and markup tokens)', async () => {
    const tokens = ['<s>', 'the', 'cat', 'the'];
    const w = eg.tensor(Array.from(vals(2 * 4 * 4, 5, 0, 1)), [1, 2, 4, 4]);
    const chart = v.attentionMap([w, { data: vals(16, 6, 0, 1), shape: [4, 4] }], { tokens, title: 'attention' });
    const spec = chart.spec as { data: { values: { layer: number; head: number; weight: number }[] } };
    expect(spec.data.values.length).toBe(2 * 16 + 16);
    expect(new Set(spec.data.values.map((r) => `${r.layer}/${r.head}`))).toEqual(new Set(['0/0', '0/1', '1/0']));
    const svg = await chart.toSVG();
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('&lt;s&gt;');
    expect(svg.split('>cat<').length - 1).toBeGreaterThanOrEqual(2); // the label on both panels' axes
    expect(() => v.attentionMap(w, { tokens: ['a', 'b'] })).toThrow(eg.ShapeError);
    w.dispose();
  });
});

describe('attention of a real model', () => {
  it('GPT attention maps: rollout rows sum to 1 and stay causal; a map per layer and head of one example', async () => {
    const gpt = new eg.nn.GPT({ vocabSize: 9, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8, dropout: 0, seed: 7 }).keepAttentionWeights();
    const ids = eg.tensor([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], [2, 5], 'int32');
    eg.tidy(() => {
      gpt.forward(ids);
    });
    const maps = gpt.attentionMaps() as eg.Tensor[];
    const before = eg.memory().numTensors; // the model's own tensors are not this test's business
    const r = v.attentionRollout(maps);
    expect(r.shape).toEqual([2, 5, 5]);
    const d = r.dataSync();
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < 5; i++) {
        let s = 0;
        for (let j = 0; j < 5; j++) {
          s += d[(b * 5 + i) * 5 + j];
          if (j > i) expect(d[(b * 5 + i) * 5 + j]).toBe(0); // token i never draws on a later one
        }
        expect(s).toBeCloseTo(1, 5);
      }
    }
    expect(() => v.attentionMap(maps, { tokens: ['a', 'b', 'c', 'd', 'e'] })).toThrow(/pick one with the option example/);
    const chart = v.attentionMap(maps, { tokens: ['a', 'b', 'c', 'd', 'e'], example: 1 });
    const rows = (chart.spec as { data: { values: { layer: number; head: number; q: number; k: number; weight: number }[] } }).data.values;
    expect(rows.length).toBe(2 * 2 * 25);
    const w0 = maps[0].dataSync(); // example 1, head 1, query 3, key 2
    expect(rows.find((x) => x.layer === 0 && x.head === 1 && x.q === 3 && x.k === 2)!.weight).toBe(w0[((1 * 2 + 1) * 5 + 3) * 5 + 2]);
    r.dispose();
    expect(eg.memory().numTensors).toBe(before);
    ids.dispose();
    gpt.dispose();
  });
});

describe('bar charts and text', () => {
  it('bar chart spec: names, values, error bars, sorted; renders to SVG', async () => {
    const chart = v.barChart({ names: ['age', 'bmi', 'bp'], values: new Float32Array([0.1, 0.5, -0.25]), errors: [0.01, 0.05, 0.02], title: 'importance' });
    const spec = chart.spec as { title: string; data: { values: Record<string, unknown>[] }; layer: { mark: unknown; encoding: { y: { sort: string[] } } }[] };
    expect(spec.title).toBe('importance');
    expect(spec.data.values).toEqual([
      { feature: 'age', value: 0.10000000149011612, lo: 0.10000000149011612 - 0.01, hi: 0.10000000149011612 + 0.01 },
      { feature: 'bmi', value: 0.5, lo: 0.45, hi: 0.55 },
      { feature: 'bp', value: -0.25, lo: -0.27, hi: -0.23 },
    ]);
    expect(spec.layer.length).toBe(2);
    expect(spec.layer[0].encoding.y.sort).toEqual(['bmi', 'age', 'bp']);
    expect(v.barChart({ names: ['a', 'b'], values: [1, 2], sort: false }).spec).toMatchObject({ layer: [{ encoding: { y: { sort: ['a', 'b'] } } }] });
    const svg = await chart.toSVG();
    for (const s of ['age', 'bmi', 'bp', 'importance']) expect(svg).toContain(`>${s}<`);
  });

  it('line chart spec: one row per point, series in the legend, axis options; renders to SVG; bad series refused', async () => {
    const chart = v.lineChart({
      series: [{ name: 'standard', x: [0, 0.1, 0.3], y: new Float32Array([0.99, 0.5, 0]) }, { name: 'robust', x: [0, 0.1, 0.3], y: [0.98, 0.95, 0.9] }],
      title: 'accuracy vs eps', xTitle: 'eps', yTitle: 'accuracy', zeroY: false, integerX: false,
    });
    const spec = chart.spec as { title: string; data: { values: unknown[] }; encoding: { x: { title: string }; y: { title: string; scale?: unknown } } };
    expect(spec.data.values).toHaveLength(6);
    expect(spec.data.values[4]).toEqual({ x: 0.1, y: 0.95, series: 'robust' });
    expect(spec.encoding.x.title).toBe('eps');
    expect(spec.encoding.y).toMatchObject({ title: 'accuracy', scale: { zero: false } });
    const svg = await chart.toSVG();
    for (const s of ['standard', 'robust', 'accuracy vs eps', 'eps']) expect(svg).toContain(`>${s}<`);
    expect(() => v.lineChart({ series: [] })).toThrow(eg.ArgumentError);
    expect(() => v.lineChart({ series: [{ name: 'a', x: [1, 2], y: [1] }] })).toThrow(/entries/);
    expect(() => v.lineChart({ series: [{ name: 'a', x: [1], y: [NaN] }] })).toThrow(/finite/);
    expect(() => v.lineChart({ series: [{ name: 'a', x: [1], y: [1] }, { name: 'a', x: [1], y: [1] }] })).toThrow(/distinct/);
  });

  it('text highlighting escapes tokens and colors by sign, with a legend', () => {
    const html = v.textHighlight(['<script>', 'a&b', '"q"', "it's"], [1, -1, 0, 0.5]);
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;');
    expect(html).toContain('a&amp;b');
    expect(html).toContain('&quot;q&quot;');
    expect(html).toContain('it&#39;s');
    expect(html).toContain(`background-color:${v.hexColor('diverging', 1)}`);
    expect(html).toContain(`background-color:${v.hexColor('diverging', 0)}`);
    expect(html).toContain(`background-color:${v.hexColor('diverging', 0.75)}`);
    expect(html).toContain('eg-text-legend');
    expect(v.textHighlight(['x'], [0], { legend: false })).not.toContain('legend');
    const t = eg.tensor([0.5, -0.5]);
    expect(v.textHighlight(['a', 'b'], t)).toContain(v.hexColor('diverging', 0));
    t.dispose();
  });
});

describe('runtime-specific output', () => {
  it.runIf(isBrowser)('drawTo paints a canvas', () => {
    const img = v.visualizeImageAttr(ATTR, undefined, { sign: 'all', outlierPerc: 30 });
    const canvas = document.createElement('canvas');
    canvas.width = 5;
    canvas.height = 4;
    img.drawTo(canvas, 1, 1);
    const px = canvas.getContext('2d')!.getImageData(1, 2, 1, 1).data;
    expect(Array.from(px)).toEqual(img.pixel(0, 1));
  });

  it.runIf(!isBrowser)('drawTo says it needs a browser', () => {
    const img = new v.VizImage(2, 2);
    expect(() => img.drawTo({} as never)).toThrow(eg.BackendError);
  });
});

describe('charts as pictures (the same in Node and Chromium)', () => {
  it('Chart.toImage: a VizImage of one size, bars where the spec puts them; toPNG decodes to it; same bytes in both runtimes', async () => {
    // One bar of value 1 ('pos', green) above one of -1 ('neg', pink), on an x axis from -1 to 1.
    const chart = v.barChart({ names: ['pos', 'neg'], values: [1, -1], width: 200 });
    const img = await chart.toImage();
    expect(img).toBeInstanceOf(v.VizImage);
    // The 200 px plot, padding and labels laid out by vega's text estimate in both runtimes (one size).
    expect([img.width, img.height]).toEqual([242, 78]);
    const green = v.hexColor('diverging', 0.9);
    const pink = v.hexColor('diverging', 0.1);
    const rgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    // Each bar colour's bounding box: the green bar from x = 0 to 1, the pink one from -1 to 0, each half
    // the 200 px plot wide, meeting at the zero line; green above pink (sorted by value).
    const box = (c: number[]) => {
      const b = { x0: Infinity, x1: -1, y0: Infinity, y1: -1, n: 0 };
      for (let y = 0; y < img.height; y++) {
        for (let x = 0; x < img.width; x++) {
          const p = img.pixel(x, y);
          if (Math.abs(p[0] - c[0]) + Math.abs(p[1] - c[1]) + Math.abs(p[2] - c[2]) < 6 && p[3] === 255) {
            Object.assign(b, { x0: Math.min(b.x0, x), x1: Math.max(b.x1, x), y0: Math.min(b.y0, y), y1: Math.max(b.y1, y), n: b.n + 1 });
          }
        }
      }
      return b;
    };
    const g = box(rgb(green));
    const p = box(rgb(pink));
    for (const b of [g, p]) {
      expect(Math.abs(b.x1 - b.x0 + 1 - 100)).toBeLessThanOrEqual(2);
      expect(b.n).toBeGreaterThan(0.8 * (b.x1 - b.x0 + 1) * (b.y1 - b.y0 + 1)); // a filled rectangle
    }
    expect(Math.abs(g.x0 - (p.x1 + 1))).toBeLessThanOrEqual(1);
    expect(g.y1).toBeLessThan(p.y0);
    expect(g.x1).toBeLessThan(img.width - 1); // inside the padding
    expect(img.pixel(0, 0)).toEqual([255, 255, 255, 255]); // the white background
    const png = await chart.toPNG();
    const back = decode(png);
    expect([back.width, back.height, back.channels]).toEqual([img.width, img.height, 4]);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
    expect((await chart.toImage(2)).width).toBe(2 * 242);
    expect(await sha256(png)).toBe('85bb91654100c0da09ffab9305fd6c7d217fd0acb68ff11bfaea4fe0ab8c9035');
  });
});

describe('every eg.viz function refuses bad arguments with typed errors', () => {
  it('each argument position, each bad value: an EdgegradError or a valid result, never a raw error; no leaks', async () => {
    const before = eg.memory().numTensors;
    const img = new v.VizImage(2, 2);
    const rollIn = eg.tensor([[[0.5, 0.5], [0.5, 0.5]]]);
    const bad = BAD_ARGUMENTS;
    const calls: [string, (...a: unknown[]) => unknown, unknown[]][] = [
      ['visualizeImageAttr', v.visualizeImageAttr as never, [ATTR, { data: [1, 1, 1, 1, 1, 1], shape: [2, 3, 1] }, {}]],
      ['normalizeAttribution', v.normalizeAttribution as never, [ATTR, {}]],
      ['grid', v.grid as never, [[img], {}]],
      ['featureMaps', v.featureMaps as never, [ATTR, {}]],
      ['filters', v.filters as never, [{ data: [1, 2, 3, 4], shape: [1, 2, 1, 2] }, {}]],
      ['attentionRollout', v.attentionRollout as never, [[rollIn]]],
      ['attentionMap', v.attentionMap as never, [{ data: [1, 0, 0, 1], shape: [2, 2] }, { tokens: ['a', 'b'] }]],
      ['barChart', v.barChart as never, [{ names: ['a'], values: [1] }]],
      ['lineChart', v.lineChart as never, [{ series: [{ name: 'a', x: [1], y: [1] }] }]],
      ['textHighlight', v.textHighlight as never, [['a'], [1], {}]],
      ['escapeHtml', v.escapeHtml as never, ['a']],
      ['colormapTable', v.colormapTable as never, ['gray']],
      ['hexColor', v.hexColor as never, ['gray', 0.5]],
      ['upscale', v.upscale as never, [img, 2]],
      ['new VizImage', (...a) => new v.VizImage(...(a as [number, number])), [2, 2, undefined]],
      ['new Chart', (...a) => new v.Chart(...(a as [eg.viz.VegaLiteSpec])), [{ mark: 'bar', data: { values: [] } }]],
      ['VizImage.pixel', (...a) => img.pixel(...(a as [number, number])), [0, 0]],
      ['Chart.toSVG of a bad spec', () => new v.Chart({ mark: 'no-such-mark' }).toSVG(), []],
      ['Chart.toImage', (...a) => v.barChart({ names: ['a'], values: [1] }).toImage(...(a as [number])), [1]],
    ];
    let checked = 0;
    for (const [name, fn, good] of calls) {
      for (let pos = 0; pos < Math.max(1, good.length); pos++) {
        for (const [label, make] of bad) {
          const args = good.slice();
          args[pos] = make();
          let err: unknown = null;
          try {
            const r = fn(...args);
            if (r instanceof Promise) await r;
            else if (eg.isTensor(r)) r.dispose();
          } catch (e) {
            err = e;
          }
          if (err !== null && !(err instanceof eg.EdgegradError)) throw new Error(`${name} with ${label} at position ${pos}: raw ${(err as Error)?.name}: ${(err as Error)?.message}`);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(200);
    rollIn.dispose();
    expect(eg.memory().numTensors).toBe(before);
    expect(eg.tidy(() => eg.tensor([2]).mul(2).dataSync())).toEqual(new Float32Array([4]));
  });
});
