/**
 * SVG → RGBA, the same path in Node and browsers: resvg compiled to wasm (@resvg/resvg-wasm, no native
 * addon) with the bundled DejaVu Sans as its only font (wasm sees no system fonts), so a chart's
 * pixels do not depend on the machine. Lives at the SDK root so `./assets/` and `./wasm/` resolve
 * the same from the sources and from the bundle (dist/). Loaded on the first rasterization only.
 */
import { decode } from 'fast-png';
import { BackendError } from './errors.js';
import { readAsset } from './datasets.js';

/** The family every chart's text is drawn in (the one font resvg has). */
export const CHART_FONT = 'DejaVu Sans';

type ResvgModule = typeof import('@resvg/resvg-wasm');
interface Loaded { resvg: ResvgModule; font: Uint8Array }
let loading: Promise<Loaded> | undefined;

function load(): Promise<Loaded> {
  loading ??= (async () => {
    try {
      const [resvg, wasm, font] = await Promise.all([
        import('@resvg/resvg-wasm'),
        // Literal `new URL(..., import.meta.url)` so bundlers see and copy the assets.
        readAsset(new URL('./wasm/resvg_bg.wasm', import.meta.url), { maxBytes: 16 << 20 }),
        readAsset(new URL('./assets/DejaVuSans.ttf', import.meta.url), { maxBytes: 4 << 20 }),
      ]);
      await resvg.initWasm(wasm);
      return { resvg, font };
    } catch (e) {
      loading = undefined; // a later call may retry (e.g. after a network error)
      throw new BackendError(`rasterizing a chart could not load resvg-wasm and its font: ${(e as Error)?.message ?? e}`);
    }
  })();
  return loading;
}

/** The SVG document rendered at `scale` times its size: width, height and straight-alpha RGBA bytes. */
export async function rasterizeSVG(svg: string, scale: number): Promise<{ width: number; height: number; data: Uint8Array }> {
  const { resvg, font } = await load();
  let png: Uint8Array;
  try {
    const r = new resvg.Resvg(svg, {
      fitTo: { mode: 'zoom', value: scale },
      font: { fontBuffers: [font], defaultFontFamily: CHART_FONT, sansSerifFamily: CHART_FONT, serifFamily: CHART_FONT, monospaceFamily: CHART_FONT },
    });
    try {
      const img = r.render();
      try {
        png = img.asPng();
      } finally {
        img.free();
      }
    } finally {
      r.free();
    }
  } catch (e) {
    throw new BackendError(`rasterizing a chart failed: ${(e as Error)?.message ?? e}`);
  }
  // Through PNG: resvg's raw pixels are premultiplied; its PNG holds straight alpha, as VizImage does.
  const d = decode(png);
  if (d.depth !== 8 || d.channels !== 4) throw new BackendError(`rasterizing a chart gave a ${d.depth}-bit ${d.channels}-channel image, expected 8-bit RGBA`);
  return { width: d.width, height: d.height, data: d.data as Uint8Array };
}
