//! Plan-bound confirmation: a destructive tool's plan carries a `confirm_token` that binds
//! the confirmation to what the plan showed.
//!
//! The token is the plan's payload (tool, expiry, the exact destructive requests, the config
//! digest of every guest the plan read) and an HMAC-SHA256 over that payload and the call's
//! arguments (without `confirm` and `confirm_token`), under a key made at start and never
//! written anywhere. A confirmed call that brings a token runs only if the token verifies
//! for this tool and these arguments and has not expired; then it may send no destructive
//! request the plan did not show, and it stops before anything is sent if a guest's config
//! changed since the plan.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use thiserror::Error;

use crate::api::Method;
use crate::gate::PlannedRequest;

const VERSION: u8 = 1;
/// A token larger than this is not one of ours.
const MAX_TOKEN: usize = 256 * 1024;

/// The secret that signs plans; made at start, held in memory only (as the keyed MAC state).
pub(crate) struct PlanKey(Hmac<Sha256>);

impl std::fmt::Debug for PlanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlanKey(…)")
    }
}

impl PlanKey {
    pub(crate) fn generate() -> Result<PlanKey, ConfirmError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| ConfirmError::NoRandomness(e.to_string()))?;
        let mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&k).map_err(|e| ConfirmError::NoRandomness(e.to_string()))?;
        k.fill(0);
        Ok(PlanKey(mac))
    }

    fn mac(&self, payload: &[u8], tool: &str, args: &Map<String, Value>) -> Hmac<Sha256> {
        let mut m = self.0.clone();
        m.update(b"pve-mcp plan v1\0");
        m.update(tool.as_bytes());
        m.update(b"\0");
        m.update(payload);
        m.update(b"\0");
        m.update(canonical(&Value::Object(bound_args(args))).as_bytes());
        m
    }
}

/// A destructive request as the plan showed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundRequest {
    pub method: Method,
    pub path: String,
    pub params: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// Expiry, seconds since the epoch.
    exp: u64,
    /// The plan binds every write, not only destructive requests (a `confirm: true` tool).
    writes: bool,
    requests: Vec<BoundRequest>,
    /// Config path → digest, for every guest config the plan read.
    digests: BTreeMap<String, String>,
}

/// A verified plan: what the confirmed call may destroy, and what it must find unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundPlan {
    /// Every write must be in `requests`, not only the destructive ones.
    pub binds_writes: bool,
    pub requests: Vec<BoundRequest>,
    pub digests: BTreeMap<String, String>,
    /// A person approved this plan (MCP elicitation), not a `confirm_token` alone.
    pub human: bool,
    /// The token's MAC tag, which identifies the plan: a plan is carried out once.
    pub id: String,
    /// When the plan expires, seconds since the epoch.
    pub expires: u64,
}

impl BoundPlan {
    /// Did the plan show this request? Reading the output of a command the plan runs
    /// (`GET …/agent/exec-status` after `POST …/agent/exec` on the same guest) is part of
    /// running it: the plan cannot know the pid the agent will give.
    pub fn allows(&self, method: Method, path: &str, params: &Map<String, Value>) -> bool {
        if method == Method::Get
            && let Some(guest) = path.strip_suffix("/agent/exec-status")
        {
            let exec = format!("{guest}/agent/exec");
            return self.requests.iter().any(|r| r.method == Method::Post && r.path == exec);
        }
        self.requests
            .iter()
            .any(|r| r.method == method && r.path == path && canonical_map(&r.params) == canonical_map(params))
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub(crate) enum ConfirmError {
    #[error("the system gave no randomness for the plan key: {0}")]
    NoRandomness(String),
    #[error(
        "the confirm_token is not one this server issued for this tool and these arguments; call the tool again without confirm to get a fresh plan and its token"
    )]
    Invalid,
    #[error(
        "the confirm_token expired {0} s ago (plans are valid for PVE_MCP_PLAN_TTL seconds); call the tool again without confirm to get a fresh plan"
    )]
    Expired(u64),
    #[error(
        "this server confirms plans, not flags (PVE_MCP_CONFIRM=plan, or PVE_MCP_CONFIRM_EXEC or PVE_MCP_CONFIRM_ADMIN=plan for guest commands and administration): call the tool without confirm first, show the plan to the user, then call it again with the same arguments, confirm=true and the plan's confirm_token"
    )]
    NeedsPlan,
    #[error(
        "this server asks a person to approve this call (mode human: PVE_MCP_CONFIRM, or PVE_MCP_CONFIRM_EXEC / PVE_MCP_CONFIRM_ADMIN for guest commands and administration), and this client did not declare MCP elicitation, so nobody can be asked; nothing was done. Use a client that supports elicitation, or set the mode to plan or flag"
    )]
    NeedsPerson,
    #[error(
        "this plan was already carried out once; a plan is approved for one run, so call the tool again without confirm for a new plan"
    )]
    Spent,
}

/// The arguments a token binds: all but the confirmation itself.
fn bound_args(args: &Map<String, Value>) -> Map<String, Value> {
    args.iter()
        .filter(|(k, _)| k.as_str() != "confirm" && k.as_str() != "confirm_token")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// JSON with every object's keys sorted, so equal values give equal bytes.
fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // Serialising a Value cannot fail.
    serde_json::to_string(&sort(v)).unwrap_or_default()
}

fn canonical_map(m: &Map<String, Value>) -> String {
    canonical(&Value::Object(m.clone()))
}

