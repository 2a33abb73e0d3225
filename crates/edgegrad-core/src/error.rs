//! One error type for the whole engine. The `kind` becomes the TypeScript error class at the
//! boundary, so every user-facing failure is typed and names the problem.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Shapes that do not fit the op (broadcasting, matmul inner dims, axes out of range...).
    Shape,
    /// A dtype the op does not accept.
    DType,
    /// A bad option or argument value (negative size, unknown mode, out-of-range index...).
    Argument,
    /// Autograd misuse: backward from a non-scalar, a freed graph, a tensor modified in place.
    Autograd,
    /// A corrupt or inconsistent file or buffer.
    Format,
    /// A bug in edgegrad itself: an invariant that should always hold did not.
    Internal,
    /// An allocation over the memory limit, or one the allocator could not satisfy.
    Memory,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Shape => "ShapeError",
            ErrorKind::DType => "DTypeError",
            ErrorKind::Argument => "ArgumentError",
            ErrorKind::Autograd => "AutogradError",
            ErrorKind::Format => "FormatError",
            ErrorKind::Internal => "InternalError",
            ErrorKind::Memory => "MemoryError",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `bail!(Shape, "...{}", x)` returns an error of that kind from the current function.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::ErrorKind::$kind, format!($($arg)*)))
    };
}

/// `ensure!(cond, Shape, "...")` bails unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $kind:ident, $($arg:tt)*) => {
        if !($cond) { $crate::bail!($kind, $($arg)*); }
    };
}
