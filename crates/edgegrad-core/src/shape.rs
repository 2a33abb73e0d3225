//! Shape arithmetic shared by every op: sizes, strides, broadcasting, axis normalisation.

use crate::error::Result;
use crate::{bail, ensure};

pub type Shape = Vec<usize>;

/// Most elements a tensor can hold: its bytes (4 per float32 element) must fit a wasm32 `i32`.
/// The SDK mirrors this limit (sdk/args.ts) and checks it before calling the engine.
pub const MAX_ELEMENTS: usize = (i32::MAX as usize) / 4;
/// Most dimensions a tensor can have (mirrored in sdk/args.ts).
pub const MAX_RANK: usize = 32;

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
    // [n, 1] with [1, n] can ask for more elements than fit: refuse before any allocation.
    check_shape_valid(&out)?;
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
    // A rank-0 tensor has no axis to name: refusing here keeps every caller from indexing shape[0].
    ensure!(axis >= -r && axis < r, Shape,
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

/// The element count of `shape` if it is within the engine's limits (rank and elements), with
/// checked arithmetic so that no size can wrap (wasm32's `usize` is 32 bits).
pub fn checked_numel(shape: &[usize]) -> Result<usize> {
    ensure!(shape.len() <= MAX_RANK, Shape, "a shape with {} dimensions; at most {} are supported", shape.len(), MAX_RANK);
    // Every size is bounded on its own too, so an empty shape like [2^40, 0] is refused as well.
    if let Some(&d) = shape.iter().find(|&&d| d > MAX_ELEMENTS) {
        bail!(Shape, "shape {} has a dimension of size {}, more than the {} elements a tensor can hold",
            fmt_shape(shape), d, MAX_ELEMENTS);
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    let mut total: usize = 1;
    for &d in shape {
        total = match total.checked_mul(d) {
            Some(t) if t <= MAX_ELEMENTS => t,
            _ => bail!(Shape, "shape {} has more than the {} elements a tensor can hold", fmt_shape(shape), MAX_ELEMENTS),
        };
    }
    Ok(total)
}

pub fn check_shape_valid(shape: &[usize]) -> Result<()> {
    checked_numel(shape).map(|_| ())
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
        // A scalar has no axes.
        assert!(norm_axis(0, 0).is_err());
        assert!(norm_axis(-1, 0).is_err());
    }
    #[test]
    fn limits() {
        assert_eq!(checked_numel(&[2, 3]).unwrap(), 6);
        assert_eq!(checked_numel(&[0, MAX_ELEMENTS]).unwrap(), 0);
        assert!(checked_numel(&[0, usize::MAX]).is_err());
        assert!(checked_numel(&[1 << 16, 1 << 16]).is_err());
        assert!(checked_numel(&[usize::MAX, 2]).is_err());
        assert!(checked_numel(&[MAX_ELEMENTS + 1]).is_err());
        assert!(checked_numel(&vec![1; MAX_RANK + 1]).is_err());
        assert!(broadcast_shapes(&[1 << 16, 1], &[1, 1 << 16]).is_err());
    }
}
