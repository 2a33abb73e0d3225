//! Reverse-mode autograd. Every op that has an input requiring grad records a `Node` on its
//! output: the inputs (kept alive by reference) and a backward closure that owns whatever it saved.
//! `backward()` walks the recorded graph in reverse topological order in one call, accumulates
//! gradients, stores them on leaves, and frees the graph unless asked to retain it.

use crate::error::{Error, ErrorKind, Result};
use crate::shape::fmt_shape;
use crate::tensor::Tensor;
use crate::{bail, ensure};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

pub type BackwardFn = dyn Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>;

pub struct Node {
    pub name: &'static str,
    pub inputs: Vec<Tensor>,
    /// `(grad_of_output, which_inputs_need_grad) -> grad per input`.
    pub backward: Box<BackwardFn>,
}

pub enum GradFn {
    Leaf,
    Node(Rc<Node>),
    /// The graph through this tensor was freed by an earlier backward (name of the op kept).
    Freed(&'static str),
}

thread_local! {
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

pub fn is_grad_enabled() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// While alive, ops record nothing (inference, optimizer updates, backward itself).
pub struct NoGradGuard(());
impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
        NoGradGuard(())
    }
}
impl Drop for NoGradGuard {
    fn drop(&mut self) {
        NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

thread_local! {
    /// The part of NO_GRAD_DEPTH opened by the host (`push_no_grad`), which outlives engine calls.
    static HOST_DEPTH: Cell<usize> = const { Cell::new(0) };
}

pub fn push_no_grad() {
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    HOST_DEPTH.with(|d| d.set(d.get() + 1));
}
pub fn pop_no_grad() {
    NO_GRAD_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    HOST_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
}

/// After a trap (see `panic::recover`): drops the no-grad levels of guards the trapped call left
/// behind, keeping the host's own.
pub fn reset_no_grad_after_trap() {
    NO_GRAD_DEPTH.with(|d| d.set(HOST_DEPTH.with(|h| h.get())));
    // An attribution pass's backward rule must not outlive the call that trapped.
    set_backward_rule(BackwardRule::Gradient);
}

/// How nonlinearities pass gradients back, for attribution methods (set by the host around one
/// forward and backward: ops consult it when recording and in their backward).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackwardRule {
    /// The true gradient.
    Gradient,
    /// Guided backpropagation: ReLU also zeroes negative incoming gradients.
    Guided,
    /// DeepLift's rescale rule over a batch stacking inputs (rows [0, N)) over their baselines
    /// (rows [N, 2N)): elementwise nonlinearities pass `Δy / Δx`, max pooling Captum's max-pool rule.
    Rescale,
}

thread_local! {
    static RULE: Cell<BackwardRule> = const { Cell::new(BackwardRule::Gradient) };
}

pub fn backward_rule() -> BackwardRule {
    RULE.with(|r| r.get())
}
pub fn set_backward_rule(rule: BackwardRule) {
    RULE.with(|r| r.set(rule));
}

/// A tensor saved for backward, with the storage version it had when saved.
pub struct Saved {
    t: Tensor,
    version: u32,
}
impl Saved {
    pub fn new(t: &Tensor) -> Saved {
        Saved { t: t.detach(), version: t.storage().version() }
    }
    pub fn get(&self) -> Result<&Tensor> {
        ensure!(self.t.storage().version() == self.version, Autograd,
            "a tensor saved for backward (shape {}) was modified in place after it was used; \
             run backward before updating it", fmt_shape(self.t.shape()));
        Ok(&self.t)
    }
}

/// Attaches a backward node to `out` when autograd is on and some input requires grad.
pub fn record(
    out: Tensor,
    name: &'static str,
    inputs: &[&Tensor],
    backward: impl Fn(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + 'static,
) -> Tensor {
    if !is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
        return out;
    }
    let node = Node { name, inputs: inputs.iter().map(|t| (*t).clone()).collect(), backward: Box::new(backward) };
    out.0.requires_grad.set(true);
    *out.0.grad_fn.borrow_mut() = GradFn::Node(Rc::new(node));
    out
}

/// True when an op would record a node for these inputs (lets ops skip saving tensors otherwise).
pub fn will_record(inputs: &[&Tensor]) -> bool {
    is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
}

fn node_of(t: &Tensor) -> Result<Option<Rc<Node>>> {
    match &*t.0.grad_fn.borrow() {
        GradFn::Leaf => Ok(None),
        GradFn::Node(n) => Ok(Some(n.clone())),
        GradFn::Freed(name) => Err(Error::new(ErrorKind::Autograd, format!(
            "the graph through '{}' was already freed by an earlier backward(); \
             pass retainGraph to backward() to run it twice", name))),
    }
}

/// A gradient that owns its storage, so in-place updates of one `.grad` never touch another.
fn owned(g: Tensor) -> Result<Tensor> {
    if g.is_contiguous() && g.offset() == 0 && Rc::strong_count(g.storage()) == 1 && g.storage().len() == g.numel() {
        Ok(g)
    } else {
        crate::ops::copy(&g)
    }
}

fn accumulate_into_grad(t: &Tensor, g: Tensor) -> Result<()> {
    let new = match t.grad() {
        Some(old) => crate::ops::add(&old, &g)?,
        None => owned(g)?,
    };
    *t.0.grad.borrow_mut() = Some(new);
    Ok(())
}

/// Backpropagates from `root`. Without `grad`, `root` must hold one element (gradient 1).
pub fn backward(root: &Tensor, grad: Option<Tensor>, retain_graph: bool) -> Result<()> {
    ensure!(root.requires_grad(), Autograd,
        "backward() on a tensor that does not require grad (no input had requiresGrad, or it was computed under noGrad)");
    let g0 = match grad {
        Some(g) => {
            ensure!(g.shape() == root.shape(), Shape, "backward() gradient has shape {} but the tensor has shape {}",
                fmt_shape(g.shape()), fmt_shape(root.shape()));
            g
        }
        None => {
            ensure!(root.numel() == 1, Autograd,
                "backward() without a gradient needs a scalar, got shape {}; reduce it (sum/mean) first",
                fmt_shape(root.shape()));
            root.ones_like()
        }
    };

    // Post-order DFS: every tensor comes after all tensors computed from it... reversed below.
    let mut order: Vec<Tensor> = Vec::new();
    let mut visited: HashSet<usize> = HashSet::new();
    let mut stack: Vec<(Tensor, Option<Rc<Node>>, usize)> = Vec::new();
    visited.insert(root.id());
    stack.push((root.clone(), node_of(root)?, 0));
    while let Some((t, node, i)) = stack.pop() {
        if let Some(n) = &node {
            if i < n.inputs.len() {
                let inp = n.inputs[i].clone();
                stack.push((t, node.clone(), i + 1));
                if inp.requires_grad() && visited.insert(inp.id()) {
                    let inode = node_of(&inp)?;
                    stack.push((inp, inode, 0));
                }
                continue;
            }
        }
        order.push(t);
    }

    let _guard = NoGradGuard::new();
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    grads.insert(root.id(), g0);
    for t in order.iter().rev() {
        let Some(g) = grads.remove(&t.id()) else { continue };
        let node = node_of(t)?;
        match node {
            None => accumulate_into_grad(t, g)?,
            Some(n) => {
                if t.0.retains_grad.get() {
                    accumulate_into_grad(t, g.clone())?;
                }
                let needs: Vec<bool> = n.inputs.iter().map(|x| x.requires_grad()).collect();
                let input_grads = (n.backward)(&g, &needs)?;
                ensure!(input_grads.len() == n.inputs.len(), Internal,
                    "backward of '{}' returned {} gradients for {} inputs", n.name, input_grads.len(), n.inputs.len());
                for ((inp, gi), need) in n.inputs.iter().zip(input_grads).zip(needs) {
                    let Some(gi) = gi else { continue };
                    if !need {
                        continue;
                    }
                    if gi.shape() != inp.shape() {
                        bail!(Internal, "backward of '{}' gave a gradient of shape {} for an input of shape {}",
                            n.name, fmt_shape(gi.shape()), fmt_shape(inp.shape()));
                    }
                    let merged = match grads.remove(&inp.id()) {
                        Some(prev) => crate::ops::add(&prev, &gi)?,
                        None => gi,
                    };
                    grads.insert(inp.id(), merged);
                }
            }
        }
    }

    if !retain_graph {
        for t in &order {
            let name = match &*t.0.grad_fn.borrow() {
                GradFn::Node(n) => Some(n.name),
                _ => None,
            };
            if let Some(name) = name {
                *t.0.grad_fn.borrow_mut() = GradFn::Freed(name);
            }
        }
    }
    Ok(())
}
