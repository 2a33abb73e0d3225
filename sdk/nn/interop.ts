/**
 * Interop with the PyTorch world: load weights exported from PyTorch (a safetensors file, e.g.
 * `safetensors.torch.save_file(model.state_dict(), 'model.safetensors')`) into the matching
 * edgegrad modules, and export edgegrad weights in PyTorch's names and layouts.
 *
 * Name mapping (edgegrad names are PyTorch's wherever a module exists in both):
 *
 * | edgegrad                          | PyTorch                               | tensor names                                       | layout |
 * |-----------------------------------|---------------------------------------|----------------------------------------------------|--------|
 * | `Linear`                          | `nn.Linear`                           | `weight`, `bias`                                   | same (`[out, in]`) |
 * | `Conv2d`                          | `nn.Conv2d`                           | `weight`, `bias`                                   | `[out, in/g, kh, kw]` → HWIO `[kh, kw, in/g, out]` |
 * | `BatchNorm1d` / `BatchNorm2d`     | `nn.BatchNorm1d` / `2d`               | `weight`, `bias`, `running_mean`, `running_var`    | same (`num_batches_tracked` is not used) |
 * | `LayerNorm`, `Embedding`          | same                                  | `weight`, `bias`                                   | same |
 * | `SimpleRNN` / `LSTM` / `GRU`      | `nn.RNN` / `nn.LSTM` / `nn.GRU` (`batch_first=True`) | `weight_ih_l{k}`, `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, `..._reverse` | same (gate orders LSTM i,f,g,o; GRU r,z,n; two biases) |
 * | `MultiHeadAttention`              | `nn.MultiheadAttention` (`batch_first=True`) | `in_proj_weight`, `in_proj_bias`, `out_proj.*` (or `q/k/v_proj_weight`) | same |
 * | `TransformerEncoderLayer`         | `nn.TransformerEncoderLayer`          | `self_attn.*`, `linear1`, `linear2`, `norm1`, `norm2` | same |
 * | `ResNet`, `BasicBlock`, `Bottleneck` | `torchvision.models.resnet*`       | `conv1`, `bn1`, `layer{i}.{j}.conv1`, `...downsample.0/1`, `fc` | convolutions as above |
 * | `GPT`                             | nanoGPT's `GPT`                       | `transformer.wte/wpe/h.{i}/ln_f`, `lm_head`        | same |
 *
 * Activations differ in layout (PyTorch NCHW, edgegrad NHWC): a `Linear` that follows a flatten
 * of feature maps sees its input columns in (c, h, w) order in PyTorch and (h, w, c) here; name
 * such layers in `flattenFrom` with the `[C, H, W]` shape they flatten, and their weight columns
 * are permuted. Inputs must be transposed too (`x.permute([0, 2, 3, 1])`).
 */
import { ArgumentError, FormatError } from '../errors.js';
import { decodeTensor, encodeSafetensors, entryDType, parseSafetensorsHeader, shortName } from '../io/safetensors.js';
import { noGrad } from '../autograd.js';
import { concat as concatTensors } from '../ops.js';
import { tidy } from '../memory.js';
import { Tensor } from '../tensor.js';
import { Conv2d, Linear } from './layers.js';
import { assertModule, type Module } from './module.js';
import { checkObject, checkOptions, describe } from '../args.js';

/** Layout conversion of one tensor: none, PyTorch conv OIHW → HWIO, or a Linear's columns from NCHW-flatten to NHWC-flatten order. */
export type Transform = 'none' | 'conv-oihw-to-hwio' | 'linear-nchw-flatten';

/** How one edgegrad tensor maps to a PyTorch state-dict entry (from `pytorchNameMap`). */
export interface WeightMapping {
  /** The tensor's name in the edgegrad model. */
  ours: string;
  /** Its name in the PyTorch state dict. */
  theirs: string;
  /** Layout conversion from PyTorch's tensor to ours. */
  transform: Transform;
  /** Our shape. */
  shape: number[];
  /** The shape PyTorch stores. */
  theirShape: number[];
  /** For `linear-nchw-flatten`: the flattened map `[C, H, W]`. */
  chw?: [number, number, number];
}

