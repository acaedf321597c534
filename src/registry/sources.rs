//! Where script sources come from: the built-ins compiled into the binary, and user
//! directories. In a directory, top-level `*.rhai` files are tools and `lib/**/*.rhai`
//! files are library modules; everything else is ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_scripts.rs"));
}

/// Largest script file read; a bigger one is reported and skipped.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path below the root with `/` separators: `pve_vm_status.rhai`, `lib/guest.rhai`.
    pub rel: String,
    /// Shown to users: `builtin:pve_vm_status.rhai` or the file's path.
    pub origin: String,
    pub text: Arc<str>,
}

impl SourceFile {
    /// `Some(tool name)` for a top-level script.
    pub fn tool_name(&self) -> Option<&str> {
        let stem = self.rel.strip_suffix(".rhai")?;
        (!stem.contains('/')).then_some(stem)
    }

    /// `Some("lib/x")` for a library module.
    pub fn lib_name(&self) -> Option<String> {
        crate::script::libs::import_name(&self.rel)
    }
}

/// Where one set of scripts comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    Builtin,
    Dir(PathBuf),
}

pub fn builtin() -> Vec<SourceFile> {
    embedded::BUILTIN_SCRIPTS
        .iter()
        .map(|(rel, text)| SourceFile {
            rel: rel.to_string(),
            origin: format!("builtin:{rel}"),
            text: Arc::from(*text),
        })
        .collect()
}

/// A file that could not be read.
#[derive(Debug, Clone)]
pub struct ReadProblem {
    pub origin: String,
    pub message: String,
}

/// Read a user directory's tools and libraries.
pub fn read_dir(dir: &Path) -> std::io::Result<(Vec<SourceFile>, Vec<ReadProblem>)> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    collect(dir, dir, &mut files, &mut problems, 0)?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((files, problems))
}

fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<SourceFile>,
    problems: &mut Vec<ReadProblem>,
    depth: usize,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else { continue };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            // Only lib/ (and folders inside it) hold modules.
            let in_lib = rel == "lib" || rel.starts_with("lib/");
            if in_lib && depth < 8 {
                collect(root, &path, files, problems, depth + 1)?;
            }
            continue;
        }
        let is_script = path.extension().is_some_and(|e| e == "rhai");
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !is_script || hidden {
            continue;
        }
        let origin = path.display().to_string();
        if meta.len() > MAX_SCRIPT_BYTES {
            problems.push(ReadProblem {
                origin,
                message: format!("larger than {MAX_SCRIPT_BYTES} bytes; skipped"),
            });
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(SourceFile {
                rel,
                origin,
                text: Arc::from(text),
            }),
            Err(e) => problems.push(ReadProblem {
                origin,
                message: format!("cannot be read: {e}"),
            }),
        }
    }
    Ok(())
}
