#!/usr/bin/env python3
"""Writes tests/fixtures/torch-parity.json: PyTorch reference values for every loss (each reduction and
option), optimizer (several steps), learning-rate schedule, clamp and AvgPool2d, for
tests/parity-torch.test.ts.

Run once by hand where PyTorch is installed (CI never installs it; the JSON is committed):

    python3 scripts/torch-parity-fixtures.py            # writes tests/fixtures/torch-parity.json

Every input is a float32 value (stored exactly in the JSON); the references are computed by PyTorch in
float64 from those values, so they are the exact answers our float32 results are compared with.
Each case names the edgegrad call (`fn` and `opts`, our option names) next to the PyTorch call it is
checked against (`torch`), so the mapping of names and conventions is explicit.
Layouts: edgegrad is channels-last (class axis last, pooling NHWC); PyTorch puts classes / channels on
axis 1, so the script permutes before calling PyTorch and permutes results back.
"""
import json
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
# kl_div warns that 'mean' is not the true KL divergence: that is the convention under test
warnings.filterwarnings('ignore')
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures', 'torch-parity.json')

rs = np.random.RandomState(20261206)


def f32(a):
    """float32-representable values as a float64 array."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def uniform(shape, lo=-1.0, hi=1.0):
    return f32(rs.uniform(lo, hi, size=shape))


def enc(a):
    """{shape, data} with full float64 precision (shortest round-trip repr)."""
    a = np.asarray(a, dtype=np.float64)
    return {'shape': list(a.shape), 'data': [float(v) for v in a.reshape(-1)]}


inputs = {}


def inp(name, arr, dtype='float32'):
    arr = np.asarray(arr)
    inputs[name] = {'shape': list(arr.shape), 'dtype': dtype, 'data': [int(v) if dtype == 'int32' else float(v) for v in arr.reshape(-1)]}
    return arr


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def softmax_np(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------- inputs
N, C = 4, 5
inp('x', uniform((N, C), -2, 2))               # regression predictions / logits
inp('y', uniform((N, C), -2, 2))               # regression targets
inp('x3', uniform((2, 3, C), -2, 2))           # rank-3 predictions / logits (class axis last)
inp('y3', uniform((2, 3, C), -2, 2))
inp('xbig', f32(uniform((N, C), -2, 2) * 3))   # beyond the Huber delta
inp('p', f32(1 / (1 + np.exp(-uniform((N, C), -3, 3)))))          # probabilities in (0, 1)
inp('psat', f32([[0.0, 1.0, 1e-30, 1 - 2**-24, 0.5], [1e-44, 0.25, 1.0, 0.0, 0.75]]))  # saturated
inp('bin', f32(rs.rand(N, C) > 0.5))           # binary targets
inp('binsat', f32([[0, 1, 1, 1, 0], [1, 0, 0, 1, 1]]))
inp('soft', f32(rs.uniform(0, 1, (N, C))))      # soft binary targets in [0, 1]
inp('probs', f32(softmax_np(uniform((N, C), -2, 2))))    # class probabilities
inp('tprobs', f32(softmax_np(uniform((N, C), -2, 2))))   # soft class targets
inp('tprobs3', f32(softmax_np(uniform((2, 3, C), -2, 2))))
labels = rs.randint(0, C, size=N)
inp('labels', labels, 'int32')
inp('onehot', np.eye(C)[labels])
labels3 = rs.randint(0, C, size=(2, 3))
inp('labels3', labels3, 'int32')
inp('cw', f32([0.5, 2.0, 1.0, 0.25, 3.0]))
labels_ign = labels.copy()
labels_ign[1] = -100                            # PyTorch's default ignore_index
inp('labelsign', labels_ign, 'int32')
IGN3 = int(labels3[0, 0])                       # ignoring a real class index
inp('pw', f32([0.5, 1.0, 2.0, 3.0, 0.25]))      # per-class pos_weight
tprobs_zero = f32(softmax_np(uniform((N, C), -2, 2)))
tprobs_zero[0, 1] = 0.0
tprobs_zero[2, 4] = 0.0
inp('tprobs0', tprobs_zero)                     # targets with exact zeros (KL: 0·log 0 = 0)


def val(name):
    d = inputs[name]
    return np.asarray(d['data'], dtype=np.float64 if d['dtype'] == 'float32' else np.int64).reshape(d['shape'])


def cotangent(shape):
    """A fixed upstream gradient for non-scalar outputs (scalar outputs get 1)."""
    if len(shape) == 0:
        return np.float64(1.0)
    return f32(np.linspace(-1.0, 1.5, int(np.prod(shape))).reshape(shape))


# ---------------------------------------------------------------- losses
losses = []


def class_last_to_torch(t):
    """[..., C] -> [N, C, ...] (PyTorch's class axis 1)."""
    return t if t.dim() <= 2 else t.movedim(-1, 1)


def class_torch_to_last(t):
    return t if t.dim() <= 2 else t.movedim(1, -1)


def loss_case(fn, opts, pred, target, torch_call, compute):
    """compute(pred64) -> loss tensor in edgegrad's layout; records forward and d(loss·cot)/d(pred)."""
    x = t64(val(pred), grad=True)
    out = compute(x)
    cot = cotangent(list(out.shape))
    (out * t64(cot)).sum().backward()
    losses.append({'fn': fn, 'opts': opts, 'pred': pred, 'target': target, 'torch': torch_call,
                   'out': enc(out.detach().numpy()), 'cotangent': enc(cot), 'grad': enc(x.grad.numpy())})


def ce_logp(logp, target, weight=None, label_smoothing=0.0, reduction='mean'):
    """torch.nn.functional.cross_entropy *after* its log_softmax, for log-probabilities in edgegrad's
    layout (class axis last). Used for the probability forms (`fromLogits: false`), which take the log
    of the given probabilities directly; checked against F.cross_entropy on logits below."""
    lp = class_last_to_torch(logp)
    tg = target if target.dtype == torch.int64 else class_last_to_torch(target)
    Cn = lp.shape[1]
    wshape = [1, Cn] + [1] * (lp.dim() - 2)
    w = weight.reshape(wshape) if weight is not None else None
    if tg.dtype == torch.int64:
        nll = F.nll_loss(lp, tg, weight=weight, reduction=reduction)
        if label_smoothing == 0:
            return nll
        smooth = -(lp * w).sum(1) if w is not None else -lp.sum(1)
        if reduction == 'mean':
            smooth = smooth.sum() / (weight[tg].sum() if weight is not None else smooth.numel())
        elif reduction == 'sum':
            smooth = smooth.sum()
        return (1 - label_smoothing) * nll + smooth * (label_smoothing / Cn)
    tgs = tg * (1 - label_smoothing) + label_smoothing / Cn
    per = -(lp * tgs * (w if w is not None else 1)).sum(1)
    return {'mean': per.mean, 'sum': per.sum, 'none': lambda: class_torch_to_last(per) if per.dim() > 1 else per}[reduction]()


def ce_logits(x, target, **kw):
    out = F.cross_entropy(class_last_to_torch(x), target if target.dtype == torch.int64 else class_last_to_torch(target), **kw)
    return out


# self-check: ce_logp(log_softmax(x)) is exactly PyTorch's cross_entropy(x) for every option used below
for tgt in ['labels', 'onehot', 'tprobs']:
    for w in [None, val('cw')]:
        for ls in [0.0, 0.2]:
            for red in ['mean', 'sum', 'none']:
                xx = t64(val('x'))
                tt = torch.tensor(val(tgt)) if tgt == 'labels' else t64(val(tgt))
                ww = t64(w) if w is not None else None
                a = ce_logits(xx, tt, weight=ww, label_smoothing=ls, reduction=red)
                b = ce_logp(torch.log_softmax(xx, -1), tt, weight=ww, label_smoothing=ls, reduction=red)
                assert torch.allclose(a, b, rtol=1e-13, atol=1e-13), (tgt, w, ls, red, a, b)

REDS = ['mean', 'sum', 'none']
for red in REDS:
    loss_case('mse', {'reduction': red}, 'x', 'y', f"F.mse_loss(x, y, reduction='{red}')",
              lambda x: F.mse_loss(x, t64(val('y')), reduction=red))
    loss_case('mae', {'reduction': red}, 'x', 'y', f"F.l1_loss(x, y, reduction='{red}')",
              lambda x: F.l1_loss(x, t64(val('y')), reduction=red))
    for delta in [1.0, 0.5]:
        loss_case('huber', {'reduction': red, 'delta': delta}, 'xbig', 'y', f"F.huber_loss(x, y, reduction='{red}', delta={delta})",
                  lambda x: F.huber_loss(x, t64(val('y')), reduction=red, delta=delta))
    # mse on rank 3: 'mean' over every element, 'none' elementwise
    loss_case('mse', {'reduction': red}, 'x3', 'y3', f"F.mse_loss(x, y, reduction='{red}')",
              lambda x: F.mse_loss(x, t64(val('y3')), reduction=red))

    # binary cross-entropy
    for tgt in ['bin', 'soft']:
        loss_case('binaryCrossEntropy', {'reduction': red}, 'p', tgt, f"F.binary_cross_entropy(p, y, reduction='{red}')",
                  lambda x: F.binary_cross_entropy(x, t64(val(tgt)), reduction=red))
        loss_case('binaryCrossEntropy', {'reduction': red, 'fromLogits': True}, 'x', tgt,
                  f"F.binary_cross_entropy_with_logits(x, y, reduction='{red}')",
                  lambda x: F.binary_cross_entropy_with_logits(x, t64(val(tgt)), reduction=red))
        loss_case('binaryCrossEntropy', {'reduction': red, 'fromLogits': True, 'posWeight': 'pw'}, 'x', tgt,
                  f"F.binary_cross_entropy_with_logits(x, y, reduction='{red}', pos_weight=pw)",
                  lambda x: F.binary_cross_entropy_with_logits(x, t64(val(tgt)), reduction=red, pos_weight=t64(val('pw'))))
        loss_case('binaryCrossEntropy', {'reduction': red, 'fromLogits': True, 'posWeight': 2.5}, 'x', tgt,
                  f"F.binary_cross_entropy_with_logits(x, y, reduction='{red}', pos_weight=tensor([2.5]))",
                  lambda x: F.binary_cross_entropy_with_logits(x, t64(val(tgt)), reduction=red, pos_weight=t64([2.5])))

        # BCELoss has no pos_weight: the probability form with posWeight is the same formula as
        # BCEWithLogitsLoss's, with log p clamped at -100 as BCELoss does.
        def bce_pw(x, tgt=tgt):
            y = t64(val(tgt))
            lp = torch.clamp(torch.log(x), min=-100)
            l1p = torch.clamp(torch.log(1 - x), min=-100)
            loss = -(2.5 * y * lp + (1 - y) * l1p)
            return {'mean': loss.mean, 'sum': loss.sum, 'none': lambda: loss}[red]()
        loss_case('binaryCrossEntropy', {'reduction': red, 'posWeight': 2.5}, 'p', tgt,
                  f"-(2.5·y·clamp(log p, min=-100) + (1-y)·clamp(log(1-p), min=-100)), reduction='{red}'", bce_pw)

    # categorical cross-entropy: one-hot and soft targets, logits and probabilities
    for tgt in ['onehot', 'tprobs']:
        for o in [{}, {'labelSmoothing': 0.2}, {'classWeights': 'cw'}, {'classWeights': 'cw', 'labelSmoothing': 0.2}]:
            w = t64(val('cw')) if 'classWeights' in o else None
            ls = o.get('labelSmoothing', 0.0)
            desc = f"weight=cw, " if w is not None else ''
            loss_case('categoricalCrossEntropy', {'reduction': red, 'fromLogits': True, **o}, 'x', tgt,
                      f"F.cross_entropy(x, y_probs, {desc}label_smoothing={ls}, reduction='{red}')",
                      lambda x: ce_logits(x, t64(val(tgt)), weight=w, label_smoothing=ls, reduction=red))
            loss_case('categoricalCrossEntropy', {'reduction': red, **o}, 'probs', tgt,
                      f"F.cross_entropy after log_softmax, on log(p): {desc}label_smoothing={ls}, reduction='{red}'",
                      lambda x: ce_logp(torch.log(x), t64(val(tgt)), weight=w, label_smoothing=ls, reduction=red))
    loss_case('categoricalCrossEntropy', {'reduction': red, 'fromLogits': True, 'classWeights': 'cw'}, 'x3', 'tprobs3',
              f"F.cross_entropy(x.movedim(-1, 1), y.movedim(-1, 1), weight=cw, reduction='{red}')",
              lambda x: ce_logits(x, t64(val('tprobs3')), weight=t64(val('cw')), reduction=red) if red != 'none'
              else class_torch_to_last(ce_logits(x, t64(val('tprobs3')), weight=t64(val('cw')), reduction=red)))

    # sparse categorical cross-entropy (class indices)
    for o in [{}, {'labelSmoothing': 0.2}, {'classWeights': 'cw'}, {'classWeights': 'cw', 'labelSmoothing': 0.2}]:
        w = t64(val('cw')) if 'classWeights' in o else None
        ls = o.get('labelSmoothing', 0.0)
        desc = f"weight=cw, " if w is not None else ''
        lab = torch.tensor(val('labels'))
        loss_case('sparseCategoricalCrossEntropy', {'reduction': red, 'fromLogits': True, **o}, 'x', 'labels',
                  f"F.cross_entropy(x, labels, {desc}label_smoothing={ls}, reduction='{red}')",
                  lambda x: ce_logits(x, lab, weight=w, label_smoothing=ls, reduction=red))
        loss_case('sparseCategoricalCrossEntropy', {'reduction': red, **o}, 'probs', 'labels',
                  f"F.cross_entropy after log_softmax, on log(p): labels, {desc}label_smoothing={ls}, reduction='{red}'",
                  lambda x: ce_logp(torch.log(x), lab, weight=w, label_smoothing=ls, reduction=red))
        labi = torch.tensor(val('labelsign'))
        loss_case('sparseCategoricalCrossEntropy', {'reduction': red, 'fromLogits': True, 'ignoreIndex': -100, **o}, 'x', 'labelsign',
                  f"F.cross_entropy(x, labels, {desc}ignore_index=-100, label_smoothing={ls}, reduction='{red}')",
                  lambda x: ce_logits(x, labi, weight=w, label_smoothing=ls, reduction=red, ignore_index=-100))
        lab3 = torch.tensor(val('labels3'))
        loss_case('sparseCategoricalCrossEntropy', {'reduction': red, 'fromLogits': True, 'ignoreIndex': IGN3, **o}, 'x3', 'labels3',
                  f"F.cross_entropy(x.movedim(-1, 1), labels3, {desc}ignore_index={IGN3}, label_smoothing={ls}, reduction='{red}')",
                  lambda x: ce_logits(x, lab3, weight=w, label_smoothing=ls, reduction=red, ignore_index=IGN3))
        loss_case('sparseCategoricalCrossEntropy', {'reduction': red, 'fromLogits': True, **o}, 'x3', 'labels3',
                  f"F.cross_entropy(x.movedim(-1, 1), labels3, {desc}label_smoothing={ls}, reduction='{red}')",
                  lambda x: ce_logits(x, lab3, weight=w, label_smoothing=ls, reduction=red))

# KL divergence: ours takes predictions as probabilities (log-probabilities with logInput) and targets
# as probabilities (log-probabilities with logTarget); PyTorch's kl_div always takes log-probabilities.
for red in REDS + ['batchmean']:
    for tgt in ['tprobs', 'tprobs0']:
        loss_case('klDivergence', {'reduction': red}, 'probs', tgt, f"F.kl_div(log(p), y, reduction='{red}')",
                  lambda x: F.kl_div(torch.log(x), t64(val(tgt)), reduction=red))
        loss_case('klDivergence', {'reduction': red, 'logInput': True}, 'x', tgt, f"F.kl_div(x, y, reduction='{red}')",
                  lambda x: F.kl_div(x, t64(val(tgt)), reduction=red))
    loss_case('klDivergence', {'reduction': red, 'logInput': True, 'logTarget': True}, 'x', 'y',
              f"F.kl_div(x, y, reduction='{red}', log_target=True)",
              lambda x: F.kl_div(x, t64(val('y')), reduction=red, log_target=True))

# saturated probabilities: BCELoss clamps each log at -100 (forward only: at p = 0 or 1 PyTorch's
# backward divides by max(p(1-p), 1e-12), which is not the derivative of its forward)
for red in REDS:
    y = t64(val('binsat'))
    out = F.binary_cross_entropy(t64(val('psat')), y, reduction=red)
    losses.append({'fn': 'binaryCrossEntropy', 'opts': {'reduction': red}, 'pred': 'psat', 'target': 'binsat',
                   'torch': f"F.binary_cross_entropy(p, y, reduction='{red}') (forward only)", 'out': enc(out.numpy())})

# ---------------------------------------------------------------- optimizers
P0 = uniform((3, 4), -1, 1)
GRADS = [uniform((3, 4), -1, 1) for _ in range(5)]
inputs['p0'] = {'shape': [3, 4], 'dtype': 'float32', 'data': [float(v) for v in P0.reshape(-1)]}
for i, g in enumerate(GRADS):
    inputs[f'g{i}'] = {'shape': [3, 4], 'dtype': 'float32', 'data': [float(v) for v in g.reshape(-1)]}

# nearly constant gradients: centered RMSProp's variance sq - grad_avg² is then a small difference
HGRADS = [f32(GRADS[0] + 1e-3 * uniform((3, 4), -1, 1)) for _ in range(5)]
for i, g in enumerate(HGRADS):
    inputs[f'h{i}'] = {'shape': [3, 4], 'dtype': 'float32', 'data': [float(v) for v in g.reshape(-1)]}

optims = []


def optim_case(cls, opts, make, grads='g'):
    p = torch.tensor(P0.copy(), requires_grad=True)
    opt = make([p])
    traj = []
    for g in (GRADS if grads == 'g' else HGRADS):
        p.grad = torch.tensor(g)
        opt.step()
        traj.append(p.detach().numpy().copy())
    case = {'cls': cls, 'opts': opts, 'torch': make.__doc__, 'grads': grads, 'steps': len(GRADS), 'params': enc(np.stack(traj))}
    if grads != 'g':
        # ill-conditioned cases also carry PyTorch's own float32 trajectory (its rounding error, for scale)
        p32 = torch.tensor(P0.copy(), dtype=torch.float32, requires_grad=True)
        opt32 = make([p32])
        traj32 = []
        for g in HGRADS:
            p32.grad = torch.tensor(g, dtype=torch.float32)
            opt32.step()
            traj32.append(p32.detach().double().numpy().copy())
        case['params32'] = enc(np.stack(traj32))
    optims.append(case)


def O(doc, f):
    f.__doc__ = doc
    return f


for o, kw in [({'lr': 0.1}, {}), ({'lr': 0.1, 'momentum': 0.9}, {'momentum': 0.9}),
              ({'lr': 0.1, 'momentum': 0.9, 'dampening': 0.5}, {'momentum': 0.9, 'dampening': 0.5}),
              ({'lr': 0.1, 'momentum': 0.9, 'nesterov': True}, {'momentum': 0.9, 'nesterov': True}),
              ({'lr': 0.1, 'weightDecay': 0.05}, {'weight_decay': 0.05}),
              ({'lr': 0.05, 'momentum': 0.8, 'dampening': 0.1, 'weightDecay': 0.02}, {'momentum': 0.8, 'dampening': 0.1, 'weight_decay': 0.02}),
              ({'lr': 0.05, 'momentum': 0.8, 'nesterov': True, 'weightDecay': 0.02}, {'momentum': 0.8, 'nesterov': True, 'weight_decay': 0.02})]:
    optim_case('SGD', o, O(f"torch.optim.SGD(params, lr={o['lr']}, **{kw})", lambda ps, o=o, kw=kw: torch.optim.SGD(ps, lr=o['lr'], **kw)))
for cls, tcls in [('Adam', torch.optim.Adam), ('AdamW', torch.optim.AdamW)]:
    for o, kw in [({'lr': 0.01}, {}), ({'lr': 0.01, 'beta1': 0.8, 'beta2': 0.99, 'eps': 1e-6}, {'betas': (0.8, 0.99), 'eps': 1e-6}),
                  ({'lr': 0.01, 'weightDecay': 0.1}, {'weight_decay': 0.1})]:
        if cls == 'AdamW' and 'weight_decay' not in kw:
            kw = {**kw, 'weight_decay': 0.01}  # both default to 0.01
        optim_case(cls, o, O(f"torch.optim.{cls}(params, lr={o['lr']}, **{kw})", lambda ps, o=o, kw=kw, tcls=tcls: tcls(ps, lr=o['lr'], **kw)))
for o, kw in [({'lr': 0.01}, {}), ({'lr': 0.01, 'alpha': 0.9, 'eps': 1e-6}, {'alpha': 0.9, 'eps': 1e-6}),
              ({'lr': 0.01, 'momentum': 0.9}, {'momentum': 0.9}), ({'lr': 0.01, 'centered': True}, {'centered': True}),
              ({'lr': 0.01, 'alpha': 0.9, 'momentum': 0.5, 'centered': True}, {'alpha': 0.9, 'momentum': 0.5, 'centered': True}),
              ({'lr': 0.01, 'momentum': 0.9, 'centered': True, 'weightDecay': 0.1}, {'momentum': 0.9, 'centered': True, 'weight_decay': 0.1})]:
    optim_case('RMSProp', o, O(f"torch.optim.RMSprop(params, lr={o['lr']}, **{kw})", lambda ps, o=o, kw=kw: torch.optim.RMSprop(ps, lr=o['lr'], **kw)))
for o, kw in [({'lr': 0.01, 'alpha': 0.9, 'momentum': 0.9, 'centered': True}, {'alpha': 0.9, 'momentum': 0.9, 'centered': True}),
              ({'lr': 0.01, 'alpha': 0.3, 'momentum': 0.9, 'centered': True}, {'alpha': 0.3, 'momentum': 0.9, 'centered': True})]:
    optim_case('RMSProp', o, O(f"torch.optim.RMSprop(params, lr={o['lr']}, **{kw}), nearly constant gradients",
                               lambda ps, o=o, kw=kw: torch.optim.RMSprop(ps, lr=o['lr'], **kw)), grads='h')
for o, kw in [({'lr': 0.1}, {}), ({'lr': 0.1, 'lrDecay': 0.1}, {'lr_decay': 0.1}),
              ({'lr': 0.1, 'initialAccumulatorValue': 0.5, 'eps': 1e-6}, {'initial_accumulator_value': 0.5, 'eps': 1e-6}),
              ({'lr': 0.1, 'weightDecay': 0.1}, {'weight_decay': 0.1})]:
    optim_case('Adagrad', o, O(f"torch.optim.Adagrad(params, lr={o['lr']}, **{kw})", lambda ps, o=o, kw=kw: torch.optim.Adagrad(ps, lr=o['lr'], **kw)))

# ---------------------------------------------------------------- learning-rate schedules
scheds = []
BASE = 0.1


def sched_case(name, args, make, steps, doc):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE)
    s = make(opt)
    lrs = [opt.param_groups[0]['lr']]
    for _ in range(steps):
        opt.step()
        s.step()
        lrs.append(opt.param_groups[0]['lr'])
    scheds.append({'cls': name, 'args': args, 'base': BASE, 'torch': doc, 'lrs': lrs})


