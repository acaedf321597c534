//! Giving freed heap memory back to the system after work that used a lot of it.
//!
//! The allocator keeps what a program frees for its next allocations, and gives it back only
//! when it is next busy: after a listing of 1,000 guests, megabytes of freed memory stay in
//! the server's resident set while it waits for the next call. After a stretch of code that
//! allocated at least [`HEAVY`] bytes, or a large answer written, [`release_free_memory`]
//! hands the free pages back, at most once per [`MIN_INTERVAL`]: collecting a large heap
//! costs time (and the pages fault back in when used again), so a stream of large listings
//! pays for one collection a second, not one per call, and light work (a guest's status)
//! never pays for it.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::script::budget;

/// Bytes allocated by one stretch of work past which its freed memory is given back.
pub(crate) const HEAVY: u64 = 1 << 20;

/// The shortest time between two collections on one thread.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);

thread_local! {
    /// When this thread last collected its heap.
    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Give freed memory back if the current thread allocated at least [`HEAVY`] bytes since
/// `since` (a reading of [`budget::allocated`]).
pub(crate) fn trim_after(since: u64) {
    if budget::allocated().wrapping_sub(since) >= HEAVY {
        release_free_memory();
    }
}

/// Return the free pages of this thread's heap to the system (mimalloc keeps a heap per
/// thread), unless this thread did so less than [`MIN_INTERVAL`] ago.
pub(crate) fn release_free_memory() {
    let now = Instant::now();
    let due = LAST
        .try_with(|last| {
            let due = last.get().is_none_or(|at| now.duration_since(at) >= MIN_INTERVAL);
            if due {
                last.set(Some(now));
            }
            due
        })
        .unwrap_or(false);
    if due {
        // SAFETY: mi_collect takes no pointer; it may be called from any thread at any
        // time, and only returns memory no allocation holds.
        unsafe { libmimalloc_sys::mi_collect(true) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_are_at_least_an_interval_apart() {
        release_free_memory();
        let first = LAST.with(Cell::get);
        assert!(first.is_some());
        release_free_memory();
        assert_eq!(
            LAST.with(Cell::get),
            first,
            "a second collection at once was not skipped"
        );
    }
}
