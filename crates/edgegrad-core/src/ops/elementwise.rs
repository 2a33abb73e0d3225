//! Elementwise ops: broadcasting arithmetic, unary math and activations, comparisons, casts.

use super::{expect_f32, new_f32};
use crate::autograd::{record, will_record, Saved};
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::elementwise::{broadcast_binary, lanes2, unary as unary_kernel};
use crate::kernels::math;
use crate::shape::{broadcast_shapes, numel};
use crate::simd::F32x4;
use crate::storage::alloc_f32;
use crate::tensor::Tensor;
use crate::{bail, ensure};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }
}

fn binary_forward(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    expect_f32(a, op.name())?;
    expect_f32(b, op.name())?;
    let shape = broadcast_shapes(a.shape(), b.shape())
        .map_err(|e| crate::error::Error::new(e.kind, format!("{}: {}", op.name(), e.message)))?;
    let (ac, bc) = (a.contiguous_nograd()?, b.contiguous_nograd()?);
    let mut out = alloc_f32(numel(&shape));
    {
        let (av, bv) = (ac.f32s()?, bc.f32s()?);
        let (sa, sb) = (ac.shape(), bc.shape());
        match op {
            BinaryOp::Add => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| x.add(y)),
            BinaryOp::Sub => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| x.sub(y)),
            BinaryOp::Mul => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| x.mul(y)),
            BinaryOp::Div => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| x.div(y)),
            BinaryOp::Pow => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| lanes2(x, y, f32::powf)),
            BinaryOp::Maximum => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| x.max(y)),
            BinaryOp::Minimum => broadcast_binary(&av, sa, &bv, sb, &shape, &mut out, |x, y| x.min(y)),
        }
    }
    new_f32(out, &shape)
}

/// Elementwise `a op b` with NumPy broadcasting.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let out = binary_forward(op, a, b)?;
    if !will_record(&[a, b]) {
        return Ok(out);
    }
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    let (xa, xb) = (Saved::new(a), Saved::new(b));
    let yo = Saved::new(&out);
    Ok(record(out, op.name(), &[a, b], move |g, needs| {
        let (ga, gb) = match op {
            BinaryOp::Add => (g.clone(), g.clone()),
            BinaryOp::Sub => (g.clone(), neg(g)?),
            BinaryOp::Mul => {
                let ga = if needs[0] { mul(g, xb.get()?)? } else { g.clone() };
                let gb = if needs[1] { mul(g, xa.get()?)? } else { g.clone() };
                (ga, gb)
            }
            BinaryOp::Div => {
                let b = xb.get()?;
                let ga = div(g, b)?;
                // d/db (a/b) = -a/b^2 = -(g/b) * (a/b)
                let gb = if needs[1] { neg(&mul(&ga, yo.get()?)?)? } else { g.clone() };
                (ga, gb)
            }
            BinaryOp::Pow => {
                let (x, e, y) = (xa.get()?, xb.get()?, yo.get()?);
                // d/dx x^e = e * x^(e-1); d/de x^e = x^e * ln x (taken as 0 where x == 0 and e > 0)
                let ga = if needs[0] { mul(g, &mul(e, &binary_forward(BinaryOp::Pow, x, &add_scalar(e, -1.0)?)?)?)? } else { g.clone() };
                let gb = if needs[1] { mul(g, &mul(y, &safe_log(x)?)?)? } else { g.clone() };
                (ga, gb)
            }
            BinaryOp::Maximum | BinaryOp::Minimum => {
                // The gradient goes to the winning input; ties split it evenly.
                let (x, e) = (xa.get()?, xb.get()?);
                let (wa, wb) = tie_weights(op, x, e)?;
                (mul(g, &wa)?, mul(g, &wb)?)
            }
        };
        Ok(vec![
            if needs[0] { Some(sum_to_shape(&ga, &sa)?) } else { None },
            if needs[1] { Some(sum_to_shape(&gb, &sb)?) } else { None },
        ])
    }))
}

/// Weights 1 / 0 / 0.5 telling which input of maximum/minimum won each element.
fn tie_weights(op: BinaryOp, x: &Tensor, e: &Tensor) -> Result<(Tensor, Tensor)> {
    let (win_a, win_b) = match op {
        BinaryOp::Maximum => (compare(CompareOp::Gt, x, e)?, compare(CompareOp::Lt, x, e)?),
        _ => (compare(CompareOp::Lt, x, e)?, compare(CompareOp::Gt, x, e)?),
    };
    let tie = mul_scalar(&compare(CompareOp::Eq, x, e)?, 0.5)?;
    Ok((add(&win_a, &tie)?, add(&win_b, &tie)?))
}

