/**
 * Explaining a tabular model: an MLP on the Wisconsin breast-cancer data (569 x 30, malignant vs
 * benign), explained three ways over the test set — permutation importance (scikit-learn's, with
 * the std over repeats), KernelSHAP and Integrated Gradients (mean |attribution| per feature) — as
 * bar charts with the 30 feature names, and how far the three agree (Spearman rank correlations).
 *
 *   node --import tsx examples/explain-tabular.ts [--out reports/explain-tabular] [--epochs 60]
 *
 * Writes reports/explain-tabular/: summary.json, permutation-importance.{svg,png},
 * kernel-shap.{svg,png}, integrated-gradients.{svg,png}.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as eg from 'edgegrad';
import { saveChart as saveChartFiles } from './lib/charts.js';
import { loadBreastCancer } from './lib/breast-cancer.js';

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: 'reports/explain-tabular' },
    epochs: { type: 'string', default: '60' },
    'shap-samples': { type: 'string', default: '200' },
    repeats: { type: 'string', default: '10' },
    'ig-steps': { type: 'string', default: '300' },
    'ig-method': { type: 'string', default: 'riemann_trapezoid' },
  },
});
const outDir = a.out!;
const t0 = performance.now();
const info = await eg.init();
console.log(`edgegrad ${info.build} · ${info.threads} thread(s) · ${info.runtime}`);
eg.manualSeed(1);
const { explain, viz, nn } = eg;

// ---------------------------------------------------------------- data
// Seeded 80/20 split, standardized by the training rows' mean and std (examples/lib/breast-cancer.ts).
const { xTrain, yTrain, xTest, yTest, featureNames: names, classNames } = await loadBreastCancer({ testSize: 0.2, seed: 7 });
const n = xTrain.shape[0] + xTest.shape[0];
const F = names.length;
const nTest = xTest.shape[0];
console.log(`data: ${n} tumours × ${F} features (${classNames.join(' / ')}); ${xTrain.shape[0]} training, ${nTest} test rows, standardized`);

// ---------------------------------------------------------------- model
const model = new nn.Sequential(
  new nn.Linear(F, 32, { seed: 1 }), new nn.ReLU(),
  new nn.Linear(32, 16, { seed: 2 }), new nn.ReLU(),
  new nn.Linear(16, 2, { seed: 3 }),
);
model.compile({
  optimizer: new eg.optim.Adam(model.trainableParameters(), { lr: 1e-3 }),
  loss: (logits, y) => eg.losses.sparseCategoricalCrossEntropy(logits, y, { fromLogits: true }),
  metrics: ['accuracy'],
});
const tTrain = performance.now();
await model.fit(xTrain, yTrain, { epochs: Number(a.epochs), batchSize: 32, seed: 1, verbose: 0 });
const trainSeconds = (performance.now() - tTrain) / 1000;
model.eval();
const test = await model.evaluate(xTest, yTest, { batchSize: 256 });
console.log(`MLP ${F}-32-16-2 (${model.numParameters()} parameters): test accuracy ${(test.accuracy * 100).toFixed(2)}%, loss ${test.loss.toFixed(4)}, trained ${a.epochs} epochs in ${trainSeconds.toFixed(1)} s`);

// ---------------------------------------------------------------- explanations
const target = 1; // the benign logit: every method explains the same output
const timings: Record<string, number> = {};
const timed = <T>(name: string, f: () => T): T => {
  const s = performance.now();
  const r = f();
  timings[name] = (performance.now() - s) / 1000;
  return r;
};
/** Mean |attribution| per feature over the test rows. */
const meanAbs = (attr: eg.Tensor): number[] => eg.tidy(() => Array.from(attr.abs().mean(0).dataSync() as Float32Array));

// Permutation importance with scikit-learn's 'neg_log_loss' score (greater is better): the rise of
// the test cross-entropy when a column is shuffled (continuous; accuracy moves in steps of 1/114 on
// this test set, so it is also computed, for summary.json, but not charted).
const negLogLoss: eg.explain.ScoreFunction = (logits, y) =>
  -eg.tidy(() => eg.losses.sparseCategoricalCrossEntropy(logits, y, { fromLogits: true }).item());
const pi = timed('permutationImportance', () => explain.permutationImportance(model, xTest, yTest, negLogLoss, { nRepeats: Number(a.repeats), seed: 1 }));
const piAcc = timed('permutationImportanceAccuracy', () => explain.permutationImportance(model, xTest, yTest, 'accuracy', { nRepeats: Number(a.repeats), seed: 1 }));

// KernelSHAP: absent features take the training mean (0 after standardization: SHAP's background mean).
const shapAttr = timed('kernelShap', () => new explain.KernelShap(model).attribute(xTest, { target, baselines: 0, nSamples: Number(a['shap-samples']), seed: 1 }));
const shap = meanAbs(shapAttr);
shapAttr.dispose();

// A ReLU network is piecewise linear along the path: the trapezoid rule with many steps converges
// where Gauss-Legendre's polynomial fit does not gain from its order.
const igSteps = Number(a['ig-steps']);
const igMethod = a['ig-method'] as eg.explain.IntegrationMethod;
const igRes = timed('integratedGradients', () => new explain.IntegratedGradients(model).attribute(xTest, {
  target, baselines: 0, nSteps: igSteps, method: igMethod, returnConvergenceDelta: true,
}));
const ig = meanAbs(igRes.attributions);
const igDelta = eg.tidy(() => {
  const fx = model.forward(xTest).slice([0, target], [nTest, target + 1]);
  const f0 = model.forward(eg.zeros([1, F])).slice([0, target], [1, target + 1]);
  const gap = fx.sub(f0).abs().reshape([nTest]);
  const rel = igRes.delta.abs().div(gap);
  return { worstAbs: igRes.delta.abs().max().item(), worstRel: rel.max().item(), meanRel: rel.mean().item(), meanGap: gap.mean().item() };
});
eg.dispose([igRes.attributions, igRes.delta]);

