/**
 * The determinism digest on this engine with the single-threaded build (simd, what a page that is
 * not cross-origin isolated gets): it must be the committed digest too. Its own file, so the engine
 * loads that build (one build per module instance). Prints its row of the table.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../../sdk/index.js';
import { expectEachTestFreesItsTensors } from '../helpers.js';
import expected from './expected.json';
import { formatTable, runRows } from './program.js';
import { engineName, recordRows } from './record.js';

beforeAll(async () => {
  await eg.init({ backend: 'simd' });
});

expectEachTestFreesItsTensors();

describe('determinism digest (simd)', () => {
  it('is the committed digest with the single-threaded build', async () => {
    expect(eg.backendInfo().build).toBe('simd');
    const rows = await runRows(eg, engineName(), expected);
    console.log(`\n${formatTable(rows)}`);
    await recordRows(rows);
    expect(rows).toHaveLength(1);
    expect(rows[0].mismatched).toEqual([]);
    expect(rows[0].digest).toBe(expected.digest);
  });
});
