/**
 * Encrypted inference end to end (issue 17): trains the three models in plaintext (seeded), saves
 * them, starts the server (server.ts) in its own Node process on 127.0.0.1 — it loads the saved
 * models itself and only ever receives public bundles and ciphertexts — and runs the client
 * (client.ts, the same code the browser page uses) against it. Prints per model: plaintext vs
 * encrypted accuracy on the whole test set, max abs logit error, latency per request, throughput
 * with slot batching, bytes sent and received, multiplicative depth; writes
 * reports/he-inference/summary.json and table.md.
 *
 *   npx tsx examples/he-inference/run.ts [--models logreg,mlp,cnn] [--reuse] [--rounds 3]
 *
 * `--reuse` serves the models already saved in reports/he-inference/models instead of retraining.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as eg from 'edgegrad';
import { HEInferenceClient } from './client.js';
import { loadSplit, MODEL_NAMES, MODEL_SPECS, plainLogits, trainModel, type ModelName } from './models.js';

const arg = (k: string): string | undefined => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const names = (arg('--models')?.split(',') ?? [...MODEL_NAMES]) as ModelName[];
for (const n of names) if (!MODEL_NAMES.includes(n)) throw new Error(`unknown model '${n}' (have ${MODEL_NAMES.join(', ')})`);
const rounds = Number(arg('--rounds') ?? 3);
const reportDir = fileURLToPath(new URL('../../reports/he-inference/', import.meta.url));
const modelsDir = `${reportDir}models`;

const info = await eg.init({ threads: 1 });
console.log(`edgegrad ${info.build}, ${info.threads} thread(s); SEAL (node-seal) runs single-threaded`);

/** Rows [0, count) of a batch. */
const head = (x: eg.Tensor, count: number): eg.Tensor => x.slice(x.shape.map(() => 0), [count, ...x.shape.slice(1)]);

/** Median of a few timed runs (ms). */
async function median(runs: number, f: () => Promise<number> | number): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) t.push(await f());
  return t.sort((a, b) => a - b)[t.length >> 1];
}

