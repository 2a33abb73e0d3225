//! Shape arithmetic shared by every op: sizes, strides, broadcasting, axis normalisation.

use crate::error::Result;
use crate::{bail, ensure};

pub type Shape = Vec<usize>;

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides, in elements.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

pub fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Shape> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            bail!(Shape, "shapes {} and {} cannot be broadcast together (dimension {} is {} vs {})",
                fmt_shape(a), fmt_shape(b), i, da, db);
        };
    }
    Ok(out)
}

/// Strides that read a tensor of `shape` (row-major, contiguous) as if it had `target` shape:
/// broadcast dimensions get stride 0.
pub fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let src = contiguous_strides(shape);
    let off = target.len() - shape.len();
    (0..target.len())
        .map(|i| if i < off || shape[i - off] == 1 { 0 } else { src[i - off] })
        .collect()
}

/// Resolves a possibly negative axis against `rank`.
pub fn norm_axis(axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    ensure!(axis >= -r && axis < r.max(1), Shape,
        "axis {} is out of range for a tensor of rank {}", axis, rank);
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Resolves a list of axes (empty = all), sorted and without duplicates.
pub fn norm_axes(axes: &[isize], rank: usize) -> Result<Vec<usize>> {
    if axes.is_empty() {
        return Ok((0..rank).collect());
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        ensure!(!out.contains(&n), Shape, "axis {} is repeated in {:?}", a, axes);
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The shape after reducing `axes`, with or without the reduced dimensions kept as 1.
pub fn reduced_shape(shape: &[usize], axes: &[usize], keepdims: bool) -> Shape {
    let mut out = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                out.push(1);
            }
        } else {
            out.push(d);
        }
    }
    out
}

pub fn check_shape_valid(shape: &[usize]) -> Result<()> {
    let mut total: usize = 1;
    for &d in shape {
        total = match total.checked_mul(d) {
            Some(t) => t,
            None => bail!(Argument, "shape {} has too many elements", fmt_shape(shape)),
        };
    }
    ensure!(total <= (i32::MAX as usize) / 4, Argument,
        "shape {} has {} elements, more than a wasm32 tensor can hold", fmt_shape(shape), total);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[3, 1, 5], &[4, 1]).unwrap(), vec![3, 4, 5]);
        assert_eq!(broadcast_shapes(&[], &[2]).unwrap(), vec![2]);
        assert!(broadcast_shapes(&[3], &[4]).is_err());
        assert_eq!(broadcast_strides(&[4, 1], &[3, 4, 5]), vec![0, 1, 0]);
    }
    #[test]
    fn axes() {
        assert_eq!(norm_axis(-1, 3).unwrap(), 2);
        assert!(norm_axis(3, 3).is_err());
        assert_eq!(norm_axes(&[], 2).unwrap(), vec![0, 1]);
        assert!(norm_axes(&[0, -2], 2).is_err());
    }
}
