//! The Norrsken regional agent: evaluates indicator recipes over the region's datalager and
//! answers with disclosure-controlled aggregates only.

pub mod datalager;
pub mod engine;
pub mod record_key;
pub mod sql;