/** How edgegrad names map to PyTorch's: prefix, renames, and Linear layers after an NCHW flatten. */
export interface PyTorchNameOptions {
  /** Prefix of every PyTorch name (`'module.'` from DataParallel, `'model.'`...). */
  prefix?: string;
  /** Renames: our name → PyTorch name (checked first), or a function of our name. */
  rename?: Record<string, string> | ((ours: string) => string);
  /** Linear layers (by module path) that follow a flatten of NCHW maps in PyTorch: `[C, H, W]`. */
  flattenFrom?: Record<string, [number, number, number]>;
}

/** How each parameter and buffer of `model` maps to a PyTorch state-dict entry. */
export function pytorchNameMap(model: Module, o: PyTorchNameOptions = {}): WeightMapping[] {
  assertModule(model, 'pytorchNameMap');
  o = checkOptions(o, 'PyTorch name options');
  if (o.flattenFrom !== undefined) checkObject(o.flattenFrom, 'PyTorch name options.flattenFrom', "{ 'module.path': [C, H, W] }");
  if (o.rename !== undefined && typeof o.rename !== 'function') checkObject(o.rename, 'PyTorch name options.rename', 'a function or { ours: theirs }');
  const kinds = new Map<string, { transform: Transform; chw?: [number, number, number] }>();
  const flat = o.flattenFrom ?? {};
  const used = new Set<string>();
  for (const [path, m] of model.namedModules()) {
    const p = (n: string) => (path ? `${path}.${n}` : n);
    if (m instanceof Conv2d) kinds.set(p('weight'), { transform: 'conv-oihw-to-hwio' });
    if (path in flat) {
      if (!(m instanceof Linear)) throw new ArgumentError(`flattenFrom: '${path}' is a ${m.className}, not a Linear`);
      const chw = flat[path];
      if (!Array.isArray(chw) || chw.length !== 3 || chw[0] * chw[1] * chw[2] !== m.inFeatures) {
        throw new ArgumentError(`flattenFrom: '${path}' has ${m.inFeatures} inputs, which is not C·H·W for ${JSON.stringify(chw)}`);
      }
      kinds.set(p('weight'), { transform: 'linear-nchw-flatten', chw });
      used.add(path);
    }
  }
  for (const k of Object.keys(flat)) if (!used.has(k)) throw new ArgumentError(`flattenFrom names '${k}', which is not a module of this model`);
  const rename = (ours: string) => {
    if (typeof o.rename === 'function') return o.rename(ours);
    return o.rename?.[ours] ?? ours;
  };
  return Object.entries(model.stateDict()).map(([name, t]) => {
    const k = kinds.get(name) ?? { transform: 'none' as Transform };
    const s = t.shape;
    const theirShape = k.transform === 'conv-oihw-to-hwio' ? [s[3], s[2], s[0], s[1]] : s;
    return { ours: name, theirs: (o.prefix ?? '') + rename(name), transform: k.transform, shape: s, theirShape, chw: k.chw };
  });
}

/** PyTorch's tensor → ours, per transform (engine ops; the result is a new tensor). */
function toOurs(t: Tensor, m: WeightMapping): Tensor {
  switch (m.transform) {
    case 'conv-oihw-to-hwio':
      return t.permute([2, 3, 1, 0]).contiguous();
    case 'linear-nchw-flatten': {
      const [c, h, w] = m.chw!;
      const out = t.shape[0];
      return t.reshape([out, c, h, w]).permute([0, 2, 3, 1]).reshape([out, h * w * c]);
    }
    default:
      return t;
  }
}

/** Ours → PyTorch's layout (inverse of `toOurs`). */
function toTheirs(t: Tensor, m: WeightMapping): Tensor {
  switch (m.transform) {
    case 'conv-oihw-to-hwio':
      return t.permute([3, 2, 0, 1]).contiguous();
    case 'linear-nchw-flatten': {
      const [c, h, w] = m.chw!;
      const out = t.shape[0];
      return t.reshape([out, h, w, c]).permute([0, 3, 1, 2]).reshape([out, c * h * w]);
    }
    default:
      return t.clone();
  }
}

