/**
 * The examples' charts, saved next to their reports: `eg.viz` charts written as `<path>.svg` and
 * `<path>.png` (the library's own rendering: vega → SVG, resvg-wasm with the bundled font → PNG).
 */
import { writeFile } from 'node:fs/promises';
import * as eg from 'edgegrad';

/** Writes `<path>.svg` and `<path>.png` (at `scale` times the chart's size, default 2) and returns both paths. */
export async function saveChart(chart: eg.viz.Chart, path: string, scale = 2): Promise<string[]> {
  await writeFile(`${path}.svg`, await chart.toSVG());
  await writeFile(`${path}.png`, await chart.toPNG(scale));
  return [`${path}.svg`, `${path}.png`];
}

export interface Series {
  name: string;
  values: number[];
}

/** A line chart of several series against the epoch (1, 2, ...); writes `<path>.svg` and `<path>.png`. */
export async function lineChart(path: string, title: string, yTitle: string, series: Series[]): Promise<string[]> {
  const xy = series.map((s) => ({ name: s.name, x: s.values.map((_, i) => i + 1), y: s.values }));
  return xyChart(path, title, 'epoch', yTitle, xy, { integerX: true, zeroY: false });
}

export type XYSeries = eg.viz.LineSeries;

/** A line chart of several (x, y) series with titled axes (`eg.viz.lineChart`); writes `<path>.svg` and `<path>.png`. */
export async function xyChart(path: string, title: string, xTitle: string, yTitle: string, series: XYSeries[],
  o: { integerX?: boolean; zeroY?: boolean } = {}): Promise<string[]> {
  return saveChart(eg.viz.lineChart({ series, title, xTitle, yTitle, ...o }), path);
}
