/**
 * Training curves as images: Vega-Lite specs rendered to SVG by Vega (pure JS), then to PNG by
 * resvg. Used by the examples' reports.
 */
import { writeFile } from 'node:fs/promises';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';

export interface Series {
  name: string;
  values: number[];
}

/** A line chart of several series against the epoch; writes `<path>.svg` and `<path>.png`. */
export async function lineChart(path: string, title: string, yTitle: string, series: Series[]): Promise<string[]> {
  const xy = series.map((s) => ({ name: s.name, x: s.values.map((_, i) => i + 1), y: s.values }));
  return xyChart(path, title, 'epoch', yTitle, xy, { integerX: true, zeroY: false });
}

export interface XYSeries {
  name: string;
  x: number[];
  y: number[];
}

/**
 * A line chart of several (x, y) series with titled axes; writes `<path>.svg` and `<path>.png`.
 * `integerX`: ticks at whole numbers only (epochs); `zeroY: false`: the y scale need not include 0.
 */
export async function xyChart(path: string, title: string, xTitle: string, yTitle: string, series: XYSeries[],
  o: { integerX?: boolean; zeroY?: boolean } = {}): Promise<string[]> {
  const rows = series.flatMap((s) => s.x.map((x, i) => ({ x, y: s.y[i], series: s.name })));
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 300,
    background: 'white',
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xTitle, ...(o.integerX ? { axis: { tickMinStep: 1 } } : {}) },
      y: { field: 'y', type: 'quantitative', title: yTitle, ...(o.zeroY === false ? { scale: { zero: false } } : {}) },
      color: { field: 'series', type: 'nominal', title: null },
    },
  };
  return render(path, spec);
}

/** Renders a Vega-Lite spec to `<path>.svg` (vega) and `<path>.png` (resvg, 1040 px wide). */
export async function render(path: string, spec: vl.TopLevelSpec): Promise<string[]> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'width', value: 1040 }, font: { loadSystemFonts: true } }).render().asPng();
  await writeFile(`${path}.svg`, svg);
  await writeFile(`${path}.png`, png);
  return [`${path}.svg`, `${path}.png`];
}
