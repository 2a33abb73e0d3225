/** Image grids: any list of images, a conv/pool layer's feature maps, a Conv2d layer's learned filters. */
import { ArgumentError, ShapeError } from '../errors.js';
import { checkInt, checkOptions, describe } from '../args.js';
import { colormapTable, lutIndex, type ColormapName } from './colormap.js';
import { hwc, readInput, type VizInput } from './common.js';
import { upscale, VizImage } from './image.js';

/** Options of {@link grid}: layout of the tiles. */
export interface GridOptions {
  /** Columns; default ceil(sqrt(count)). */
  cols?: number;
  /** Pixels between tiles and around them; default 1. */
  padding?: number;
  /** RGBA of the padding; default opaque white [255, 255, 255, 255]. */
  background?: [number, number, number, number];
}

/**
 * The images in rows of `cols`, each in a cell as large as the largest image (top-left aligned):
 * width = cols * cellWidth + (cols + 1) * padding, likewise the height over ceil(n / cols) rows.
 */
export function grid(images: VizImage[], options?: GridOptions): VizImage {
  if (!Array.isArray(images) || images.length === 0) throw new ArgumentError(`grid needs a non-empty array of VizImage, got ${describe(images)}`);
  images.forEach((im, i) => {
    if (!(im instanceof VizImage)) throw new ArgumentError(`grid: images[${i}] must be a VizImage, got ${describe(im)}`);
  });
  const o = checkOptions(options, 'grid options');
  const cols = checkInt(o.cols ?? Math.ceil(Math.sqrt(images.length)), 'grid cols', 1, 65_536);
  const pad = checkInt(o.padding ?? 1, 'grid padding', 0, 4096);
  const bg = o.background ?? [255, 255, 255, 255];
  if (!Array.isArray(bg) || bg.length !== 4 || !bg.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    throw new ArgumentError(`grid background must be [r, g, b, a] of integers 0..255, got ${describe(bg)}`);
  }
  const rows = Math.ceil(images.length / cols);
  const cw = Math.max(...images.map((im) => im.width));
  const ch = Math.max(...images.map((im) => im.height));
  const out = new VizImage(cols * cw + (cols + 1) * pad, rows * ch + (rows + 1) * pad);
  const px = new Uint32Array(out.data.buffer);
  px.fill(new Uint32Array(new Uint8Array(bg).buffer)[0]);
  images.forEach((im, i) => {
    const x0 = pad + (i % cols) * (cw + pad);
    const y0 = pad + Math.floor(i / cols) * (ch + pad);
    for (let y = 0; y < im.height; y++) {
      const row = im.data.subarray(y * im.width * 4, (y + 1) * im.width * 4);
      out.data.set(row, ((y0 + y) * out.width + x0) * 4);
    }
  });
  return out;
}

/** Options of {@link featureMaps} and {@link filters}: layout and scaling of the tiles. */
export interface TileOptions extends GridOptions {
  /** Integer enlargement of every tile (nearest neighbour); default 1. */
  scale?: number;
  /** Colormap of single-channel tiles; default 'viridis'. */
  colormap?: ColormapName;
}

/** One channel (stride `stride` from `offset`) of `n` values min-max stretched through `table`. */
function tile(data: ArrayLike<number>, n: number, offset: number, stride: number, w: number, h: number, table: Uint8Array): VizImage {
  let lo = Infinity;
  let hi = -Infinity;
  for (let p = 0; p < n; p++) {
    const v = data[offset + p * stride];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const img = new VizImage(w, h);
  for (let p = 0; p < n; p++) {
    // A constant channel maps to the colormap's low end.
    const t = lutIndex(hi > lo ? (data[offset + p * stride] - lo) / (hi - lo) : 0) * 3;
    img.data[p * 4] = table[t];
    img.data[p * 4 + 1] = table[t + 1];
    img.data[p * 4 + 2] = table[t + 2];
    img.data[p * 4 + 3] = 255;
  }
  return img;
}

function layout(tiles: VizImage[], o: TileOptions): VizImage {
  const scale = o.scale ?? 1;
  checkInt(scale, 'scale', 1, 64);
  return grid(tiles.map((t) => upscale(t, scale)), { cols: o.cols, padding: o.padding, background: o.background });
}

/**
 * The feature maps of a conv or pooling layer's output for one example (`[H, W, C]` or
 * `[1, H, W, C]`, e.g. from `captureActivations`): one tile per channel, each min-max normalized.
 */
export function featureMaps(activation: VizInput, options?: TileOptions): VizImage {
  const o = checkOptions(options, 'featureMaps options');
  const table = colormapTable(o.colormap ?? 'viridis');
  const { data, shape } = readInput(activation, 'activation');
  const [h, w, c] = hwc(shape, 'activation');
  const tiles: VizImage[] = [];
  for (let k = 0; k < c; k++) tiles.push(tile(data, h * w, k, c, w, h, table));
  return layout(tiles, o);
}

/**
 * A Conv2d weight (HWIO `[kh, kw, in, out]`, e.g. `conv.weight` of the first layer) as one tile per
 * output channel: in color when the layer reads 3 channels (each filter min-max normalized over its
 * RGB values), otherwise the mean over input channels through the colormap.
 */
export function filters(weight: VizInput, options?: TileOptions): VizImage {
  const o = checkOptions(options, 'filters options');
  const table = colormapTable(o.colormap ?? 'viridis');
  const { data, shape } = readInput(weight, 'filters weight');
  if (shape.length !== 4 || shape.includes(0)) throw new ShapeError(`filters needs a Conv2d weight [kh, kw, in, out], got [${shape.join(', ')}]`);
  const [kh, kw, cin, cout] = shape;
  const n = kh * kw;
  const tiles: VizImage[] = [];
  for (let f = 0; f < cout; f++) {
    if (cin === 3) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let p = 0; p < n * 3; p++) {
        const v = data[p * cout + f];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const img = new VizImage(kw, kh);
      for (let p = 0; p < n; p++) {
        for (let ch = 0; ch < 3; ch++) img.data[p * 4 + ch] = hi > lo ? lutIndex((data[(p * 3 + ch) * cout + f] - lo) / (hi - lo)) : 0;
        img.data[p * 4 + 3] = 255;
      }
      tiles.push(img);
    } else {
      const mean = new Float64Array(n);
      for (let p = 0; p < n; p++) {
        let s = 0;
        for (let i = 0; i < cin; i++) s += data[(p * cin + i) * cout + f];
        mean[p] = s / cin;
      }
      tiles.push(tile(mean, n, 0, 1, kw, kh, table));
    }
  }
  return layout(tiles, o);
}
