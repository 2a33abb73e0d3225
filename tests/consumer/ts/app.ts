// Type-checks against the installed package's declarations (tsconfig.bundler.json and
// tsconfig.node16.json). The @ts-expect-error lines fail the check if the types decay to `any`.
import * as eg from 'edgegrad';
import { nn, optim, type Tensor } from 'edgegrad';

export async function main(): Promise<number[]> {
  await eg.init({ threads: 1 });
  const info: eg.BackendInfo = eg.backendInfo();
  const model: nn.Module = new nn.Sequential(new nn.Linear(4, 8), new nn.ReLU(), new nn.Linear(8, 2));
  const opt = new optim.Adam(model.parameters(), { lr: 1e-3 });
  const x: Tensor = eg.randn([3, 4], 0, 1, { seed: 1 });
  const out: Tensor = model.forward(x);
  const shape: number[] = out.shape;
  const data: Float32Array | Int32Array | Int8Array = out.dataSync();
  // @ts-expect-error a shape is an array of numbers
  eg.zeros('3');
  // @ts-expect-error init takes an options object
  await eg.init(4);
  // @ts-expect-error there is no such export
  eg.notAnExport();
  const err: eg.EdgegradError = new eg.ShapeError('x');
  opt.dispose();
  model.dispose();
  eg.dispose([x, out]);
  void info; void data; void err;
  return shape;
}
