//! Confirmation: which calls need approval and how it is given ([`modes`]), plans bound to
//! what they showed ([`token`]), and the record of plans already carried out ([`spent`]).

pub mod modes;
pub mod spent;
pub mod token;

pub use modes::{Asked, ClientApproval, ConfirmMode, Confirmations, ToolApproval};
pub use spent::SpentPlans;
pub use token::{BoundPlan, BoundRequest, ConfirmError, PlanKey, PlanToSign, now, sign, verify};