/// ln(x) with 0 where x <= 0 (used only inside pow's exponent gradient).
fn safe_log(x: &Tensor) -> Result<Tensor> {
    let xc = x.contiguous_nograd()?;
    let mut out = alloc_f32(xc.numel());
    unary_kernel(&xc.f32s()?, &mut out, |v| {
        let l = math::ln(v);
        F32x4::select(v.gt(F32x4::zero()), l, F32x4::zero())
    });
    new_f32(out, x.shape())
}

pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Add, a, b)
}
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Sub, a, b)
}
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Mul, a, b)
}
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Div, a, b)
}
pub fn pow(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Pow, a, b)
}
pub fn maximum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Maximum, a, b)
}
pub fn minimum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(BinaryOp::Minimum, a, b)
}

/// Reduces a broadcast gradient back to `shape` by summing over the broadcast dimensions.
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let rank = g.rank();
    ensure!(rank >= shape.len(), Internal, "sum_to_shape: cannot reduce rank {} to {}", rank, shape.len());
    let lead = rank - shape.len();
    let mut axes: Vec<isize> = (0..lead as isize).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape()[lead + i] != 1 {
            axes.push((lead + i) as isize);
        }
    }
    let s = if axes.is_empty() { g.clone() } else { super::sum(g, &axes, true)? };
    super::reshape(&s, shape)
}

// ---------------------------------------------------------------- unary

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Relu,
    Sigmoid,
    Tanh,
}

impl UnaryOp {
    fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
        }
    }
}

/// Runs a vector function over a float tensor into a new tensor (no autograd).
pub(crate) fn map_f32(x: &Tensor, f: impl Fn(F32x4) -> F32x4 + Sync) -> Result<Tensor> {
    let xc = x.contiguous_nograd()?;
    let mut out = alloc_f32(xc.numel());
    unary_kernel(&xc.f32s()?, &mut out, f);
    new_f32(out, x.shape())
}

/// Runs a two-input vector function over same-shape float tensors (no autograd).
pub(crate) fn zip_f32(a: &Tensor, b: &Tensor, f: impl Fn(F32x4, F32x4) -> F32x4 + Sync) -> Result<Tensor> {
    ensure!(a.shape() == b.shape(), Internal, "zip_f32 on different shapes");
    let (ac, bc) = (a.contiguous_nograd()?, b.contiguous_nograd()?);
    let mut out = alloc_f32(ac.numel());
    crate::kernels::elementwise::zip(&ac.f32s()?, &bc.f32s()?, &mut out, f);
    new_f32(out, a.shape())
}

fn unary_forward(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    match op {
        UnaryOp::Neg => map_f32(x, |v| v.neg()),
        UnaryOp::Exp => map_f32(x, math::exp),
        UnaryOp::Log => map_f32(x, math::ln),
        UnaryOp::Sqrt => map_f32(x, |v| v.sqrt()),
        UnaryOp::Abs => map_f32(x, |v| v.abs()),
        // pmax(x, 0) keeps NaN (the compare is false, so x is returned).
        UnaryOp::Relu => map_f32(x, |v| v.pmax(F32x4::zero())),
        UnaryOp::Sigmoid => map_f32(x, math::sigmoid),
        UnaryOp::Tanh => map_f32(x, math::tanh),
    }
}

pub fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor> {
    expect_f32(x, op.name())?;
    let out = unary_forward(op, x)?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let xs = Saved::new(x);
    let ys = Saved::new(&out);
    Ok(record(out, op.name(), &[x], move |g, _| {
        let gx = match op {
            UnaryOp::Neg => neg(g)?,
            UnaryOp::Exp => mul(g, ys.get()?)?,
            UnaryOp::Log => div(g, xs.get()?)?,
            // d sqrt(x) = 1 / (2 sqrt(x))
            UnaryOp::Sqrt => zip_f32(g, ys.get()?, |g, y| g.div(y.add(y)))?,
            // sign(x), 0 at 0
            UnaryOp::Abs => zip_f32(g, xs.get()?, |g, x| {
                let z = F32x4::zero();
                let s = F32x4::select(x.gt(z), F32x4::splat(1.0), F32x4::select(x.lt(z), F32x4::splat(-1.0), z));
                g.mul(s)
            })?,
            UnaryOp::Relu => zip_f32(g, ys.get()?, |g, y| F32x4::select(y.gt(F32x4::zero()), g, F32x4::zero()))?,
            UnaryOp::Sigmoid => zip_f32(g, ys.get()?, |g, y| g.mul(y.mul(F32x4::splat(1.0).sub(y))))?,
            UnaryOp::Tanh => zip_f32(g, ys.get()?, |g, y| g.mul(F32x4::splat(1.0).sub(y.mul(y))))?,
        };
        // The activations follow an attribution method's backward rule (gradient unless one is set).
        let gx = match op {
            UnaryOp::Relu | UnaryOp::Sigmoid | UnaryOp::Tanh =>
                super::attribution::elementwise_rule(op.name(), op == UnaryOp::Relu, g, gx, xs.get()?, ys.get()?)?,
            _ => gx,
        };
        Ok(vec![Some(gx)])
    }))
}

