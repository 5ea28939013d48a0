//! Fault injection for crash tests: with `NORRSKEN_FAILPOINT=<name>` in its environment a
//! node aborts at the named point, as if killed there. Unset in every real deployment.

/// Aborts the process when the failpoint `name` is switched on.
pub fn hit(name: &str) {
    if std::env::var("NORRSKEN_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint '{name}' hit: aborting");
        std::process::abort();
    }
}
