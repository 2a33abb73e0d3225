/**
 * Pictures with text (axes, feature names, token labels) are Vega-Lite charts: the spec is built
 * here, and rendered by vega + vega-lite, dependencies imported only when a chart is rendered
 * (dynamic imports: users who never chart never load them, bundlers split them into a lazy chunk).
 * SVG, and pixels (`VizImage`, PNG) through resvg-wasm with the bundled DejaVu Sans (sdk/raster.ts):
 * one path in Node and browsers.
 */
import { ArgumentError, BackendError } from '../errors.js';
import { checkInt, checkNumber, checkObject, checkOptions, describe } from '../args.js';
import { hexColor } from './colormap.js';
import { VizImage } from './image.js';
import { CHART_FONT, rasterizeSVG } from '../raster.js';

/** A Vega-Lite specification (JSON). */
export type VegaLiteSpec = Record<string, unknown>;

/** A chart: its Vega-Lite spec and renderings of it. */
export class Chart {
  /** The Vega-Lite spec (plain JSON: edit it, or render it with any Vega-Lite tool). */
  readonly spec: VegaLiteSpec;
  constructor(spec: VegaLiteSpec) {
    this.spec = checkObject<VegaLiteSpec>(spec, 'Chart spec', 'a Vega-Lite spec object');
  }

  /** The chart as an SVG document (Node and browsers). */
  async toSVG(): Promise<string> {
    return withView(this.spec, (view) => view.toSVG());
  }

  /**
   * The chart as pixels, the same in Node and browsers: the SVG with its text in the bundled DejaVu Sans,
   * rasterized by resvg-wasm (loaded on first use). `scale` multiplies the resolution; default 1.
   */
  async toImage(scale = 1): Promise<VizImage> {
    checkNumber(scale, 'toImage scale', { finite: true });
    if (!(scale > 0 && scale <= 16)) throw new ArgumentError(`toImage scale must be in (0, 16], got ${scale}`);
    const config = (this.spec.config ?? {}) as Record<string, unknown>;
    const svg = await withView({ ...this.spec, config: { ...config, font: CHART_FONT } }, (view) => view.toSVG());
    const { width, height, data } = await rasterizeSVG(svg, scale);
    return new VizImage(width, height, new Uint8ClampedArray(data.buffer, data.byteOffset, data.length));
  }

  /** The chart as PNG bytes (`toImage(scale)` encoded; Node and browsers). */
  async toPNG(scale = 1): Promise<Uint8Array> {
    return (await this.toImage(scale)).toPNG();
  }
}

type VegaView = import('vega').View;

async function withView<T>(spec: VegaLiteSpec, f: (view: VegaView) => Promise<T>): Promise<T> {
  let vega: typeof import('vega');
  let vl: typeof import('vega-lite');
  try {
    [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  } catch (e) {
    throw new BackendError(`rendering a chart could not load the packages vega and vega-lite: ${(e as Error)?.message ?? e}`);
  }
  fixedFontWidths(vega);
  let view: VegaView;
  try {
    view = new vega.View(vega.parse(vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec), { renderer: 'none' });
  } catch (e) {
    throw new ArgumentError(`the chart spec is not valid Vega-Lite: ${(e as Error)?.message ?? e}`);
  }
  try {
    return await f(view);
  } finally {
    view.finalize();
  }
}

type TextItem = { font?: string; fontSize?: number; limit?: number };
type TextWidth = (item: TextItem, text: unknown) => number;
interface TextMetrics { width: TextWidth & { fixed?: true }; estimateWidth: TextWidth }

/**
 * Text in CHART_FONT (rasterized charts) is laid out by vega's own estimate (what vega does without a
 * canvas, i.e. in Node) in every runtime, not by the browser's canvas measure, so the SVG — hence the
 * pixels — is the same in Node and browsers. Other text keeps the measure vega chose. vega truncates a
 * label by calling this width again on the bare text (hence `inner`: that call measures, untruncated).
 */
function fixedFontWidths(vega: typeof import('vega')): void {
  const m = (vega as unknown as { textMetrics: TextMetrics }).textMetrics;
  const fontSize = (vega as unknown as { fontSize: (item: TextItem) => number }).fontSize;
  const original = m.width;
  if (original.fixed) return;
  const estimate = (item: TextItem, text: unknown) => Math.trunc(0.8 * (text == null ? '' : String(text).trim()).length * fontSize(item));
  let inner = false;
  const wrapped: TextWidth & { fixed?: true } = (item, text) => {
    const fixed = item.font === CHART_FONT || original === m.estimateWidth;
    if (inner) return fixed ? estimate(item, text) : original({ ...item, limit: 0 }, text);
    inner = true;
    try {
      return (fixed ? m.estimateWidth : original)(item, text);
    } finally {
      inner = false;
    }
  };
  wrapped.fixed = true;
  m.width = wrapped;
}

/** A list of strings, checked (names, tokens). */
export function checkStrings(v: unknown, what: string, n?: number): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new ArgumentError(`${what} must be an array of strings, got ${describe(v)}`);
  if (n !== undefined && v.length !== n) throw new ArgumentError(`${what} has ${v.length} entries but ${n} are needed`);
  return v;
}

