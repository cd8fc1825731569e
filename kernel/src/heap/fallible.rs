//! Fallible collection helpers: what `push`, `insert` and `collect` do, but a heap that
//! cannot serve the request gives an error instead of ending in `handle_alloc_error`.
//! Every path an outside event drives uses these (or `try_reserve` directly).

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

use crate::mm::error::{AllocKind, MmError};

impl From<TryReserveError> for MmError {
    fn from(_: TryReserveError) -> Self {
        MmError::NoMemory(AllocKind::Heap)
    }
}

/// `Vec` operations that report a failed allocation.
pub trait TryVec<T> {
    /// `push`, or an error with the vector unchanged.
    fn try_push(&mut self, value: T) -> Result<(), MmError>;
    /// `insert`, or an error with the vector unchanged.
    fn try_insert(&mut self, index: usize, value: T) -> Result<(), MmError>;
}

impl<T> TryVec<T> for Vec<T> {
    fn try_push(&mut self, value: T) -> Result<(), MmError> {
        self.try_reserve(1)?;
        self.push(value);
        Ok(())
    }

    fn try_insert(&mut self, index: usize, value: T) -> Result<(), MmError> {
        self.try_reserve(1)?;
        self.insert(index, value);
        Ok(())
    }
}

/// Collects `items` into a new vector, or an error (nothing leaked) if the heap refuses.
pub fn try_collect<T>(items: impl IntoIterator<Item = T>) -> Result<Vec<T>, MmError> {
    let items = items.into_iter();
    let mut out = Vec::new();
    out.try_reserve(items.size_hint().0)?;
    for item in items {
        out.try_push(item)?;
    }
    Ok(out)
}
