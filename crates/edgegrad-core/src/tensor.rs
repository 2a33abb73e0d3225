//! The tensor: a strided view (shape, strides, offset) of a shared `Storage`, plus autograd state.
//! Cloning a `Tensor` clones a reference; views (reshape, permute, slice, detach) share storage.

use crate::autograd::GradFn;
use crate::dtype::DType;
use crate::error::Result;
use crate::shape::{check_shape_valid, contiguous_strides, fmt_shape, numel, Shape};
use crate::storage::{Buffer, Storage};
use crate::{bail, ensure};
use crate::storage::{Ref, RefMut};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct Inner {
    pub id: usize,
    pub storage: Rc<Storage>,
    pub dtype: DType,
    pub shape: Shape,
    pub strides: Vec<usize>,
    pub offset: usize,
    pub requires_grad: Cell<bool>,
    pub retains_grad: Cell<bool>,
    pub grad: RefCell<Option<Tensor>>,
    pub grad_fn: RefCell<GradFn>,
}

#[derive(Clone)]
pub struct Tensor(pub(crate) Rc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor(id={}, {} {})", self.id(), self.dtype(), fmt_shape(self.shape()))
    }
}

impl Tensor {
    pub(crate) fn from_parts(storage: Rc<Storage>, shape: Shape, strides: Vec<usize>, offset: usize) -> Tensor {
        let dtype = storage.dtype();
        Tensor(Rc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage,
            dtype,
            shape,
            strides,
            offset,
            requires_grad: Cell::new(false),
            retains_grad: Cell::new(false),
            grad: RefCell::new(None),
            grad_fn: RefCell::new(GradFn::Leaf),
        }))
    }

    pub(crate) fn from_buffer(buf: Buffer, shape: &[usize]) -> Result<Tensor> {
        check_shape_valid(shape)?;
        ensure!(buf.len() == numel(shape), Shape,
            "{} values cannot fill a tensor of shape {} ({} elements)", buf.len(), fmt_shape(shape), numel(shape));
        let strides = contiguous_strides(shape);
        Ok(Tensor::from_parts(Rc::new(Storage::new(buf)), shape.to_vec(), strides, 0))
    }

    pub fn from_f32(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_buffer(Buffer::F32(data), shape)
    }
    pub fn from_i32(data: Vec<i32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_buffer(Buffer::I32(data), shape)
    }
    pub fn from_i8(data: Vec<i8>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_buffer(Buffer::I8(data), shape)
    }
    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_f32(vec![v], &[]).expect("a scalar always fits")
    }

    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        check_shape_valid(shape)?;
        let n = numel(shape);
        let buf = match dtype {
            DType::F32 => {
                let mut v = crate::storage::alloc_f32(n);
                v.fill(value as f32);
                Buffer::F32(v)
            }
            DType::I32 => {
                ensure!(value.fract() == 0.0 && value >= i32::MIN as f64 && value <= i32::MAX as f64, Argument,
                    "{} is not an int32 value", value);
                let mut v = crate::storage::alloc_i32(n);
                v.fill(value as i32);
                Buffer::I32(v)
            }
            DType::I8 => {
                ensure!(value.fract() == 0.0 && (-128.0..=127.0).contains(&value), Argument,
                    "{} is not an int8 value", value);
                let mut v = crate::storage::alloc_i8(n);
                v.fill(value as i8);
                Buffer::I8(v)
            }
        };
        Tensor::from_buffer(buf, shape)
    }
    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype)
    }
    pub fn ones(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 1.0, dtype)
    }
    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape(), self.dtype()).expect("shape of an existing tensor is valid")
    }
    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape(), self.dtype()).expect("shape of an existing tensor is valid")
    }

    /// `start, start+step, ...` up to (excluding) `end`.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        ensure!(step != 0.0 && step.is_finite() && start.is_finite() && end.is_finite(), Argument,
            "arange needs finite bounds and a non-zero step (got start={}, end={}, step={})", start, end, step);
        // The count is checked as a float, before `as usize` could saturate or wrap and before
        // anything is allocated.
        let count = ((end - start) / step).ceil().max(0.0);
        ensure!(count <= crate::shape::MAX_ELEMENTS as f64, Argument,
            "arange({}, {}, {}) would have {} elements, more than the {} a tensor can hold",
            start, end, step, count, crate::shape::MAX_ELEMENTS);
        let n = count as usize;
        if dtype == DType::I32 && n > 0 {
            let last = start + (n - 1) as f64 * step;
            let fits = |v: f64| v >= i32::MIN as f64 && v <= i32::MAX as f64;
            ensure!(fits(start) && fits(last), Argument,
                "arange({}, {}, {}) has values outside the int32 range", start, end, step);
        }
        match dtype {
            DType::F32 => Tensor::from_f32((0..n).map(|i| (start + i as f64 * step) as f32).collect(), &[n]),
            DType::I32 => Tensor::from_i32((0..n).map(|i| (start + i as f64 * step) as i32).collect(), &[n]),
            DType::I8 => bail!(DType, "arange does not produce int8 tensors"),
        }
    }

    pub fn id(&self) -> usize {
        self.0.id
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.0.strides
    }
    pub fn offset(&self) -> usize {
        self.0.offset
    }
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }
    pub fn numel(&self) -> usize {
        numel(&self.0.shape)
    }
    pub fn storage(&self) -> &Rc<Storage> {
        &self.0.storage
    }
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Rc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.rank()).rev() {
            let d = self.0.shape[i];
            if d != 1 && self.0.strides[i] != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// A new tensor over the same storage with another layout (no autograd record).
    pub(crate) fn view_as(&self, shape: Shape, strides: Vec<usize>, offset: usize) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), shape, strides, offset)
    }

    /// Shares storage, drops autograd history.
    pub fn detach(&self) -> Tensor {
        self.view_as(self.0.shape.clone(), self.0.strides.clone(), self.0.offset)
    }

    fn check_dtype(&self, want: DType) -> Result<()> {
        ensure!(self.dtype() == want, DType, "expected a {} tensor, got {}", want, self.dtype());
        Ok(())
    }

    /// The elements of a contiguous f32 tensor.
    pub fn f32s(&self) -> Result<Ref<'_, [f32]>> {
        self.check_dtype(DType::F32)?;
        ensure!(self.is_contiguous(), Internal, "f32s() needs a contiguous tensor");
        let (o, n) = (self.0.offset, self.numel());
        Ok(Ref::map(self.0.storage.borrow(), |b| match b {
            Buffer::F32(v) => &v[o..o + n],
            _ => unreachable!("dtype checked above"),
        }))
    }
    pub fn i32s(&self) -> Result<Ref<'_, [i32]>> {
        self.check_dtype(DType::I32)?;
        ensure!(self.is_contiguous(), Internal, "i32s() needs a contiguous tensor");
        let (o, n) = (self.0.offset, self.numel());
        Ok(Ref::map(self.0.storage.borrow(), |b| match b {
            Buffer::I32(v) => &v[o..o + n],
            _ => unreachable!("dtype checked above"),
        }))
    }
    pub fn i8s(&self) -> Result<Ref<'_, [i8]>> {
        self.check_dtype(DType::I8)?;
        ensure!(self.is_contiguous(), Internal, "i8s() needs a contiguous tensor");
        let (o, n) = (self.0.offset, self.numel());
        Ok(Ref::map(self.0.storage.borrow(), |b| match b {
            Buffer::I8(v) => &v[o..o + n],
            _ => unreachable!("dtype checked above"),
        }))
    }
    /// In-place access to a contiguous f32 tensor (optimizer updates). Bumps the storage version,
    /// so autograd refuses graphs that saved this tensor earlier.
    pub fn f32s_mut(&self) -> Result<RefMut<'_, [f32]>> {
        self.check_dtype(DType::F32)?;
        ensure!(self.is_contiguous(), Argument, "in-place updates need a contiguous tensor");
        let (o, n) = (self.0.offset, self.numel());
        let b = self.0.storage.try_borrow_mut().ok_or_else(|| {
            crate::error::Error::new(crate::error::ErrorKind::Argument,
                "tensor is being read while written in place (an input aliases the output)")
        })?;
        Ok(RefMut::map(b, |b| match b {
            Buffer::F32(v) => &mut v[o..o + n],
            _ => unreachable!("dtype checked above"),
        }))
    }

    /// Copies the elements out in row-major order, as f32 (converting integer dtypes).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let t = self.contiguous_nograd()?;
        Ok(match t.dtype() {
            DType::F32 => t.f32s()?.to_vec(),
            DType::I32 => t.i32s()?.iter().map(|&x| x as f32).collect(),
            DType::I8 => t.i8s()?.iter().map(|&x| x as f32).collect(),
        })
    }
    pub fn to_vec_i32(&self) -> Result<Vec<i32>> {
        let t = self.contiguous_nograd()?;
        let v = t.i32s()?.to_vec();
        Ok(v)
    }
    pub fn to_vec_i8(&self) -> Result<Vec<i8>> {
        let t = self.contiguous_nograd()?;
        let v = t.i8s()?.to_vec();
        Ok(v)
    }
    /// Raw little-endian bytes of the elements in row-major order.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let t = self.contiguous_nograd()?;
        Ok(match t.dtype() {
            DType::F32 => t.f32s()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            DType::I32 => t.i32s()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
            DType::I8 => t.i8s()?.iter().map(|&x| x as u8).collect(),
        })
    }
    pub fn item(&self) -> Result<f32> {
        ensure!(self.numel() == 1, Shape, "item() needs a tensor with one element, got shape {}", fmt_shape(self.shape()));
        Ok(self.to_vec_f32()?[0])
    }

    /// A contiguous copy (or this tensor if already contiguous), outside autograd.
    pub(crate) fn contiguous_nograd(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let n = self.numel();
        let st = self.0.storage.borrow();
        let (shape, strides, off) = (&self.0.shape, &self.0.strides, self.0.offset);
        let buf = match &*st {
            Buffer::F32(v) => {
                let mut out = crate::storage::alloc_f32(n);
                crate::kernels::copy::strided_copy(v, off, shape, strides, &mut out);
                Buffer::F32(out)
            }
            Buffer::I32(v) => {
                let mut out = crate::storage::alloc_i32(n);
                crate::kernels::copy::strided_copy(v, off, shape, strides, &mut out);
                Buffer::I32(out)
            }
            Buffer::I8(v) => {
                let mut out = crate::storage::alloc_i8(n);
                crate::kernels::copy::strided_copy(v, off, shape, strides, &mut out);
                Buffer::I8(out)
            }
        };
        drop(st);
        Tensor::from_buffer(buf, shape)
    }

    // ---- autograd state ----

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.get()
    }
    /// Marks a leaf as a trainable input. Non-leaf tensors get `requires_grad` from their inputs.
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        ensure!(self.is_leaf(), Autograd,
            "requires_grad can only be changed on leaf tensors; use detach() to make a leaf from a result");
        if on {
            self.check_dtype(DType::F32).map_err(|_| crate::error::Error::new(crate::error::ErrorKind::DType,
                format!("only float32 tensors can require gradients, this one is {}", self.dtype())))?;
        }
        self.0.requires_grad.set(on);
        Ok(())
    }
    pub fn is_leaf(&self) -> bool {
        matches!(*self.0.grad_fn.borrow(), GradFn::Leaf)
    }
    /// Keeps the gradient of a non-leaf tensor after backward (for saliency, Grad-CAM...).
    pub fn retain_grad(&self) -> Result<()> {
        ensure!(self.requires_grad(), Autograd, "retain_grad() on a tensor that does not require grad");
        self.0.retains_grad.set(true);
        Ok(())
    }
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }
    pub fn set_grad(&self, g: Option<Tensor>) -> Result<()> {
        if let Some(g) = &g {
            ensure!(g.shape() == self.shape(), Shape, "gradient of shape {} for a tensor of shape {}",
                fmt_shape(g.shape()), fmt_shape(self.shape()));
            ensure!(g.dtype() == DType::F32, DType, "gradients are float32, got {}", g.dtype());
        }
        *self.0.grad.borrow_mut() = g;
        Ok(())
    }
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }
    /// Name of the op that produced this tensor, if it was recorded.
    pub fn grad_fn_name(&self) -> Option<&'static str> {
        match &*self.0.grad_fn.borrow() {
            GradFn::Node(n) => Some(n.name),
            GradFn::Freed(name) => Some(name),
            GradFn::Leaf => None,
        }
    }
}