/** Finite numbers from an array or typed array, checked. */
export function checkValues(v: unknown, what: string, n?: number): number[] {
  if (!(Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)))) {
    throw new ArgumentError(`${what} must be an array of numbers, got ${describe(v)}`);
  }
  const a = Array.from(v as ArrayLike<unknown>);
  a.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new ArgumentError(`${what}[${i}] must be a finite number, got ${describe(x)}`);
  });
  if (n !== undefined && a.length !== n) throw new ArgumentError(`${what} has ${a.length} entries but ${n} are needed`);
  return a as number[];
}

/** Options of `barChart` (horizontal bars, e.g. feature attributions). */
export interface BarChartOptions {
  /** One name per bar (feature names). */
  names: string[];
  /** The bar lengths (attributions, importances). */
  values: ArrayLike<number>;
  /** Half-lengths of the error bars (e.g. the std of permutation importances), drawn as value ± error. */
  errors?: ArrayLike<number>;
  /** Chart title (none by default). */
  title?: string;
  /** Title of the value axis; default 'attribution'. */
  valueTitle?: string;
  /** Bars sorted by value, largest first (default true), or in the given order. */
  sort?: boolean;
  /** Chart width in pixels; default 480 (the height follows the bar count). */
  width?: number;
}

/**
 * A horizontal bar chart of per-feature attributions or importances with feature names and optional
 * error bars; positive bars green, negative pink (the diverging colormap's ends).
 */
export function barChart(options: BarChartOptions): Chart {
  const o = checkOptions(options, 'barChart options') as BarChartOptions;
  const names = checkStrings(o.names, 'barChart names');
  if (names.length === 0) throw new ArgumentError('barChart needs at least one bar');
  if (new Set(names).size !== names.length) throw new ArgumentError('barChart names must be distinct (a name is one bar)');
  const values = checkValues(o.values, 'barChart values', names.length);
  const errors = o.errors === undefined ? undefined : checkValues(o.errors, 'barChart errors', names.length);
  if (errors?.some((e) => e < 0)) throw new ArgumentError('barChart errors must be >= 0 (half-lengths of the error bars)');
  if (o.title !== undefined && typeof o.title !== 'string') throw new ArgumentError(`barChart title must be a string, got ${describe(o.title)}`);
  if (o.valueTitle !== undefined && typeof o.valueTitle !== 'string') throw new ArgumentError(`barChart valueTitle must be a string, got ${describe(o.valueTitle)}`);
  if (o.sort !== undefined && typeof o.sort !== 'boolean') throw new ArgumentError(`barChart sort must be true or false, got ${describe(o.sort)}`);
  const width = checkInt(o.width ?? 480, 'barChart width', 50, 10_000);
  const rows = names.map((name, i) => ({
    feature: name,
    value: values[i],
    ...(errors ? { lo: values[i] - errors[i], hi: values[i] + errors[i] } : {}),
  }));
  const order = o.sort === false ? names : rows.slice().sort((a, b) => b.value - a.value).map((r) => r.feature);
  const y = { field: 'feature', type: 'nominal', sort: order, title: null };
  const valueTitle = o.valueTitle ?? 'attribution';
  const layers: VegaLiteSpec[] = [
    {
      mark: 'bar',
      encoding: {
        y,
        x: { field: 'value', type: 'quantitative', title: valueTitle },
        color: { condition: { test: 'datum.value >= 0', value: hexColor('diverging', 0.9) }, value: hexColor('diverging', 0.1) },
      },
    },
  ];
  if (errors) {
    layers.push({
      mark: { type: 'rule', color: 'black' },
      encoding: { y, x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } },
    });
  }
  return new Chart({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    ...(o.title !== undefined ? { title: o.title } : {}),
    width,
    height: { step: 18 },
    background: 'white',
    data: { values: rows },
    layer: layers,
  });
}

