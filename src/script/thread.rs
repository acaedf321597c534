//! Scripts run on threads of their own, with a known stack, never on the runtime's workers
//! or its blocking pool: a script that waits for PVE cannot take a thread the runtime needs
//! to drive that very request. The number of such threads is bounded by the server's call
//! limit (`PVE_MCP_MAX_CALLS`): each runs one call at a time.
//!
//! A script thread that finished its call waits [`IDLE_EXIT`] for the next one before it
//! ends. Starting a thread with a stack this large costs about a fifth of a millisecond
//! (the C library keeps no such stack for reuse), most of what a call to a fast PVE costs
//! the server otherwise. What a call leaves on the thread is its own business: the memory
//! budget counts from where each call starts, the nested-call chain is cleared when its
//! outermost call returns, and the runtime context is entered per call.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use thiserror::Error;

/// Stack of a script thread. Rhai's evaluation is recursive (bounded by the call-level and
/// expression-depth limits), and so are dropping and cloning nested values.
pub(crate) const SCRIPT_STACK: usize = 64 * 1024 * 1024;

/// How long an idle script thread waits for another call before it ends.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub(crate) enum ThreadError {
    #[error("cannot start a script thread ({0}); the machine is short of threads or memory")]
    Spawn(std::io::Error),
    #[error("the script thread ended without an answer")]
    Lost,
}

type Job = Box<dyn FnOnce() + Send>;

/// An idle script thread: its number and where to send it the next job.
struct Idle {
    id: u64,
    jobs: Sender<Job>,
}

struct Pool {
    idle: Vec<Idle>,
    next_id: u64,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    idle: Vec::new(),
    next_id: 0,
});

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run `f` on a script thread and wait for its answer without blocking the runtime.
pub(crate) async fn run<T, F>(f: F) -> Result<T, ThreadError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Inside the runtime's context, so that timers and tasks can be made from the thread.
    let rt = tokio::runtime::Handle::try_current().ok();
    let job: Job = Box::new(move || {
        let _context = rt.as_ref().map(|h| h.enter());
        let _ = tx.send(f());
    });
    submit(job)?;
    rx.await.map_err(|_| ThreadError::Lost)
}

/// Hand the job to an idle script thread, or start one for it.
fn submit(mut job: Job) -> Result<(), ThreadError> {
    loop {
        let Some(idle) = pool().idle.pop() else { break };
        match idle.jobs.send(job) {
            Ok(()) => return Ok(()),
            // That thread ended (it panicked in its last call); try the next.
            Err(mpsc::SendError(back)) => job = back,
        }
    }
    let id = {
        let mut p = pool();
        p.next_id += 1;
        p.next_id
    };
    std::thread::Builder::new()
        .name("pve-mcp script".into())
        .stack_size(SCRIPT_STACK)
        .spawn(move || serve(id, job))
        .map(drop)
        .map_err(ThreadError::Spawn)
}

/// A script thread: run the job, then offer itself for the next one until none comes.
fn serve(id: u64, first: Job) {
    let (tx, rx) = mpsc::channel::<Job>();
    let mut job = first;
    super::rows::defer_frees_on_this_thread();
    loop {
        let before = super::budget::allocated();
        job();
        // The answer is on its way: what the call let go of is freed now, and after a large
        // call the memory goes back to the system.
        super::rows::free_deferred();
        crate::heap::trim_after(before);
        pool().idle.push(Idle { id, jobs: tx.clone() });
        job = match rx.recv_timeout(IDLE_EXIT) {
            Ok(next) => next,
            Err(RecvTimeoutError::Timeout) => {
                let mut p = pool();
                match p.idle.iter().position(|i| i.id == id) {
                    Some(at) => {
                        p.idle.swap_remove(at);
                        return;
                    }
                    // A caller took this thread just now; its job is on the way.
                    None => {
                        drop(p);
                        match rx.recv() {
                            Ok(next) => next,
                            Err(_) => return,
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
    }
}

/// Script threads waiting for a call.
#[cfg(test)]
fn idle_threads() -> usize {
    pool().idle.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_finished_thread_runs_the_next_call() {
        let first = run(|| std::thread::current().id()).await.unwrap();
        // The thread offers itself right after answering; give it that moment.
        for _ in 0..100 {
            if idle_threads() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = run(|| std::thread::current().id()).await.unwrap();
        assert_eq!(first, second);
        // Concurrent calls get threads of their own.
        let (a, b) = tokio::join!(
            run(|| {
                std::thread::sleep(Duration::from_millis(50));
                std::thread::current().id()
            }),
            run(|| {
                std::thread::sleep(Duration::from_millis(50));
                std::thread::current().id()
            })
        );
        assert_ne!(a.unwrap(), b.unwrap());
        // The runtime's context is there, and a panic loses only its own answer.
        assert!(run(|| tokio::runtime::Handle::try_current().is_ok()).await.unwrap());
        assert!(matches!(run(|| -> () { panic!("boom") }).await, Err(ThreadError::Lost)));
        assert_eq!(run(|| 7).await.unwrap(), 7);
    }
}
