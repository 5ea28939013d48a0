//! The Norrsken regional agent: evaluates indicator recipes over the region's datalager and
//! answers with disclosure-controlled aggregates only.

pub mod config;
pub mod datalager;
pub mod disclosure;
pub mod engine;
pub mod node;
pub mod release_check;
pub mod secure;
pub mod server;
pub mod service;
