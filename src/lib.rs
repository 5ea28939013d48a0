//! The `norrsken` package: the command-line tool and the two server binaries
//! (`norrsken-agent`, `norrsken-coordinator`), plus helpers to run a whole federation on one
//! machine (the demo, benchmarks and tests).

pub mod audit_review;
pub mod bench;
pub mod client;
pub mod layout;
pub mod local;
pub mod pki_dev;
pub mod server_main;
