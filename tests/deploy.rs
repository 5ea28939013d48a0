//! The deployment files in `deploy/`: every example configuration loads and validates, the
//! configurations embedded in the Kubernetes manifests too, the linters for systemd units,
//! the Dockerfile, compose and Kubernetes pass, and the compose stack's own files (init
//! script, agent and coordinator configuration, per-service environment) run a working
//! federation when started as plain processes (there is no container engine here).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use norrsken_agent::config::AgentConfig;
use norrsken_agent::disclosure::policy::Policy;
use norrsken_coordinator::config::CoordinatorConfig;

use crate::audit::free_port;
use crate::fixtures::TempDir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_norrsken-agent")).parent().unwrap().to_path_buf()
}

fn parse_agent(text: &str, name: &str) -> AgentConfig {
    let mut c: AgentConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    c
}

fn parse_coordinator(text: &str, name: &str) -> CoordinatorConfig {
    let c: CoordinatorConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    c
}

/// The text of a `key: |` block scalar in a YAML file (the configuration a ConfigMap holds).
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let head = lines.next().unwrap_or_else(|| panic!("no block '{key}'"));
    let indent = head.len() - head.trim_start().len() + 2;
    let mut out = String::new();
    for l in lines {
        if !l.trim().is_empty() && l.len() - l.trim_start().len() < indent {
            break;
        }
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}

/// Every configuration shipped in deploy/ is valid as written.
#[test]
fn example_configurations_load_and_validate() {
    let d = repo().join("deploy");
    let read = |p: &str| std::fs::read_to_string(d.join(p)).unwrap();
    let a = parse_agent(&read("examples/agent.toml"), "examples/agent.toml");
    assert_eq!((a.region.as_str(), a.admins.as_slice()), ("25", &["region-admin-25".to_string()][..]));
    let pg = parse_agent(&read("examples/agent-postgres.toml"), "examples/agent-postgres.toml");
    assert!(pg.datalager.postgres_settings().is_some());
    let mapped = parse_agent(&read("examples/agent-postgres-mapped.toml"), "examples/agent-postgres-mapped.toml");
    assert!(!mapped.datalager.tables.is_empty(), "the mapped example maps the region's own tables");
    parse_agent(&read("compose/agent.toml"), "compose/agent.toml");
    let c = parse_coordinator(&read("examples/coordinator.toml"), "examples/coordinator.toml");
    assert_eq!(c.agents.len(), 4);
    parse_coordinator(&read("compose/coordinator.toml"), "compose/coordinator.toml");

    let p = Policy::parse(&read("examples/policy.toml"), "examples/policy.toml").unwrap();
    assert!(p.perturbation.enabled);
    Policy::parse(&read("compose/policy.toml").replace("@REGION@", "22"), "compose/policy.toml").unwrap();

    let k8s_agent = read("k8s/agent.yaml");
    let a = parse_agent(&yaml_block(&k8s_agent, "agent.toml"), "k8s/agent.yaml agent.toml");
    assert_eq!(a.policy, Path::new("/etc/norrsken/config/policy.toml"));
    Policy::parse(&yaml_block(&k8s_agent, "policy.toml"), "k8s/agent.yaml policy.toml").unwrap();
    parse_coordinator(&yaml_block(&read("k8s/coordinator.yaml"), "coordinator.toml"), "k8s/coordinator.yaml");

    // And the check would notice a broken one.
    let broken = read("examples/agent.toml").replace("region = \"25\"", "region = \"99\"");
    let mut c: AgentConfig = toml::from_str(&broken).unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("'99' is not a region"));
}

/// systemd-analyze, hadolint, the compose-spec schema, kubernetes-validate and yamllint
/// accept the deployment files (deploy/check.sh; .ci/run installs the linters).
#[test]
fn deployment_files_pass_their_linters() {
    let out = Command::new("bash").arg(repo().join("deploy/check.sh")).env("NORRSKEN_BIN_DIR", bin_dir()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "deploy/check.sh failed:\n{text}");
    assert!(text.contains("deploy files OK"), "{text}");
}

/// The `environment:` of each agent service in compose.yaml.
fn compose_agent_environments(yaml: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut services = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 2 && t.ends_with(':') {
            current = t.trim_end_matches(':').strip_prefix("agent-").map(|r| r.to_string());
        } else if let (Some(region), 6, Some((k, v))) = (&current, indent, t.split_once(": ")) {
            if k.starts_with("NORRSKEN_AGENT_") {
                let v = v.trim_matches('"').to_string();
                services.entry(region.clone()).or_insert_with(Vec::new).push((k.to_string(), v));
            }
        }
    }
    services
}

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}");
}