/// What a plan binds.
pub(crate) struct PlanToSign<'a> {
    pub tool: &'a str,
    pub args: &'a Map<String, Value>,
    pub planned: &'a [PlannedRequest],
    pub digests: &'a BTreeMap<String, String>,
    /// Bind every write, not only the requests that need approval.
    pub writes: bool,
    /// The capabilities whose requests need approval: destructive, and exec or admin where
    /// the server confirms those.
    pub approve: crate::gate::Capabilities,
}

/// Sign a plan: the requests it recorded (destructive ones, or every write) and the digests
/// it read.
pub(crate) fn sign(key: &PlanKey, plan: &PlanToSign<'_>, now: u64, ttl: Duration) -> String {
    let PlanToSign {
        tool,
        args,
        planned,
        digests,
        writes,
        approve,
    } = *plan;
    let payload = Payload {
        v: VERSION,
        exp: now.saturating_add(ttl.as_secs()),
        writes,
        requests: planned
            .iter()
            .filter(|r| writes || r.needs.calls_for_approval(approve))
            .map(|r| BoundRequest {
                method: r.method,
                path: r.path.clone(),
                params: r.params.clone(),
            })
            .collect(),
        digests: digests.clone(),
    };
    let bytes = canonical(&serde_json::to_value(&payload).unwrap_or(Value::Null)).into_bytes();
    let tag = key.mac(&bytes, tool, args).finalize().into_bytes();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(tag))
}

/// Check a token for this tool and these arguments, at `now`.
pub(crate) fn verify(
    key: &PlanKey,
    token: &str,
    tool: &str,
    args: &Map<String, Value>,
    now: u64,
) -> Result<BoundPlan, ConfirmError> {
    if token.len() > MAX_TOKEN {
        return Err(ConfirmError::Invalid);
    }
    let (body, tag) = token.split_once('.').ok_or(ConfirmError::Invalid)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| ConfirmError::Invalid)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| ConfirmError::Invalid)?;
    key.mac(&bytes, tool, args)
        .verify_slice(&tag)
        .map_err(|_| ConfirmError::Invalid)?;
    let payload: Payload = serde_json::from_slice(&bytes).map_err(|_| ConfirmError::Invalid)?;
    if payload.v != VERSION {
        return Err(ConfirmError::Invalid);
    }
    if now > payload.exp {
        return Err(ConfirmError::Expired(now - payload.exp));
    }
    Ok(BoundPlan {
        binds_writes: payload.writes,
        requests: payload.requests,
        digests: payload.digests,
        human: false,
        id: URL_SAFE_NO_PAD.encode(&tag),
        expires: payload.exp,
    })
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Capabilities;
    use crate::gate::Capability::Destructive;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }
    fn planned() -> Vec<PlannedRequest> {
        vec![PlannedRequest {
            method: Method::Delete,
            path: "/nodes/pve1/qemu/100/snapshot/old".into(),
            params: Map::new(),
            needs: Capabilities::of(&[Destructive]),
        }]
    }

    #[test]
    fn a_token_binds_tool_arguments_requests_and_time() {
        let key = PlanKey::generate().unwrap();
        let a = args(json!({"vmid": 100, "snapname": "old"}));
        let digests = BTreeMap::from([("/nodes/pve1/qemu/100/config".to_string(), "abc".to_string())]);
        let planned = planned();
        let plan = PlanToSign {
            tool: "pve_snapshot_delete",
            args: &a,
            planned: &planned,
            digests: &digests,
            writes: false,
            approve: Capabilities::of(&[Destructive]),
        };
        let t = sign(&key, &plan, 1000, Duration::from_secs(600));
        let plan = verify(&key, &t, "pve_snapshot_delete", &a, 1500).unwrap();
        assert!(plan.allows(Method::Delete, "/nodes/pve1/qemu/100/snapshot/old", &Map::new()));
        assert!(!plan.allows(Method::Delete, "/nodes/pve1/qemu/101", &Map::new()));
        assert_eq!(plan.digests, digests);
        // The confirmation itself is not part of what is bound; key order does not matter.
        let confirmed = args(json!({"snapname": "old", "confirm": true, "vmid": 100, "confirm_token": t}));
        assert!(verify(&key, &t, "pve_snapshot_delete", &confirmed, 1500).is_ok());
        // Anything else is.
        let other = args(json!({"vmid": 101, "snapname": "old"}));
        assert_eq!(
            verify(&key, &t, "pve_snapshot_delete", &other, 1500),
            Err(ConfirmError::Invalid)
        );
        assert_eq!(verify(&key, &t, "pve_vm_delete", &a, 1500), Err(ConfirmError::Invalid));
        assert_eq!(
            verify(&key, &t, "pve_snapshot_delete", &a, 1700),
            Err(ConfirmError::Expired(100))
        );
        let other_key = PlanKey::generate().unwrap();
        assert_eq!(
            verify(&other_key, &t, "pve_snapshot_delete", &a, 1500),
            Err(ConfirmError::Invalid)
        );
        // A payload changed under the same tag does not verify.
        let (body, tag) = t.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("snapshot/old", "snapshot/new");
        bytes = text.into_bytes();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            verify(&key, &forged, "pve_snapshot_delete", &a, 1500),
            Err(ConfirmError::Invalid)
        );
        assert_eq!(
            verify(&key, "garbage", "pve_snapshot_delete", &a, 1500),
            Err(ConfirmError::Invalid)
        );
    }
}