pub fn neg(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Neg, x)
}
pub fn exp(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Exp, x)
}
pub fn log(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Log, x)
}
pub fn sqrt(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Sqrt, x)
}
pub fn abs(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Abs, x)
}
pub fn relu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Relu, x)
}
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Sigmoid, x)
}
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Tanh, x)
}

/// `x * s + t` with scalars, in one pass (scalar arithmetic without allocating scalar tensors).
pub fn affine_scalar(x: &Tensor, s: f32, t: f32) -> Result<Tensor> {
    expect_f32(x, "affine")?;
    let (sv, tv) = (F32x4::splat(s), F32x4::splat(t));
    let out = map_f32(x, move |v| v.mul(sv).add(tv))?;
    Ok(record(out, "affine", &[x], move |g, _| Ok(vec![Some(mul_scalar(g, s)?)])))
}
pub fn add_scalar(x: &Tensor, t: f32) -> Result<Tensor> {
    expect_f32(x, "add")?;
    let tv = F32x4::splat(t);
    let out = map_f32(x, move |v| v.add(tv))?;
    Ok(record(out, "add_scalar", &[x], move |g, _| Ok(vec![Some(g.clone())])))
}
pub fn mul_scalar(x: &Tensor, s: f32) -> Result<Tensor> {
    expect_f32(x, "mul")?;
    let sv = F32x4::splat(s);
    let out = map_f32(x, move |v| v.mul(sv))?;
    Ok(record(out, "mul_scalar", &[x], move |g, _| Ok(vec![Some(mul_scalar(g, s)?)])))
}

/// `x ** p` for a scalar exponent.
pub fn pow_scalar(x: &Tensor, p: f32) -> Result<Tensor> {
    expect_f32(x, "pow")?;
    ensure!(p.is_finite(), Argument, "pow exponent must be finite, got {}", p);
    let out = pow_scalar_forward(x, p)?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let xs = Saved::new(x);
    Ok(record(out, "pow_scalar", &[x], move |g, _| {
        // p * x^(p-1)
        let d = if p == 0.0 { x_zeros(xs.get()?)? } else { mul_scalar(&pow_scalar_forward(xs.get()?, p - 1.0)?, p)? };
        Ok(vec![Some(mul(g, &d)?)])
    }))
}

fn x_zeros(x: &Tensor) -> Result<Tensor> {
    Ok(Tensor::zeros(x.shape(), DType::F32)?)
}

fn pow_scalar_forward(x: &Tensor, p: f32) -> Result<Tensor> {
    if p == 1.0 {
        map_f32(x, |v| v)
    } else if p == 2.0 {
        map_f32(x, |v| v.mul(v))
    } else if p == 3.0 {
        map_f32(x, |v| v.mul(v).mul(v))
    } else if p == 0.5 {
        map_f32(x, |v| v.sqrt())
    } else if p == -1.0 {
        map_f32(x, |v| F32x4::splat(1.0).div(v))
    } else if p == 0.0 {
        map_f32(x, |_| F32x4::splat(1.0))
    } else {
        let pv = F32x4::splat(p);
        map_f32(x, move |v| lanes2(v, pv, f32::powf))
    }
}

/// Clamps into [lo, hi] (either bound may be infinite). The gradient passes strictly inside,
/// lo < x < hi, and is 0 at the bounds (PyTorch's `clamp`, consistent with `relu` at 0); an
/// infinite bound is no bound (`clamp(min=None)`), so it never blocks the gradient.
pub fn clamp(x: &Tensor, lo: f32, hi: f32) -> Result<Tensor> {
    expect_f32(x, "clamp")?;
    ensure!(!(lo > hi), Argument, "clamp needs min <= max, got min={} max={}", lo, hi);
    ensure!(!lo.is_nan() && !hi.is_nan(), Argument, "clamp bounds must not be NaN");
    let (lv, hv) = (F32x4::splat(lo), F32x4::splat(hi));
    // pmax/pmin return x when the compare is false, so NaN stays NaN.
    let out = map_f32(x, move |v| v.pmax(lv).pmin(hv))?;
    if !will_record(&[x]) {
        return Ok(out);
    }
    let xs = Saved::new(x);
    Ok(record(out, "clamp", &[x], move |g, _| {
        let (no_lo, no_hi) = (lo == f32::NEG_INFINITY, hi == f32::INFINITY);
        let gx = zip_f32(g, xs.get()?, move |g, x| {
            let above = if no_lo { x.ge(lv) } else { x.gt(lv) };
            let below = if no_hi { x.le(hv) } else { x.lt(hv) };
            F32x4::select(above.and(below), g, F32x4::zero())
        })?;
        Ok(vec![Some(gx)])
    }))
}

