//! The Norrsken domain model: what a question and an answer are, independent of how they
//! travel. The indicator catalog and its recipes, the common data model (CDM) of a
//! datalager, breakdowns, periods and geography, the query model and its wire contract
//! (protobuf, `proto/norrsken.proto`), answers, comparisons and analysis tables, and the
//! one vocabulary of statuses and reasons. No network, no runtime: the agent, the
//! coordinator, the synthetic-data generator and the presentation build on it.

pub mod analysis;
pub mod anchor;
pub mod answer;
pub mod breakdown;
pub mod catalog;
pub mod cdm;
pub mod comparison;
pub mod federated;
pub mod geography;
pub mod period;
pub mod query;
pub mod secure;
pub mod standard;
pub mod suggest;
pub mod text;
pub mod vocabulary;

/// Code generated from `proto/norrsken.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/norrsken.v1.rs"));
}
