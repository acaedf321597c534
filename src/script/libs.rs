//! `import "lib/NAME" as x;` resolved from an in-memory set of library sources.
//!
//! Tools are compiled self-contained: every import is resolved once, at compile time, from
//! the `lib/` folders of the script roots, and embedded in the tool's AST. No file is read
//! while a script runs, and no path outside the roots can be named.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

type SharedModule = Shared<Module>;

/// One library module's source.
#[derive(Debug, Clone)]
pub(crate) struct LibSource {
    /// Shown in error positions, e.g. `scripts/lib/guest.rhai`.
    pub origin: String,
    pub text: Arc<str>,
}

/// Library modules by import name (`lib/guest`). Clones share one cache of evaluated
/// modules, so a reload evaluates each library once however many tools import it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Libs {
    modules: BTreeMap<String, LibSource>,
    evaluated: Arc<Mutex<BTreeMap<String, SharedModule>>>,
}

impl Libs {
    pub(crate) fn new(modules: BTreeMap<String, LibSource>) -> Libs {
        Libs {
            modules,
            evaluated: Arc::default(),
        }
    }

    /// One library's source, by import name (`lib/guest`).
    pub(crate) fn source(&self, name: &str) -> Option<&LibSource> {
        self.modules.get(name)
    }

    /// Do both sets hold the same libraries, from the same files with the same text?
    pub(crate) fn same_sources(&self, other: &Libs) -> bool {
        self.modules.len() == other.modules.len()
            && self
                .modules
                .iter()
                .zip(&other.modules)
                .all(|((a, x), (b, y))| a == b && x.origin == y.origin && x.text == y.text)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }
}

/// `lib/guest` or `lib/guest.rhai` → `lib/guest`; anything else is not a library name.
pub(crate) fn import_name(path: &str) -> Option<String> {
    let name = path.strip_suffix(".rhai").unwrap_or(path);
    let rest = name.strip_prefix("lib/")?;
    let ok = !rest.is_empty()
        && rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    ok.then(|| name.to_string())
}

impl ModuleResolver for Libs {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let not_found = || -> Box<EvalAltResult> {
            let known: Vec<&str> = self.names().collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            EvalAltResult::ErrorModuleNotFound(
                format!("{path} (modules are imported by name from lib/ of the script directories, e.g. import \"lib/guest\" as guest; available: {known})"),
                pos,
            )
            .into()
        };
        let name = import_name(path).ok_or_else(not_found)?;
        let lib = self.modules.get(&name).ok_or_else(not_found)?;
        if let Some(m) = self.evaluated.lock().unwrap_or_else(|p| p.into_inner()).get(&name) {
            return Ok(m.clone());
        }
        let mut ast = engine
            .compile(lib.text.as_ref())
            .map_err(|e| EvalAltResult::ErrorInModule(lib.origin.clone(), Box::new(e.into()), pos))?;
        ast.set_source(lib.origin.clone());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| EvalAltResult::ErrorInModule(lib.origin.clone(), e, pos))?;
        let module = Shared::new(module);
        self.evaluated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, module.clone());
        Ok(module)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_is_evaluated_once_per_set() {
        let mut m = BTreeMap::new();
        m.insert(
            "lib/a".to_string(),
            LibSource {
                origin: "a.rhai".into(),
                text: Arc::from("fn one() { 1 }"),
            },
        );
        let libs = Libs::new(m);
        let engine = crate::script::sandbox::engine(Arc::new(|_| {}));
        let first = libs.resolve(&engine, None, "lib/a", Position::NONE).unwrap();
        let again = libs
            .clone()
            .resolve(&engine, None, "lib/a.rhai", Position::NONE)
            .unwrap();
        assert!(Shared::ptr_eq(&first, &again), "clones share the evaluated module");
        let fresh = Libs::new(libs.modules.clone())
            .resolve(&engine, None, "lib/a", Position::NONE)
            .unwrap();
        assert!(!Shared::ptr_eq(&first, &fresh), "a new set (a reload) evaluates again");
    }

    #[test]
    fn only_lib_names() {
        assert_eq!(import_name("lib/guest").as_deref(), Some("lib/guest"));
        assert_eq!(import_name("lib/net/util.rhai").as_deref(), Some("lib/net/util"));
        for bad in [
            "guest",
            "/etc/passwd",
            "lib/../x",
            "lib/",
            "lib//x",
            "../lib/x",
            "lib/a b",
            "lib\\x",
        ] {
            assert_eq!(import_name(bad), None, "{bad}");
        }
    }
}
