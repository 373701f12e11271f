//! A client of the HTTP API for tests: requests with bearer tokens and
//! idempotency keys, commands retried until acknowledged, and the bodies of the
//! commands tests send most.

use std::time::{Duration, Instant};

pub use reqwest::Method;
use serde_json::{Value, json};

/// A status and a JSON body (`Null` when the body is not JSON).
pub type Reply = (u16, Value);

/// A keep-alive client of the API at `base`.
#[derive(Clone)]
pub struct ApiClient {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The connections.
    pub http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base` (`http://host:port`).
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build().unwrap();
        Self { base, http }
    }

    /// Sends a request; transport failures are `Err` (the server may be down).
    pub async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        idempotency_key: Option<uuid::Uuid>,
        body: Option<&Value>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key.to_string());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs `body` as `token`.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.try_send(reqwest::Method::POST, path, token, None, Some(body)).await.unwrap()
    }

    /// GETs `path` as `token`.
    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.try_send(reqwest::Method::GET, path, Some(token), None, None).await.unwrap()
    }

    /// Sends a command with an idempotency key until the API acknowledges it:
    /// transport errors (the server may be down or restarting), 5xx and
    /// conflicts are retried with the same key; any other 4xx fails the test.
    /// Returns the receipt and how many attempts failed.
    pub async fn until_acknowledged(&self, token: &str, path: &str, key: uuid::Uuid, body: &Value) -> (Value, usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut failed = 0;
        loop {
            match self.try_send(reqwest::Method::POST, path, Some(token), Some(key), Some(body)).await {
                Ok((status, receipt)) if (200..300).contains(&status) => return (receipt, failed),
                Ok((status, problem)) if status < 500 && status != 409 => panic!("{path} refused with {status}: {problem}"),
                Ok(_) | Err(_) => failed += 1,
            }
            assert!(Instant::now() < deadline, "{path} never acknowledged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the server answers `/ready`.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = self.http.get(format!("{}/ready", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} never became ready", self.base);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The body of `POST /v1/patients`.
pub fn patient_registration(full_name: &str) -> Value {
    json!({"hospital_id": "HOSP-001", "identifiers": {"mrn": "MRN-1", "external": []},
           "demographics": {"full_name": full_name, "date_of_birth": "1980-01-02", "gender": "female", "phone_number": null, "email": null, "address": null}})
}

/// The body of `POST /v1/records` for `patient` by `doctor`.
pub fn record_creation(patient: &str, doctor: &str, title: &str) -> Value {
    json!({"patient_id": patient, "doctor_id": doctor, "hospital_id": "HOSP-001", "record_type": "consultation",
           "visit_date": "2026-11-20", "content": {"title": title, "description": null, "diagnosis": null, "treatment": null, "medications": []}})
}
