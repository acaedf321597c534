//! The Rhai engine every script runs in, with its limits set explicitly.
//!
//! Rhai has no file, network or process functions of its own; scripts get only what the
//! `pve` binding registers. `print`/`debug` go to the log (stdout is the MCP protocol),
//! `eval` does not exist, and `import` reaches only the `lib/` modules of the script roots
//! (resolved at compile time, see `libs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{Engine, Module, Shared};

type SharedModule = Shared<Module>;

/// Limits, the same in debug and release builds (Rhai's defaults differ between them).
pub(crate) mod limits {
    pub(crate) const MAX_OPERATIONS: u64 = 5_000_000;
    pub(crate) const MAX_CALL_LEVELS: usize = 32;
    pub(crate) const MAX_EXPR_DEPTH: usize = 64;
    pub(crate) const MAX_FN_EXPR_DEPTH: usize = 32;
    /// Rhai's string, array and map limits are off (0). They measure the whole tree of a
    /// value after every operation that returns or changes one, which makes building a large
    /// listing quadratic and refuses inventories (10,000 guests), while map keys escape them.
    /// Memory is bounded instead by the call's budget (`PVE_MCP_SCRIPT_MEMORY`, see
    /// `budget`), checked after every operation, and results by `PVE_MCP_MAX_RESULT_BYTES`.
    pub(crate) const MAX_STRING_SIZE: usize = 0;
    pub(crate) const MAX_ARRAY_SIZE: usize = 0;
    pub(crate) const MAX_MAP_SIZE: usize = 0;
    pub(crate) const MAX_MODULES: usize = 32;
    /// `print`/`debug`/`pve::log` lines kept per call; the rest are counted and dropped.
    pub(crate) const MAX_LOG_LINES: usize = 200;
    /// Characters kept of one log line.
    pub(crate) const MAX_LOG_LINE: usize = 2_000;
}

/// A module every engine shares, built once. The first to need it builds it; a caller that
/// finds it still being built (by the warm-up at start, which runs at the lowest priority)
/// builds a copy of its own instead of waiting for that thread.
struct SharedOnce {
    cell: OnceLock<SharedModule>,
    started: AtomicBool,
    build: fn() -> SharedModule,
}

impl SharedOnce {
    const fn new(build: fn() -> SharedModule) -> SharedOnce {
        SharedOnce {
            cell: OnceLock::new(),
            started: AtomicBool::new(false),
            build,
        }
    }

    fn get(&self) -> SharedModule {
        if let Some(m) = self.cell.get() {
            return m.clone();
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            return self.cell.get_or_init(self.build).clone();
        }
        self.cell.get().cloned().unwrap_or_else(self.build)
    }
}

static STANDARD: SharedOnce = SharedOnce::new(|| StandardPackage::new().as_shared_module());

/// The bounded replacements of [`bounded_growth`], built and indexed once.
static BOUNDED: SharedOnce = SharedOnce::new(|| {
    let mut m = Module::new();
    bounded_growth(&mut m);
    m.build_index();
    m.into()
});

/// Where a script's `print`/`debug` lines go.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// A sandboxed engine. `log` receives `print` and `debug` output.
pub fn engine(log: LogFn) -> Engine {
    let mut e = Engine::new_raw();
    e.register_global_module(STANDARD.get());
    // Registered after the standard package, so its functions are found first.
    e.register_global_module(BOUNDED.get());
    e.set_max_operations(limits::MAX_OPERATIONS)
        .set_max_call_levels(limits::MAX_CALL_LEVELS)
        .set_max_expr_depths(limits::MAX_EXPR_DEPTH, limits::MAX_FN_EXPR_DEPTH)
        .set_max_string_size(limits::MAX_STRING_SIZE)
        .set_max_array_size(limits::MAX_ARRAY_SIZE)
        .set_max_map_size(limits::MAX_MAP_SIZE)
        .set_max_modules(limits::MAX_MODULES)
        .set_module_resolver(DummyModuleResolver::new());
    e.disable_symbol("eval");
    super::parse_limits::install(&mut e);
    let print_log = log.clone();
    e.on_print(move |s| print_log(s));
    e.on_debug(move |s, src, pos| {
        let at = match (src, pos.line()) {
            (Some(src), Some(line)) => format!("{src}:{line}: "),
            _ => String::new(),
        };
        log(&format!("{at}{s}"))
    });
    e
}