// ---------------------------------------------------------------- agreement
/** Ranks 1..n, ties sharing their average rank (as scipy.stats.rankdata). */
function ranks(v: number[]): number[] {
  const order = v.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
  const r = new Array<number>(v.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}
/** Spearman's rho: Pearson's correlation of the ranks. */
function spearman(x: number[], y: number[]): number {
  const [rx, ry] = [ranks(x), ranks(y)];
  const m = (rx.length + 1) / 2;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < rx.length; i++) {
    sxy += (rx[i] - m) * (ry[i] - m);
    sxx += (rx[i] - m) ** 2;
    syy += (ry[i] - m) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
const methods = { permutationImportance: pi.importancesMean, kernelShap: shap, integratedGradients: ig };
const agreement = {
  permutationImportance_kernelShap: spearman(methods.permutationImportance, shap),
  permutationImportance_integratedGradients: spearman(methods.permutationImportance, ig),
  kernelShap_integratedGradients: spearman(shap, ig),
};
const top = (v: number[], k = 5) => v.map((x, i) => [x, i] as const).sort((p, q) => q[0] - p[0]).slice(0, k).map(([, i]) => names[i]);

// ---------------------------------------------------------------- report
await mkdir(outDir, { recursive: true });
const saveChart = async (chart: eg.viz.Chart, base: string) => (await saveChartFiles(chart, join(outDir, base))).map((f) => f.slice(outDir.length + 1));
const files = [
  ...await saveChart(viz.barChart({
    names, values: pi.importancesMean, errors: pi.importancesStd, valueTitle: 'rise of test log-loss when shuffled',
    title: `Permutation importance (${a.repeats} repeats, ± std)`,
  }), 'permutation-importance'),
  ...await saveChart(viz.barChart({ names, values: shap, valueTitle: 'mean |SHAP value| (benign logit)', title: `KernelSHAP, ${a['shap-samples']} coalitions` }), 'kernel-shap'),
  ...await saveChart(viz.barChart({ names, values: ig, valueTitle: 'mean |attribution| (benign logit)', title: 'Integrated Gradients (baseline: the mean tumour)' }), 'integrated-gradients'),
];

const summary = {
  dataset: 'Breast Cancer Wisconsin (Diagnostic), 569 x 30',
  split: { train: xTrain.shape[0], test: nTest, seed: 7 },
  model: { layers: [F, 32, 16, 2], parameters: model.numParameters(), epochs: Number(a.epochs), trainSeconds },
  test: { accuracy: test.accuracy, loss: test.loss },
  target: `logit of class ${target} (${classNames[target]})`,
  features: names,
  permutationImportance: { score: 'neg_log_loss', nRepeats: Number(a.repeats), baselineScore: pi.baselineScore, mean: pi.importancesMean, std: pi.importancesStd },
  permutationImportanceAccuracy: { score: 'accuracy', baselineScore: piAcc.baselineScore, mean: piAcc.importancesMean, std: piAcc.importancesStd },
  kernelShap: { nSamples: Number(a['shap-samples']), baselines: 'training mean', meanAbs: shap },
  integratedGradients: {
    nSteps: igSteps, method: igMethod, baselines: 'training mean', meanAbs: ig,
    worstAbsDelta: igDelta.worstAbs, worstRelativeDelta: igDelta.worstRel, meanRelativeDelta: igDelta.meanRel, meanAbsOutputGap: igDelta.meanGap,
  },
  top5: { permutationImportance: top(pi.importancesMean), kernelShap: top(shap), integratedGradients: top(ig) },
  spearman: agreement,
  seconds: { ...timings, total: (performance.now() - t0) / 1000 },
  files,
};
await writeFile(join(outDir, 'summary.json'), JSON.stringify(summary, null, 2));

console.log(`\npermutation importance (neg_log_loss, ${a.repeats} repeats; baseline ${pi.baselineScore.toFixed(4)}) ${timings.permutationImportance.toFixed(2)} s; by accuracy, baseline ${(piAcc.baselineScore * 100).toFixed(2)}%, ${piAcc.importancesMean.filter((v) => v === 0).length}/${F} features at exactly 0`);
console.log(`KernelSHAP (${a['shap-samples']} coalitions × ${nTest} rows) ${timings.kernelShap.toFixed(2)} s · IG (${igMethod}, ${igSteps} steps) ${timings.integratedGradients.toFixed(2)} s`);
console.log(`IG completeness: worst |delta| ${igDelta.worstAbs.toExponential(2)}; |delta| / |F(x) − F(mean)| worst ${(igDelta.worstRel * 100).toPrecision(3)}%, mean ${(igDelta.meanRel * 100).toPrecision(3)}% (mean |F(x) − F(mean)| ${igDelta.meanGap.toFixed(3)})`);
for (const [k, v] of Object.entries(summary.top5)) console.log(`top 5 by ${k}: ${v.join(', ')}`);
console.log('Spearman rank correlation of the 30 per-feature scores:');
for (const [k, v] of Object.entries(agreement)) console.log(`  ${k.replace('_', ' vs ')}: ${v.toFixed(3)}`);
console.log(`\nwrote ${outDir}/: summary.json, ${files.join(', ')} · ${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
eg.dispose([xTrain, yTrain, xTest, yTest]);
model.dispose();