S = torch.optim.lr_scheduler
sched_case('StepLR', [3, 0.5], lambda o: S.StepLR(o, 3, 0.5), 10, 'StepLR(opt, step_size=3, gamma=0.5)')
sched_case('ExponentialLR', [0.9], lambda o: S.ExponentialLR(o, 0.9), 10, 'ExponentialLR(opt, gamma=0.9)')
sched_case('CosineAnnealingLR', [5, 0.01], lambda o: S.CosineAnnealingLR(o, 5, 0.01), 17,
           'CosineAnnealingLR(opt, T_max=5, eta_min=0.01), stepped past T_max')
sched_case('CosineAnnealingLR', [4, 0], lambda o: S.CosineAnnealingLR(o, 4), 12, 'CosineAnnealingLR(opt, T_max=4), stepped past T_max')
sched_case('LinearWarmup', [4, None, 0.25], lambda o: S.LinearLR(o, start_factor=0.25, total_iters=4), 8,
           'LinearLR(opt, start_factor=0.25, end_factor=1, total_iters=4)')
sched_case('LinearWarmup+CosineAnnealingLR', [3, [6, 0.001], 0.1],
           lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, 6, 0.001)], milestones=[3]), 12,
           'SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=3), CosineAnnealingLR(opt, T_max=6, eta_min=0.001)], milestones=[3])')
