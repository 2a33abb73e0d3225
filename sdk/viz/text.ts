/** Tokens highlighted by their attributions, as an HTML fragment (tokens are user text: escaped). */
import { ArgumentError } from '../errors.js';
import { checkOptions, describe } from '../args.js';
import { hexColor } from './colormap.js';
import { checkStrings, checkValues } from './chart.js';
import { readInput, type VizInput } from './common.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** HTML-escapes text for element content and quoted attributes. */
export function escapeHtml(s: string): string {
  if (typeof s !== 'string') throw new ArgumentError(`escapeHtml needs a string, got ${describe(s)}`);
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** Options of {@link textHighlight}. */
export interface TextHighlightOptions {
  /** Between tokens; default ' ' (use '' for subword tokens that carry their own spaces). */
  separator?: string;
  /** Append a color legend (negative, 0, positive); default true. */
  legend?: boolean;
}

/**
 * An HTML fragment showing each token on a background colored by its attribution through the
 * diverging colormap (pink negative, white zero, green positive), scaled by the largest |attribution|;
 * each token's exact value is in its `title`. `attributions`: one number per token (an array, or a
 * tensor / `{ data, shape }` of that many values).
 */
export function textHighlight(tokens: string[], attributions: ArrayLike<number> | VizInput, options?: TextHighlightOptions): string {
  const toks = checkStrings(tokens, 'textHighlight tokens');
  const o = checkOptions(options, 'textHighlight options');
  const sep = o.separator ?? ' ';
  if (typeof sep !== 'string') throw new ArgumentError(`textHighlight separator must be a string, got ${describe(sep)}`);
  if (o.legend !== undefined && typeof o.legend !== 'boolean') throw new ArgumentError(`textHighlight legend must be true or false, got ${describe(o.legend)}`);
  const raw = attributions !== null && typeof attributions === 'object' && 'shape' in attributions ? Array.from(readInput(attributions, 'attributions').data) : attributions;
  const values = checkValues(raw, 'textHighlight attributions', toks.length);
  let max = 0;
  for (const v of values) max = Math.max(max, Math.abs(v));
  const span = (text: string, color: string, title: string) => `<span style="background-color:${color};padding:0 2px;border-radius:2px" title="${escapeHtml(title)}">${escapeHtml(text)}</span>`;
  const body = toks.map((t, i) => span(t, hexColor('diverging', max > 0 ? (values[i] / max + 1) / 2 : 0.5), values[i].toPrecision(4))).join(escapeHtml(sep));
  let html = `<div class="eg-text-attribution" style="line-height:1.8">${body}</div>`;
  if (o.legend ?? true) {
    const m = max.toPrecision(3);
    html += `<div class="eg-text-legend" style="font-size:smaller">Legend: ${span(`-${m}`, hexColor('diverging', 0), 'negative')} ${span('0', hexColor('diverging', 0.5), 'neutral')} ${span(`+${m}`, hexColor('diverging', 1), 'positive')}</div>`;
  }
  return html;
}
