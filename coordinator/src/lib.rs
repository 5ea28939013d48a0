//! The Norrsken coordinator: fans indicator queries out to the regional agents and merges
//! their answers into a cross-region comparison.

pub mod config;
pub mod fanout;
pub mod merge;
pub mod node;
pub mod server;
pub mod stats;