sched_case('LambdaLR', ['0.95^t/(1+t%3)'], lambda o: S.LambdaLR(o, lambda t: 0.95 ** t / (1 + t % 3)), 9,
           'LambdaLR(opt, lambda t: 0.95 ** t / (1 + t % 3))')

# ---------------------------------------------------------------- ops and layers
ops = []
xc = f32([[-2.0, -1.0, -0.5, 0.0, 0.25], [0.5, 1.0, 1.5, 2.0, -1.0 + 2**-23]])
inputs['xc'] = {'shape': [2, 5], 'dtype': 'float32', 'data': [float(v) for v in xc.reshape(-1)]}
for lo, hi in [(-1.0, 1.0), (0.0, 0.5), (-1.0, None), (None, 0.25)]:
    x = t64(xc, grad=True)
    y = torch.clamp(x, min=lo, max=hi)
    cot = cotangent(list(y.shape))
    (y * t64(cot)).sum().backward()
    ops.append({'op': 'clamp', 'args': [lo, hi], 'x': 'xc', 'torch': f'torch.clamp(x, min={lo}, max={hi})',
                'out': enc(y.detach().numpy()), 'cotangent': enc(cot), 'grad': enc(x.grad.numpy())})

xp = uniform((2, 5, 6, 3), -1, 1)  # NHWC
inputs['xp'] = {'shape': list(xp.shape), 'dtype': 'float32', 'data': [float(v) for v in xp.reshape(-1)]}
for k, s, pad, cip in [(3, 2, 1, None), (3, 2, 1, True), (3, 2, 1, False), (2, 1, 1, None), (3, 1, 1, False), (2, 2, 0, None)]:
    x = t64(xp, grad=True)
    kw = {} if cip is None else {'count_include_pad': cip}
    y = F.avg_pool2d(x.permute(0, 3, 1, 2), k, s, pad, **kw).permute(0, 2, 3, 1)
    cot = cotangent(list(y.shape))
    (y * t64(cot)).sum().backward()
    opts = {'stride': s, 'padding': pad}
    if cip is not None:
        opts['countIncludePad'] = cip
    ops.append({'op': 'avgPool2d', 'args': [k, opts], 'x': 'xp',
                'torch': f'F.avg_pool2d(x_nchw, {k}, {s}, {pad}, **{kw})',
                'out': enc(y.detach().numpy()), 'cotangent': enc(cot), 'grad': enc(x.grad.numpy())})

fixture = {
    'meta': {
        'generator': 'scripts/torch-parity-fixtures.py',
        'command': 'python3 scripts/torch-parity-fixtures.py',
        'torch': torch.__version__, 'numpy': np.__version__, 'python': sys.version.split()[0],
        'note': 'float64 PyTorch references from float32 inputs; edgegrad option names in opts, the PyTorch call in torch',
    },
    'inputs': inputs, 'losses': losses, 'optimizers': optims, 'schedules': scheds, 'ops': ops,
}


def compact(o):
    # 17 significant digits keep every float64 exact; shorter repr when it round-trips
    if isinstance(o, float):
        return o if math.isfinite(o) else str(o)
    if isinstance(o, dict):
        return {k: compact(v) for k, v in o.items()}
    if isinstance(o, list):
        return [compact(v) for v in o]
    return o


with open(OUT, 'w') as fh:
    json.dump(compact(fixture), fh, separators=(',', ':'))
    fh.write('\n')
print(f'wrote {OUT}: {len(losses)} loss, {len(optims)} optimizer, {len(scheds)} schedule, {len(ops)} op cases, '
      f'{os.path.getsize(OUT)} bytes')