/** Options of `loadPyTorchWeights`: the name options plus strictness. */
export interface PyTorchLoadOptions extends PyTorchNameOptions {
  /** Every tensor of the model must be in the file (default true). */
  strict?: boolean;
}

/** What `loadPyTorchWeights` loaded, and what it did not. */
export interface PyTorchLoadResult {
  /** Our names that were loaded. */
  loaded: string[];
  /** Our names with no tensor in the file (only when `strict: false`). */
  missing: string[];
  /** File tensors that went nowhere (e.g. `num_batches_tracked`). */
  unused: string[];
}

/**
 * Copies weights from a PyTorch state dict (safetensors bytes, or decoded tensors) into `model`,
 * converting layouts (see the table in this module's docs). Shapes are checked against what
 * PyTorch stores for each module; a mismatch or a missing tensor throws a FormatError naming it.
 */
export function loadPyTorchWeights(model: Module, source: Uint8Array | ArrayBuffer | Record<string, Tensor>, o: PyTorchLoadOptions = {}): PyTorchLoadResult {
  assertModule(model, 'loadPyTorchWeights');
  o = checkOptions(o, 'loadPyTorchWeights options');
  const isBytes = source instanceof Uint8Array || source instanceof ArrayBuffer;
  if (!isBytes && (source === null || typeof source !== 'object' || Array.isArray(source))) {
    throw new ArgumentError(`loadPyTorchWeights takes safetensors bytes or an object of tensors, got ${describe(source)}`);
  }
  // Bytes: only the header is read until every check passed; then only the mapped tensors are decoded.
  const buf = isBytes ? (source instanceof Uint8Array ? source : new Uint8Array(source)) : null;
  const parsed = buf ? parseSafetensorsHeader(buf) : null;
  const given = isBytes ? null : (source as Record<string, Tensor>);
  const has = (k: string) => Object.hasOwn(parsed ? parsed.entries : given!, k);
  const shapeOf = (k: string) => (parsed ? parsed.entries[k].shape : given![k].shape);
  const dtypeOf = (k: string) => (parsed ? entryDType(parsed.entries[k]) : given![k].dtype);
  const map = pytorchNameMap(model, o);
  const own = model.stateDict();
  const missing: string[] = [];
  const loaded: string[] = [];
  const taken = new Set<string>();
  // Validate everything before writing anything.
  for (const m of map) {
    if (!has(m.theirs)) {
      missing.push(m.ours);
      continue;
    }
    if (!parsed && !(given![m.theirs] instanceof Tensor)) throw new ArgumentError(`loadPyTorchWeights: '${shortName(m.theirs)}' is not a Tensor`);
    if (shapeOf(m.theirs).join() !== m.theirShape.join()) {
      throw new FormatError(`PyTorch tensor '${m.theirs}' has shape [${shapeOf(m.theirs).join(', ')}] but '${m.ours}' needs [${m.theirShape.join(', ')}] in PyTorch's layout${m.transform === 'conv-oihw-to-hwio' ? ` (a Conv2d weight [out, in/groups, kh, kw]; edgegrad stores it as [${m.shape.join(', ')}])` : ''}`);
    }
    if (dtypeOf(m.theirs) !== own[m.ours].dtype) throw new FormatError(`PyTorch tensor '${m.theirs}' is ${dtypeOf(m.theirs)} but '${m.ours}' is ${own[m.ours].dtype}`);
  }
  if ((o.strict ?? true) && missing.length) {
    const first = map.filter((m) => missing.includes(m.ours)).slice(0, 5).map((m) => `'${m.theirs}' (for ${m.ours})`);
    throw new FormatError(`the PyTorch weights lack ${missing.length} tensor(s) the model needs: ${first.join(', ')}${missing.length > 5 ? ', ...' : ''}; pass rename/prefix to map names, or strict: false`);
  }
  for (const m of map) {
    if (!has(m.theirs)) continue;
    tidy(() => noGrad(() => {
      // A decoded tensor is created inside tidy, so it is freed with the layout temporaries.
      const t = parsed ? decodeTensor(buf!, parsed, m.theirs) : given![m.theirs];
      own[m.ours].assign(toOurs(t, m));
    }));
    loaded.push(m.ours);
    taken.add(m.theirs);
  }
  const unused = Object.keys(parsed ? parsed.entries : given!).filter((k) => !taken.has(k));
  return { loaded, missing, unused };
}

