//! Layout ops: views (reshape, permute, transpose, slice, expand) share storage; concat,
//! index_select and gather copy.

use super::new_f32;
use crate::autograd::record;
use crate::dtype::DType;
use crate::error::Result;
use crate::kernels::copy::strided_scatter;
use crate::shape::{check_shape_valid, contiguous_strides, fmt_shape, norm_axis, numel, Shape};
use crate::storage::{alloc_f32, zeros_f32};
use crate::tensor::Tensor;
use crate::{bail, ensure};

/// A contiguous copy that passes gradients straight through.
pub fn copy(x: &Tensor) -> Result<Tensor> {
    let c = if x.is_contiguous() {
        copy_contiguous(x)?
    } else {
        x.contiguous_nograd()?
    };
    Ok(record(c, "copy", &[x], |g, _| Ok(vec![Some(g.clone())])))
}

fn copy_contiguous(x: &Tensor) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => {
            let mut v = alloc_f32(x.numel());
            v.copy_from_slice(&x.f32s()?);
            new_f32(v, x.shape())
        }
        DType::I32 => Tensor::from_i32(x.i32s()?.to_vec(), x.shape()),
        DType::I8 => Tensor::from_i8(x.i8s()?.to_vec(), x.shape()),
    }
}

/// `x` itself if contiguous, else a contiguous copy (gradients pass through).
pub fn contiguous(x: &Tensor) -> Result<Tensor> {
    if x.is_contiguous() {
        Ok(x.clone())
    } else {
        copy(x)
    }
}

/// Resolves a shape with at most one -1 against `n` elements.
pub fn infer_shape(spec: &[isize], n: usize, from: &[usize]) -> Result<Shape> {
    let mut unknown = None;
    let mut known: usize = 1;
    for (i, &d) in spec.iter().enumerate() {
        if d == -1 {
            ensure!(unknown.is_none(), Shape, "reshape: only one dimension can be -1 in {:?}", spec);
            unknown = Some(i);
        } else {
            ensure!(d >= 0, Shape, "reshape: invalid dimension {} in {:?}", d, spec);
            known = known.saturating_mul(d as usize);
        }
    }
    let mut shape: Shape = spec.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = unknown {
        ensure!(known > 0 && n % known == 0, Shape, "cannot reshape a tensor of shape {} ({} elements) into {:?}",
            fmt_shape(from), n, spec);
        shape[i] = n / known;
    }
    ensure!(numel(&shape) == n, Shape, "cannot reshape a tensor of shape {} ({} elements) into {:?}",
        fmt_shape(from), n, spec);
    Ok(shape)
}

pub fn reshape(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    check_shape_valid(shape)?;
    ensure!(numel(shape) == x.numel(), Shape, "cannot reshape a tensor of shape {} ({} elements) into {} ({} elements)",
        fmt_shape(x.shape()), x.numel(), fmt_shape(shape), numel(shape));
    let base = if x.is_contiguous() { x.clone() } else { x.contiguous_nograd()? };
    let out = base.view_as(shape.to_vec(), contiguous_strides(shape), base.offset());
    let in_shape = x.shape().to_vec();
    Ok(record(out, "reshape", &[x], move |g, _| Ok(vec![Some(reshape(g, &in_shape)?)])))
}

