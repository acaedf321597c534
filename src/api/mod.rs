//! The PVE API's vocabulary: the HTTP [`Method`]s it takes and [`ApiPath`]s checked
//! segment by segment. The gate, the HTTP client and the simulator all speak it; it depends
//! on nothing else in the crate.

mod path;

use serde::{Deserialize, Serialize};

pub use path::{ApiPath, PathError};

/// An HTTP method of the PVE API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