/** One line of a `lineChart`: its name (the legend) and its points. */
export interface LineSeries {
  /** Legend label of the line. */
  name: string;
  /** x coordinates of the points. */
  x: ArrayLike<number>;
  /** y coordinates of the points (same length as `x`). */
  y: ArrayLike<number>;
}

/** Options of `lineChart`. */
export interface LineChartOptions {
  /** The lines to draw, each with its legend name. */
  series: LineSeries[];
  /** Chart title (none by default). */
  title?: string;
  /** Axis titles; default 'x' and 'y'. */
  xTitle?: string;
  /** Title of the y axis (default 'y'). */
  yTitle?: string;
  /** Ticks on whole numbers only (epochs, steps); default false. */
  integerX?: boolean;
  /** The y scale includes 0 (default true; false zooms on the data). */
  zeroY?: boolean;
  /** Plot size in pixels; default 520 × 300. */
  width?: number;
  /** Plot height in pixels (default 300). */
  height?: number;
}

/**
 * A line chart of several (x, y) series with points, titled axes and a legend: training curves,
 * accuracy against ε, certified accuracy against the radius.
 */
export function lineChart(options: LineChartOptions): Chart {
  const o = checkOptions(options, 'lineChart options') as LineChartOptions;
  if (!Array.isArray(o.series) || o.series.length === 0) throw new ArgumentError(`lineChart series must be a non-empty array of { name, x, y }, got ${describe(o.series)}`);
  const names = new Set<string>();
  const rows = o.series.flatMap((s, k) => {
    checkObject(s, `lineChart series[${k}]`, 'an object { name, x, y }');
    if (typeof s.name !== 'string') throw new ArgumentError(`lineChart series[${k}].name must be a string, got ${describe(s.name)}`);
    if (names.has(s.name)) throw new ArgumentError(`lineChart series names must be distinct ('${s.name.slice(0, 60)}' repeats)`);
    names.add(s.name);
    const x = checkValues(s.x, `lineChart series[${k}].x`);
    const y = checkValues(s.y, `lineChart series[${k}].y`, x.length);
    return x.map((xi, i) => ({ x: xi, y: y[i], series: s.name }));
  });
  for (const key of ['title', 'xTitle', 'yTitle'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'string') throw new ArgumentError(`lineChart ${key} must be a string, got ${describe(o[key])}`);
  }
  for (const key of ['integerX', 'zeroY'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw new ArgumentError(`lineChart ${key} must be true or false, got ${describe(o[key])}`);
  }
  const width = checkInt(o.width ?? 520, 'lineChart width', 50, 10_000);
  const height = checkInt(o.height ?? 300, 'lineChart height', 50, 10_000);
  return new Chart({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    ...(o.title !== undefined ? { title: o.title } : {}),
    width,
    height,
    background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: o.xTitle ?? 'x', ...(o.integerX ? { axis: { tickMinStep: 1 } } : {}) },
      y: { field: 'y', type: 'quantitative', title: o.yTitle ?? 'y', ...(o.zeroY === false ? { scale: { zero: false } } : {}) },
      color: { field: 'series', type: 'nominal', title: null },
    },
  });
}
