//! Strided gather into contiguous memory (materialising views) and its inverse.

/// Merges adjacent dimensions that are contiguous with each other and drops size-1 dimensions,
/// so the copy loops run over as few, as long rows as possible.
pub fn collapse(shape: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut s: Vec<usize> = Vec::with_capacity(shape.len());
    let mut st: Vec<usize> = Vec::with_capacity(shape.len());
    for (&d, &k) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        if let (Some(&ld), Some(&lk)) = (s.last(), st.last()) {
            if lk == k * d {
                *s.last_mut().unwrap() = ld * d;
                *st.last_mut().unwrap() = k;
                continue;
            }
        }
        s.push(d);
        st.push(k);
    }
    if s.is_empty() {
        s.push(1);
        st.push(1);
    }
    (s, st)
}

/// Visits the start offset of every innermost row of a strided layout, in row-major order.
#[inline]
pub fn for_each_row(shape: &[usize], strides: &[usize], base: usize, mut f: impl FnMut(usize, usize)) {
    let rank = shape.len();
    if rank == 1 {
        f(0, base);
        return;
    }
    let outer = &shape[..rank - 1];
    let rows: usize = outer.iter().product();
    let mut idx = vec![0usize; rank - 1];
    let mut off = base;
    for r in 0..rows {
        f(r, off);
        // increment the multi-index over the outer dims
        let mut d = rank - 2;
        loop {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < outer[d] {
                break;
            }
            off -= strides[d] * outer[d];
            idx[d] = 0;
            if d == 0 {
                break;
            }
            d -= 1;
        }
    }
}

/// `dst[i] = src[offset + strided index of i]` for every element of `shape` in row-major order.
pub fn strided_copy<T: Copy>(src: &[T], offset: usize, shape: &[usize], strides: &[usize], dst: &mut [T]) {
    let (s, st) = collapse(shape, strides);
    let inner = *s.last().unwrap();
    let inner_stride = *st.last().unwrap();
    for_each_row(&s, &st, offset, |r, off| {
        let out = &mut dst[r * inner..(r + 1) * inner];
        if inner_stride == 1 {
            out.copy_from_slice(&src[off..off + inner]);
        } else {
            for (j, o) in out.iter_mut().enumerate() {
                *o = src[off + j * inner_stride];
            }
        }
    });
}

/// `dst[offset + strided index of i] = src[i]`: writes a contiguous block into a strided view.
pub fn strided_scatter<T: Copy>(src: &[T], dst: &mut [T], offset: usize, shape: &[usize], strides: &[usize]) {
    let (s, st) = collapse(shape, strides);
    let inner = *s.last().unwrap();
    let inner_stride = *st.last().unwrap();
    for_each_row(&s, &st, offset, |r, off| {
        let inp = &src[r * inner..(r + 1) * inner];
        if inner_stride == 1 {
            dst[off..off + inner].copy_from_slice(inp);
        } else {
            for (j, &v) in inp.iter().enumerate() {
                dst[off + j * inner_stride] = v;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn transpose_copy() {
        // 2x3 row-major, read transposed (3x2 with strides [1, 3])
        let src = [0, 1, 2, 3, 4, 5];
        let mut dst = [0; 6];
        strided_copy(&src, 0, &[3, 2], &[1, 3], &mut dst);
        assert_eq!(dst, [0, 3, 1, 4, 2, 5]);
        let mut back = [0; 6];
        strided_scatter(&dst, &mut back, 0, &[3, 2], &[1, 3]);
        assert_eq!(back, src);
    }
    #[test]
    fn collapse_merges() {
        assert_eq!(collapse(&[2, 3, 4], &[12, 4, 1]), (vec![24], vec![1]));
        assert_eq!(collapse(&[2, 1, 4], &[8, 4, 1]), (vec![2, 4], vec![8, 1]));
    }
}
