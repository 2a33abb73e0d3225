/**
 * The determinism digest on this engine with the threaded build (simd-threads) at 1–4 threads:
 * every run must give the committed digest (tests/engines/expected.json). Runs in the node,
 * chromium and firefox projects (browsers serve the tests cross-origin isolated); Bun and other
 * Node versions run the same program through tests/engines/run.ts. Prints its rows of the table.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../../sdk/index.js';
import { expectEachTestFreesItsTensors } from '../helpers.js';
import expected from './expected.json';
import { formatTable, runRows } from './program.js';
import { engineName, recordRows } from './record.js';

beforeAll(async () => {
  await eg.init({ threads: 4, backend: 'simd-threads' });
});

expectEachTestFreesItsTensors();

describe('determinism digest (simd-threads)', () => {
  it('is the committed digest at 1, 2, 3 and 4 threads', async () => {
    expect(eg.backendInfo()).toMatchObject({ build: 'simd-threads', maxThreads: 4 });
    const rows = await runRows(eg, engineName(), expected);
    console.log(`\n${formatTable(rows)}`);
    await recordRows(rows);
    expect(rows.map((r) => r.threads)).toEqual([1, 2, 3, 4]);
    for (const r of rows) {
      expect(r.mismatched, `${r.engine} ${r.build} ${r.threads} thread(s): parts off`).toEqual([]);
      expect(r.digest).toBe(expected.digest);
    }
  });
});
