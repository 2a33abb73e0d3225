/**
 * Colormaps as 256-entry RGB tables sampled once, at fixed points i/255, from d3-scale-chromatic
 * (the schemes Vega uses); pixels then only index the tables, so colors are identical in every
 * runtime. Lookup follows matplotlib: index = floor(x * 256), clamped to [0, 255].
 */
import { interpolateBlues, interpolateGreens, interpolatePiYG, interpolateReds, interpolateViridis } from 'd3-scale-chromatic';
import { ArgumentError } from '../errors.js';
import { checkNumber, describe } from '../args.js';

/**
 * `diverging`: pink-white-green (PiYG; negative pink, zero white, positive green — the closest d3
 * scheme to Captum's red-white-green), `greens`/`reds`/`blues`: Captum's sequential maps for the
 * positive / negative / absolute-value signs, `viridis` for feature maps, `gray`: black to white.
 */
export type ColormapName = 'diverging' | 'greens' | 'reds' | 'blues' | 'viridis' | 'gray';

const SOURCES: Record<Exclude<ColormapName, 'gray'>, (t: number) => string> = {
  diverging: interpolatePiYG,
  greens: interpolateGreens,
  reds: interpolateReds,
  blues: interpolateBlues,
  viridis: interpolateViridis,
};
const tables = new Map<ColormapName, Uint8Array>();

/** d3 gives "rgb(r, g, b)" or "#rrggbb". */
function parseColor(s: string): [number, number, number] {
  if (s.startsWith('#') && s.length === 7) return [parseInt(s.slice(1, 3), 16), parseInt(s.slice(3, 5), 16), parseInt(s.slice(5, 7), 16)];
  const m = /^rgb\((\d+), ?(\d+), ?(\d+)\)$/.exec(s);
  if (m === null) throw new ArgumentError(`unexpected color ${JSON.stringify(s)} from the colormap`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** The RGB table (768 bytes) of a colormap. */
export function colormapTable(name: ColormapName): Uint8Array {
  let t = tables.get(name);
  if (t !== undefined) return t;
  if (typeof name !== 'string' || (name !== 'gray' && !Object.hasOwn(SOURCES, name))) {
    throw new ArgumentError(`colormap must be one of ${['gray', ...Object.keys(SOURCES)].join(', ')}, got ${describe(name)}`);
  }
  t = new Uint8Array(768);
  for (let i = 0; i < 256; i++) {
    const rgb: [number, number, number] = name === 'gray' ? [i, i, i] : parseColor(SOURCES[name as Exclude<ColormapName, 'gray'>](i / 255));
    t.set(rgb, i * 3);
  }
  tables.set(name, t);
  return t;
}

/** The table index of x in [0, 1] (NaN never reaches here: inputs are checked finite). */
export function lutIndex(x: number): number {
  const i = Math.floor(x * 256);
  return i < 0 ? 0 : i > 255 ? 255 : i;
}

/** "#rrggbb" of the colormap at x in [0, 1]. */
export function hexColor(name: ColormapName, x: number): string {
  checkNumber(x, 'hexColor x', { finite: true });
  const t = colormapTable(name);
  const o = lutIndex(x) * 3;
  return '#' + [t[o], t[o + 1], t[o + 2]].map((v) => v.toString(16).padStart(2, '0')).join('');
}
