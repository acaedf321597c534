//! The Rhai engine every script runs in, with its limits set explicitly.
//!
//! Rhai has no file, network or process functions of its own; scripts get only what the
//! `pve` binding registers. `print`/`debug` go to the log (stdout is the MCP protocol),
//! `eval` does not exist, and `import` reaches only the `lib/` modules of the script roots
//! (resolved at compile time, see `libs`).

use std::sync::{Arc, LazyLock};

use rhai::module_resolvers::DummyModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{Engine, Module, Shared};

type SharedModule = Shared<Module>;

/// Limits, the same in debug and release builds (Rhai's defaults differ between them).
pub mod limits {
    pub const MAX_OPERATIONS: u64 = 5_000_000;
    pub const MAX_CALL_LEVELS: usize = 32;
    pub const MAX_EXPR_DEPTH: usize = 64;
    pub const MAX_FN_EXPR_DEPTH: usize = 32;
    pub const MAX_STRING_SIZE: usize = 4 * 1024 * 1024;
    pub const MAX_ARRAY_SIZE: usize = 100_000;
    pub const MAX_MAP_SIZE: usize = 10_000;
    pub const MAX_MODULES: usize = 32;
    /// `print`/`debug`/`pve::log` lines kept per call; the rest are counted and dropped.
    pub const MAX_LOG_LINES: usize = 200;
    /// Characters kept of one log line.
    pub const MAX_LOG_LINE: usize = 2_000;
}

static STANDARD: LazyLock<SharedModule> = LazyLock::new(|| StandardPackage::new().as_shared_module());

/// Where a script's `print`/`debug` lines go.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// A sandboxed engine. `log` receives `print` and `debug` output.
pub fn engine(log: LogFn) -> Engine {
    let mut e = Engine::new_raw();
    e.register_global_module(STANDARD.clone());
    e.set_max_operations(limits::MAX_OPERATIONS)
        .set_max_call_levels(limits::MAX_CALL_LEVELS)
        .set_max_expr_depths(limits::MAX_EXPR_DEPTH, limits::MAX_FN_EXPR_DEPTH)
        .set_max_string_size(limits::MAX_STRING_SIZE)
        .set_max_array_size(limits::MAX_ARRAY_SIZE)
        .set_max_map_size(limits::MAX_MAP_SIZE)
        .set_max_modules(limits::MAX_MODULES)
        .set_module_resolver(DummyModuleResolver::new());
    e.disable_symbol("eval");
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
        let err = e.run("let s = \"xxxxxxxxxxxxxxxx\"; loop { s += s; }").unwrap_err();
        assert!(err.to_string().contains("Length of string"), "{err}");
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