// ---------------------------------------------------------------- comparisons, where, cast

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Elementwise comparison with broadcasting; 1.0 where true, 0.0 where false. Not differentiable.
pub fn compare(op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    expect_f32(a, "compare")?;
    expect_f32(b, "compare")?;
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    let (ac, bc) = (a.contiguous_nograd()?, b.contiguous_nograd()?);
    let mut out = alloc_f32(numel(&shape));
    {
        let (av, bv) = (ac.f32s()?, bc.f32s()?);
        let one = F32x4::splat(1.0);
        let z = F32x4::zero();
        let f = move |x: F32x4, y: F32x4| {
            let m = match op {
                CompareOp::Eq => x.eq(y),
                CompareOp::Ne => x.ne(y),
                CompareOp::Lt => x.lt(y),
                CompareOp::Le => x.le(y),
                CompareOp::Gt => x.gt(y),
                CompareOp::Ge => x.ge(y),
            };
            F32x4::select(m, one, z)
        };
        broadcast_binary(&av, ac.shape(), &bv, bc.shape(), &shape, &mut out, f);
    }
    new_f32(out, &shape)
}

/// `cond != 0 ? a : b`, broadcasting all three. Gradients flow to the chosen side.
pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    expect_f32(cond, "where (condition)")?;
    let mask = compare(CompareOp::Ne, cond, &Tensor::scalar(0.0))?;
    // a*m + b*(1-m) would turn inf*0 into NaN; select explicitly instead.
    let shape = broadcast_shapes(&broadcast_shapes(mask.shape(), a.shape())?, b.shape())?;
    let m = super::expand(&mask, &shape)?.contiguous_nograd()?;
    let ae = super::expand(&a.detach(), &shape)?.contiguous_nograd()?;
    let be = super::expand(&b.detach(), &shape)?.contiguous_nograd()?;
    expect_f32(&ae, "where")?;
    expect_f32(&be, "where")?;
    let mut out = alloc_f32(numel(&shape));
    {
        let (mv, av, bv) = (m.f32s()?, ae.f32s()?, be.f32s()?);
        for i in 0..out.len() {
            out[i] = if mv[i] != 0.0 { av[i] } else { bv[i] };
        }
    }
    let out = new_f32(out, &shape)?;
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    Ok(record(out, "where", &[a, b], move |g, needs| {
        let ga = if needs[0] { Some(sum_to_shape(&mul(g, &m)?, &sa)?) } else { None };
        let gb = if needs[1] { Some(sum_to_shape(&sub(g, &mul(g, &m)?)?, &sb)?) } else { None };
        Ok(vec![ga, gb])
    }))
}

/// Converts between dtypes. float -> int truncates toward zero (int8 saturates); not differentiable
/// except float -> float.
pub fn cast(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        return Ok(x.clone());
    }
    let xc = x.contiguous_nograd()?;
    let shape = x.shape();
    match (x.dtype(), dtype) {
        (DType::F32, DType::I32) => {
            let v = xc.f32s()?;
            ensure!(v.iter().all(|f| !f.is_nan()), Argument, "cannot cast NaN to int32");
            Tensor::from_i32(v.iter().map(|&f| f as i32).collect(), shape)
        }
        (DType::F32, DType::I8) => {
            let v = xc.f32s()?;
            ensure!(v.iter().all(|f| !f.is_nan()), Argument, "cannot cast NaN to int8");
            Tensor::from_i8(v.iter().map(|&f| f.clamp(-128.0, 127.0) as i8).collect(), shape)
        }
        (DType::I32, DType::F32) => Tensor::from_f32(xc.i32s()?.iter().map(|&i| i as f32).collect(), shape),
        (DType::I8, DType::F32) => Tensor::from_f32(xc.i8s()?.iter().map(|&i| i as f32).collect(), shape),
        (DType::I32, DType::I8) => Tensor::from_i8(xc.i32s()?.iter().map(|&i| i.clamp(-128, 127) as i8).collect(), shape),
        (DType::I8, DType::I32) => Tensor::from_i32(xc.i8s()?.iter().map(|&i| i as i32).collect(), shape),
        (a, b) => bail!(Internal, "cast from {} to {} not covered", a, b),
    }
}
