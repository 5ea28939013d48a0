//! What the two server binaries share: logging, shutdown signals, `check-config`.

use norrsken_agent::config::AgentConfig;
use norrsken_common::tls::{load_certs, load_key, TlsFiles};
use norrsken_coordinator::config::CoordinatorConfig;

/// Logs to standard error; `NORRSKEN_LOG` sets the filter (default: `info` for Norrsken,
/// `warn` for the OpenTelemetry SDK's own start-up notes), `NORRSKEN_LOG_FORMAT=json`
/// gives JSON lines.
pub const DEFAULT_LOG_FILTER: &str = "info,opentelemetry=warn,opentelemetry_sdk=warn";

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NORRSKEN_LOG").unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
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

/// Calls `reload` on every SIGHUP.
pub fn reload_on_hangup<F, Fut>(reload: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<String, String>> + Send,
{
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            match reload().await {
                Ok(what) => tracing::info!(reloaded = %what, "reloaded on SIGHUP"),
                Err(e) => tracing::error!(error = %e, "reload on SIGHUP failed; the previous versions stay in force"),
            }
        }
    });
}

fn check_tls(tls: &TlsFiles) -> anyhow::Result<()> {
    for (what, path) in [("certificate", &tls.cert), ("CA bundle", &tls.ca)] {
        let certs = load_certs(path, if what == "certificate" { "certificate" } else { "CA bundle" })?;
        let id = norrsken_common::pki::identity_of(&certs[0]).map_err(anyhow::Error::msg)?;
        let days = (id.not_after - chrono::Utc::now().timestamp()) / 86_400;
        let warn = if days < 30 { "  << renew soon" } else { "" };
        println!("  ok  {what} {} ({}, expires in {days} days){warn}", path.display(), id.subject);
    }
    load_key(&tls.key)?;
    println!("  ok  private key {}", tls.key.display());
    if !tls.crls.is_empty() {
        let crls = norrsken_common::tls::load_crls(&tls.crls)?;
        println!("  ok  {} revocation list(s)", crls.len());
    }
    // The whole TLS setup loads as the server will load it.
    norrsken_common::tls::server_config(tls)?;
    Ok(())
}

fn check_audit(audit: &norrsken_common::audit::AuditConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&audit.dir)?;
    let probe = audit.dir.join(".norrsken-write-check");
    std::fs::write(&probe, b"ok").map_err(|e| anyhow::anyhow!("audit folder {} is not writable: {e}", audit.dir.display()))?;
    std::fs::remove_file(&probe)?;
    let key = norrsken_common::audit::load_or_create_key(&audit.signing_key)?;
    println!(
        "  ok  audit log {} (writable), signing key {} (public key {})",
        audit.dir.display(),
        audit.signing_key.display(),
        norrsken_common::audit::public_path(&audit.signing_key).display()
    );
    let _ = key;
    Ok(())
}

/// Runs every check, printing `FAIL` lines for the ones that fail, and fails at the end
/// with their number: one run shows every problem.
#[derive(Default)]
struct Checks {
    failed: Vec<&'static str>,
}

impl Checks {
    fn run<T>(&mut self, what: &'static str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                println!("  FAIL {what}: {e:#}");
                self.failed.push(what);
                None
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        if self.failed.is_empty() {
            println!("All checks passed.");
            Ok(())
        } else {
            anyhow::bail!("{} check(s) failed: {}", self.failed.len(), self.failed.join(", "))
        }
    }
}

/// `norrsken-agent check-config`: the effective configuration (secrets redacted) and a
/// check of every file and the datalager connection.
pub async fn check_agent(config: AgentConfig) -> anyhow::Result<()> {
    println!("Effective configuration (passwords are never printed):\n{}", toml::to_string_pretty(&config)?);
    println!("Checks:");
    let mut checks = Checks::default();
    checks.run("tls", check_tls(&config.tls));
    let protection = norrsken_agent::disclosure::protection::Protection::load(&config.policy).map_err(anyhow::Error::from);
    if let Some(protection) = checks.run("policy", protection) {
        println!(
            "  ok  policy {} version {} (k = {}, perturbation {})",
            config.policy.display(),
            protection.policy.version,
            protection.policy.min_cell_size,
            if protection.policy.perturbation.enabled { "on" } else { "off" }
        );
    }
    checks.run("audit", check_audit(&config.audit));
    let datalager = async {
        let datalager = norrsken_agent::datalager::open(&config.datalager, &config.region).await?;
        let engine = norrsken_agent::engine::Engine::open(datalager.as_ref(), &config.region, &Default::default()).await?;
        let (a, b) = engine.data_years();
        println!("  ok  datalager {}: region {}, years {a}..{b}, data version {}", datalager.describe(), config.region, engine.data_version());
        for u in norrsken_agent::datalager::unmapped_codes(engine.session(), &config.datalager.tables).await? {
            let codes = u.codes.iter().map(|(c, n)| format!("'{c}' ({n} rows)")).collect::<Vec<_>>().join(", ");
            println!(
                "  !!  mapping {}.{}: codes not listed under [datalager.tables.{}.codes.{}] read as unknown: {codes}",
                u.table, u.column, u.table, u.column
            );
        }
        anyhow::Ok(())
    };
    checks.run("datalager", datalager.await);
    if let Some(catalog) = checks.run("catalog", norrsken_model::catalog::Catalog::load(config.catalog_dir.as_deref()).map_err(anyhow::Error::from)) {
        println!("  ok  catalog: {} recipes, hash {}", catalog.latest().len(), catalog.hash());
    }
    checks.finish()
}

/// `norrsken-coordinator check-config`: configuration, files, and every agent's health.
pub async fn check_coordinator(config: CoordinatorConfig) -> anyhow::Result<()> {
    println!("Effective configuration:\n{}", toml::to_string_pretty(&config)?);
    println!("Checks:");
    let mut checks = Checks::default();
    checks.run("tls", check_tls(&config.tls));
    checks.run("audit", check_audit(&config.audit));
    let mut unreachable = 0;
    for a in &config.agents {
        let health = async {
            let client = norrsken_coordinator::agents::AgentClient::new(a, &config.tls)?;
            anyhow::Ok(client.action("health", std::time::Duration::from_secs(5)).await.map_err(anyhow::Error::msg)?)
        };
        match health.await {
            Ok(body) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                println!(
                    "  ok  agent {} ({}) at {}: data {}, policy {}",
                    a.region, a.name, a.url, v["data_version"].as_str().unwrap_or("?"), v["policy_version"].as_str().unwrap_or("?")
                );
            }
            Err(e) => {
                unreachable += 1;
                println!("  FAIL agent {} ({}) at {}: {e:#}", a.region, a.name, a.url);
            }
        }
    }
    if unreachable > 0 {
        checks.failed.push("agents");
    }
    checks.finish()
}
