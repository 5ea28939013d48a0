//! The one integration-test binary of the workspace (every extra test binary would link
//! DataFusion again). Each module tests one part end to end with real components.

mod adaptive;
mod analysis;
mod architecture;
mod attacks;
mod audit;
mod bench;
mod deploy;
mod dos;
mod engine;
mod evaluation;
mod evidence;
mod federation;
mod fixtures;
mod history;
mod numbers;
mod observability;
mod performance;
mod pgwire;
mod present;
mod postgres;
mod quality;
mod reference;
mod secure_sum;
mod service;
mod sql;
mod synth;
mod web;
