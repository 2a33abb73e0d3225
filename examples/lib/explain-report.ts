/**
 * Explanations of the digits CNN (issue 14 §5), shared by the main job's explanation section and
 * `examples/explain-digits.ts`: attribution grids (rows = examples, columns = the input and one
 * picture per method) and accuracy under FGSM/PGD for a range of ε. Everything is computed with
 * eg.explain / eg.attacks and drawn with eg.viz; curves go through the charts path (Vega-Lite →
 * SVG → PNG).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as eg from 'edgegrad';
import { xyChart } from './charts.js';

const { explain, attacks, viz } = eg;

/** The digits CNN's last conv (module path in the main job's Sequential). */
export const LAST_CONV = '4';
const round = (x: number, d = 4) => +x.toFixed(d);

/** The rows `idx` of `t` as a new tensor. */
export function rows(t: eg.Tensor, idx: number[]): eg.Tensor {
  return eg.tidy(() => t.indexSelect(0, eg.tensor(Int32Array.from(idx), [idx.length], 'int32')));
}

/** The model's predicted class per row (eval mode, no gradients). */
export function predict(model: eg.nn.Module, x: eg.Tensor): Int32Array {
  return eg.noGrad(() => eg.tidy(() => model.forward(x).argMax(1).dataSync() as Int32Array)).slice();
}

/** The first test row of each class 0..9 (in test-set order). */
export function onePerClass(y: eg.Tensor, classes = 10): number[] {
  const labels = y.dataSync() as Int32Array;
  return Array.from({ length: classes }, (_, c) => labels.indexOf(c)).filter((i) => i >= 0);
}

export type MethodName = 'IG' | 'SmoothGrad' | 'Grad-CAM' | 'Occlusion';

/** One attribution tensor `[n, 8, 8, 1]` per method for the batch `x` and per-example `targets`. */
export function attributions(model: eg.nn.Module, x: eg.Tensor, targets: Int32Array, methods: readonly MethodName[]): Map<MethodName, eg.Tensor> {
  const out = new Map<MethodName, eg.Tensor>();
  for (const m of methods) {
    let a: eg.Tensor;
    if (m === 'IG') a = new explain.IntegratedGradients(model).attribute(x, { target: targets, baselines: 0, nSteps: 64, method: 'gausslegendre' }) as eg.Tensor;
    else if (m === 'SmoothGrad') {
      a = new explain.NoiseTunnel(new explain.Saliency(model)).attribute(x, { target: targets, ntType: 'smoothgrad', ntSamples: 32, stdevs: 0.15, seed: 1 }) as eg.Tensor;
    } else if (m === 'Grad-CAM') a = new explain.LayerGradCam(model, LAST_CONV).attribute(x, { target: targets, reluAttributions: true, upsample: 'bilinear' }) as eg.Tensor;
    else a = new explain.Occlusion(model).attribute(x, { target: targets, slidingWindowShapes: [2, 2, 1], strides: [1, 1, 1], baselines: 0 }) as eg.Tensor;
    out.set(m, a);
  }
  return out;
}

/** How each method is drawn: signed methods on the diverging map, non-negative ones (saliency, ReLU'd Grad-CAM) as positive. */
const SIGN: Record<MethodName, eg.viz.AttrSign> = { IG: 'all', SmoothGrad: 'positive', 'Grad-CAM': 'positive', Occlusion: 'all' };

/**
 * One grid: a row per example, columns = the input, then each method's attribution blended over
 * the input; every 8x8 cell enlarged `scale` times.
 */
export function attributionGrid(x: eg.Tensor, attrs: Map<MethodName, eg.Tensor>, scale = 16): eg.viz.VizImage {
  const [n, h, w, c] = x.shape;
  const px = x.dataSync() as Float32Array;
  const per = h * w * c;
  const data = [...attrs.values()].map((a) => a.dataSync() as Float32Array);
  const signs = [...attrs.keys()].map((k) => SIGN[k]);
  const cells: eg.viz.VizImage[] = [];
  for (let i = 0; i < n; i++) {
    const img = { data: px.subarray(i * per, (i + 1) * per), shape: [h, w, c] };
    cells.push(viz.upscale(viz.visualizeImageAttr(img, img, { method: 'original_image' }), scale));
    data.forEach((d, j) => {
      const attr = { data: d.subarray(i * per, (i + 1) * per), shape: [h, w, c] };
      cells.push(viz.upscale(viz.visualizeImageAttr(attr, img, { method: 'blended_heat_map', sign: signs[j], outlierPerc: 2, alphaOverlay: 0.6 }), scale));
    });
  }
  return viz.grid(cells, { cols: 1 + attrs.size, padding: 2 });
}

export interface Robustness {
  eps: number[];
  fgsm: number[];
  pgd: number[];
  pgdSteps: number;
  examples: number;
}