/** The model's weights under PyTorch's names and layouts (new tensors, owned by the caller). */
export function exportPyTorchWeights(model: Module, o: PyTorchNameOptions = {}): Record<string, Tensor> {
  assertModule(model, 'exportPyTorchWeights');
  const own = model.stateDict();
  const out: Record<string, Tensor> = {};
  for (const m of pytorchNameMap(model, o)) out[m.theirs] = tidy(() => noGrad(() => toTheirs(own[m.ours], m)));
  return out;
}

/** `exportPyTorchWeights` as safetensors bytes, loadable with `safetensors.torch.load_file`. */
export function toPyTorchSafetensors(model: Module, o: PyTorchNameOptions = {}): Uint8Array {
  const t = exportPyTorchWeights(model, o);
  try {
    return encodeSafetensors(t, { format: 'pt' });
  } finally {
    for (const v of Object.values(t)) v.dispose();
  }
}

/**
 * Keras / TensorFlow.js recurrent weights (`kernel [in, G·H]`, `recurrent_kernel [H, G·H]`,
 * `bias [G·H]`, gates in Keras' order) as an edgegrad/PyTorch state dict for one layer:
 * transposed, and for the GRU reordered from Keras' z, r, h to r, z, n. Keras' LSTM order i, f,
 * c, o is already ours. Keras' GRU with `reset_after=True` stores `bias [2, 3H]` (input and
 * recurrent biases); with `reset_after=False` (tfjs) load into `GRU(..., { resetAfter: false })`.
 */
export function kerasRecurrentWeights(cell: 'simpleRNN' | 'lstm' | 'gru', w: { kernel: Tensor; recurrentKernel: Tensor; bias?: Tensor | null }, suffix = 'l0'): Record<string, Tensor> {
  const g = { simpleRNN: 1, lstm: 4, gru: 3 }[cell];
  if (!g) throw new ArgumentError(`unknown recurrent cell '${cell}' (simpleRNN, lstm or gru)`);
  const order = cell === 'gru' ? [1, 0, 2] : Array.from({ length: g }, (_, i) => i);
  const gh = w.kernel.shape[1];
  if (w.kernel.rank !== 2 || gh % g !== 0) throw new FormatError(`Keras ${cell} kernel must be [in, ${g}·units], got [${w.kernel.shape.join(', ')}]`);
  const h = gh / g;
  const blocks = (t: Tensor, axis: number) => order.map((q) => (axis === 1 ? t.slice([0, q * h], [t.shape[0], (q + 1) * h]) : t.slice([q * h], [(q + 1) * h])));
  return tidy(() => {
    const cat = (ts: Tensor[], axis: number) => (ts.length === 1 ? ts[0].clone() : concatTensors(ts, axis));
    const out: Record<string, Tensor> = {
      [`weight_ih_${suffix}`]: cat(blocks(w.kernel, 1), 1).transpose().contiguous(),
      [`weight_hh_${suffix}`]: cat(blocks(w.recurrentKernel, 1), 1).transpose().contiguous(),
    };
    if (w.bias) {
      if (w.bias.rank === 2) {
        // reset_after=True: [2, 3H] = input bias, recurrent bias
        const bi = w.bias.slice([0, 0], [1, gh]).reshape([gh]);
        const bh = w.bias.slice([1, 0], [2, gh]).reshape([gh]);
        out[`bias_ih_${suffix}`] = cat(blocks(bi, 0), 0);
        out[`bias_hh_${suffix}`] = cat(blocks(bh, 0), 0);
      } else {
        out[`bias_ih_${suffix}`] = cat(blocks(w.bias, 0), 0);
        out[`bias_hh_${suffix}`] = w.bias.mul(0);
      }
    }
    return out;
  });
}

