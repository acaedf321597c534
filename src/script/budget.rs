//! Memory budgets for scripts: every thread counts the bytes it has allocated and not freed.
//!
//! The binary installs [`CountingAllocator`] as its global allocator. A script runs on a
//! thread of its own, so what that thread holds is what the script holds; the engine's
//! progress callback compares it with the call's budget after every operation and stops the
//! script when it is over. One operation can overshoot by its own allocation (at most the
//! size of the largest value it builds). Without the allocator (unit tests, examples) every
//! budget reads zero and never stops anything.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread.
    static NET: Cell<i64> = const { Cell::new(0) };
    /// Bytes this thread has asked for in all, freed or not (see [`allocated`]).
    static ASKED: Cell<u64> = const { Cell::new(0) };
}

fn add(delta: i64) {
    // A const-initialised Cell has no destructor, so this works even while a thread exits.
    let _ = NET.try_with(|n| n.set(n.get().wrapping_add(delta)));
    if delta > 0 {
        let _ = ASKED.try_with(|n| n.set(n.get().wrapping_add(delta as u64)));
    }
}

/// Bytes the current thread has allocated since it started, freed or not: how much work a
/// stretch of code did with the heap (zero without [`CountingAllocator`]).
pub(crate) fn allocated() -> u64 {
    ASKED.try_with(Cell::get).unwrap_or(0)
}

fn net() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// mimalloc, counting per thread. mimalloc rather than the C library's allocator: a
/// 1,000-guest listing, which allocates and frees hundreds of thousands of small values,
/// costs 40 % less CPU with it.
pub struct CountingAllocator;

// SAFETY: every method forwards to `MiMalloc` with the same arguments; the counting touches
// only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `MiMalloc` shares.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `MiMalloc`, with `layout`.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// The memory budget of the code running on this thread from now on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    start: i64,
    limit: usize,
}

impl Budget {
    /// Start counting on the current thread.
    pub(crate) fn start(limit: usize) -> Budget {
        Budget { start: net(), limit }
    }

    #[cfg(test)]
    fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held since [`Budget::start`], on the current thread.
    pub(crate) fn used(&self) -> usize {
        usize::try_from(net().wrapping_sub(self.start)).unwrap_or(0)
    }

    pub(crate) fn exceeded(&self) -> bool {
        self.used() > self.limit
    }
}

thread_local! {
    /// The budget of the script running on this thread, if any.
    static ACTIVE: Cell<Option<Budget>> = const { Cell::new(None) };
}

/// While the guard lives, `limit` bytes is the budget of what runs on this thread.
pub(crate) fn enter(limit: usize) -> ActiveBudget {
    let previous = ACTIVE
        .try_with(|a| a.replace(Some(Budget::start(limit))))
        .ok()
        .flatten();
    ActiveBudget { previous }
}

/// Restores the previous budget of the thread when dropped.
pub(crate) struct ActiveBudget {
    previous: Option<Budget>,
}

impl Drop for ActiveBudget {
    fn drop(&mut self) {
        let _ = ACTIVE.try_with(|a| a.set(self.previous));
    }
}

/// The current thread's budget, if a script runs on it.
pub(crate) fn active() -> Option<Budget> {
    ACTIVE.try_with(Cell::get).ok().flatten()
}

/// Is the current thread over its budget?
pub(crate) fn exceeded() -> bool {
    active().is_some_and(|b| b.exceeded())
}

/// Bytes the current thread may still allocate (unbounded without a budget).
pub(crate) fn remaining() -> usize {
    active().map_or(usize::MAX, |b| b.limit.saturating_sub(b.used()))
}

/// Count `bytes` made on another thread as held by this one (a PVE answer a script keeps
/// as it came), until [`release`] gives them back.
pub(crate) fn charge(bytes: usize) {
    add(i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// Give back what [`charge`] counted.
pub(crate) fn release(bytes: usize) {
    add(-i64::try_from(bytes).unwrap_or(i64::MAX));
}

/// Run `f` as if on another thread: what it allocates (and frees) is not counted on this
/// one. A PVE answer is decoded so, on the script's thread: what it becomes is charged by
/// whoever keeps it (a script value copied from it, or [`super::rows::Rows`] by estimate),
/// and dropped with [`drop_foreign`], like every value made elsewhere.
pub(crate) fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    let before = net();
    let out = f();
    let made = net().wrapping_sub(before);
    add(made.wrapping_neg());
    out
}

/// Drop a value that was allocated on another thread without crediting its bytes to this
/// thread's budget (they were never counted here).
pub(crate) fn drop_foreign<T>(value: T) {
    let before = net();
    drop(value);
    let freed = before.wrapping_sub(net());
    add(freed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_allocator_budgets_read_zero() {
        let b = Budget::start(10);
        let v = vec![0u8; 1 << 20];
        assert_eq!(b.used(), 0);
        assert!(!b.exceeded());
        drop_foreign(v);
        assert_eq!(b.limit(), 10);
    }
}
