/**
 * The determinism program in a plain page, for browsers no Vitest provider drives (WebKitGTK's
 * MiniBrowser through WebKitWebDriver; tests/e2e/demo.ts builds and opens it). `?build=simd` forces
 * the single-threaded build; otherwise the threaded one runs where the page is cross-origin isolated.
 * The rows land on `window.edgegradDigest` and in the page.
 */
import * as eg from '../../../sdk/index.js';
import expected from '../expected.json';
import { formatTable, runRows, type DigestRow } from '../program.js';
import { engineName } from '../record.js';

const w = window as unknown as { edgegradDigest: { rows: DigestRow[]; error: string | null; info: eg.BackendInfo | null } };
w.edgegradDigest = { rows: [], error: null, info: null };
try {
  const build = new URLSearchParams(location.search).get('build') === 'simd' ? 'simd' : 'auto';
  w.edgegradDigest.info = await eg.init({ backend: build, threads: 4 });
  w.edgegradDigest.rows = await runRows(eg, engineName(), expected);
  document.getElementById('out')!.textContent = formatTable(w.edgegradDigest.rows);
} catch (e) {
  w.edgegradDigest.error = String((e as Error)?.stack ?? e);
  document.getElementById('out')!.textContent = w.edgegradDigest.error;
}
document.body.dataset.state = 'done';
