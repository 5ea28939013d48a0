//! The HTTPS front door: a JSON API with mutual TLS, called by Python's standard library
//! (ssl + urllib) as a browser or script would; answers equal the Flight answer, strangers
//! get no page.

use std::process::Command;

use norrsken_common::comparison::{Comparison, RowKind};
use serde_json::Value;

use crate::federation::{analyst, query};
use crate::fixtures::{federation, fetch, off_runtime};

const CLIENT: &str = r#"
import json, ssl, sys, urllib.request
base, certs, ticket = sys.argv[1], sys.argv[2], sys.argv[3]
def ctx(cert=True):
    c = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    # The development server certificate names coordinator.norrsken.local, the URL 127.0.0.1;
    # the chain is still verified against the CA.
    c.check_hostname = False
    if cert:
        c.load_cert_chain(f"{certs}/analyst.pem", f"{certs}/analyst.key")
    return c
out = {}
with urllib.request.urlopen(f"{base}/api/catalog", context=ctx()) as r:
    out["catalog"] = json.load(r)
with urllib.request.urlopen(urllib.request.Request(f"{base}/api/query", data=ticket.encode(), method="POST"), context=ctx()) as r:
    out["query"] = json.load(r)
try:
    urllib.request.urlopen(urllib.request.Request(f"{base}/api/query", data=b'{"indicator":"nope","period":"2024"}', method="POST"), context=ctx())
    out["bad"] = None
except urllib.error.HTTPError as e:
    out["bad"] = {"status": e.code, "body": json.load(e)}
try:
    urllib.request.urlopen(f"{base}/api/catalog", context=ctx(cert=False))
    out["no_certificate"] = None
except Exception as e:
    out["no_certificate"] = f"{type(e).__name__}: {e}"
json.dump(out, sys.stdout)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_api_answers_like_the_flight_api() {
    let f = federation();
    let base = f.federation.web_url().expect("the local coordinator serves HTTPS");
    let q = query("diabetes_statin", &["year"], "2023..2024");
    let ticket = serde_json::to_string(&q).unwrap();
    let output = off_runtime(|| Command::new("python3").args(["-c", CLIENT, &base]).arg(&f.certs).arg(&ticket).output().unwrap());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(out["catalog"]["recipes"].as_array().unwrap().iter().any(|r| r["id"] == "diabetes_statin"));
    // The comparison's rows and metadata, equal to the Flight answer.
    let mut client = analyst().await;
    let (s, b) = fetch(&mut client, q.encode_ticket(None)).await.unwrap();
    let flight = Comparison::from_batches(&s, &b).unwrap();
    let rows = out["query"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), flight.rows.len());
    for r in flight.rows.iter().filter(|r| r.kind == RowKind::Region) {
        let row = rows.iter().find(|x| x["region"] == r.region.as_str() && x["year"] == r.labels[0].as_deref().unwrap()).unwrap();
        assert_eq!(row["numerator"].as_i64(), r.numerator);
        assert_eq!(row["value"].as_f64(), r.estimate.map(|e| e.value));
    }
    assert_eq!(out["query"]["metadata"]["norrsken.recipe"], "diabetes_statin@1");
    assert!(out["query"]["metadata"]["norrsken.audit_seq"].is_string(), "the answer names its audit record");
    // Errors map to HTTP codes and name the problem.
    assert_eq!(out["bad"]["status"], 404, "{}", out["bad"]);
    assert_eq!(out["bad"]["body"]["kind"], "not_found");
    // No certificate: no page.
    assert!(out["no_certificate"].is_string());
}
