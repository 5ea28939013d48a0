//! What the two server binaries share: logging, shutdown signals, `check-config`.

use norrsken_agent::config::AgentConfig;
use norrsken_common::tls::{load_certs, load_key, TlsFiles};
use norrsken_coordinator::config::CoordinatorConfig;

/// Logs to standard error; `NORRSKEN_LOG` sets the filter (default `info`),
/// `NORRSKEN_LOG_FORMAT=json` gives JSON lines.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NORRSKEN_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("NORRSKEN_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// Reloads the agent's policy on SIGHUP (a broken policy is logged and the old one kept).
pub fn reload_on_hangup(node: std::sync::Arc<norrsken_agent::node::AgentNode>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match node.reload_policy() {
                Ok(v) => tracing::info!(policy_version = %v, "policy reloaded on SIGHUP"),
                Err(e) => tracing::error!(error = %e, "policy reload failed; the previous policy stays in force"),
            }
        }
    });
}

fn check_tls(tls: &TlsFiles) -> anyhow::Result<()> {
    for (what, path) in [("certificate", &tls.cert), ("CA bundle", &tls.ca)] {
        let certs = load_certs(path, if what == "certificate" { "certificate" } else { "CA bundle" })?;
        let id = norrsken_common::pki::identity_of(&certs[0]).map_err(anyhow::Error::msg)?;
        let days = (id.not_after - chrono::Utc::now().timestamp()) / 86_400;
        println!("  ok  {what} {} ({}, expires in {days} days)", path.display(), id.subject);
    }
    load_key(&tls.key)?;
    println!("  ok  private key {}", tls.key.display());
    Ok(())
}

/// `norrsken-agent check-config`.
pub async fn check_agent(config: AgentConfig) -> anyhow::Result<()> {
    println!("Effective configuration:\n{}", toml::to_string_pretty(&config)?);
    println!("Checks:");
    check_tls(&config.tls)?;
    let node = norrsken_agent::server::build_node(config).await?;
    let (a, b) = node.engine.data_years();
    println!("  ok  datalager: region {}, years {a}..{b}, data version {}", node.region.code, node.engine.data_version());
    println!("  ok  catalog: {} recipes, hash {}", node.catalog.latest().len(), node.catalog.hash());
    Ok(())
}

/// `norrsken-coordinator check-config`.
pub async fn check_coordinator(config: CoordinatorConfig) -> anyhow::Result<()> {
    println!("Effective configuration:\n{}", toml::to_string_pretty(&config)?);
    println!("Checks:");
    check_tls(&config.tls)?;
    Ok(())
}
