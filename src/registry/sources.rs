//! Where script sources come from: the built-ins compiled into the binary, and user
//! directories. In a directory, top-level `*.rhai` files are tools and `lib/**/*.rhai`
//! files are library modules; everything else is ignored.

use std::path::Path;
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/builtin_scripts.rs"));
}

/// The origin of a built-in script: `builtin:` and its path below `scripts/`.
pub(crate) const BUILTIN_ORIGIN: &str = "builtin:";

/// Largest script file read; a bigger one is reported and skipped.
pub(crate) const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    /// Path below the root with `/` separators: `pve_vm_status.rhai`, `lib/guest.rhai`.
    pub rel: String,
    /// Shown to users: `builtin:pve_vm_status.rhai` or the file's path.
    pub origin: String,
    pub text: Arc<str>,
}

impl SourceFile {
    /// `Some(tool name)` for a top-level script.
    pub(crate) fn tool_name(&self) -> Option<&str> {
        let stem = self.rel.strip_suffix(".rhai")?;
        (!stem.contains('/')).then_some(stem)
    }

    /// `Some("lib/x")` for a library module.
    pub(crate) fn lib_name(&self) -> Option<String> {
        crate::script::libs::import_name(&self.rel)
    }
}

pub(crate) fn builtin() -> Vec<SourceFile> {
    embedded::BUILTIN_SCRIPTS
        .iter()
        .map(|(rel, text)| SourceFile {
            rel: rel.to_string(),
            origin: format!("{BUILTIN_ORIGIN}{rel}"),
            text: Arc::from(*text),
        })
        .collect()
}

/// A file that could not be read.
#[derive(Debug, Clone)]
pub(crate) struct ReadProblem {
    pub origin: String,
    pub message: String,
}

/// Read a user directory's tools and libraries.
pub(crate) fn read_dir(dir: &Path) -> std::io::Result<(Vec<SourceFile>, Vec<ReadProblem>)> {
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
        match read_script(&path, &meta) {
            Ok(text) => files.push(SourceFile {
                rel,
                origin,
                text: Arc::from(text),
            }),
            Err(message) => problems.push(ReadProblem { origin, message }),
        }
    }
    Ok(())
}

/// Read one script: a regular file (a symlink counts if it leads to one), at most
/// [`MAX_SCRIPT_BYTES`]. A FIFO, a device or a socket is never opened: opening a FIFO would
/// block until a writer came, and a device like `/dev/zero` never ends.
fn read_script(path: &Path, meta: &std::fs::Metadata) -> Result<String, String> {
    use std::io::Read;
    if !meta.is_file() {
        return Err("is not a regular file (a FIFO, device or socket?); skipped".into());
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(format!("is larger than {MAX_SCRIPT_BYTES} bytes; skipped"));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    // It may have been replaced since it was looked at.
    let now = file.metadata().map_err(|e| format!("cannot be read: {e}"))?;
    if !now.is_file() {
        return Err("is not a regular file; skipped".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(format!("is larger than {MAX_SCRIPT_BYTES} bytes; skipped"));
    }
    String::from_utf8(bytes).map_err(|_| "is not UTF-8 text; skipped".into())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ok.rhai"), "fn run(a) { 1 }").unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.rhai")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("ok.rhai"), dir.path().join("link.rhai")).unwrap();
        std::fs::write(dir.path().join("big.rhai"), vec![b' '; MAX_SCRIPT_BYTES as usize + 1]).unwrap();
        let (files, problems) = read_dir(dir.path()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(names, ["link.rhai", "ok.rhai"]);
        let mut bad: Vec<String> = problems.iter().map(|p| format!("{} {}", p.origin, p.message)).collect();
        bad.sort();
        assert!(bad[0].contains("big.rhai is larger than"), "{bad:?}");
        assert!(bad[1].contains("zero.rhai is not a regular file"), "{bad:?}");
    }
}
