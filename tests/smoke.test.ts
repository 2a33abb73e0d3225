import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';

beforeAll(async () => {
  await eg.init({ threads: 2 });
});

describe('smoke', () => {
  it('adds and multiplies', () => {
    const a = eg.tensor([[1, 2], [3, 4]]);
    const b = eg.tensor([10, 20]);
    expect(Array.from(a.add(b).dataSync())).toEqual([11, 22, 13, 24]);
    expect(Array.from(a.matmul(a).dataSync())).toEqual([7, 10, 15, 22]);
    console.log(JSON.stringify(eg.backendInfo()));
  });
});
