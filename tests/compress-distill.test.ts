/**
 * Knowledge distillation: Hinton's loss against a direct computation, the distill trainer (teacher
 * untouched, student improves, augmentation hook, hints with learned regressors) and its errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as eg from '../sdk/index.js';
import { setup, vals } from './helpers.js';

const C = eg.compress;
const { nn } = eg;

beforeAll(async () => {
  await setup();
});

function softmax(v: number[]): number[] {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

describe('distillation loss', () => {
  it('is alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) · CE', () => {
    eg.tidy(() => {
      const s = Array.from(vals(12, 1, -2, 2));
      const t = Array.from(vals(12, 2, -3, 3));
      const labels = [1, 0, 2, 1];
      const T = 3;
      const alpha = 0.7;
      let kl = 0;
      let ce = 0;
      for (let i = 0; i < 4; i++) {
        const ps = softmax(s.slice(3 * i, 3 * i + 3).map((x) => x / T));
        const pt = softmax(t.slice(3 * i, 3 * i + 3).map((x) => x / T));
        for (let j = 0; j < 3; j++) kl += pt[j] * (Math.log(pt[j]) - Math.log(ps[j]));
        ce -= Math.log(softmax(s.slice(3 * i, 3 * i + 3))[labels[i]]);
      }
      const want = alpha * T * T * (kl / 4) + (1 - alpha) * (ce / 4);
      const st = eg.tensor(s, [4, 3]).requiresGrad_();
      const loss = C.distillationLoss(st, eg.tensor(t, [4, 3]), eg.tensor(labels, [4], 'int32'), { temperature: T, alpha });
      expect(loss.item()).toBeCloseTo(want, 4);
      loss.backward();
      expect(st.grad).not.toBeNull();
      const hard = C.distillationLoss(eg.tensor(s, [4, 3]), eg.tensor(t, [4, 3]), eg.tensor(labels, [4], 'int32'), { alpha: 0 });
      expect(hard.item()).toBeCloseTo(ce / 4, 4);
      expect(() => C.distillationLoss(st, eg.zeros([4, 2]), eg.tensor(labels, [4], 'int32'))).toThrow(eg.ShapeError);
      expect(() => C.distillationLoss(st, st, eg.tensor(labels, [4], 'int32'), { temperature: 0 })).toThrow(eg.ArgumentError);
    });
  });
});

describe('distill', () => {
  const data = () => eg.tidy(() => {
    const x = eg.rand([120, 6], -1, 1, { seed: 3 });
    const y = x.slice([0, 0], [120, 1]).add(x.slice([0, 1], [120, 2])).greater(0).cast('int32').reshape([120]);
    return [x, y];
  });

  it('trains the student from the teacher and leaves the teacher untouched', async () => {
    const [x, y] = data();
    const teacher = new nn.Sequential(new nn.Linear(6, 32, { seed: 1 }), new nn.ReLU(), new nn.Linear(32, 2, { seed: 2 }));
    const topt = new eg.optim.Adam(teacher.parameters(), { lr: 0.01 });
    teacher.compile({ optimizer: topt, loss: (l, t) => eg.losses.sparseCategoricalCrossEntropy(l, t, { fromLogits: true }) });
    await teacher.fit(x, y, { epochs: 15, batchSize: 16, verbose: 0 });
    teacher.train();
    const before = teacher.parameters().map((p) => Array.from(p.dataSync()));
    const student = new nn.Sequential(new nn.Linear(6, 4, { seed: 3 }), new nn.ReLU(), new nn.Linear(4, 2, { seed: 4 }));
    const start = C.evalAccuracy(student, x, y);
    let augmented = 0;
    const h = await C.distill(x, y, {
      teacher, student, epochs: 12, batchSize: 16, lr: 0.02, temperature: 2, alpha: 0.8, validationData: [x, y],
      augment: (xb) => {
        augmented++;
        return xb.add(0);
      },
    });
    expect(augmented).toBe(12 * 8);
    expect(h.history.loss[11]).toBeLessThan(h.history.loss[0]);
    expect(h.history.val_accuracy[11]).toBeGreaterThan(Math.max(start, 0.8));
    expect(teacher.training).toBe(true);
    teacher.parameters().forEach((p, i) => expect(Array.from(p.dataSync())).toEqual(before[i]));
    topt.dispose();
    teacher.dispose();
    student.dispose();
    eg.dispose([x, y]);
  }, 60_000);

  it('matches hint features through a learned regressor, and checks its inputs', async () => {
    const [x, y] = data();
    const teacher = new nn.Sequential(new nn.Linear(6, 16, { seed: 5 }), new nn.ReLU(), new nn.Linear(16, 2, { seed: 6 }));
    const student = new nn.Sequential(new nn.Linear(6, 4, { seed: 7 }), new nn.ReLU(), new nn.Linear(4, 2, { seed: 8 }));
    const before = eg.memory().numTensors;
    const h = await C.distill(x, y, { teacher, student, epochs: 3, batchSize: 32, hints: [{ teacherLayer: 1, studentLayer: 1, weight: 0.5 }] });
    expect(h.epoch).toEqual([0, 1, 2]);
    for (const p of student.parameters()) p.grad?.dispose();
    expect(eg.memory().numTensors).toBe(before); // regressors, optimizer state and teacher outputs freed
    await expect(C.distill(x, y, { teacher, student, hints: [{ teacherLayer: 1, studentLayer: 1 }], augment: (t) => t.add(0) })).rejects.toThrow(eg.ArgumentError);
    const conv = new nn.Sequential(new nn.Flatten());
    await expect(C.distill(x, y, { teacher, student: conv, hints: [{ teacherLayer: 1, studentLayer: 0 }] })).rejects.toThrow(eg.ShapeError);
    await expect(C.distill(x, eg.zeros([120]), { teacher, student })).rejects.toThrow(eg.ShapeError);
    await expect(C.distill(x, y, { teacher: new nn.ReLU(), student, hints: [{ teacherLayer: 0, studentLayer: 0 }] })).rejects.toThrow(/Sequential/);
    teacher.dispose();
    student.dispose();
    eg.dispose([x, y]);
  }, 60_000);
});
