//! The loaded policy with what it needs to run: the perturbation table and the record keyer.

use std::path::Path;
use std::sync::Arc;

use super::policy::{Policy, PolicyError};
use super::ptable::PTable;
use super::record_key::{RecordKeyError, RecordKeyer};

#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Secret(#[from] RecordKeyError),
}

/// A policy ready to apply.
#[derive(Debug)]
pub struct Protection {
    pub policy: Policy,
    pub ptable: Option<PTable>,
    pub keyer: Option<Arc<RecordKeyer>>,
}

impl Protection {
    /// Loads a policy file and, when perturbation is on, its secret. Fails (and the agent
    /// refuses to start, or keeps its old policy on reload) when either is unusable.
    pub fn load(path: &Path) -> Result<Protection, ProtectionError> {
        Protection::from_policy(Policy::load(path)?)
    }

    pub fn from_policy(policy: Policy) -> Result<Protection, ProtectionError> {
        let (ptable, keyer) = if policy.perturbation.enabled {
            let secret = policy.perturbation.secret_file.as_deref().ok_or_else(|| {
                ProtectionError::Secret(RecordKeyError::Unreadable { path: "(none)".into(), reason: "no secret_file in the policy".into() })
            })?;
            let keyer = Arc::new(RecordKeyer::from_file(secret)?);
            let p = &policy.perturbation;
            (Some(PTable::new(p.max_deviation, p.variance, policy.js())), Some(keyer))
        } else {
            (None, None)
        };
        Ok(Protection { policy, ptable, keyer })
    }
}