// 1. Plaintext training (seeded), saved for the server.
const splits = new Map<ModelName, Awaited<ReturnType<typeof loadSplit>>>();
const models = new Map<ModelName, eg.nn.Sequential | eg.nn.Module>();
for (const name of names) {
  const split = await loadSplit(name);
  splits.set(name, split);
  if (process.argv.includes('--reuse') && existsSync(`${modelsDir}/${name}/model.json`)) {
    models.set(name, (await eg.loadModel(`${modelsDir}/${name}`)).model.eval());
    continue;
  }
  const t0 = performance.now();
  const model = await trainModel(name, split);
  mkdirSync(`${modelsDir}/${name}`, { recursive: true });
  await eg.saveModel(model, `${modelsDir}/${name}`);
  models.set(name, model);
  console.log(`trained ${name} (${MODEL_SPECS[name].title}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// 2. The server, in its own process: it gets the models from disk, never from this process.
const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./server.ts', import.meta.url)), '--port', '0', '--models', modelsDir], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const m = /listening (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m) resolve(m[1]);
  });
  server.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
});
console.log(`server at ${url} (pid ${server.pid})`);

interface Row {
  model: ModelName;
  title: string;
  testSize: number;
  plainAccuracy: number;
  encryptedAccuracy: number;
  sameClass: number;
  maxAbsLogitError: number;
  depth: number;
  params: { polyModulusDegree: number; coeffModulusBits: number[]; scaleBits: number; securityLevel: number; slots: number };
  galoisSteps: number;
  rotationsPerCiphertext: number;
  examplesPerCiphertext: number;
  keygenMs: number;
  bundleBytes: number;
  latencyMs: number;
  requestBytes: number;
  responseBytes: number;
  batchMs: number;
  batchPredictionsPerSecond: number;
  batchRequestBytes: number;
  batchResponseBytes: number;
  testSetMs: number;
  testSetBytesSent: number;
  testSetBytesReceived: number;
  plainMsPerPrediction: number;
  plainBatchMs: number;
}
const rows: Row[] = [];
try {
  for (const name of names) {
    const { xTest, yTest } = splits.get(name)!;
    const model = models.get(name)!;
    const n = xTest.shape[0];
    const client = await HEInferenceClient.connect(url, name);
    const per = client.info.examplesPerCiphertext;
    // Whole test set in one request (several SEAL ciphertexts of `per` examples each).
    const whole = await client.predict(xTest);
    const plain = plainLogits(model, xTest);
    const [plainAcc, encAcc, same, maxErr] = eg.tidy(() => {
      const y = yTest.cast('float32');
      const pc = plain.argMax(1).cast('float32');
      const ec = whole.logits.argMax(1).cast('float32');
      return [pc.equal(y).mean().item(), ec.equal(y).mean().item(), pc.equal(ec).mean().item(), whole.logits.sub(plain).abs().max().item()];
    });
    eg.dispose([plain, whole.logits]);
    // Latency: one example per request. Throughput: one full ciphertext of examples per request.
    const one = head(xTest, 1);
    let oneBytes = [0, 0];
    const latency = await median(rounds, async () => {
      const p = await client.predict(one);
      p.logits.dispose();
      oneBytes = [p.sent, p.received];
      return p.ms;
    });
    const full = eg.tidy(() => head(eg.concat(Array.from({ length: Math.ceil(per / n) }, () => xTest), 0), per));
    let fullBytes = [0, 0];
    const batchMs = await median(rounds, async () => {
      const p = await client.predict(full);
      p.logits.dispose();
      fullBytes = [p.sent, p.received];
      return p.ms;
    });
    // Plaintext time of the same model in this process, same test set.
    const plainBatchMs = await median(5, () => {
      const t0 = performance.now();
      plainLogits(model, xTest).dispose();
      return performance.now() - t0;
    });
    const plainOne = await median(21, () => {
      const t0 = performance.now();
      plainLogits(model, one).dispose();
      return performance.now() - t0;
    });
    const p = client.info.params;
    rows.push({
      model: name, title: client.info.title, testSize: n, plainAccuracy: plainAcc, encryptedAccuracy: encAcc, sameClass: same, maxAbsLogitError: maxErr,
      depth: client.info.depth, params: { polyModulusDegree: p.polyModulusDegree, coeffModulusBits: p.coeffModulusBits, scaleBits: p.scaleBits, securityLevel: p.securityLevel, slots: p.slots },
      galoisSteps: client.info.galoisSteps.length, rotationsPerCiphertext: client.info.rotations, examplesPerCiphertext: per,
      keygenMs: client.keygenMs, bundleBytes: client.bundleBytes,
      latencyMs: latency, requestBytes: oneBytes[0], responseBytes: oneBytes[1],
      batchMs, batchPredictionsPerSecond: (per / batchMs) * 1000, batchRequestBytes: fullBytes[0], batchResponseBytes: fullBytes[1],
      testSetMs: whole.ms, testSetBytesSent: whole.sent, testSetBytesReceived: whole.received,
      plainMsPerPrediction: plainOne, plainBatchMs,
    });
    eg.dispose([one, full]);
    await client.close();
    // The plan, from this process's own copy of the model (the server does not send it).
    console.log(`\n${name}: ${client.info.title}\n${eg.he.compile(model, { inputShape: MODEL_SPECS[name].inputShape, packing: 'batch' }).describe()}`);
  }
} finally {
  server.kill('SIGTERM');
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(2)} MB`;
const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
const table = [
  '| model | test rows | plain acc | encrypted acc | same class | max abs logit err | depth | N / coeff bits | examples per ct | latency / request | sent / received per request | batched throughput | plaintext (1 ex / test set) | keys: gen, bundle |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.model} | ${r.testSize} | ${pct(r.plainAccuracy)} | ${pct(r.encryptedAccuracy)} | ${pct(r.sameClass)} | ${r.maxAbsLogitError.toExponential(2)} | ${r.depth} | ${r.params.polyModulusDegree} / [${r.params.coeffModulusBits.join(', ')}] | ${r.examplesPerCiphertext} | ${r.latencyMs.toFixed(0)} ms | ${mb(r.requestBytes)} / ${mb(r.responseBytes)} | ${r.batchPredictionsPerSecond.toFixed(1)} pred/s (${r.examplesPerCiphertext} in ${r.batchMs.toFixed(0)} ms) | ${r.plainMsPerPrediction.toFixed(3)} ms / ${r.plainBatchMs.toFixed(2)} ms | ${(r.keygenMs / 1000).toFixed(1)} s, ${mb(r.bundleBytes)} |`),
].join('\n');
console.log(`\n${table}`);
const cnn = rows.find((r) => r.model === 'cnn');
const anchor = 59000 / 3600;
if (cnn) console.log(`\ndigits CNN: ${cnn.batchPredictionsPerSecond.toFixed(1)} predictions/s on one core (${(cnn.batchPredictionsPerSecond * 3600).toFixed(0)}/hour) vs CryptoNets' ≈ 59,000/hour (${anchor.toFixed(1)}/s) on a server CPU: ${(cnn.batchPredictionsPerSecond / anchor).toFixed(2)}x`);
mkdirSync(reportDir, { recursive: true });
const summary = {
  measuredAt: new Date().toISOString(), node: process.version, engine: info.build, threads: 1,
  note: 'Latency: one example per request (encrypt + HTTP round trip + server evaluation + decrypt), median of --rounds. Throughput: one request holding a full ciphertext of examples. Server and client on the same machine (127.0.0.1), SEAL single-threaded.',
  cryptoNetsAnchorPerSecond: anchor, rows,
};
writeFileSync(`${reportDir}summary.json`, `${JSON.stringify(summary, null, 2)}\n`);
writeFileSync(`${reportDir}table.md`, `# Encrypted inference (eg.he, CKKS via node-seal)\n\nMeasured ${summary.measuredAt.slice(0, 16)} UTC, Node ${process.version}, one thread, client and server on 127.0.0.1 (\`npx tsx examples/he-inference/run.ts\`).\n\n${table}\n${cnn ? `\nDigits CNN: ${cnn.batchPredictionsPerSecond.toFixed(1)} predictions/s per core vs CryptoNets' ≈ 59,000/hour = ${anchor.toFixed(1)}/s (Gilad-Bachrach et al. 2016): ${(cnn.batchPredictionsPerSecond / anchor).toFixed(2)}x.\n` : ''}`);
console.log(`wrote ${reportDir}summary.json and table.md`);
for (const m of models.values()) m.dispose();