/// The standard functions that allocate in proportion to a number they are given (`pad`,
/// `blob(n)`), replaced by ones that stop at the thread's memory budget instead of asking
/// the system for more than it has. A global module registered after the standard package
/// takes precedence over it.
fn bounded_growth(e: &mut Module) {
    use rhai::{Array, Blob, Dynamic, EvalAltResult, INT, ImmutableString, Position};
    type Res<T> = Result<T, Box<EvalAltResult>>;
    fn too_large(what: &str) -> Box<EvalAltResult> {
        EvalAltResult::ErrorDataTooLarge(
            format!("{what} (over the call's memory budget, PVE_MCP_SCRIPT_MEMORY)"),
            Position::NONE,
        )
        .into()
    }
    /// Grow by `count` items of `item_bytes` each, checking the budget as it goes.
    fn grow(count: usize, item_bytes: usize, what: &str, mut push: impl FnMut()) -> Res<()> {
        if count.saturating_mul(item_bytes) > super::budget::remaining() {
            return Err(too_large(what));
        }
        for i in 0..count {
            push();
            if i % 1024 == 1023 && super::budget::exceeded() {
                return Err(too_large(what));
            }
        }
        Ok(())
    }
    fn want(len: INT) -> usize {
        usize::try_from(len).unwrap_or(0)
    }
    e.set_native_fn("pad", |a: &mut Array, len: INT, item: Dynamic| -> Res<()> {
        let n = want(len).saturating_sub(a.len());
        a.try_reserve(n.min(1 << 20)).map_err(|_| too_large("Size of array"))?;
        grow(n, std::mem::size_of::<Dynamic>(), "Size of array", || {
            a.push(item.clone())
        })
    });
    e.set_native_fn("pad", |b: &mut Blob, len: INT, value: INT| -> Res<()> {
        let n = want(len).saturating_sub(b.len());
        grow(n, 1, "Size of BLOB", || b.push(value as u8))
    });
    e.set_native_fn("blob", |len: INT| -> Res<Blob> {
        let mut b = Blob::new();
        grow(want(len), 1, "Size of BLOB", || b.push(0))?;
        Ok(b)
    });
    e.set_native_fn("blob", |len: INT, value: INT| -> Res<Blob> {
        let mut b = Blob::new();
        grow(want(len), 1, "Size of BLOB", || b.push(value as u8))?;
        Ok(b)
    });
    e.set_native_fn("pad", |s: &mut ImmutableString, len: INT, ch: char| -> Res<()> {
        let n = want(len).saturating_sub(s.chars().count());
        let p = s.make_mut();
        grow(n, ch.len_utf8(), "Length of string", || p.push(ch))
    });
    e.set_native_fn(
        "pad",
        |s: &mut ImmutableString, len: INT, fill: ImmutableString| -> Res<()> {
            let have = s.chars().count();
            let target = want(len);
            if target <= have || fill.is_empty() {
                return Ok(());
            }
            let p = s.make_mut();
            let mut chars = fill.chars().cycle();
            grow(target - have, 1, "Length of string", || {
                if let Some(c) = chars.next() {
                    p.push(c);
                }
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    static RELEASE: AtomicBool = AtomicBool::new(false);

    /// The first build waits for [`RELEASE`]; later ones do not.
    fn slow_first() -> SharedModule {
        if BUILDS.fetch_add(1, Ordering::SeqCst) == 0 {
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Module::new().into()
    }

    #[test]
    fn a_module_being_built_elsewhere_is_not_waited_for() {
        static SLOW: SharedOnce = SharedOnce::new(slow_first);
        let builder = std::thread::spawn(|| SLOW.get());
        while BUILDS.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(SLOW.get());
        });
        let own = rx.recv_timeout(Duration::from_secs(10));
        RELEASE.store(true, Ordering::SeqCst);
        assert!(own.is_ok(), "the second caller waited for the first one's build");
        assert_eq!(BUILDS.load(Ordering::SeqCst), 2);
        assert!(builder.join().is_ok());
        // Built once for good: later callers share it.
        let _ = SLOW.get();
        assert_eq!(BUILDS.load(Ordering::SeqCst), 2);
    }

    fn quiet() -> Engine {
        engine(Arc::new(|_| {}))
    }

    #[test]
    fn eval_is_a_compile_error() {
        let err = quiet().compile("let x = eval(\"1+1\");").unwrap_err();
        assert!(err.to_string().contains("eval"), "{err}");
    }

    #[test]
    fn limits_hold() {
        let e = quiet();
        let err = e.run("loop { }").unwrap_err();
        assert!(err.to_string().contains("Too many operations"), "{err}");
        let err = e.run("fn f(n) { f(n + 1) } f(0);").unwrap_err();
        assert!(err.to_string().to_lowercase().contains("stack overflow"), "{err}");
        let err = e.run("import \"/etc/passwd\" as p;").unwrap_err();
        assert!(err.to_string().contains("Module not found"), "{err}");
    }

    #[test]
    fn print_goes_to_the_log() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let e = engine(Arc::new(move |s| sink.lock().unwrap().push(s.to_string())));
        e.run("print(\"hello\"); debug(42);").unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(lines[0], "hello");
        assert!(lines[1].ends_with("42"));
    }
}
