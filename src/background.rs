//! Work nobody is waiting for (warming caches at start) runs at the lowest CPU priority, so
//! that on a machine with few cores it never delays an answer the client is waiting for.

/// Lower the calling thread's CPU priority to the lowest (nice 19). On Linux the nice value
/// is per thread, so the rest of the process keeps its priority; threads started from this
/// one inherit the low priority, so start none that must be prompt. Elsewhere, nothing.
pub(crate) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!("cannot lower the priority of a background thread: {e}");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = rustix::process::getpriority_process(None).unwrap_or(0);
        let lowered = std::thread::spawn(|| {
            super::lower_this_thread();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
        })
        .join()
        .unwrap_or(0);
        assert_eq!(lowered, 19);
        assert_eq!(rustix::process::getpriority_process(None).unwrap_or(0), before);
    }
}
