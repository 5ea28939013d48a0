//! What a reader sees, in one place: the regional report ([`report`]) built from typed
//! answers, and answers and reports as CSV, xlsx and tagged PDF ([`export`]), in Swedish and
//! English from the model's one vocabulary. The CLI and the coordinator's web door render
//! with the same functions; nothing here knows how a question travelled.

pub mod export;
pub mod quality;
pub mod report;
