//! What the Norrsken agent and coordinator share: the common data model, the indicator
//! catalog, the query model and wire contract, and the vocabulary of breakdowns.

pub mod analysis;
pub mod answer;
pub mod audit;
pub mod breakdown;
pub mod cache;
pub mod catalog;
pub mod comparison;
pub mod edge;
pub mod cdm;
pub mod error;
pub mod failpoint;
pub mod flight;
pub mod geography;
pub mod period;
pub mod pki;
pub mod query;
pub mod reload;
pub mod service;
pub mod settings;
pub mod standard;
pub mod suggest;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod vocabulary;

/// Code generated from `proto/norrsken.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/norrsken.v1.rs"));
}