/// The compose stack, minus the containers: init.sh prepares the volume, four agents start
/// from compose/agent.toml with each service's environment, the coordinator from
/// compose/coordinator.toml, and the query from compose.yaml's header is answered by all
/// four regions. Paths inside the containers are mapped to a temporary folder and the
/// agents' host names to loopback ports.
#[test]
fn compose_stack_runs_as_plain_processes() {
    let tmp = TempDir::new("compose");
    let root = tmp.path();
    let deploy = repo().join("deploy");
    let map_paths = |text: &str| {
        text.replace("/data/", &format!("{}/data/", root.display()))
            .replace("/deploy/", &format!("{}/", deploy.display()))
            .replace("/var/lib/norrsken", &format!("{}/audit", root.display()))
    };
    let path_env = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());

    // The init service.
    let init = root.join("init.sh");
    std::fs::write(&init, map_paths(&std::fs::read_to_string(deploy.join("compose/init.sh")).unwrap())).unwrap();
    let out = Command::new("sh").arg(&init).env("PATH", &path_env).env("NORRSKEN_DEMO_SCALE", "0.02").output().unwrap();
    assert!(out.status.success(), "init.sh: {}", String::from_utf8_lossy(&out.stderr));
    assert!(root.join("data/ready").exists() && root.join("data/certs/analyst.pem").exists());

    let agent_toml = root.join("agent.toml");
    std::fs::write(&agent_toml, map_paths(&std::fs::read_to_string(deploy.join("compose/agent.toml")).unwrap())).unwrap();
    let services = compose_agent_environments(&std::fs::read_to_string(deploy.join("compose.yaml")).unwrap());
    assert_eq!(services.keys().cloned().collect::<Vec<_>>(), ["22", "23", "24", "25"]);
    let mut procs = Processes(vec![]);
    let mut coordinator_toml = map_paths(&std::fs::read_to_string(deploy.join("compose/coordinator.toml")).unwrap());
    for (region, env) in &services {
        let port = free_port();
        let log = root.join(format!("agent-{region}.log"));
        let mut cmd = Command::new(bin_dir().join("norrsken-agent"));
        cmd.arg("--config").arg(&agent_toml).env("NORRSKEN_LOG", "warn").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, map_paths(v));
        }
        cmd.env("NORRSKEN_AGENT_LISTEN", format!("127.0.0.1:{port}"));
        procs.0.push(cmd.spawn().unwrap());
        wait_for_port(port, procs.0.last_mut().unwrap(), &format!("agent-{region}"), &log);
        coordinator_toml = coordinator_toml.replace(&format!("https://agent-{region}:50051"), &format!("https://127.0.0.1:{port}"));
    }
    let coordinator_path = root.join("coordinator.toml");
    std::fs::write(&coordinator_path, &coordinator_toml).unwrap();
    let port = free_port();
    let log = root.join("coordinator.log");
    procs.0.push(
        Command::new(bin_dir().join("norrsken-coordinator"))
            .arg("--config")
            .arg(&coordinator_path)
            .env("NORRSKEN_COORDINATOR_LISTEN", format!("127.0.0.1:{port}"))
            .env("NORRSKEN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, procs.0.last_mut().unwrap(), "coordinator", &log);

    let certs = root.join("data/certs");
    let out = Command::new(bin_dir().join("norrsken"))
        .args(["query", "stroke_admissions", "--by", "sex", "--period", "2023..2025", "--format", "csv"])
        .arg("--coordinator")
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--cert")
        .arg(certs.join("analyst.pem"))
        .arg("--key")
        .arg(certs.join("analyst.key"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "query failed: {}\n{}", String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(&log).unwrap());
    for region in ["Västernorrland", "Jämtland Härjedalen", "Västerbotten", "Norrbotten", "Norra"] {
        assert!(text.lines().filter(|l| l.contains(region)).count() >= 2, "no rows for {region}:\n{text}");
    }
    // Each agent wrote its audit log where the compose volume keeps it.
    for region in services.keys() {
        let dir = root.join(format!("audit/agent-{region}"));
        assert!(std::fs::read_dir(&dir).map(|d| d.count() > 0).unwrap_or(false), "no audit log in {}", dir.display());
    }
}

/// docs/deploy.md rehearsed end to end (deploy/rehearse.sh): certificate request and
/// signing, a warehouse with the region's own names in the machine's PostgreSQL, a
/// read-only role, check-config for agent and coordinator, a test query answered through
/// the coordinator, reload on SIGHUP, a clean stop and a verified audit log.
#[test]
fn the_deployment_guide_rehearsal_ends_with_an_agent_on_postgres_answering() {
    let tmp = TempDir::new("rehearsal");
    let n = std::process::id();
    let out = Command::new("bash")
        .arg(repo().join("deploy/rehearse.sh"))
        .env("NORRSKEN_BIN_DIR", bin_dir())
        .env("REHEARSAL_DIR", tmp.path())
        .env("PG_DATABASE", format!("norrsken_rehearsal_{n}"))
        .env("PG_ROLE", format!("norrsken_ro_rehearsal_{n}"))
        .env("AGENT_PORT", free_port().to_string())
        .env("COORDINATOR_PORT", free_port().to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rehearse.sh failed:\n{text}\n{err}");
    for expected in [
        "dbname=norrsken_rehearsal_",
        "schema dw: region 23, years 2021..2025",
        "ok  agent 23 (Jämtland Härjedalen)",
        "Jämtland Härjedalen  primary_care",
        "reloaded on SIGHUP",
        "agent stopped cleanly",
        "OK: 5 records",
        "Rehearsal complete",
    ] {
        assert!(text.contains(expected), "expected '{expected}' in:\n{text}\n{err}");
    }
    assert_eq!(text.matches("All checks passed.").count(), 2, "{text}");
    // The rehearsal cleaned up the database it made.
    let left = Command::new("psql")
        .args(["host=127.0.0.1 user=postgres dbname=postgres", "-tAc"])
        .arg(format!("SELECT count(*) FROM pg_database WHERE datname = 'norrsken_rehearsal_{n}'"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
}
