//! API paths built from segments, with the hygiene rules of the gate.
//!
//! A script gives a path either as a string (`"/nodes/pve1/qemu/100/status/current"`, split
//! on `/`) or as an array of segments (each taken literally, so a volume id with `/` stays
//! one segment). Every segment is checked here, before the gate classifies the request:
//! no empty segments, no `.`/`..`, no query strings or fragments, no percent-escapes, no
//! control characters or backslashes. Segments are percent-encoded when the URL is built.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    segments: Vec<String>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path must start with '/' (got '{0}')")]
    NotAbsolute(String),
    #[error("the path has an empty segment ('//' or a trailing '/')")]
    EmptySegment,
    #[error("the path segment '{0}' is a relative step; '.' and '..' are not allowed")]
    DotSegment(String),
    #[error(
        "the path segment '{0}' holds '{1}'; query strings, fragments and escapes do not belong in a path (pass parameters as the second argument)"
    )]
    ForbiddenChar(String, char),
    #[error("the path is too long ({0} segments)")]
    TooLong(usize),
}

/// Characters left as they are in a segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@')
    .remove(b'!');

const MAX_SEGMENTS: usize = 32;

impl ApiPath {
    /// `"/nodes/pve1/qemu/100"` → segments. A leading `/api2/json` is accepted and dropped.
    pub fn parse(raw: &str) -> Result<ApiPath, PathError> {
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| PathError::NotAbsolute(raw.chars().take(80).collect()))?;
        let rest = rest.strip_prefix("api2/json/").unwrap_or(rest);
        ApiPath::from_segments(rest.split('/').map(str::to_string).collect())
    }

    pub fn from_segments(segments: Vec<String>) -> Result<ApiPath, PathError> {
        if segments.is_empty() {
            return Err(PathError::Empty);
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(PathError::TooLong(segments.len()));
        }
        for s in &segments {
            check_segment(s)?;
        }
        Ok(ApiPath { segments })
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path as PVE routes it: PVE decodes `%2F` before routing, so a segment holding `/`
    /// (a volume id) is several segments there. The gate classifies this view.
    pub fn routed(&self) -> Vec<String> {
        self.segments
            .iter()
            .flat_map(|s| s.split('/'))
            .map(str::to_string)
            .collect()
    }

    /// The encoded path below `/api2/json`, starting with `/`.
    pub(crate) fn encoded(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            out.extend(utf8_percent_encode(s, SEGMENT));
        }
        out
    }
}

/// The decoded path, for messages, plans and logs.
impl std::fmt::Display for ApiPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.segments {
            write!(f, "/{s}")?;
        }
        Ok(())
    }
}

fn check_segment(s: &str) -> Result<(), PathError> {
    // A segment may hold '/' (volume ids), but PVE splits it there, so every piece must be
    // a proper segment too: no empty pieces, no relative steps.
    for piece in s.split('/') {
        if piece.is_empty() {
            return Err(PathError::EmptySegment);
        }
        if piece == "." || piece == ".." {
            return Err(PathError::DotSegment(piece.to_string()));
        }
    }
    let shown = || s.chars().take(80).collect::<String>();
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '?' | '#' | '%' | '\\') || c.is_control() || c.is_whitespace())
    {
        return Err(PathError::ForbiddenChar(shown(), c));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_and_encodes() {
        let p = ApiPath::parse("/nodes/pve1/qemu/100/status/current").unwrap();
        assert_eq!(p.segments().len(), 6);
        assert_eq!(p.encoded(), "/nodes/pve1/qemu/100/status/current");
        let p = ApiPath::parse("/api2/json/cluster/resources").unwrap();
        assert_eq!(p.to_string(), "/cluster/resources");
        let upid = "UPID:node1:0012EBC1:05E31C50:66C27520:qmstart:100:root@pam!mcp:";
        let p = ApiPath::from_segments(segs(&["nodes", "node1", "tasks", upid, "status"])).unwrap();
        assert_eq!(
            p.encoded(),
            "/nodes/node1/tasks/UPID%3Anode1%3A0012EBC1%3A05E31C50%3A66C27520%3Aqmstart%3A100%3Aroot@pam!mcp%3A/status"
        );
        let vol = ApiPath::from_segments(segs(&[
            "nodes",
            "n",
            "storage",
            "nfs",
            "content",
            "nfs:backup/vzdump-qemu-100.vma.zst",
        ]))
        .unwrap();
        assert!(
            vol.encoded()
                .ends_with("/content/nfs%3Abackup%2Fvzdump-qemu-100.vma.zst")
        );
        assert_eq!(vol.segments()[5], "nfs:backup/vzdump-qemu-100.vma.zst");
    }

    #[test]
    fn refuses_smuggling() {
        let cases = [
            ("", PathError::Empty),
            ("nodes/x", PathError::NotAbsolute("nodes/x".into())),
            ("/nodes//qemu", PathError::EmptySegment),
            ("/nodes/x/", PathError::EmptySegment),
            ("/nodes/../access/users", PathError::DotSegment("..".into())),
            ("/nodes/./x", PathError::DotSegment(".".into())),
            (
                "/cluster/resources?type=vm",
                PathError::ForbiddenChar("resources?type=vm".into(), '?'),
            ),
            (
                "/cluster/resources#x",
                PathError::ForbiddenChar("resources#x".into(), '#'),
            ),
            ("/nodes/%2e%2e/x", PathError::ForbiddenChar("%2e%2e".into(), '%')),
            ("/nodes/a\\b", PathError::ForbiddenChar("a\\b".into(), '\\')),
            ("/nodes/a b", PathError::ForbiddenChar("a b".into(), ' ')),
            ("/nodes/a\nb", PathError::ForbiddenChar("a\nb".into(), '\n')),
        ];
        for (raw, want) in cases {
            assert_eq!(ApiPath::parse(raw).unwrap_err(), want, "{raw:?}");
        }
        assert_eq!(
            ApiPath::from_segments(segs(&["nodes", ".."])).unwrap_err(),
            PathError::DotSegment("..".into())
        );
        // PVE decodes %2F before routing: a '/' inside a segment is a separator there.
        for hidden in ["x/../agent/exec", "a//b", "/lead", "trail/", "./x"] {
            assert!(
                ApiPath::from_segments(segs(&["nodes", "pve1", "qemu", "100", hidden])).is_err(),
                "{hidden}"
            );
        }
        let vol = ApiPath::from_segments(segs(&["nodes", "n", "storage", "s", "content", "s:backup/x.vma"])).unwrap();
        assert_eq!(
            vol.routed(),
            segs(&["nodes", "n", "storage", "s", "content", "s:backup", "x.vma"])
        );
        assert_eq!(ApiPath::parse(&"/a".repeat(40)), Err(PathError::TooLong(40)));
    }
}
