/**
 * Untrusted files (issue 13, defects 1-4, 7 and 8): every corrupt or hostile model, safetensors,
 * quantized/binary model or optimizer/scheduler state is refused with a FormatError (ArgumentError
 * for objects handed to loadStateDict) that names the problem without echoing file contents; a
 * model.json cannot make the loader read outside its folder, devices, or URLs; nothing leaks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as eg from '../sdk/index.js';
import { isBrowser, setup } from './helpers.js';

const { nn } = eg;
const C = eg.compress;

beforeAll(async () => {
  await setup();
});

const tiny = (seed = 1) => new nn.Sequential(new nn.Linear(4, 3, { seed }), new nn.ReLU(), new nn.Linear(3, 2, { seed: seed + 1 }));

/** The safetensors bytes of a raw header object and data section (for hand-made corrupt files). */
function rawSafetensors(header: unknown, data = new Uint8Array(0)): Uint8Array {
  const hb = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const b = new Uint8Array(8 + hb.length + data.length);
  new DataView(b.buffer).setBigUint64(0, BigInt(hb.length), true);
  b.set(hb, 8);
  b.set(data, 8 + hb.length);
  return b;
}

/** Re-encodes a model file's tensors with different metadata (a tampered graph). */
function withMetadata(bytes: Uint8Array, edit: (m: Record<string, string>) => void): Uint8Array {
  const { tensors, metadata } = eg.decodeSafetensors(bytes);
  try {
    const m = { ...metadata };
    edit(m);
    return eg.encodeSafetensors(tensors, m);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** A small int8 model: Flatten (a value that is not a quantization point), Linear, ReLU, Linear. */
function quantized(): eg.compress.QuantizedModel {
  const m = new nn.Sequential(new nn.Flatten(), new nn.Linear(4, 3, { seed: 3 }), new nn.ReLU(), new nn.Linear(3, 2, { seed: 4 }));
  const x = eg.rand([8, 2, 2, 1], -1, 1, { seed: 5 });
  const qm = C.quantize(m, x);
  x.dispose();
  m.dispose();
  return qm;
}

/** Runs `f` (sync or async) 20 times, expecting it to throw `cls`, and checks no tensor was left behind. */
async function noLeak(what: string, cls: new (...a: never[]) => Error, f: () => unknown): Promise<void> {
  const call = async () => f();
  await expect(call(), what).rejects.toThrow(cls); // warm-up (lazy engine state)
  const before = eg.memory().numTensors;
  for (let i = 0; i < 20; i++) await expect(call(), what).rejects.toThrow(cls);
  expect(eg.memory().numTensors, `${what}: tensors leaked over 20 failing loads`).toBe(before);
}

describe('defect 1: graphs with cycles in quantized and binary model files', () => {
  it('a cycle in the quantized graph is a FormatError, not a hang', () => {
    const qm = quantized();
    const bytes = qm.serialize();
    qm.dispose();
    // Node 0 (flatten) reads its own output: following its input for a quantization never ends.
    const cyclic = withMetadata(bytes, (m) => {
      const g = JSON.parse(m.graph);
      g.nodes[0].in = g.nodes[0].out;
      m.graph = JSON.stringify(g);
    });
    expect(() => C.QuantizedModel.deserialize(cyclic)).toThrow(eg.FormatError);
    expect(() => C.QuantizedModel.deserialize(cyclic)).toThrow(/cycle|not computed before/);
  }, 20_000);
  it('a cycle or a dangling value in a binary graph is a FormatError at load, not at forward', () => {
    const m = new nn.Sequential(new nn.Flatten(), new nn.Linear(4, 3, { seed: 3 }), new nn.ReLU(), new nn.Linear(3, 2, { seed: 4 }));
    const bm = C.BinaryModel.fromModule(C.binarizeModel(m, { keepFirst: false }), { inputShape: [2, 2, 1] });
    const bytes = bm.serialize();
    bm.dispose();
    m.dispose();
    const edits: ((g: { nodes: { in?: number; out: number }[]; output: number }) => void)[] = [
      (g) => { g.nodes[1].in = g.nodes[2].out; },
      (g) => { g.nodes[1].in = 99; },
      (g) => { g.output = 42; },
    ];
    for (const edit of edits) {
      const bad = withMetadata(bytes, (md) => {
        const g = JSON.parse(md.graph);
        edit(g);
        md.graph = JSON.stringify(g);
      });
      expect(() => C.BinaryModel.deserialize(bad)).toThrow(eg.FormatError);
    }
  });
});

describe.skipIf(isBrowser)('defect 2: a model.json cannot read outside its folder (Node)', () => {
  async function modelDir() {
    const fs = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const root = await fs.mkdtemp(join(tmpdir(), 'edgegrad-sec-'));
    const dir = join(root, 'model');
    const m = tiny();
    const art = await eg.saveModel(m, dir);
    m.dispose();
    // A valid weights file outside the model's folder: following the reference would succeed.
    await fs.writeFile(join(root, 'outside.safetensors'), art.weights);
    const setRef = async (ref: string) => fs.writeFile(join(dir, 'model.json'), JSON.stringify({ ...art.json, weightsFile: ref }));
    return { fs, join, root, dir, art, setRef };
  }

  it('refuses .., absolute paths, symlinks leaving the folder, devices and URLs unless allowOutsideDir', async () => {
    const { fs, join, root, dir, setRef } = await modelDir();
    const refused = async (ref: string, why: RegExp) => {
      await setRef(ref);
      await expect(eg.loadModel(dir), ref).rejects.toThrow(eg.FormatError);
      await expect(eg.loadModel(dir), ref).rejects.toThrow(why);
    };
    await refused('../outside.safetensors', /allowOutsideDir/);
    await refused('sub/../../outside.safetensors', /allowOutsideDir/);
    await refused('..\\outside.safetensors', /allowOutsideDir/);
    await refused(join(root, 'outside.safetensors'), /absolute path.*allowOutsideDir/);
    await refused(`file://${join(root, 'outside.safetensors')}`, /URL.*allowOutsideDir/);
    await refused('/dev/zero', /absolute path/);
    await refused('%2e%2e/outside.safetensors', /allowOutsideDir/);
    await fs.symlink(join(root, 'outside.safetensors'), join(dir, 'link.safetensors'));
    await refused('link.safetensors', /outside the model's folder/);
    // The caller can lift confinement for a file they trust...
    await setRef('../outside.safetensors');
    const { model } = await eg.loadModel(dir, { allowOutsideDir: true });
    model.dispose();
    await setRef('link.safetensors');
    (await eg.loadModel(dir, { allowOutsideDir: true })).model.dispose();
    // ...but never makes the loader read a device, a FIFO or a directory.
    for (const special of ['/dev/zero', '/dev/urandom', root]) {
      await setRef(special);
      await expect(eg.loadModel(dir, { allowOutsideDir: true }), special).rejects.toThrow(/only regular files/);
    }
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await setRef('fifo');
    await expect(eg.loadModel(dir)).rejects.toThrow(/FIFO; only regular files/);
    await fs.rm(root, { recursive: true });
  });

  it('makes no request for a URL weightsFile', async () => {
    const http = await import('node:http');
    const { dir, art, setRef, fs, root } = await modelDir();
    let requests = 0;
    const server = http.createServer((_q, r) => {
      requests++;
      r.end(Buffer.from(art.weights));
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as { port: number }).port;
    try {
      for (const ref of [`http://127.0.0.1:${port}/w`, `//127.0.0.1:${port}/w`, 'data:application/octet-stream;base64,AAAA']) {
        await setRef(ref);
        await expect(eg.loadModel(dir), ref).rejects.toThrow(eg.FormatError);
      }
      expect(requests).toBe(0);
    } finally {
      server.close();
      await fs.rm(root, { recursive: true });
    }
  });

  it('missing files, sizes over maxBytes and non-JSON are FormatErrors that never quote the file', async () => {
    const { fs, join, dir, setRef, root } = await modelDir();
    await setRef('nope.safetensors');
    await expect(eg.loadModel(dir)).rejects.toThrow(/weights file .*nope\.safetensors: no such file/);
    await expect(eg.loadModel(join(root, 'missing'))).rejects.toThrow(eg.FormatError);
    await setRef('model.safetensors');
    await expect(eg.loadModel(dir, { maxBytes: 16 })).rejects.toThrow(/more than the 16 allowed \(option maxBytes\)/);
    await expect(eg.loadModel(dir, { maxJsonBytes: 16 })).rejects.toThrow(/model\.json .* more than the 16 allowed/);
    // A secret in a file the loader is pointed at never appears in the error.
    await fs.writeFile(join(dir, 'secret.txt'), 'SECRET-TOKEN-1234567890 and more text');
    await setRef('secret.txt');
    const e1 = await eg.loadModel(dir).catch((e: Error) => e);
    expect(e1).toBeInstanceOf(eg.FormatError);
    expect(String((e1 as Error).message)).not.toMatch(/SECRET/);
    await fs.writeFile(join(dir, 'model.json'), 'SECRET-TOKEN-1234567890 is not json');
    const e2 = await eg.loadModel(dir).catch((e: Error) => e);
    expect(e2).toBeInstanceOf(eg.FormatError);
    expect(String((e2 as Error).message)).not.toMatch(/SECRET/);
    await fs.rm(root, { recursive: true });
  });
});

describe('defect 2: confinement by URL (both runtimes: files in Node, fetch in Chromium)', () => {
  const at = (name: string) => new URL(`./fixtures/untrusted/${name}`, import.meta.url);
  it('a model.json may only name weights in its own folder, on its own origin', async () => {
    for (const name of ['parent.json', 'url.json', 'scheme-relative.json', 'absolute.json']) {
      await expect(eg.loadModel(at(name)), name).rejects.toThrow(/allowOutsideDir/);
    }
    const { model } = await eg.loadModel(at('ok.json'));
    expect(model.className).toBe('ReLU');
    await expect(eg.loadModel(at('ok.json'), { maxBytes: 8 })).rejects.toThrow(/more than the 8 allowed \(option maxBytes\)/);
    await expect(eg.loadModel(at('missing.json'))).rejects.toThrow(eg.FormatError);
  });
  it('readAsset is bounded, and a corrupt gzip data set is a FormatError', async () => {
    await expect(eg.readAsset(at('ok.json'), { maxBytes: 10 })).rejects.toThrow(/more than the 10 allowed/);
    expect((await eg.readAsset(at('ok.json'))).length).toBeGreaterThan(10);
    await expect(eg.loadDigits({ url: at('corrupt.csv.gz') })).rejects.toThrow(eg.FormatError);
  });
});

describe('defect 3: corrupt files give FormatError, never a raw TypeError/SyntaxError/RangeError', () => {
  it('model.json: bad JSON text, wrong field types, deep nesting, broken optimizer state', async () => {
    const m = tiny();
    const opt = new eg.optim.Adam(m.parameters());
    const art = await eg.saveModel(m, undefined, { optimizer: opt });
    const json = art.json as unknown as Record<string, unknown>;
    let deep: unknown = { className: 'ReLU', config: {} };
    for (let i = 0; i < 5000; i++) deep = { className: 'Sequential', config: { layers: [deep] } };
    const bad: [string, unknown][] = [
      ['not JSON', '{"format": "edgegrad-model", '],
      ['model null', { ...json, model: null }],
      ['config not an object', { ...json, model: { className: 'Linear', config: 7 } }],
      ['5000 nested Sequentials', { ...json, model: deep }],
      ['deeply nested JSON text', `{"format":"edgegrad-model","version":1,"weightsFile":"w","model":${'['.repeat(100_000)}${']'.repeat(100_000)}}`],
      ['optimizer groups not an array', { ...json, optimizer: { ...(json.optimizer as object), groups: 5 } }],
      ['optimizer steps missing', { ...json, optimizer: { className: 'Adam', groups: [{ lr: 0.1 }], tensorNames: [[]] } }],
      ['optimizer tensorNames of numbers', { ...json, optimizer: { ...(json.optimizer as object), tensorNames: [[1, 2]] } }],
    ];
    const opt2 = new eg.optim.Adam(tiny(2).parameters());
    for (const [what, j] of bad) {
      const err = await eg.loadModel({ json: j as eg.ModelJson, weights: art.weights }, { optimizer: opt2 }).catch((e: Error) => e);
      expect(err, what).toBeInstanceOf(eg.FormatError);
      expect((err as Error).message.length, what).toBeLessThan(400);
    }
    m.dispose();
    opt.dispose();
  });
  it('safetensors: hostile headers are FormatErrors with short messages', () => {
    const nested = `{"w":{"dtype":"F32","shape":${'['.repeat(50_000)}${']'.repeat(50_000)},"data_offsets":[0,0]}}`;
    const cases: [string, Uint8Array][] = [
      ['deeply nested shape', rawSafetensors(nested)],
      ['shape as a long string', rawSafetensors({ w: { dtype: 'F32', shape: 'x'.repeat(10_000), data_offsets: [0, 0] } })],
      ['entry null', rawSafetensors({ w: null })],
      ['metadata null', rawSafetensors({ __metadata__: null })],
      ['offsets not numbers', rawSafetensors({ w: { dtype: 'F32', shape: [1], data_offsets: ['0', '4'] } }, new Uint8Array(4))],
      ['not UTF-8', rawSafetensors('{"\xff":1}'.replace('\xff', '\u0000'))],
    ];
    for (const [what, bytes] of cases) {
      const err = (() => {
        try {
          eg.decodeSafetensors(bytes);
        } catch (e) {
          return e as Error;
        }
        return null;
      })();
      expect(err, what).toBeInstanceOf(eg.FormatError);
      expect(err!.message.length, what).toBeLessThan(400);
    }
  });
  it('quantized and binary graphs are validated: bad nodes, shapes, qparams and tensors', () => {
    const qm = quantized();
    const bytes = qm.serialize();
    qm.dispose();
    const edits: [string, (g: Record<string, any>) => void][] = [
      ['a null node', (g) => { g.nodes[0] = null; }],
      ['nodes not an array', (g) => { g.nodes = { length: 3 }; }],
      ['unknown op', (g) => { g.nodes[1].op = 'softmax'; }],
      ['stored shape disagrees with the layer', (g) => { g.shapes[2] = [7]; }],
      ['negative scale', (g) => { g.qparams['0'] = [-1, 0]; }],
      ['zero point out of int8', (g) => { g.qparams['0'] = [0.1, 300]; }],
      ['qparams missing', (g) => { delete g.qparams['0']; }],
      ['weight shape mismatch', (g) => { g.shapes[0] = [5, 1, 1]; g.shapes[1] = [5]; }],
      ['duplicate layer names', (g) => { g.nodes[2].name = g.nodes[1].name; }],
      ['graph is an array', (g) => { g.version = [1]; }],
    ];
    for (const [what, edit] of edits) {
      const bad = withMetadata(bytes, (m) => {
        const g = JSON.parse(m.graph);
        edit(g);
        m.graph = JSON.stringify(g);
      });
      expect(() => C.QuantizedModel.deserialize(bad), what).toThrow(eg.FormatError);
    }
    expect(() => C.QuantizedModel.deserialize(withMetadata(bytes, (m) => { m.graph = `${'['.repeat(100_000)}`; })), 'deep graph JSON').toThrow(eg.FormatError);
  });
  it.skipIf(isBrowser)('a folder without its model file is a FormatError, not a raw ENOENT', async () => {
    const fs = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await fs.mkdtemp(join(tmpdir(), 'edgegrad-empty-'));
    await expect(eg.loadModel(dir)).rejects.toThrow(/model\.json .*no such file/);
    await expect(C.loadQuantizedModel(dir)).rejects.toThrow(/quantized model .*no such file/);
    await fs.rm(dir, { recursive: true });
  });
});

describe('loadModel options are checked', () => {
  it('bad options are ArgumentErrors', async () => {
    const m = tiny();
    const art = await eg.saveModel(m);
    m.dispose();
    const src = { json: art.json, weights: art.weights };
    for (const o of [null, 5, { maxBytes: -1 }, { maxBytes: '10' }, { allowOutsideDir: 'yes' }, { optimizer: {} }, { maxTensors: 1.5 }, { unknownOption: 1 }]) {
      await expect(eg.loadModel(src, o as never), JSON.stringify(o)).rejects.toThrow(eg.ArgumentError);
    }
    await expect(eg.readAsset(new URL('./fixtures/untrusted/ok.json', import.meta.url), { maxBytes: -5 })).rejects.toThrow(eg.ArgumentError);
  });
});

describe('defect 4: corruption that used to load silently', () => {
  it('optimizer state with lr: null (or other bad hyper-parameters) is refused and changes nothing', async () => {
    const m = tiny();
    const opt = new eg.optim.Adam(m.parameters(), { lr: 0.01 });
    const st = opt.stateDict();
    for (const bad of [{ lr: null }, { lr: -1 }, { lr: 'fast' }, { beta1: 2 }, { lr: Infinity }, { amsgrad: true }]) {
      expect(() => opt.loadStateDict({ ...st, groups: [{ ...st.groups[0], ...bad } as never] }), JSON.stringify(bad)).toThrow(eg.ArgumentError);
      expect(opt.lr).toBe(0.01);
    }
    // Through a model file: FormatError naming the field.
    const art = await eg.saveModel(m, undefined, { optimizer: opt });
    const j = structuredClone(art.json) as eg.ModelJson;
    (j.optimizer!.groups[0] as Record<string, unknown>).lr = null;
    const opt2 = new eg.optim.Adam(tiny(2).parameters(), { lr: 0.5 });
    await expect(eg.loadModel({ json: j, weights: art.weights }, { optimizer: opt2 })).rejects.toThrow(/groups\[0\]\.lr must be a finite number/);
    expect(opt2.lr).toBe(0.5);
    // Steps must be non-negative integers.
    expect(() => opt.loadStateDict({ ...st, params: st.params.map((p) => ({ ...p, step: -1 })) })).toThrow(eg.ArgumentError);
    expect(() => opt.loadStateDict({ ...st, params: st.params.map((p) => ({ ...p, step: 1.5 })) })).toThrow(eg.ArgumentError);
    m.dispose();
    opt.dispose();
  });
  it('optimizer state tensors under names the optimizer does not use are refused, before anything changes', () => {
    const m = tiny();
    const opt = new eg.optim.SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
    eg.tidy(() => {
      m.forward(eg.ones([1, 4])).sum().backward();
      opt.step();
    });
    const st = opt.stateDict();
    for (const name of ['__proto__', 'constructor', 'prototype', 'toString']) {
      const tensors = Object.create(null) as Record<string, eg.Tensor>;
      tensors[name] = st.params[0].tensors.momentum_buffer;
      const hostile = { groups: [{ ...st.groups[0], lr: 0.5 }], params: [{ step: 1, tensors }, ...st.params.slice(1)] };
      expect(() => opt.loadStateDict(hostile), name).toThrow(eg.ArgumentError);
      expect(opt.lr, name).toBe(0.1); // nothing was assigned
    }
    expect(() => opt.loadStateDict(null as never)).toThrow(eg.ArgumentError);
    expect(() => opt.loadStateDict({ groups: [{ lr: 0.1 }], params: [null] } as never)).toThrow(eg.ArgumentError);
    m.dispose();
    opt.dispose();
  });
  it('scheduler state: negative base rates and non-integer step counts are refused', () => {
    const m = tiny();
    const opt = new eg.optim.SGD(m.parameters(), { lr: 0.1 });
    const s = new eg.optim.CosineAnnealingLR(opt, 10);
    const weird = Object.create(null);
    for (const bad of [{ stepCount: 1, baseLrs: [-0.5] }, { stepCount: 1, baseLrs: [-1e308] }, { stepCount: weird }, { stepCount: [[[1]]] }, { stepCount: -1 }, null]) {
      expect(() => s.loadStateDict(bad as never)).toThrow(eg.ArgumentError);
      expect(opt.lr).toBe(0.1);
    }
    m.dispose();
  });
  it('dimensions of 2^32 and more do not wrap', () => {
    for (const shape of [[2 ** 32, 0], [2 ** 32 + 3, 0], [0, 2 ** 53], [2 ** 31, 0]]) {
      const bytes = rawSafetensors({ w: { dtype: 'F32', shape, data_offsets: [0, 0] } });
      expect(() => eg.decodeSafetensors(bytes), JSON.stringify(shape)).toThrow(eg.FormatError);
    }
  });
  it('tensors named __proto__ and constructor round-trip', () => {
    const a = eg.tensor([1, 2]);
    const b = eg.tensor([3]);
    const src = Object.create(null) as Record<string, eg.Tensor>;
    const [proto, ctor] = ['__proto__', 'constructor'] as string[];
    src[proto] = a;
    src[ctor] = b;
    const bytes = eg.encodeSafetensors(src);
    const { tensors } = eg.decodeSafetensors(bytes);
    expect(Object.keys(tensors).sort()).toEqual(['__proto__', 'constructor']);
    expect(Array.from(tensors[proto].dataSync())).toEqual([1, 2]);
    expect(Array.from(tensors[ctor].dataSync())).toEqual([3]);
    for (const t of [a, b, ...Object.values(tensors)]) t.dispose();
    // A model file with an extra tensor named 'constructor' is not "expected" because of Object.prototype.
    const m = tiny();
    const sd = { ...m.stateDict() };
    Object.defineProperty(sd, 'constructor', { value: eg.zeros([1]), enumerable: true });
    expect(() => eg.loadWeights(m, eg.saveWeights(sd))).toThrow(/unexpected constructor/);
    m.dispose();
  });
});

describe('defect 7: many small entries, and a tiny file declaring a huge model', () => {
  it('caps the number of tensors before parsing, and mismatches cost no tensor', async () => {
    const n = 3000;
    const header: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) header[`t${i}`] = { dtype: 'F32', shape: [1], data_offsets: [4 * i, 4 * i + 4] };
    const bytes = rawSafetensors(header, new Uint8Array(4 * n));
    expect(() => eg.decodeSafetensors(bytes, { maxTensors: n - 1 })).toThrow(/3000 tensors, more than the 2999 tensors allowed \(option maxTensors\)/);
    const { tensors } = eg.decodeSafetensors(bytes, { maxTensors: n });
    expect(Object.keys(tensors).length).toBe(n);
    for (const t of Object.values(tensors)) t.dispose();
    // A model file whose weights hold thousands of stray entries: one short FormatError, no tensor made.
    const m = tiny();
    const art = await eg.saveModel(m);
    const before = eg.memory().numTensors;
    const err = await eg.loadModel({ json: art.json, weights: bytes }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(eg.FormatError);
    expect((err as Error).message).toMatch(/unexpected .* and 2995 more/);
    expect((err as Error).message.length).toBeLessThan(400);
    expect(eg.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe('defect 7: a tiny model.json declaring a huge model', () => {
  it('fails before allocating what the weights cannot fill', async () => {
    const m = tiny();
    const art = await eg.saveModel(m);
    m.dispose();
    const huge = { ...art.json, model: { className: 'Sequential', config: { layers: [{ className: 'Linear', config: { inFeatures: 20000, outFeatures: 20000 } }] } } };
    const before = eg.memory();
    await expect(eg.loadModel({ json: huge, weights: art.weights })).rejects.toThrow(/declares a model larger than its weights/);
    const after = eg.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.wasmBytes - before.wasmBytes).toBeLessThan(64 * 1024 * 1024); // Linear(20000, 20000) alone is 1.6 GB
  });
});

describe('defect 8: failing loads leak nothing', () => {
  it('quantized, binary, model, PyTorch and config loads that fail free what they made', async () => {
    const qm = quantized();
    const qbytes = qm.serialize();
    const t = qm.tensors();
    // A weight_scale one channel too long: passes the old checks, then fails inside the layer setup.
    const longScale = eg.tensor(Array.from(t['1.weight_scale'].dataSync()).concat([1]));
    const badScale = eg.encodeSafetensors({ ...t, '1.weight_scale': longScale }, { format: 'edgegrad-quantized', graph: JSON.stringify(qm.graph) });
    longScale.dispose();
    qm.dispose();
    await noLeak('quantized model with a bad scale', eg.EdgegradError, () => C.QuantizedModel.deserialize(badScale));
    await noLeak('quantized model with a cycle', eg.FormatError, () => C.QuantizedModel.deserialize(withMetadata(qbytes, (md) => {
      const g = JSON.parse(md.graph);
      g.nodes[0].in = 1;
      md.graph = JSON.stringify(g);
    })));
    const m = tiny();
    const art = await eg.saveModel(m);
    const wrongShape = eg.saveWeights({ ...m.stateDict(), '2.weight': eg.zeros([2, 4]) });
    await noLeak('model with a wrong shape', eg.FormatError, () => eg.loadModel({ json: art.json, weights: wrongShape }));
    await noLeak('PyTorch weights with a wrong shape', eg.FormatError, () => nn.interop.loadPyTorchWeights(m, wrongShape));
    // A Sequential whose last layer cannot be built: the layers before it are freed.
    const badLast = { ...art.json, model: { className: 'Sequential', config: { layers: [{ className: 'Linear', config: { inFeatures: 4, outFeatures: 3 } }, { className: 'Conv2d', config: { inChannels: 1, outChannels: 1, kernelSize: {} } }] } } };
    await noLeak('Sequential with a bad last layer', eg.FormatError, () => eg.loadModel({ json: badLast, weights: art.weights }));
    m.dispose();
  });
});

describe('model.json text: any input parses as JSON.parse would, or is a FormatError', () => {
  const parse = async (text: string) => eg.loadModel({ json: text, weights: new Uint8Array(0) }).catch((e: Error) => e);
  it('random JSON values and random text (fast-check)', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(fc.jsonValue().map((j) => JSON.stringify(j)), fc.string({ unit: 'binary' })), async (text) => {
      const err = await parse(text);
      // Never a raw error; never the text itself in the message.
      expect(err).toBeInstanceOf(eg.FormatError);
      if (text.length > 12) expect((err as Error).message).not.toContain(text);
      let ok = true;
      try {
        JSON.parse(text);
      } catch {
        ok = false;
      }
      if (!ok) expect((err as Error).message).toMatch(/not valid JSON|nested more than/);
    }), { numRuns: 300, seed: 13 });
  });
  it('nesting is bounded before JSON.parse, whatever the brackets', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 60, max: 3000 }), fc.constantFrom('[', '{"a":'), async (depth, open) => {
      const close = open === '[' ? ']' : '}';
      const err = await parse(open.repeat(depth) + '1' + close.repeat(depth));
      expect(err).toBeInstanceOf(eg.FormatError);
      if (depth > 64) expect((err as Error).message).toMatch(/nested more than 64 levels/);
    }), { numRuns: 50, seed: 14 });
  });
});
