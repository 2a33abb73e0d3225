/**
 * Image attributions as pictures, after Captum's `visualize_image_attr`: the same methods, signs,
 * normalization (`_normalize_attr`: sum over channels, keep the sign asked for, divide by the
 * cumulative-sum threshold at 100 - outlierPerc percent of |attr|, clip to [-1, 1]) and colormaps.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { checkNumber, checkOptions } from '../args.js';
import { colormapTable, lutIndex, type ColormapName } from './colormap.js';
import { checkChoice, hwc, readInput, type VizInput } from './common.js';
import { VizImage } from './image.js';

/** Which part of an attribution to show (Captum's `sign`): all, only positive, only negative, or absolute values. */
export type AttrSign = 'all' | 'positive' | 'negative' | 'absolute_value';
/** How an image attribution is drawn (Captum's `method`): heat map, heat map blended over the image, masked image, the image alone, or alpha scaling. */
export type AttrMethod = 'heat_map' | 'blended_heat_map' | 'masked_image' | 'original_image' | 'alpha_scaling';
const SIGNS: readonly AttrSign[] = ['all', 'positive', 'negative', 'absolute_value'];
const METHODS: readonly AttrMethod[] = ['heat_map', 'blended_heat_map', 'masked_image', 'original_image', 'alpha_scaling'];

/** Options of the attribution normalization (Captum's `_normalize_attr`). */
export interface NormalizeOptions {
  /** Which part of the attribution to keep (Captum's `sign`); default 'absolute_value'. */
  sign?: AttrSign;
  /** Percent of the |attr| mass treated as outliers and clipped (Captum's `outlier_perc`); default 2. */
  outlierPerc?: number;
}

/** A normalized attribution: one value per pixel in [-1, 1] (in [0, 1] unless sign is 'all'). */
export interface NormalizedAttribution {
  /** Height in pixels. */
  height: number;
  /** Width in pixels. */
  width: number;
  /** Normalized values, row-major `height × width`. */
  values: Float64Array;
  /** What the channel sums were divided by (0 when nothing of the asked sign was there: all values are then 0). */
  threshold: number;
}

/**
 * Captum's `_cumulative_sum_threshold`: the smallest sorted value at which the running sum reaches
 * `percentile` percent of the total.
 */
function cumulativeSumThreshold(values: Float64Array, percentile: number): number {
  const sorted = Float64Array.from(values).sort();
  let total = 0;
  for (let i = 0; i < sorted.length; i++) total += sorted[i];
  const target = total * 0.01 * percentile;
  let cum = 0;
  for (let i = 0; i < sorted.length; i++) {
    cum += sorted[i];
    if (cum >= target) return sorted[i];
  }
  return sorted[sorted.length - 1];
}

/** Captum's `_normalize_attr` over an NHWC attribution `[H, W, C]` / `[1, H, W, C]`. */
export function normalizeAttribution(attr: VizInput, options?: NormalizeOptions): NormalizedAttribution {
  const o = checkOptions(options, 'normalizeAttribution options');
  const sign = checkChoice(o.sign ?? 'absolute_value', 'sign', SIGNS);
  const outlierPerc = checkNumber(o.outlierPerc ?? 2, 'outlierPerc', { finite: true });
  if (outlierPerc < 0 || outlierPerc >= 100) throw new ArgumentError(`outlierPerc must be in [0, 100), got ${outlierPerc}`);
  const { data, shape } = readInput(attr, 'attribution');
  const [h, w, c] = hwc(shape, 'attribution');
  const values = new Float64Array(h * w);
  const mags = new Float64Array(h * w);
  for (let p = 0; p < h * w; p++) {
    let s = 0;
    for (let k = 0; k < c; k++) s += data[p * c + k];
    if (sign === 'positive') s = s > 0 ? s : 0;
    else if (sign === 'negative') s = s < 0 ? s : 0;
    else if (sign === 'absolute_value') s = s < 0 ? -s : s;
    values[p] = s;
    mags[p] = s < 0 ? -s : s;
  }
  let threshold = cumulativeSumThreshold(mags, 100 - outlierPerc);
  if (sign === 'negative') threshold = -threshold;
  // Captum asserts here; an all-zero map (a feature the model ignores) is a valid answer: blank.
  if (threshold === 0) return { height: h, width: w, values: new Float64Array(h * w), threshold };
  for (let p = 0; p < values.length; p++) {
    const v = values[p] / threshold;
    values[p] = v > 1 ? 1 : v < -1 ? -1 : v;
  }
  return { height: h, width: w, values, threshold };
}

/** Options of the image-attribution renderer: normalization plus Captum's method and colors. */
export interface ImageAttrOptions extends NormalizeOptions {
  /** Captum's methods; default 'heat_map'. */
  method?: AttrMethod;
  /** Heat-map opacity over the grayscale input in 'blended_heat_map'; default 0.5. */
  alphaOverlay?: number;
  /** Override of the colormap (default: diverging for sign 'all', greens/reds/blues for positive/negative/absolute_value). */
  colormap?: ColormapName;
}

const DEFAULT_CMAP: Record<AttrSign, ColormapName> = { all: 'diverging', positive: 'greens', negative: 'reds', absolute_value: 'blues' };

