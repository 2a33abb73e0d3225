/**
 * The one picture type of `eg.viz`: RGBA pixels with PNG encoding (both runtimes) and canvas drawing
 * (browsers). PNG bytes come from fast-png (pure JS, fflate's deflate), so the same pixels give the
 * same bytes in Node and Chromium.
 */
import { encode } from 'fast-png';
import { ArgumentError, BackendError } from '../errors.js';
import { checkInt, checkSize, describe, MAX_ELEMENTS } from '../args.js';

/** A 2D canvas context of either kind (only `putImageData` is used). */
type Context2D = CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D;
/** Where `VizImage.drawTo` can draw: a canvas (its 2D context is used) or a 2D context. */
export type DrawTarget = HTMLCanvasElement | OffscreenCanvas | Context2D;

/** An RGBA image: `data` holds `width * height * 4` bytes, row-major, straight (not premultiplied) alpha. */
export class VizImage {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** RGBA bytes, `width * height * 4`, row-major, straight alpha. */
  readonly data: Uint8ClampedArray;

  /** A `width x height` image over `data` (taken as is), or transparent black when `data` is absent. */
  constructor(width: number, height: number, data?: Uint8ClampedArray) {
    checkSize(width, 'VizImage width', 1);
    checkSize(height, 'VizImage height', 1);
    if (width * height * 4 > MAX_ELEMENTS) throw new ArgumentError(`a ${width}x${height} image is too large to build`);
    if (data !== undefined && (!(data instanceof Uint8ClampedArray) || data.length !== width * height * 4)) {
      throw new ArgumentError(`VizImage data must be a Uint8ClampedArray of ${width * height * 4} bytes (width*height*4), got ${describe(data)}${data instanceof Uint8ClampedArray ? ` of ${data.length}` : ''}`);
    }
    this.width = width;
    this.height = height;
    this.data = data ?? new Uint8ClampedArray(width * height * 4);
  }

  /** The RGBA bytes of pixel (x, y). */
  pixel(x: number, y: number): [number, number, number, number] {
    checkInt(x, 'pixel x', 0, this.width - 1);
    checkInt(y, 'pixel y', 0, this.height - 1);
    const o = (y * this.width + x) * 4;
    const d = this.data;
    return [d[o], d[o + 1], d[o + 2], d[o + 3]];
  }

  /** The image as PNG file bytes (8-bit RGBA). */
  toPNG(): Uint8Array {
    const bytes = new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.length);
    return encode({ width: this.width, height: this.height, data: bytes, channels: 4, depth: 8 });
  }

  /** Draws the image at (x, y) on a canvas or 2D context (browsers, or any runtime with `ImageData`). */
  drawTo(target: DrawTarget, x = 0, y = 0): void {
    checkInt(x, 'drawTo x');
    checkInt(y, 'drawTo y');
    if (typeof ImageData === 'undefined') {
      throw new BackendError('VizImage.drawTo needs a canvas runtime (a browser); use toPNG() for bytes elsewhere');
    }
    let ctx: Context2D | null = null;
    if (target !== null && typeof target === 'object' && 'putImageData' in target) ctx = target;
    else if (target !== null && typeof target === 'object' && 'getContext' in target) ctx = (target as HTMLCanvasElement).getContext('2d');
    else throw new ArgumentError(`drawTo needs a canvas or a 2D canvas context, got ${describe(target)}`);
    if (ctx === null) throw new ArgumentError('drawTo: the canvas has no 2D context (it already holds a WebGL or bitmap context)');
    // A copy: ImageData wants its own plain ArrayBuffer (ours may be a view).
    ctx.putImageData(new ImageData(new Uint8ClampedArray(this.data), this.width, this.height), x, y);
  }
}

/** Nearest-neighbour enlargement by an integer factor (tiny filters and feature maps stay crisp). */
export function upscale(img: VizImage, factor: number): VizImage {
  if (!(img instanceof VizImage)) throw new ArgumentError(`upscale needs a VizImage, got ${describe(img)}`);
  checkInt(factor, 'scale', 1, 64);
  if (factor === 1) return img;
  const w = img.width * factor;
  const out = new VizImage(w, img.height * factor);
  const src = new Uint32Array(img.data.buffer, img.data.byteOffset, img.width * img.height);
  const dst = new Uint32Array(out.data.buffer);
  for (let y = 0; y < out.height; y++) {
    const row = ((y / factor) | 0) * img.width;
    for (let x = 0; x < w; x++) dst[y * w + x] = src[row + ((x / factor) | 0)];
  }
  return out;
}