pub(crate) fn permute_nograd(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    let rank = x.rank();
    ensure!(perm.len() == rank, Shape, "permute: {} axes given for a tensor of rank {}", perm.len(), rank);
    let mut seen = vec![false; rank];
    for &p in perm {
        ensure!(p < rank && !seen[p], Shape, "permute: {:?} is not a permutation of 0..{}", perm, rank);
        seen[p] = true;
    }
    let shape: Shape = perm.iter().map(|&p| x.shape()[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| x.strides()[p]).collect();
    Ok(x.view_as(shape, strides, x.offset()))
}

/// Reorders dimensions (a view). `perm[i]` is the input axis that becomes axis i.
pub fn permute(x: &Tensor, perm: &[isize]) -> Result<Tensor> {
    let rank = x.rank();
    let p: Vec<usize> = perm.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_>>()?;
    let out = permute_nograd(x, &p)?;
    let mut inv = vec![0usize; rank];
    for (i, &pi) in p.iter().enumerate() {
        inv[pi] = i;
    }
    Ok(record(out, "permute", &[x], move |g, _| Ok(vec![Some(permute_nograd(g, &inv)?)])))
}

pub(crate) fn transpose_nograd(x: &Tensor, a: usize, b: usize) -> Result<Tensor> {
    let mut perm: Vec<usize> = (0..x.rank()).collect();
    perm.swap(a, b);
    permute_nograd(x, &perm)
}

/// Swaps two axes (a view).
pub fn transpose(x: &Tensor, a: isize, b: isize) -> Result<Tensor> {
    let rank = x.rank();
    let (a, b) = (norm_axis(a, rank)?, norm_axis(b, rank)?);
    let mut perm: Vec<isize> = (0..rank as isize).collect();
    perm.swap(a, b);
    permute(x, &perm)
}

/// Broadcasts to `shape` as a view (stride 0 along broadcast dimensions).
pub fn expand(x: &Tensor, shape: &[usize]) -> Result<Tensor> {
    ensure!(shape.len() >= x.rank(), Shape, "cannot expand shape {} to the lower rank {}", fmt_shape(x.shape()), fmt_shape(shape));
    check_shape_valid(shape)?;
    let lead = shape.len() - x.rank();
    let mut strides = vec![0usize; shape.len()];
    for i in 0..x.rank() {
        let (d, t) = (x.shape()[i], shape[lead + i]);
        ensure!(d == t || d == 1, Shape, "cannot expand shape {} to {}", fmt_shape(x.shape()), fmt_shape(shape));
        strides[lead + i] = if d == 1 && t != 1 { 0 } else { x.strides()[i] };
    }
    let out = x.view_as(shape.to_vec(), strides, x.offset());
    let in_shape = x.shape().to_vec();
    Ok(record(out, "expand", &[x], move |g, _| Ok(vec![Some(super::sum_to_shape(g, &in_shape)?)])))
}

/// A strided window: for each axis, `start..end` by `step` (step >= 1). A view.
pub fn slice(x: &Tensor, starts: &[isize], ends: &[isize], steps: &[isize]) -> Result<Tensor> {
    let rank = x.rank();
    ensure!(starts.len() == rank && ends.len() == rank && (steps.is_empty() || steps.len() == rank), Shape,
        "slice: begin/end/step need one entry per dimension ({}), got {}/{}/{}", rank, starts.len(), ends.len(), steps.len());
    let mut shape = Vec::with_capacity(rank);
    let mut strides = Vec::with_capacity(rank);
    let mut offset = x.offset();
    let mut starts_u = Vec::with_capacity(rank);
    for d in 0..rank {
        let dim = x.shape()[d] as isize;
        let step = if steps.is_empty() { 1 } else { steps[d] };
        ensure!(step >= 1, Argument, "slice: step must be >= 1, got {} on axis {}", step, d);
        let clampi = |v: isize| -> isize { let v = if v < 0 { v + dim } else { v }; v.clamp(0, dim) };
        let s = clampi(starts[d]);
        let e = clampi(ends[d]).max(s);
        // Not (e - s + step - 1) / step: with a huge step that sum overflows a 32-bit isize.
        let len = if e > s { (e - s - 1) / step + 1 } else { 0 };
        shape.push(len as usize);
        // A window of at most one element never steps, and step * stride could overflow.
        strides.push(if len > 1 { x.strides()[d] * step as usize } else { x.strides()[d] });
        offset += s as usize * x.strides()[d];
        starts_u.push((s as usize, step as usize));
    }
    let out = x.view_as(shape.clone(), strides, if numel(&shape) == 0 { x.offset() } else { offset });
    let in_shape = x.shape().to_vec();
    Ok(record(out, "slice", &[x], move |g, _| {
        // Scatter the gradient into zeros at the sliced positions.
        let mut gx = zeros_f32(numel(&in_shape));
        let gc = g.contiguous_nograd()?;
        let in_strides = contiguous_strides(&in_shape);
        let off: usize = starts_u.iter().zip(&in_strides).map(|(&(s, _), &st)| s * st).sum();
        let st: Vec<usize> = starts_u.iter().zip(&in_strides).map(|(&(_, step), &st)| step * st).collect();
        if gc.numel() > 0 {
            strided_scatter(&gc.f32s()?, &mut gx, off, gc.shape(), &st);
        }
        Ok(vec![Some(new_f32(gx, &in_shape)?)])
    }))
}

/// Joins tensors along `axis`; all other dimensions must match.
pub fn concat(xs: &[Tensor], axis: isize) -> Result<Tensor> {
    ensure!(!xs.is_empty(), Argument, "concat needs at least one tensor");
    let rank = xs[0].rank();
    ensure!(rank > 0, Shape, "concat needs tensors of rank >= 1");
    let a = norm_axis(axis, rank)?;
    let dtype = xs[0].dtype();
    let mut total = 0;
    for (i, x) in xs.iter().enumerate() {
        ensure!(x.dtype() == dtype, DType, "concat: tensor {} is {} but tensor 0 is {}", i, x.dtype(), dtype);
        ensure!(x.rank() == rank, Shape, "concat: tensor {} has rank {} but tensor 0 has rank {}", i, x.rank(), rank);
        for d in 0..rank {
            ensure!(d == a || x.shape()[d] == xs[0].shape()[d], Shape,
                "concat along axis {}: tensor {} has shape {} but tensor 0 has shape {}", a, i, fmt_shape(x.shape()), fmt_shape(xs[0].shape()));
        }
        total = x.shape()[a].saturating_add(total); // expanded views can be huge: checked below
    }
    let mut shape = xs[0].shape().to_vec();
    shape[a] = total;
    check_shape_valid(&shape)?;
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..].iter().product();
    let out = match dtype {
        DType::F32 => {
            let mut out = alloc_f32(numel(&shape));
            let mut col = 0;
            for x in xs {
                let xc = x.contiguous_nograd()?;
                let v = xc.f32s()?;
                let w = x.shape()[a] * inner;
                for o in 0..outer {
                    out[o * total * inner + col..o * total * inner + col + w].copy_from_slice(&v[o * w..(o + 1) * w]);
                }
                col += w;
            }
            new_f32(out, &shape)?
        }
        DType::I32 => {
            let mut out = vec![0i32; numel(&shape)];
            let mut col = 0;
            for x in xs {
                let v = x.to_vec_i32()?;
                let w = x.shape()[a] * inner;
                for o in 0..outer {
                    out[o * total * inner + col..o * total * inner + col + w].copy_from_slice(&v[o * w..(o + 1) * w]);
                }
                col += w;
            }
            Tensor::from_i32(out, &shape)?
        }
        DType::I8 => bail!(DType, "concat does not support int8 tensors"),
    };
    let sizes: Vec<usize> = xs.iter().map(|x| x.shape()[a]).collect();
    let refs: Vec<&Tensor> = xs.iter().collect();
    Ok(record(out, "concat", &refs, move |g, needs| {
        let mut grads = Vec::with_capacity(sizes.len());
        let mut start = 0;
        let r = g.rank();
        for (i, &s) in sizes.iter().enumerate() {
            if needs[i] {
                let mut st = vec![0isize; r];
                let mut en: Vec<isize> = g.shape().iter().map(|&d| d as isize).collect();
                st[a] = start as isize;
                en[a] = (start + s) as isize;
                grads.push(Some(slice(g, &st, &en, &[])?.contiguous_nograd()?));
            } else {
                grads.push(None);
            }
            start += s;
        }
        Ok(grads)
    }))
}

