/** Forward hooks on any module and scoped activation capture (issue 14 §1). */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup } from './helpers.js';

const { nn, explain } = eg;

beforeAll(async () => {
  await setup();
});

function mlp(): eg.nn.Sequential {
  return new nn.Sequential(new nn.Linear(4, 6, { seed: 1 }), new nn.Tanh(), new nn.Linear(6, 3, { seed: 2 })).eval();
}

/** A custom module that calls its children itself (no Sequential in between). */
class TwoBranch extends nn.Module {
  constructor() {
    super();
    this.registerModule('left', new nn.Linear(4, 2, { seed: 3 }));
    this.registerModule('right', new nn.Linear(4, 2, { seed: 4 }));
  }
  forward(x: eg.Tensor): eg.Tensor {
    return this.getModule('left').forward(x).add(this.getModule('right').forward(x));
  }
}

describe('registerForwardHook', () => {
  it('calls hooks after forward, in registration order, with the module, its arguments and its output', () => {
    const m = mlp();
    const x = eg.tensor([[1, 2, 3, 4], [0, -1, 0.5, 2]]);
    const calls: string[] = [];
    const layer = m.getModule('1');
    let seenOutput: number[] = [];
    const h1 = layer.registerForwardHook((mod, inputs, out) => {
      calls.push('first');
      expect(mod).toBe(layer);
      expect(inputs).toHaveLength(1);
      expect((inputs[0] as eg.Tensor).shape).toEqual([2, 6]);
      seenOutput = Array.from(out.dataSync());
    });
    const h2 = layer.registerForwardHook(() => {
      calls.push('second');
    });
    const y = eg.tidy(() => eg.noGrad(() => m.forward(x)));
    expect(calls).toEqual(['first', 'second']);
    // The hook saw the Tanh output: recompute it by hand.
    const ref = eg.tidy(() => m.getModule('0').forward(x).tanh().dataSync());
    expect(seenOutput).toEqual(Array.from(ref));
    h1.remove();
    h2.remove();
    eg.dispose([x, y]);
    m.dispose();
  });

  it('a hook returning a Tensor replaces the output (later hooks and the caller see it)', () => {
    const m = mlp();
    const x = eg.ones([1, 4]);
    const h = m.getModule('2').registerForwardHook((_m, _i, out) => out.mul(0).add(7));
    let seen = 0;
    const h2 = m.getModule('2').registerForwardHook((_m, _i, out) => {
      seen = out.dataSync()[0];
    });
    const y = eg.tidy(() => m.forward(x));
    expect(Array.from(y.dataSync())).toEqual([7, 7, 7]);
    expect(seen).toBe(7);
    h.remove();
    h2.remove();
    const z = eg.tidy(() => m.forward(x));
    expect(Array.from(z.dataSync())).not.toEqual([7, 7, 7]);
    eg.dispose([x, y, z]);
    m.dispose();
  });

  it('remove() unregisters (idempotently) and leaves no wrapper once the last hook is gone', () => {
    const m = mlp();
    const layer = m.getModule('0');
    const x = eg.ones([2, 4]);
    let a = 0;
    let b = 0;
    const ha = layer.registerForwardHook(() => void a++);
    const hb = layer.registerForwardHook(() => void b++);
    expect(Object.hasOwn(layer, 'forward')).toBe(true);
    eg.tidy(() => m.forward(x));
    ha.remove();
    ha.remove();
    expect(layer.numForwardHooks).toBe(1);
    eg.tidy(() => m.forward(x));
    expect([a, b]).toEqual([1, 2]);
    hb.remove();
    expect(layer.numForwardHooks).toBe(0);
    // Without hooks the instance has no forward of its own: calls go straight to the class's.
    expect(Object.hasOwn(layer, 'forward')).toBe(false);
    eg.tidy(() => m.forward(x));
    expect([a, b]).toEqual([1, 2]);
    // The same function registered twice runs twice; removing one registration keeps the other.
    let c = 0;
    const f = () => void c++;
    const r1 = layer.registerForwardHook(f);
    const r2 = layer.registerForwardHook(f);
    eg.tidy(() => m.forward(x));
    r1.remove();
    eg.tidy(() => m.forward(x));
    r2.remove();
    expect(c).toBe(3);
    x.dispose();
    m.dispose();
  });

  it('a hook may remove itself during forward', () => {
    const m = mlp();
    const x = eg.ones([1, 4]);
    let n = 0;
    const h = m.getModule('0').registerForwardHook(() => {
      n++;
      h.remove();
    });
    eg.tidy(() => m.forward(x));
    eg.tidy(() => m.forward(x));
    expect(n).toBe(1);
    x.dispose();
    m.dispose();
  });

  it('works in custom modules, Graph models and nested CNNs', () => {
    const x = eg.randn([2, 4], 0, 1, { seed: 5 });
    const custom = new TwoBranch();
    const names: string[] = [];
    const hs = ['left', 'right'].map((n) => custom.getModule(n).registerForwardHook(() => void names.push(n)));
    eg.tidy(() => custom.forward(x));
    expect(names).toEqual(['left', 'right']);
    hs.forEach((h) => h.remove());

    const g = nn.graph;
    const inp = g.input('x');
    const hidden = g.call(new nn.Linear(4, 5, { seed: 6 }), inp, 'hidden');
    const graph = new nn.Graph({ inputs: inp, outputs: hidden.pipe(new nn.ReLU()).pipe(new nn.Linear(5, 2, { seed: 7 }), 'head') });
    let shape: number[] = [];
    const hg = graph.getModule('hidden').registerForwardHook((_m, _i, out) => void (shape = out.shape));
    eg.tidy(() => graph.forward(x));
    expect(shape).toEqual([2, 5]);
    hg.remove();

    const net = nn.resnet({ depth: 10, width: 4, inChannels: 1, numClasses: 3, seed: 1 }).eval();
    const img = eg.randn([1, 8, 8, 1], 0, 1, { seed: 8 });
    const { result, activations } = explain.captureActivations(net, ['conv1', 'layer1.0.conv1', 'fc'], () => eg.noGrad(() => net.forward(img)));
    expect(activations.get('conv1')!.shape).toEqual([1, 8, 8, 4]);
    expect(activations.get('layer1.0.conv1')!.shape).toEqual([1, 8, 8, 4]);
    expect(Array.from(activations.get('fc')!.dataSync())).toEqual(Array.from(result.dataSync()));
    eg.dispose([x, img, result, activations]);
    custom.dispose();
    graph.dispose();
    net.dispose();
  });

  it('refuses a non-function hook and a hook that returns something other than a Tensor', () => {
    const m = mlp();
    expect(() => m.registerForwardHook(42 as never)).toThrow(eg.ArgumentError);
    const h = m.getModule('0').registerForwardHook(() => 'oops' as never);
    const x = eg.ones([1, 4]);
    expect(() => eg.tidy(() => m.forward(x))).toThrow(/forward hook of Linear returned "oops"/);
    h.remove();
    // The model keeps working.
    expect(eg.tidy(() => m.forward(x)).shape).toEqual([1, 3]);
    x.dispose();
    m.dispose();
  });
});

