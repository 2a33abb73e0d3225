/**
 * `eg.viz`: explanations as pictures, identical in Node and browsers. Pixel pictures (image
 * attributions, feature maps, filters, grids) are `VizImage`s (RGBA + `toPNG()` + `drawTo(canvas)`);
 * pictures with text (bar charts, labeled attention maps) are `Chart`s: a Vega-Lite spec rendered to
 * SVG by vega/vega-lite, and to a `VizImage` / PNG by resvg-wasm, each imported only when used.
 * Text attributions are HTML strings.
 */
export { VizImage, upscale } from './image.js';
export type { DrawTarget } from './image.js';
export { colormapTable, hexColor } from './colormap.js';
export type { ColormapName } from './colormap.js';
export type { ArrayData, VizInput } from './common.js';
export { normalizeAttribution, visualizeImageAttr } from './attribution.js';
export type { AttrMethod, AttrSign, ImageAttrOptions, NormalizeOptions, NormalizedAttribution } from './attribution.js';
export { grid, featureMaps, filters } from './grid.js';
export type { GridOptions, TileOptions } from './grid.js';
export { Chart, barChart, lineChart } from './chart.js';
export type { BarChartOptions, LineChartOptions, LineSeries, VegaLiteSpec } from './chart.js';
export { attentionRollout, attentionMap } from './attention.js';
export type { AttentionMapOptions } from './attention.js';
export { textHighlight, escapeHtml } from './text.js';
export type { TextHighlightOptions } from './text.js';
