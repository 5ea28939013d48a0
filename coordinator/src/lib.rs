//! The Norrsken coordinator: fans indicator queries out to the regional agents and merges
//! their answers into a cross-region comparison.
//!
//! - [`service`]: the query path (plan, cache, fan out, merge) as a plain service;
//! - [`merge`] and [`stats`]: the comparison and its intervals;
//! - [`agents`]: the agents over Arrow Flight; [`watch`]: their versions; [`circuit`]:
//!   which regions are not asked until they answer a probe; [`limits`]: how many uncached
//!   questions a requester may ask;
//! - [`web`]: the HTTPS door (the web app, reports rendered by `norrsken-present`); [`sql`]:
//!   the Flight SQL door;
//! - [`node`]: authentication and actions behind every front door; [`server`]: starting.

pub mod agents;
pub mod ask;
pub mod analysis;
pub mod circuit;
pub mod config;
pub mod limits;
pub mod merge;
pub mod node;
pub mod server;
pub mod secure;
pub mod service;
pub mod sql;
pub mod stats;
pub mod watch;
pub mod web;
