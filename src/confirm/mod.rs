//! Confirmation: which calls need approval and how it is given ([`modes`]), plans bound to
//! what they showed ([`token`]), and the record of plans already carried out ([`spent`]).

pub(crate) mod modes;
pub(crate) mod spent;
pub(crate) mod token;

pub(crate) use modes::{Asked, ClientApproval, ConfirmMode, Confirmations, ToolApproval};
pub(crate) use spent::SpentPlans;
pub(crate) use token::{BoundPlan, BoundRequest, ConfirmError, PlanKey, PlanToSign, now, sign, verify};