/** Captum's `_prepare_image` of the original: bytes (scaled by 255 first when every value is <= 1), as RGB. */
function originalBytes(image: VizInput, h: number, w: number): Uint8ClampedArray {
  const { data, shape } = readInput(image, 'originalImage');
  const [ih, iw, c] = hwc(shape, 'originalImage');
  if (ih !== h || iw !== w) throw new ShapeError(`originalImage is ${ih}x${iw} but the attribution is ${h}x${w}`);
  if (c !== 1 && c !== 3) throw new ShapeError(`originalImage must have 1 (gray) or 3 (RGB) channels, got ${c}`);
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) if (data[i] > max) max = data[i];
  const k = max <= 1 ? 255 : 1;
  const out = new Uint8ClampedArray(h * w * 3);
  for (let p = 0; p < h * w; p++) {
    for (let ch = 0; ch < 3; ch++) {
      // astype(int) truncates toward zero; clip to [0, 255].
      const v = Math.trunc(data[p * c + (c === 1 ? 0 : ch)] * k);
      out[p * 3 + ch] = v;
    }
  }
  return out;
}

/**
 * An image attribution (one NHWC example, `[H, W, C]` or `[1, H, W, C]`) as a picture, like
 * Captum's `visualize_image_attr(attr, original_image, method, sign, outlier_perc=2, alpha_overlay=0.5)`:
 * - `heat_map`: the normalized attribution through the colormap;
 * - `blended_heat_map`: that heat map at `alphaOverlay` over the input's grayscale (channel mean, min-max stretched);
 * - `masked_image`: the input times the normalized attribution (sign must not be 'all');
 * - `alpha_scaling`: the input with the normalized attribution as its alpha (sign must not be 'all');
 * - `original_image`: the input itself.
 * `originalImage` (same H and W, 1 or 3 channels, values in [0, 1] or [0, 255]) is needed by every method but heat_map.
 */
export function visualizeImageAttr(attr: VizInput, originalImage?: VizInput, options?: ImageAttrOptions): VizImage {
  const o = checkOptions(options, 'visualizeImageAttr options');
  const method = checkChoice(o.method ?? 'heat_map', 'method', METHODS);
  const sign = checkChoice(o.sign ?? 'absolute_value', 'sign', SIGNS);
  const alpha = checkNumber(o.alphaOverlay ?? 0.5, 'alphaOverlay', { finite: true });
  if (alpha < 0 || alpha > 1) throw new ArgumentError(`alphaOverlay must be in [0, 1], got ${alpha}`);
  const table = colormapTable(o.colormap ?? DEFAULT_CMAP[sign]);
  if ((method === 'masked_image' || method === 'alpha_scaling') && sign === 'all') {
    throw new ArgumentError(`method '${method}' needs sign 'positive', 'negative' or 'absolute_value', not 'all' (as in Captum)`);
  }
  if (method !== 'heat_map' && originalImage === undefined) throw new ArgumentError(`method '${method}' needs the original image`);
  const norm = normalizeAttribution(attr, { sign, outlierPerc: o.outlierPerc });
  const { height: h, width: w, values } = norm;
  const orig = originalImage === undefined ? null : originalBytes(originalImage, h, w);
  const img = new VizImage(w, h);
  const out = img.data;
  // Sign 'all' spans [-1, 1] on the colormap (vmin -1, vmax 1); the others [0, 1].
  const toUnit = sign === 'all' ? (v: number) => (v + 1) / 2 : (v: number) => v;
  let gmin = Infinity;
  let gmax = -Infinity;
  const gray = new Float64Array(orig === null ? 0 : h * w);
  if (orig !== null && method === 'blended_heat_map') {
    for (let p = 0; p < h * w; p++) {
      const g = (orig[p * 3] + orig[p * 3 + 1] + orig[p * 3 + 2]) / 3;
      gray[p] = g;
      if (g < gmin) gmin = g;
      if (g > gmax) gmax = g;
    }
  }
  for (let p = 0; p < h * w; p++) {
    const q = p * 4;
    const v = values[p];
    if (method === 'heat_map' || method === 'blended_heat_map') {
      const t = lutIndex(toUnit(v)) * 3;
      if (method === 'heat_map') {
        out[q] = table[t];
        out[q + 1] = table[t + 1];
        out[q + 2] = table[t + 2];
      } else {
        // matplotlib's imshow(gray) stretches min..max to the gray colormap (all 0 when flat).
        const g = gmax > gmin ? lutIndex((gray[p] - gmin) / (gmax - gmin)) : 0;
        for (let ch = 0; ch < 3; ch++) out[q + ch] = Math.round(alpha * table[t + ch] + (1 - alpha) * g);
      }
      out[q + 3] = 255;
    } else {
      const src = orig as Uint8ClampedArray;
      for (let ch = 0; ch < 3; ch++) out[q + ch] = method === 'masked_image' ? Math.trunc(src[p * 3 + ch] * v) : src[p * 3 + ch];
      out[q + 3] = method === 'alpha_scaling' ? Math.trunc(v * 255) : 255;
    }
  }
  return img;
}
