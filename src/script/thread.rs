//! Scripts run on threads of their own, with a known stack, never on the runtime's workers
//! or its blocking pool: a script that waits for PVE cannot take a thread the runtime needs
//! to drive that very request. The number of such threads is bounded by the server's call
//! limit (`PVE_MCP_MAX_CALLS`).

use thiserror::Error;

/// Stack of a script thread. Rhai's evaluation is recursive (bounded by the call-level and
/// expression-depth limits), and so are dropping and cloning nested values.
pub const SCRIPT_STACK: usize = 64 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ThreadError {
    #[error("cannot start a script thread ({0}); the machine is short of threads or memory")]
    Spawn(std::io::Error),
    #[error("the script thread ended without an answer")]
    Lost,
}

/// Run `f` on a new script thread and wait for its answer without blocking the runtime.
pub async fn run<T, F>(f: F) -> Result<T, ThreadError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Inside the runtime's context, so that timers and tasks can be made from the thread.
    let rt = tokio::runtime::Handle::try_current().ok();
    std::thread::Builder::new()
        .name("pve-mcp script".into())
        .stack_size(SCRIPT_STACK)
        .spawn(move || {
            let _context = rt.as_ref().map(|h| h.enter());
            let _ = tx.send(f());
        })
        .map_err(ThreadError::Spawn)?;
    rx.await.map_err(|_| ThreadError::Lost)
}
