//! The node runtime the Norrsken agent and coordinator share: the query service and its one
//! request envelope, the Arrow Flight door, mutual TLS and certificate identities, the
//! signed audit log, answer caches, telemetry and settings. The domain it serves (catalog,
//! query model, answers, wire contract) is `norrsken-model`.

pub mod audit;
pub mod cache;
pub mod edge;
pub mod error;
pub mod failpoint;
pub mod flight;
pub mod pki;
pub mod reload;
pub mod secure_sum;
pub mod service;
pub mod settings;
pub mod telemetry;
pub mod tls;
