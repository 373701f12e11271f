//! A Bulk Data export by a backend service against a real `emr serve`, whose
//! process is SIGKILLed part-way through the export: restarted, the server
//! resumes the job, and the files hold every patient exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use emr_tests::api_client::patient_registration;
use emr_tests::nats_server::free_port;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{create_admin, kill, physician, serve_command, started, until_projected};

const CLIENT: &str = "nightly-warehouse";
const PATIENTS: usize = 600;

/// An ES384 key pair made by `openssl genpkey`, and the settings file that
/// registers its public half for the backend service.
fn service_key(dir: &std::path::Path) -> (EncodingKey, std::path::PathBuf) {
    let output = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"])
        .output()
        .expect("openssl is installed");
    assert!(output.status.success());
    let key = EncodingKey::from_ec_pem(&output.stdout).unwrap();
    let jwk = Jwk::from_encoding_key(&key, Algorithm::ES384).unwrap();
    let AlgorithmParameters::EllipticCurve(curve) = &jwk.algorithm else { panic!("an EC key") };
    let settings = format!(
        "[[auth.backend_clients]]\nclient_id = \"{CLIENT}\"\nname = \"Nightly warehouse\"\nscopes = [\"system/*.rs\"]\n\
         [[auth.backend_clients.jwks.keys]]\nkty = \"EC\"\ncrv = \"P-384\"\nkid = \"warehouse-1\"\nalg = \"ES384\"\nx = \"{}\"\ny = \"{}\"\n",
        curve.x, curve.y
    );
    let path = dir.join("emr.toml");
    std::fs::write(&path, settings).unwrap();
    (key, path)
}

/// A fresh system token for the service (each assertion is good once).
async fn system_token(http: &reqwest::Client, base: &str, key: &EncodingKey) -> String {
    let token_url = format!("{base}/oauth/token");
    let claims = json!({"iss": CLIENT, "sub": CLIENT, "aud": token_url, "exp": chrono::Utc::now().timestamp() + 240,
                        "jti": uuid::Uuid::now_v7().to_string()});
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some("warehouse-1".into());
    let assertion = jsonwebtoken::encode(&header, &claims, key).unwrap();
    // The assertion is base64url and dots: nothing in it needs escaping.
    let form = format!(
        "grant_type=client_credentials&scope=system%2F*.rs\
         &client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    );
    let request = http.post(&token_url).header("content-type", "application/x-www-form-urlencoded").body(form);
    let answer: Value = request.send().await.unwrap().json().await.unwrap();
    answer["access_token"].as_str().unwrap_or_else(|| panic!("no token: {answer}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_export_killed_part_way_resumes_on_restart_and_holds_every_patient_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (key, settings) = service_key(dir.path());
    let (http_port, grpc, sessions) = (free_port(), free_port(), format!("export-{}", uuid::Uuid::new_v4().simple()));
    create_admin(&data_dir, "export_admin");
    let command = || {
        let mut command = serve_command(&data_dir, http_port, grpc, &sessions);
        // Small pages: the job records its progress often, so the kill lands between two.
        command.env("EMR_CONFIG", &settings).env("EMR__READ_MODELS__BATCH_SIZE", "200").env("EMR__EXPORT__PAGE_SIZE", "50");
        command
    };
    let mut served = started(command(), http_port).await;
    let api = served.api.clone();
    let (_, token) = physician(&api, "export_admin", "export_doctor").await;
    let mut registered = BTreeSet::new();
    for n in 0..PATIENTS {
        let (receipt, _) =
            api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration(&format!("Export {n}"))).await;
        registered.insert(receipt["aggregate_id"].as_str().unwrap().to_owned());
    }
    until_projected(&data_dir).await;

    let http = reqwest::Client::new();
    let base = api.base.clone();
    let bearer = system_token(&http, &base, &key).await;
    let kick_off = http
        .get(format!("{base}/fhir/r4/$export?_type=Patient"))
        .bearer_auth(&bearer)
        .header("prefer", "respond-async")
        .send()
        .await
        .unwrap();
    assert_eq!(kick_off.status(), 202, "{}", kick_off.text().await.unwrap());
    let status_url = kick_off.headers()["content-location"].to_str().unwrap().to_owned();

    // Kill the server once the job has recorded some pages, before it is done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = http.get(&status_url).bearer_auth(&bearer).send().await.unwrap();
        assert_eq!(status.status(), 202, "the export finished before it could be killed: raise PATIENTS");
        let progress = status.headers().get("x-progress").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let done: usize = progress.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
        if done > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the export made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill(&mut served.process, "emr serve");
    served = started(command(), http_port).await;

    // The restarted server resumes the job; its files hold each patient once.
    let bearer = system_token(&http, &base, &key).await;
    let manifest: Value = loop {
        let status = http.get(&status_url).bearer_auth(&bearer).send().await.unwrap();
        if status.status() == 200 {
            break status.json().await.unwrap();
        }
        assert_eq!(status.status(), 202, "{}", status.text().await.unwrap());
        assert!(Instant::now() < deadline, "the resumed export did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = manifest["output"].as_array().unwrap().iter().find(|o| o["type"] == "Patient").unwrap();
    let ndjson = http.get(output["url"].as_str().unwrap()).bearer_auth(&bearer).send().await.unwrap().text().await.unwrap();
    let exported: Vec<String> =
        ndjson.lines().map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(exported.len(), PATIENTS, "no patient twice, none missing");
    assert_eq!(exported.into_iter().collect::<BTreeSet<_>>(), registered);
    assert_eq!(output["count"], PATIENTS);
    drop(served);
}