fn check_indices(idx: &[i32], dim: usize, what: &str) -> Result<()> {
    for (i, &v) in idx.iter().enumerate() {
        if v < 0 || v as usize >= dim {
            bail!(Argument, "{}: index {} (at position {}) is out of range for a dimension of size {}", what, v, i, dim);
        }
    }
    Ok(())
}

/// Picks slices along `axis` by integer indices of any shape (like `tf.gather`): the output shape
/// is `x.shape[..axis] + indices.shape + x.shape[axis+1..]`. Any dtype; differentiable for float32.
pub fn index_select(x: &Tensor, axis: isize, indices: &Tensor) -> Result<Tensor> {
    ensure!(indices.dtype() == DType::I32, DType, "index_select: indices must be int32, got {}", indices.dtype());
    let a = norm_axis(axis, x.rank())?;
    let idx = indices.to_vec_i32()?;
    let dim = x.shape()[a];
    check_indices(&idx, dim, "index_select")?;
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a + 1..].iter().product();
    let mut shape: Shape = x.shape()[..a].to_vec();
    shape.extend_from_slice(indices.shape());
    shape.extend_from_slice(&x.shape()[a + 1..]);
    check_shape_valid(&shape)?;
    let xc = x.contiguous_nograd()?;
    fn select<T: Copy>(v: &[T], out: &mut [T], idx: &[i32], outer: usize, dim: usize, inner: usize) {
        let k = idx.len();
        for o in 0..outer {
            for (j, &i) in idx.iter().enumerate() {
                let src = (o * dim + i as usize) * inner;
                let dst = (o * k + j) * inner;
                out[dst..dst + inner].copy_from_slice(&v[src..src + inner]);
            }
        }
    }
    let out = match x.dtype() {
        DType::F32 => {
            let mut out = alloc_f32(numel(&shape));
            select(&xc.f32s()?, &mut out, &idx, outer, dim, inner);
            out
        }
        DType::I32 => {
            let mut out = vec![0i32; numel(&shape)];
            select(&xc.i32s()?, &mut out, &idx, outer, dim, inner);
            return Tensor::from_i32(out, &shape);
        }
        DType::I8 => {
            let mut out = vec![0i8; numel(&shape)];
            select(&xc.i8s()?, &mut out, &idx, outer, dim, inner);
            return Tensor::from_i8(out, &shape);
        }
    };
    let out = new_f32(out, &shape)?;
    let in_shape = x.shape().to_vec();
    Ok(record(out, "index_select", &[x], move |g, _| {
        let gc = g.contiguous_nograd()?;
        let gv = gc.f32s()?;
        let mut gx = zeros_f32(numel(&in_shape));
        let k = idx.len();
        // Fixed order (o, j) keeps repeated indices' accumulation deterministic.
        for o in 0..outer {
            for (j, &i) in idx.iter().enumerate() {
                let dst = (o * dim + i as usize) * inner;
                let src = (o * k + j) * inner;
                for t in 0..inner {
                    gx[dst + t] += gv[src + t];
                }
            }
        }
        Ok(vec![Some(new_f32(gx, &in_shape)?)])
    }))
}