/** Accuracy on (x, y) under FGSM and PGD-L∞ (`pgdSteps` steps of 2.5ε/steps, random start, seeded) for each ε; ε = 0 is the clean accuracy. */
export function robustness(model: eg.nn.Module, x: eg.Tensor, y: eg.Tensor, epsList: number[], pgdSteps = 20): Robustness {
  const labels = y.dataSync() as Int32Array;
  const pred = predict(model, x);
  const clean = pred.reduce((s, p, i) => s + (p === labels[i] ? 1 : 0), 0) / labels.length;
  const acc = (success: boolean[]) => success.reduce((s, b) => s + (b ? 0 : 1), 0) / success.length;
  const fgsm: number[] = [];
  const pgd: number[] = [];
  for (const eps of epsList) {
    if (eps === 0) {
      fgsm.push(clean);
      pgd.push(clean);
      continue;
    }
    const f = new attacks.FGSM(model, { eps }).perturb(x, y);
    f.adversarial.dispose();
    fgsm.push(acc(f.success));
    const p = new attacks.PGD(model, { eps, stepSize: (2.5 * eps) / pgdSteps, steps: pgdSteps, randomStart: true, seed: 1 }).perturb(x, y);
    p.adversarial.dispose();
    pgd.push(acc(p.success));
  }
  return { eps: epsList, fgsm, pgd, pgdSteps, examples: labels.length };
}

/** The accuracy-vs-ε curve as `<path>.svg` and `<path>.png`. */
export function robustnessChart(path: string, r: Robustness, title: string): Promise<string[]> {
  return xyChart(path, title, 'ε (L∞, pixels in [0, 1])', 'test accuracy', [
    { name: 'FGSM', x: r.eps, y: r.fgsm },
    { name: `PGD-${r.pgdSteps}`, x: r.eps, y: r.pgd },
  ]);
}

export interface ExplanationJob {
  model: eg.nn.Module;
  xTest: eg.Tensor;
  yTest: eg.Tensor;
  outDir: string;
  /** `performance.now()` at the start of the job (for the total time in summary.json). */
  t0: number;
}

/**
 * The main job's explanation section: IG and Grad-CAM for five test digits (one PNG grid:
 * input, IG, Grad-CAM) and the FGSM/PGD robustness curve on the whole test set. Adds
 * `explanation` to summary.json and returns it.
 */
export async function explanationSection(job: ExplanationJob): Promise<Record<string, unknown>> {
  const { model, xTest, yTest, outDir } = job;
  const t0 = performance.now();
  model.eval();
  const idx = onePerClass(yTest).slice(0, 5);
  const x = rows(xTest, idx);
  const targets = predict(model, x);
  const tAttr = performance.now();
  const attrs = attributions(model, x, targets, ['IG', 'Grad-CAM']);
  const attrMs = performance.now() - tAttr;
  const gridPng = attributionGrid(x, attrs).toPNG();
  await writeFile(join(outDir, 'explanations.png'), gridPng);
  eg.dispose([...attrs.values()]);
  x.dispose();

  const tRob = performance.now();
  const rob = robustness(model, xTest, yTest, [0, 0.05, 0.1, 0.15, 0.2, 0.3]);
  const robSeconds = (performance.now() - tRob) / 1000;
  const chart = await robustnessChart(join(outDir, 'robustness'), rob, 'Digits CNN: accuracy under attack');
  const seconds = (performance.now() - t0) / 1000;
  const explanation = {
    attributions: { examples: idx, targets: Array.from(targets), methods: ['IG (64 Gauss-Legendre steps, zero baseline)', 'Grad-CAM (last conv, ReLU, bilinear)'], columns: ['input', 'IG', 'Grad-CAM'], ms: round(attrMs, 1), file: 'explanations.png' },
    robustness: { eps: rob.eps, fgsmAccuracy: rob.fgsm.map((a) => round(a)), pgdAccuracy: rob.pgd.map((a) => round(a)), pgdSteps: rob.pgdSteps, examples: rob.examples, seconds: round(robSeconds, 2), files: chart.map((c) => c.slice(outDir.length + 1)) },
    seconds: round(seconds, 2),
  };
  const path = join(outDir, 'summary.json');
  const summary = JSON.parse(await readFile(path, 'utf8'));
  summary.explanation = explanation;
  summary.totalSeconds = (performance.now() - job.t0) / 1000;
  await writeFile(path, JSON.stringify(summary, null, 2));
  const pct = (a: number) => `${(100 * a).toFixed(1)}%`;
  console.log(`explanation: IG + Grad-CAM for ${idx.length} digits in ${attrMs.toFixed(0)} ms → explanations.png`);
  console.log(`robustness (${rob.examples} test digits): ${rob.eps.map((e, i) => `ε=${e} FGSM ${pct(rob.fgsm[i])} PGD ${pct(rob.pgd[i])}`).join(' · ')} (${robSeconds.toFixed(1)} s) → robustness.png`);
  console.log(`explanation section: ${seconds.toFixed(1)} s`);
  return explanation;
}
