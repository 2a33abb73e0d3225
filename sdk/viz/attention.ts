/** Attention: rollout across layers (a tensor computation) and per-layer/head heat maps with token labels. */
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { checkInt, checkOptions, describe } from '../args.js';
import { tensor } from '../creation.js';
import { tidy } from '../memory.js';
import { isTensor, type Tensor } from '../tensor.js';
import { Chart, checkStrings } from './chart.js';
import { readInput, type VizInput } from './common.js';

/**
 * Attention rollout (Abnar & Zuidema 2020) of per-layer attention weights, first layer first, each
 * `[heads, T, T]` or `[batch, heads, T, T]` (e.g. `MultiHeadAttention.attentionWeights`): per layer
 * the heads are averaged, the identity added (the residual path) and rows renormalized to sum 1;
 * the rollout is the product A_L ··· A_1. Returns `[T, T]` (or `[batch, T, T]`); row i says how
 * much output token i draws on each input token.
 */
export function attentionRollout(maps: Tensor[]): Tensor {
  if (!Array.isArray(maps) || maps.length === 0) throw new ArgumentError(`attentionRollout needs a non-empty array of per-layer attention tensors, got ${describe(maps)}`);
  let ref: number[] | null = null;
  maps.forEach((m, i) => {
    if (!isTensor(m)) throw new ArgumentError(`attentionRollout: maps[${i}] must be a Tensor, got ${describe(m)}`);
    const s = m.shape; // throws DisposedError for a disposed tensor
    if (m.dtype !== 'float32') throw new DTypeError(`attentionRollout: maps[${i}] must be float32, got ${m.dtype}`);
    if ((s.length !== 3 && s.length !== 4) || s[s.length - 1] !== s[s.length - 2] || s.includes(0)) {
      throw new ShapeError(`attentionRollout: maps[${i}] must be [heads, T, T] or [batch, heads, T, T], got [${s.join(', ')}]`);
    }
    const key = [...(s.length === 4 ? [s[0]] : []), s[s.length - 1]];
    if (ref !== null && (ref.length !== key.length || ref.some((d, j) => d !== key[j]))) {
      throw new ShapeError(`attentionRollout: maps[${i}] [${s.join(', ')}] does not match the first layer's batch and token count`);
    }
    ref = key;
  });
  const t = maps[0].shape[maps[0].rank - 1];
  const eye = new Float32Array(t * t);
  for (let i = 0; i < t; i++) eye[i * t + i] = 1;
  return tidy(() => {
    const identity = tensor(eye, [t, t]);
    let rollout: Tensor | null = null;
    for (const m of maps) {
      const a = m.mean(m.rank - 3).add(identity);
      const norm = a.div(a.sum(a.rank - 1, true));
      rollout = rollout === null ? norm : norm.matmul(rollout);
    }
    return rollout as Tensor;
  });
}

/** Options of {@link attentionMap}. */
export interface AttentionMapOptions {
  /** Key tokens (the columns), and the query tokens (rows) unless `queryTokens` is given. */
  tokens: string[];
  /** Query tokens when they differ from the keys (cross-attention). */
  queryTokens?: string[];
  /** Chart title (none by default). */
  title?: string;
  /** Pixels per cell; default 16. */
  cellSize?: number;
  /** Which example of batched weights `[batch, heads, Tq, Tk]` to show (needed when batch > 1). */
  example?: number;
}

/**
 * Attention weights as heat maps with token labels, one panel per layer (rows) and head (columns):
 * `weights` is one layer's or a list of layers' weights, each `[T, T]`, `[heads, Tq, Tk]` or
 * `[batch, heads, Tq, Tk]` (e.g. `gpt.attentionMaps()`; `example` picks the row when batch > 1).
 */
export function attentionMap(weights: VizInput | VizInput[], options: AttentionMapOptions): Chart {
  const o = checkOptions(options, 'attentionMap options') as AttentionMapOptions;
  const layers = Array.isArray(weights) ? weights : [weights];
  if (layers.length === 0) throw new ArgumentError('attentionMap needs at least one layer of weights');
  const keys = checkStrings(o.tokens, 'attentionMap tokens');
  const queries = o.queryTokens === undefined ? keys : checkStrings(o.queryTokens, 'attentionMap queryTokens');
  if (o.title !== undefined && typeof o.title !== 'string') throw new ArgumentError(`attentionMap title must be a string, got ${describe(o.title)}`);
  const cell = o.cellSize ?? 16;
  if (!Number.isInteger(cell) || cell < 2 || cell > 200) throw new ArgumentError(`attentionMap cellSize must be an integer in [2, 200], got ${describe(cell)}`);
  if (o.example !== undefined) checkInt(o.example, 'attentionMap example', 0);
  const rows: { layer: number; head: number; q: number; k: number; weight: number }[] = [];
  layers.forEach((w, l) => {
    const { data, shape } = readInput(w, `attention weights of layer ${l}`);
    let base = 0;
    let s = shape.length === 2 ? [1, ...shape] : shape;
    if (shape.length === 4) {
      const ex = o.example ?? 0;
      if (o.example === undefined && shape[0] !== 1) throw new ArgumentError(`attention weights of layer ${l} hold ${shape[0]} examples: pick one with the option example`);
      if (ex >= shape[0]) throw new ArgumentError(`attentionMap example ${ex} is out of range for ${shape[0]} examples (layer ${l})`);
      s = shape.slice(1);
      base = ex * s[0] * s[1] * s[2];
    }
    if (s.length !== 3 || s[1] !== queries.length || s[2] !== keys.length) {
      throw new ShapeError(`attention weights of layer ${l} must be [${queries.length}, ${keys.length}], [heads, ${queries.length}, ${keys.length}] or [batch, heads, ${queries.length}, ${keys.length}] for these tokens, got [${shape.join(', ')}]`);
    }
    const [heads, tq, tk] = s;
    for (let h = 0; h < heads; h++) {
      for (let q = 0; q < tq; q++) {
        for (let k = 0; k < tk; k++) rows.push({ layer: l, head: h, q, k, weight: data[base + (h * tq + q) * tk + k] });
      }
    }
  });
  // Positions, not strings, on the axes (a token may repeat); labelExpr shows the strings.
  const label = (tokens: string[]) => `${JSON.stringify(tokens)}[datum.value]`;
  return new Chart({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    ...(o.title !== undefined ? { title: o.title } : {}),
    background: 'white',
    data: { values: rows },
    facet: {
      row: { field: 'layer', type: 'ordinal', title: 'layer' },
      column: { field: 'head', type: 'ordinal', title: 'head' },
    },
    spec: {
      width: keys.length * cell,
      height: queries.length * cell,
      mark: 'rect',
      encoding: {
        x: { field: 'k', type: 'ordinal', title: 'key', axis: { labelExpr: label(keys), labelAngle: -45 } },
        y: { field: 'q', type: 'ordinal', title: 'query', axis: { labelExpr: label(queries) } },
        color: { field: 'weight', type: 'quantitative', scale: { scheme: 'blues', domain: [0, 1] }, title: 'weight' },
        tooltip: [{ field: 'weight', type: 'quantitative', format: '.3f' }],
      },
    },
  });
}