/// `out[..., j, ...] = x[..., indices[..., j, ...], ...]` along `axis` (like `torch.gather`):
/// `indices` has the rank of `x`, and its size along every other axis is at most x's.
pub fn gather(x: &Tensor, axis: isize, indices: &Tensor) -> Result<Tensor> {
    ensure!(indices.dtype() == DType::I32, DType, "gather: indices must be int32, got {}", indices.dtype());
    super::expect_f32(x, "gather")?;
    let rank = x.rank();
    let a = norm_axis(axis, rank)?;
    ensure!(indices.rank() == rank, Shape, "gather: indices have rank {} but the input has rank {}", indices.rank(), rank);
    for d in 0..rank {
        ensure!(d == a || indices.shape()[d] <= x.shape()[d], Shape,
            "gather: indices shape {} does not fit input shape {} on axis {}", fmt_shape(indices.shape()), fmt_shape(x.shape()), d);
    }
    let idx = indices.to_vec_i32()?;
    check_indices(&idx, x.shape()[a], "gather")?;
    let shape = indices.shape().to_vec();
    let xst = contiguous_strides(x.shape());
    let ist = contiguous_strides(&shape);
    // Source offset of each output element.
    let mut src_off = vec![0usize; idx.len()];
    for (n, so) in src_off.iter_mut().enumerate() {
        let mut rem = n;
        let mut off = 0;
        for d in 0..rank {
            let c = rem / ist[d];
            rem %= ist[d];
            off += if d == a { idx[n] as usize } else { c } * xst[d];
        }
        *so = off;
    }
    let xc = x.contiguous_nograd()?;
    let out = {
        let v = xc.f32s()?;
        let mut out = alloc_f32(idx.len());
        for (o, &s) in out.iter_mut().zip(&src_off) {
            *o = v[s];
        }
        new_f32(out, &shape)?
    };
    let in_shape = x.shape().to_vec();
    Ok(record(out, "gather", &[x], move |g, _| {
        let gc = g.contiguous_nograd()?;
        let gv = gc.f32s()?;
        let mut gx = zeros_f32(numel(&in_shape));
        for (n, &s) in src_off.iter().enumerate() {
            gx[s] += gv[n];
        }
        Ok(vec![Some(new_f32(gx, &in_shape)?)])
    }))
}

/// Copies `src`'s values into `dst` in place (no autograd; bumps `dst`'s storage version so
/// graphs that saved it refuse to run backward). Used for parameter updates and loading weights.
pub fn assign(dst: &Tensor, src: &Tensor) -> Result<()> {
    ensure!(dst.dtype() == src.dtype(), DType, "assign: cannot write {} values into a {} tensor", src.dtype(), dst.dtype());
    ensure!(dst.shape() == src.shape(), Shape, "assign: shape {} does not match the destination's {}",
        fmt_shape(src.shape()), fmt_shape(dst.shape()));
    ensure!(dst.is_contiguous(), Argument, "assign: the destination must be contiguous");
    let s = src.contiguous_nograd()?;
    match dst.dtype() {
        DType::F32 => {
            let v = s.f32s()?.to_vec();
            dst.f32s_mut()?.copy_from_slice(&v);
        }
        _ => {
            let bytes = s.to_bytes()?;
            let (o, n) = (dst.offset(), dst.numel());
            let mut b = dst.storage().borrow_mut();
            match &mut *b {
                crate::storage::Buffer::I32(v) => {
                    for (i, c) in bytes.chunks_exact(4).enumerate().take(n) {
                        v[o + i] = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    }
                }
                crate::storage::Buffer::I8(v) => {
                    for (i, &c) in bytes.iter().enumerate().take(n) {
                        v[o + i] = c as i8;
                    }
                }
                crate::storage::Buffer::F32(_) => unreachable!("dtype checked above"),
            }
        }
    }
    Ok(())
}
