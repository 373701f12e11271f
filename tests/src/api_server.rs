//! The HTTP API served over real loopback TCP on a test's backend, with signed-in
//! accounts: what end-to-end tests, fault tests and the API benchmark drive.

use std::sync::Arc;

use crate::accounts;
use crate::api_client::ApiClient;
use emr_auth::apps::SmartApp;
use emr_auth::{AuthPolicy, Identity, SessionStore, SigningKeys, Tokens};
use emr_commands::Clinic;
use emr_domain::DomainServices;
use emr_domain::actor::Role;
use emr_domain::ids::UserId;
use emr_eventstore::conformance::Backend;

/// A running API server and a client for it (its methods are the client's).
pub struct ApiServer {
    /// The server's accounts and sessions (to open accounts as the system).
    pub identity: Identity,
    /// The server's application layer.
    pub clinic: Clinic,
    client: ApiClient,
    server: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for ApiServer {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.client
    }
}

impl ApiServer {
    /// Serves the API over `backend` with sessions in memory and no read models.
    pub async fn start(backend: &Backend) -> Self {
        Self::start_with(backend, Arc::new(emr_auth::MemorySessionStore::new()), None).await
    }

    /// Serves the API over `backend` with the given session store and read models.
    pub async fn start_with(backend: &Backend, sessions: Arc<dyn SessionStore>, read_models: Option<emr_http::ReadModelState>) -> Self {
        Self::start_with_clinic(backend, sessions, read_models, crate::backends::clinic(backend)).await
    }

    /// Serves the API over `backend` with a clinic configured by the test (a
    /// retention schedule, …).
    pub async fn start_with_clinic(
        backend: &Backend,
        sessions: Arc<dyn SessionStore>,
        read_models: Option<emr_http::ReadModelState>,
        clinic: Clinic,
    ) -> Self {
        Self::serve(backend, sessions, read_models, clinic, Vec::new(), |_| {}).await
    }

    /// Serves the API over `backend` with read models and whatever else
    /// `configure` adds to its state (attachments, diagnosis, …).
    pub async fn start_configured(
        backend: &Backend,
        read_models: Option<emr_http::ReadModelState>,
        clinic: Clinic,
        configure: impl FnOnce(&mut emr_http::AppState),
    ) -> Self {
        let sessions = Arc::new(emr_auth::MemorySessionStore::new());
        Self::serve(backend, sessions, read_models, clinic, Vec::new(), configure).await
    }

    /// Serves the API (with read models) to the SMART apps `apps`.
    pub async fn start_with_apps(backend: &Backend, read_models: Option<emr_http::ReadModelState>, apps: Vec<SmartApp>) -> Self {
        let sessions = Arc::new(emr_auth::MemorySessionStore::new());
        Self::serve(backend, sessions, read_models, crate::backends::clinic(backend), apps, |_| {}).await
    }

    async fn serve(
        backend: &Backend,
        sessions: Arc<dyn SessionStore>,
        read_models: Option<emr_http::ReadModelState>,
        clinic: Clinic,
        apps: Vec<SmartApp>,
        configure: impl FnOnce(&mut emr_http::AppState),
    ) -> Self {
        let tokens = Tokens::new(SigningKeys::generate("tests").unwrap());
        let identity = Identity::new(backend, sessions, tokens, AuthPolicy::default(), DomainServices::default()).with_apps(apps);
        let mut state = emr_http::AppState {
            clinic: clinic.clone(),
            identity: identity.clone(),
            login_attempts_per_minute: 1000,
            read_models,
            attachments: None,
            audit: None,
            federated: None,
            exports: None,
            diagnosis: None,
        };
        configure(&mut state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = emr_http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { identity, clinic, client: ApiClient::new(base), server }
    }

    /// Opens an account with `role` and signs it in: its id and access token.
    pub async fn account(&self, username: &str, role: Role) -> (UserId, String) {
        let id = accounts::open_account(&self.identity, username, role).await;
        (id, accounts::sign_in(&self.http, &self.base, username).await)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