describe('captureActivations', () => {
  it('captures the named modules by state-dict path; the tensors outlive tidy and Sequential\'s freeing, and belong to the caller', () => {
    const m = mlp();
    const x = eg.tensor([[1, 2, 3, 4]]);
    const before = eg.memory().numTensors;
    // Under noGrad, Sequential frees each intermediate as soon as the next layer used it: the
    // captured activations must survive that and the surrounding tidy.
    const { result, activations } = eg.tidy(() => explain.captureActivations(m, ['0', '1'], () => eg.noGrad(() => m.forward(x))));
    expect([...activations.keys()]).toEqual(['0', '1']);
    const lin = eg.tidy(() => m.getModule('0').forward(x).dataSync());
    expect(Array.from(activations.get('0')!.dataSync())).toEqual(Array.from(lin));
    expect(Array.from(activations.get('1')!.dataSync())).toEqual(Array.from(lin.map((v) => Math.fround(eg.tidy(() => eg.scalar(v).tanh().item())))));
    expect(activations.get('0')!.requiresGrad).toBe(false);
    expect(m.getModule('0').numForwardHooks + m.getModule('1').numForwardHooks).toBe(0);
    result.dispose();
    eg.dispose(activations);
    expect(eg.memory().numTensors).toBe(before);
    x.dispose();
    m.dispose();
  });

  it('keeps the last output of a module that runs twice', () => {
    const shared = new nn.Linear(3, 3, { seed: 9 });
    const m = new nn.Sequential(shared);
    const a = eg.ones([1, 3]);
    const b = eg.zeros([1, 3]);
    const before = eg.memory().numTensors;
    const { result, activations } = explain.captureActivations(m, ['0'], () => eg.tidy(() => {
      m.forward(a);
      return m.forward(b);
    }));
    expect(Array.from(activations.get('0')!.dataSync())).toEqual(Array.from(result.dataSync()));
    eg.dispose([result, activations]);
    expect(eg.memory().numTensors).toBe(before);
    eg.dispose([a, b]);
    m.dispose();
  });

  it('removes its hooks and frees what it captured when the function throws', () => {
    const m = mlp();
    const x = eg.ones([1, 4]);
    const before = eg.memory().numTensors;
    expect(() => explain.captureActivations(m, ['0', '2'], () => {
      eg.tidy(() => void m.forward(x));
      throw new Error('boom');
    })).toThrow('boom');
    expect(eg.memory().numTensors).toBe(before);
    for (const [, mod] of m.namedModules()) expect(mod.numForwardHooks).toBe(0);
    x.dispose();
    m.dispose();
  });

  it('unknown names are an ArgumentError naming the close matches; modules that did not run are refused', () => {
    const net = nn.resnet({ depth: 10, width: 4, inChannels: 1, numClasses: 3, seed: 1 });
    const run = (names: string[]) => () => explain.captureActivations(net, names, () => 0);
    expect(run(['layer1.0.conv'])).toThrow(eg.ArgumentError);
    expect(run(['layer1.0.conv'])).toThrow(/no module 'layer1\.0\.conv'; did you mean 'layer1\.0\.conv1', 'layer1\.0\.conv2'/);
    expect(run(['bn'])).toThrow(/did you mean 'bn1'/);
    expect(run(['zzzzzzzzzzzzzz'])).toThrow(/modules: conv1, bn1/);
    expect(() => explain.captureActivations(net, 'conv1' as never, () => 0)).toThrow(eg.ArgumentError);
    expect(() => explain.captureActivations({} as never, ['a'], () => 0)).toThrow(eg.ArgumentError);
    expect(() => explain.captureActivations(net, ['conv1'], async () => 0)).toThrow(/async/);
    const x = eg.ones([1, 4]);
    const m = mlp();
    const before = eg.memory().numTensors;
    expect(() => explain.captureActivations(m, ['0', '2'], () => eg.tidy(() => void m.getModule('0').forward(x)))).toThrow(/'2' did not run/);
    expect(eg.memory().numTensors).toBe(before);
    for (const [, mod] of net.namedModules()) expect(mod.numForwardHooks).toBe(0);
    x.dispose();
    m.dispose();
    net.dispose();
  });
});
