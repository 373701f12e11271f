//! [`Identity`]: registration, login with MFA, token refresh and logout, and
//! authentication of every request.
//!
//! Login is two steps. The password step answers an MFA challenge token (or,
//! for an account that has not enrolled yet, a challenge that can only enrol);
//! the code step answers an access token and a refresh token. Refresh tokens
//! rotate: each is good for one use, and presenting a used one again means it
//! was stolen, so its whole family (the session) is revoked and a security event
//! is raised. Logout revokes the family; every access token names its family,
//! so revocation takes effect on the next request, not at token expiry.
//!
//! Every password step is recorded as a `SignInAttempted` event and every
//! session's opening and refresh as a session event, each with the client's
//! address: threat detection reads them from the log.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use emr_domain::DomainServices;
use emr_domain::access::{self, Action, Denied, Facts};
use emr_domain::account::{
    Account, AccountCommand, AccountError, AccountStatus, ClaimError, MfaState, PasswordPolicy, PasswordRejected, PractitionerProfile,
    Username, UsernameClaim, UsernameClaimCommand,
};
use emr_domain::actor::{Actor, Role};
use emr_domain::authentication::{
    AttemptAlreadyRecorded, RecordSignIn, Session, SessionCommand, SessionError as SessionLogError, SignInAttempt, SignInOutcome,
};
use emr_domain::ids::{CommandId, SecurityEventId, SessionId, SignInId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::security::{Raise, SecurityCommand, SecurityError, SecurityEventKind, SecurityIncident};
use emr_domain::values::{Sha256Digest, ShortText};
use emr_eventstore::{EmrEventStore, EventStorePorts, ExecuteError, StoreConfig, StoreError};
use serde::{Deserialize, Serialize};

use crate::apps::{self, AppGrant, AppTokens, AuthorizationRequest, LaunchContext, SmartApp};
use crate::backend::BackendClient;
use crate::oidc::{IdTokenClaims, IdTokenKey};
use crate::secrets::{self, SecretError};
use crate::sessions::{SessionError, SessionStore};
use crate::tokens::{self, AccessClaims, KeyError, MfaClaims, TokenError, Tokens};

/// Lifetimes and thresholds.
#[derive(Debug, Clone, Copy)]
pub struct AuthPolicy {
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token (and session) lifetime.
    pub refresh_ttl: Duration,
    /// MFA challenge lifetime.
    pub challenge_ttl: Duration,
    /// Failed logins within `failure_window` that lock an account.
    pub max_failures: u64,
    /// The window failures are counted in.
    pub failure_window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            challenge_ttl: Duration::from_secs(5 * 60),
            max_failures: 5,
            failure_window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Why an authentication step failed. Messages never say whether a username exists.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown username or wrong password.
    #[error("the username or password is wrong")]
    InvalidCredentials,
    /// Too many failures: try again after `until`.
    #[error("the account is locked until {until}")]
    Locked {
        /// End of the lockout.
        until: DateTime<Utc>,
    },
    /// The account was closed.
    #[error("the account is deactivated")]
    Deactivated,
    /// The password does not meet the policy.
    #[error(transparent)]
    WeakPassword(#[from] PasswordRejected),
    /// The username is taken.
    #[error("the username is taken")]
    UsernameTaken,
    /// The TOTP code is wrong or outside the time window.
    #[error("the one-time code is wrong or expired")]
    InvalidCode,
    /// The TOTP code was already used.
    #[error("the one-time code was already used")]
    CodeReplayed,
    /// The challenge is for enrolment but a code was sent before enrolling.
    #[error("MFA enrolment must be completed first")]
    EnrolmentRequired,
    /// An access, challenge or refresh token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The session (refresh family) was revoked by logout or reuse detection.
    #[error("the session was revoked")]
    SessionRevoked,
    /// A used refresh token was presented again: the session is revoked.
    #[error("the refresh token was already used; the session is revoked")]
    RefreshTokenReused,
    /// Too many attempts from one address.
    #[error("too many attempts; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the window resets.
        retry_after_secs: u64,
    },
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(#[from] Denied),
    /// An account rule refused it.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session store failed.
    #[error(transparent)]
    Sessions(#[from] SessionError),
    /// Key or crypto failure.
    #[error("credential processing failed: {0}")]
    Crypto(String),
    /// An OAuth grant (authorization code, refresh token) that cannot be redeemed.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// A backend service that is not registered, or whose assertion does not hold.
    #[error("invalid client: {0}")]
    InvalidClient(String),
}

impl From<SecretError> for AuthError {
    fn from(error: SecretError) -> Self {
        Self::Crypto(error.0)
    }
}

impl From<KeyError> for AuthError {
    fn from(error: KeyError) -> Self {
        Self::Crypto(error.to_string())
    }
}

/// A new account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// Login name.
    pub username: Username,
    /// Password in clear (checked against the policy, then hashed; never stored).
    pub password: String,
    /// Role (patients registering themselves may only be patients).
    pub role: Role,
    /// Required for physicians and nurses.
    pub profile: Option<PractitionerProfile>,
}

/// The first login step's answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// Present it with a TOTP code (or to enrol).
    pub mfa_token: String,
    /// True when the account must enrol before it can answer.
    pub enrolment_required: bool,
}

/// An enrolment in progress.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrolment {
    /// `otpauth://totp/...` for an authenticator app (render as a QR code).
    pub otpauth_uri: String,
    /// The base32 secret, for manual entry.
    pub secret: String,
}

/// Tokens for an authenticated session.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenPair {
    /// The bearer token for API calls.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// One-use token for the next pair.
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshEntry {
    user: UserId,
    family: uuid::Uuid,
    /// When the pair was issued (seconds); entries from before this field read
    /// as 0, older than any re-authentication cutoff.
    #[serde(default)]
    issued_at: i64,
    /// The app the session was opened for, if any: its refreshed tokens keep its grant.
    #[serde(default)]
    app: Option<AppGrant>,
}

/// Accounts and sessions.
#[derive(Clone)]
pub struct Identity {
    accounts: EmrEventStore<Account>,
    claims: EmrEventStore<UsernameClaim>,
    incidents: EmrEventStore<SecurityIncident>,
    sign_ins: EmrEventStore<SignInAttempt>,
    session_log: EmrEventStore<Session>,
    sessions: Arc<dyn SessionStore>,
    tokens: Arc<Tokens>,
    policy: AuthPolicy,
    services: DomainServices,
    apps: Arc<Vec<SmartApp>>,
    backends: Arc<Vec<BackendClient>>,
    id_tokens: Option<Arc<IdTokenKey>>,
}

impl From<ClaimError> for AuthError {
    fn from(_: ClaimError) -> Self {
        Self::UsernameTaken
    }
}

impl From<SecurityError> for AuthError {
    fn from(error: SecurityError) -> Self {
        Self::Crypto(error.to_string())
    }
}

impl From<AttemptAlreadyRecorded> for AuthError {
    fn from(error: AttemptAlreadyRecorded) -> Self {
        Self::Crypto(error.to_string())
    }
}

impl From<SessionLogError> for AuthError {
    fn from(error: SessionLogError) -> Self {
        Self::Crypto(error.to_string())
    }
}

const ISSUER_NAME: &str = "EMR Ledger";

/// Turns a registration's command id into its username claim's command id.
const CLAIM_ID_MASK: u128 = 0x00c1_a1d0_0000_0000_0000_0000_0000_0000;

impl Identity {
    /// Identity over a backend's ports, a session store and signing keys.
    pub fn new(
        ports: &EventStorePorts,
        sessions: Arc<dyn SessionStore>,
        tokens: Tokens,
        policy: AuthPolicy,
        services: DomainServices,
    ) -> Self {
        let phi = ports.phi_codec();
        let config = StoreConfig::default();
        Self {
            accounts: EmrEventStore::new(ports.log.clone(), phi.clone(), Some(ports.snapshots.clone()), config),
            claims: EmrEventStore::new(ports.log.clone(), phi.clone(), None, config),
            incidents: EmrEventStore::new(ports.log.clone(), phi.clone(), None, StoreConfig { cache_capacity: 0, ..config }),
            sign_ins: EmrEventStore::new(ports.log.clone(), phi.clone(), None, StoreConfig { cache_capacity: 0, ..config }),
            session_log: EmrEventStore::new(ports.log.clone(), phi, None, StoreConfig { cache_capacity: 1024, ..config }),
            sessions,
            tokens: Arc::new(tokens),
            policy,
            services,
            apps: Arc::new(Vec::new()),
            backends: Arc::new(Vec::new()),
            id_tokens: None,
        }
    }

    /// The same identity service, with the SMART apps registered to launch against it.
    #[must_use]
    pub fn with_apps(mut self, apps: Vec<SmartApp>) -> Self {
        self.apps = Arc::new(apps);
        self
    }

    /// A registered SMART app.
    pub fn app(&self, client_id: &str) -> Option<&SmartApp> {
        self.apps.iter().find(|app| app.client_id == client_id)
    }

    /// The same identity service, issuing OpenID Connect `id_token`s signed with `key`.
    #[must_use]
    pub fn with_id_token_key(mut self, key: IdTokenKey) -> Self {
        self.id_tokens = Some(Arc::new(key));
        self
    }

    /// The public keys of `id_token`s (none when this service issues none).
    pub fn id_token_keys(&self) -> Option<jsonwebtoken::jwk::JwkSet> {
        self.id_tokens.as_ref().map(|key| key.jwks())
    }

    /// The same identity service, with the backend services registered for
    /// SMART Backend Services (client credentials with a signed JWT).
    #[must_use]
    pub fn with_backend_clients(mut self, clients: Vec<BackendClient>) -> Self {
        self.backends = Arc::new(clients);
        self
    }

    /// Client credentials with a JWT assertion (`private_key_jwt`): the service
    /// the assertion names, if registered and the assertion holds (each assertion
    /// is good once), gets a token of its system account for the scopes it asked
    /// that it was registered for. No refresh token: it asks again.
    pub async fn client_credentials(
        &self,
        assertion: &str,
        scope: &str,
        token_url: &str,
        client: Option<IpAddr>,
    ) -> Result<AppTokens, AuthError> {
        let claimed =
            crate::backend::claimed_client(assertion).ok_or_else(|| AuthError::InvalidClient("the assertion names no issuer".into()))?;
        let service = self
            .backends
            .iter()
            .find(|service| service.client_id == claimed)
            .ok_or_else(|| AuthError::InvalidClient("this client is not registered".into()))?;
        let now = self.services.now().timestamp();
        let verified = service.verify(assertion, token_url, now).map_err(|e| AuthError::InvalidClient(e.to_string()))?;
        let lives = std::time::Duration::from_secs(u64::try_from(verified.expires_at - now).unwrap_or(0) + 60);
        let replay_key = format!("jwt-assertion:{}:{}", service.client_id, verified.id);
        if !self.sessions.put_new(&replay_key, "used", lives).await? {
            return Err(AuthError::InvalidClient("this assertion was already used".into()));
        }
        let granted = service.grantable(scope);
        if granted.is_empty() {
            return Err(AuthError::InvalidGrant("none of the requested scopes is registered for this client"));
        }
        let actor = service.actor();
        let grant = AppGrant { client_id: service.client_id.clone(), scope: granted.join(" "), patient: None };
        let pair = self.start_session(actor.user_id, actor.role, client, Some(grant.clone())).await?;
        Ok(Self::app_tokens(pair, grant))
    }

    /// Opens an account. `by` is the administrator, or none for a patient
    /// registering themselves. A patient account's id is the patient id it
    /// logs in as: `patient_id` (when an administrator links an existing
    /// patient) or the command id. Retrying with the same command id is safe.
    pub async fn register(
        &self,
        by: Option<&Actor>,
        registration: Registration,
        patient_id: Option<UserId>,
        command_id: CommandId,
    ) -> Result<UserId, AuthError> {
        match by {
            Some(admin) => {
                Self::may_administer(admin)?;
            }
            None if registration.role != Role::Patient => {
                return Err(Denied::RoleNotPermitted { role: registration.role, action: Action::ManageAccounts }.into());
            }
            None => {}
        }
        PasswordPolicy::check(&registration.password, &registration.username)?;
        let user_id = match (registration.role, patient_id) {
            (Role::Patient, Some(linked)) => linked,
            _ => UserId::from(command_id.as_uuid()),
        };
        let actor = by.copied().unwrap_or_else(|| Actor::new(user_id, Role::Patient));
        let context = CommandContext::with_id(command_id, actor);
        // One command id names one commit, so the claim gets its own id, derived
        // from the registration's so that a retry finds the claim it made.
        let claim_context =
            CommandContext::with_id(CommandId::from(uuid::Uuid::from_u128(command_id.as_uuid().as_u128() ^ CLAIM_ID_MASK)), actor);
        let claim = UsernameClaimCommand { username: registration.username.clone(), user_id };
        self.claims
            .execute(registration.username.as_str(), claim, &self.services, &claim_context)
            .await
            .map_err(ExecuteError::into_error::<AuthError>)?;
        let password_hash = secrets::hash_password(registration.password).await?;
        let command = AccountCommand::Register {
            user_id,
            username: registration.username,
            role: registration.role,
            profile: registration.profile,
            password_hash,
            registered_by: by.map(|admin| admin.user_id),
        };
        self.accounts
            .execute(&user_id.to_string(), command, &self.services, &context)
            .await
            .map_err(ExecuteError::into_error::<AuthError>)?;
        Ok(user_id)
    }

    /// Counts one attempt from `client` (an IP address, or a name for callers
    /// without one) in a one-minute window.
    pub async fn rate_limit(&self, client: &str, per_minute: u64) -> Result<(), AuthError> {
        let window = self.services.now().timestamp() / 60;
        let count = self.sessions.increment(&format!("rate:{client}:{window}"), Duration::from_secs(61)).await?;
        if count > per_minute {
            let retry_after_secs = 60 - (self.services.now().timestamp() % 60) as u64;
            return Err(AuthError::RateLimited { retry_after_secs });
        }
        Ok(())
    }

    async fn account_named(&self, username: &Username) -> Result<Option<Account>, AuthError> {
        let Some(user_id) = self.claims.load(username.as_str()).await?.state().user_id() else { return Ok(None) };
        let account = self.accounts.load(&user_id.to_string()).await?.state().clone();
        Ok((account.status() != AccountStatus::Absent).then_some(account))
    }

    fn usable(&self, account: &Account) -> Result<UserId, AuthError> {
        if account.status() == AccountStatus::Deactivated {
            return Err(AuthError::Deactivated);
        }
        if let Some(until) = account.locked_at(self.services.now()) {
            return Err(AuthError::Locked { until });
        }
        account.user_id().ok_or(AuthError::InvalidCredentials)
    }

    /// The password step. Counts failures per account; the `max_failures`-th
    /// failure in the window locks the account (an `AccountLocked` event).
    /// Every attempt, whatever its outcome, is recorded with `client`.
    pub async fn login(&self, username: &Username, password: String, client: Option<IpAddr>) -> Result<Challenge, AuthError> {
        let account = self.account_named(username).await?;
        let hash = account.as_ref().and_then(|a| a.password_hash().cloned());
        let matches = secrets::verify_password(password, hash).await;
        let attempt = |user_id, outcome| self.record_sign_in(username, user_id, client, outcome);
        let Some(account) = account else {
            attempt(None, SignInOutcome::UnknownAccount).await?;
            return Err(AuthError::InvalidCredentials);
        };
        let user_id = match self.usable(&account) {
            Ok(user_id) => user_id,
            Err(error) => {
                let outcome = if matches!(error, AuthError::Deactivated) { SignInOutcome::Deactivated } else { SignInOutcome::Locked };
                attempt(account.user_id(), outcome).await?;
                return Err(error);
            }
        };
        let failures_key = format!("login-failures:{user_id}");
        if !matches {
            attempt(Some(user_id), SignInOutcome::WrongPassword).await?;
            let failures = self.sessions.increment(&failures_key, self.policy.failure_window).await?;
            if failures >= self.policy.max_failures {
                let until = self.services.now() + self.policy.lockout;
                let lock = AccountCommand::Lock { until, failed_attempts: failures as u32 };
                self.execute_account(user_id, lock, &CommandContext::new(Actor::system())).await?;
                self.sessions.remove(&failures_key).await?;
                return Err(AuthError::Locked { until });
            }
            return Err(AuthError::InvalidCredentials);
        }
        attempt(Some(user_id), SignInOutcome::Succeeded).await?;
        self.sessions.remove(&failures_key).await?;
        let exp = (self.services.now() + self.policy.challenge_ttl).timestamp();
        let mfa_token = self.tokens.mfa(&MfaClaims { iss: tokens::ISSUER.into(), aud: tokens::MFA_AUDIENCE.into(), sub: user_id, exp })?;
        Ok(Challenge { mfa_token, enrolment_required: !matches!(account.mfa(), MfaState::Enabled(_)) })
    }

    async fn record_sign_in(
        &self,
        username: &Username,
        user_id: Option<UserId>,
        client: Option<IpAddr>,
        outcome: SignInOutcome,
    ) -> Result<(), AuthError> {
        let attempt_id = SignInId::new();
        let digest = ring::digest::digest(&ring::digest::SHA256, username.as_str().to_lowercase().as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        // Nobody is authenticated yet: the identity service records the attempt.
        let actor = Actor::system();
        let command = RecordSignIn { attempt_id, user_id, username_digest: Sha256Digest::from_bytes(bytes), client, outcome };
        self.sign_ins
            .execute(&attempt_id.to_string(), command, &self.services, &CommandContext::new(actor))
            .await
            .map_err(ExecuteError::into_error::<AuthError>)?;
        Ok(())
    }

    async fn execute_account(&self, user_id: UserId, command: AccountCommand, context: &CommandContext) -> Result<(), AuthError> {
        self.accounts
            .execute(&user_id.to_string(), command, &self.services, context)
            .await
            .map_err(ExecuteError::into_error::<AuthError>)?;
        Ok(())
    }

    async fn challenged_account(&self, mfa_token: &str) -> Result<(UserId, Account), AuthError> {
        let claims = self.tokens.verify_mfa(mfa_token)?;
        let account = self.accounts.load(&claims.sub.to_string()).await?.state().clone();
        let user_id = self.usable(&account)?;
        Ok((user_id, account))
    }

    /// Starts TOTP enrolment for a challenged account that has no MFA yet.
    pub async fn enrol(&self, mfa_token: &str) -> Result<Enrolment, AuthError> {
        let (user_id, account) = self.challenged_account(mfa_token).await?;
        let secret = secrets::new_totp_secret()?;
        let username = account.username().map(Username::as_str).unwrap_or_default().to_owned();
        let otpauth_uri = secrets::totp(&secret, ISSUER_NAME, &username)?.get_url();
        let encoded = secret.expose().to_owned();
        self.execute_account(
            user_id,
            AccountCommand::StartMfaEnrolment { secret },
            &CommandContext::new(Actor::new(user_id, account.role().unwrap_or(Role::Patient))),
        )
        .await?;
        Ok(Enrolment { otpauth_uri, secret: encoded })
    }

    /// The code step: checks the TOTP code (each code is good once), confirms a
    /// pending enrolment, and opens a session.
    pub async fn verify(&self, mfa_token: &str, code: &str, client: Option<IpAddr>) -> Result<TokenPair, AuthError> {
        let (user_id, role) = self.check_code(mfa_token, code).await?;
        self.start_session(user_id, role, client, None).await
    }

    /// A new session (recorded in the log) and its first tokens; `app` for a SMART app's.
    async fn start_session(
        &self,
        user_id: UserId,
        role: Role,
        client: Option<IpAddr>,
        app: Option<AppGrant>,
    ) -> Result<TokenPair, AuthError> {
        let family = self.new_family();
        self.record_session(family, SessionCommand::Open { session_id: SessionId::from(family), user_id, client }).await?;
        self.open_session(user_id, role, family, app).await
    }

    /// Where the session store keeps a refresh token's entry: under its digest.
    fn refresh_key(refresh_token: &str) -> String {
        format!("refresh:{}", tokens::refresh_token_digest(refresh_token))
    }

    /// Checks a challenged account's TOTP code (each code is good once) and
    /// confirms a pending enrolment: the user and role it proves.
    async fn check_code(&self, mfa_token: &str, code: &str) -> Result<(UserId, Role), AuthError> {
        let (user_id, account) = self.challenged_account(mfa_token).await?;
        let role = account.role().ok_or(AuthError::InvalidCredentials)?;
        let secret = match account.mfa() {
            MfaState::Enabled(secret) | MfaState::Pending(secret) => secret.value().ok_or(AuthError::InvalidCredentials)?,
            MfaState::NotEnrolled => return Err(AuthError::EnrolmentRequired),
        };
        let totp = secrets::totp(secret, ISSUER_NAME, account.username().map(Username::as_str).unwrap_or_default())?;
        let now = u64::try_from(self.services.now().timestamp()).unwrap_or_default();
        let step = secrets::matching_step(&totp, code, now).ok_or(AuthError::InvalidCode)?;
        // The code is part of the key so that a secret enrolled after an MFA reset
        // is not refused for the step the lost one last used.
        let first_use = self.sessions.put_new(&format!("totp-used:{user_id}:{step}:{code}"), "1", Duration::from_secs(120)).await?;
        if !first_use {
            self.raise(SecurityEventKind::TotpCodeReplayed, user_id).await?;
            return Err(AuthError::CodeReplayed);
        }
        if matches!(account.mfa(), MfaState::Pending(_)) {
            self.execute_account(user_id, AccountCommand::ConfirmMfa, &CommandContext::new(Actor::new(user_id, role))).await?;
        }
        Ok((user_id, role))
    }

    /// Both sign-in steps at once, for the SMART authorization page: the password
    /// (failures counted and recorded as on the API) and an enrolled account's
    /// TOTP code. The user the app will act for.
    pub async fn authenticate_for_app(
        &self,
        username: &Username,
        password: String,
        code: &str,
        client: Option<IpAddr>,
    ) -> Result<Actor, AuthError> {
        let challenge = self.login(username, password, client).await?;
        if challenge.enrolment_required {
            return Err(AuthError::EnrolmentRequired);
        }
        let (user_id, role) = self.check_code(&challenge.mfa_token, code).await?;
        Ok(Actor::new(user_id, role))
    }

    fn launch_key(launch: &str) -> String {
        format!("smart-launch:{}", tokens::refresh_token_digest(launch))
    }

    /// Opens `context` for an EHR launch: the opaque `launch` value the app is
    /// sent with, good for the challenge's lifetime.
    pub async fn create_launch(&self, context: &LaunchContext) -> Result<String, AuthError> {
        if self.app(&context.client_id).is_none() {
            return Err(AuthError::InvalidGrant("the app is not registered"));
        }
        let launch = tokens::new_refresh_token()?;
        let stored = serde_json::to_string(context).map_err(|e| AuthError::Crypto(e.to_string()))?;
        self.sessions.put(&Self::launch_key(&launch), &stored, self.policy.challenge_ttl).await?;
        Ok(launch)
    }

    /// The context of a live `launch` value.
    pub async fn launch_context(&self, launch: &str) -> Result<Option<LaunchContext>, AuthError> {
        let Some(stored) = self.sessions.get(&Self::launch_key(launch)).await? else { return Ok(None) };
        Ok(Some(serde_json::from_str(&stored).map_err(|e| AuthError::Crypto(e.to_string()))?))
    }

    /// How long a launch (or an MFA challenge) lives.
    pub fn launch_lifetime(&self) -> Duration {
        self.policy.challenge_ttl
    }

    fn code_key(code: &str) -> String {
        format!("smart-code:{}", tokens::refresh_token_digest(code))
    }

    /// Issues a one-use authorization code for what `user` approved; it lives for
    /// the challenge's lifetime (the app redeems it at once).
    pub async fn issue_authorization_code(&self, user: Actor, request: AuthorizationRequest) -> Result<String, AuthError> {
        let code = tokens::new_refresh_token()?;
        let pending = serde_json::to_string(&(user.user_id, user.role, request)).map_err(|e| AuthError::Crypto(e.to_string()))?;
        self.sessions.put(&Self::code_key(&code), &pending, self.policy.challenge_ttl).await?;
        Ok(code)
    }

    /// Trades an authorization code for an app's tokens: the code is good once,
    /// for the app and redirect URI it was issued to, and only with the PKCE
    /// verifier of its challenge.
    pub async fn redeem_authorization_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        client: Option<IpAddr>,
        issuer: &str,
    ) -> Result<AppTokens, AuthError> {
        let pending =
            self.sessions.take(&Self::code_key(code)).await?.ok_or(AuthError::InvalidGrant("the code is unknown, used or expired"))?;
        let (user_id, role, request): (UserId, Role, AuthorizationRequest) =
            serde_json::from_str(&pending).map_err(|e| AuthError::Crypto(e.to_string()))?;
        if request.grant.client_id != client_id || request.redirect_uri != redirect_uri {
            return Err(AuthError::InvalidGrant("the code was issued to another client or redirect URI"));
        }
        if !apps::pkce_matches(code_verifier, &request.code_challenge) {
            return Err(AuthError::InvalidGrant("the code verifier does not match the code challenge"));
        }
        let account = self.accounts.load(&user_id.to_string()).await?.state().clone();
        self.usable(&account)?;
        let pair = self.start_session(user_id, role, client, Some(request.grant.clone())).await?;
        let id_token = self.id_token(user_id, role, &request, issuer)?;
        Ok(AppTokens { id_token, ..Self::app_tokens(pair, request.grant) })
    }

    /// The `id_token` of a code redeemed by an app that asked for `openid`.
    fn id_token(&self, user_id: UserId, role: Role, request: &AuthorizationRequest, issuer: &str) -> Result<Option<String>, AuthError> {
        let (Some(key), true) = (&self.id_tokens, request.grant.has("openid")) else { return Ok(None) };
        let now = self.services.now().timestamp();
        // The FHIR resource the user is: a patient's own Patient, a clinician's Practitioner.
        let resource = match role {
            Role::Patient => Some("Patient"),
            Role::Physician | Role::Nurse => Some("Practitioner"),
            _ => None,
        };
        let fhir_user = resource.filter(|_| request.grant.has("fhirUser")).map(|resource| format!("{resource}/{user_id}"));
        let claims = IdTokenClaims {
            iss: issuer.to_owned(),
            sub: user_id.to_string(),
            aud: request.grant.client_id.clone(),
            iat: now,
            exp: now + i64::try_from(self.policy.access_ttl.as_secs()).unwrap_or(900),
            nonce: request.nonce.clone(),
            fhir_user,
        };
        Ok(Some(key.sign(&claims)?))
    }

    fn app_tokens(pair: TokenPair, grant: AppGrant) -> AppTokens {
        let keeps_refreshing = grant.has("offline_access") || grant.has("online_access");
        AppTokens {
            access_token: pair.access_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
            scope: grant.scope,
            patient: grant.patient,
            refresh_token: keeps_refreshing.then_some(pair.refresh_token),
            id_token: None,
        }
    }

    /// An app's refresh: the same rotation and reuse detection as the API's, and
    /// the new tokens keep the app's grant. A refresh token of an API session is
    /// refused here (and is not spent).
    pub async fn refresh_app(&self, refresh_token: &str, client_id: &str, client: Option<IpAddr>) -> Result<AppTokens, AuthError> {
        let entry = self.sessions.get(&Self::refresh_key(refresh_token)).await?;
        let grant = entry
            .and_then(|entry| serde_json::from_str::<RefreshEntry>(&entry).ok())
            .and_then(|entry| entry.app)
            .filter(|grant| grant.client_id == client_id)
            .ok_or(AuthError::InvalidGrant("not a live refresh token of this app"))?;
        let pair = self.refresh(refresh_token, client).await?;
        Ok(Self::app_tokens(pair, grant))
    }

    /// Revokes the session a token (access or refresh) belongs to (RFC 7009: an
    /// unknown token is not an error).
    pub async fn revoke(&self, token: &str) -> Result<(), AuthError> {
        if let Ok(claims) = self.tokens.verify_access(token) {
            return self.logout(&claims).await;
        }
        if let Some(entry) = self.sessions.get(&Self::refresh_key(token)).await? {
            let entry: RefreshEntry = serde_json::from_str(&entry).map_err(|e| AuthError::Crypto(e.to_string()))?;
            self.sessions.put(&Self::revoked_key(entry.family), "revoked", self.policy.refresh_ttl).await?;
        }
        Ok(())
    }

    async fn record_session(&self, family: uuid::Uuid, command: SessionCommand) -> Result<(), AuthError> {
        let context = CommandContext::new(Actor::system());
        self.session_log
            .execute(&family.to_string(), command, &self.services, &context)
            .await
            .map_err(ExecuteError::into_error::<AuthError>)?;
        Ok(())
    }

    async fn raise(&self, kind: SecurityEventKind, user_id: UserId) -> Result<(), AuthError> {
        let id = SecurityEventId::new();
        let context = CommandContext::new(Actor::system());
        let raise = Raise {
            id,
            kind,
            severity: kind.severity(),
            user_id: Some(user_id),
            patient_id: None,
            client: None,
            risk_score: 0.0,
            evidence: Vec::new(),
            summary: format!("{} detected by the identity service", kind.name()),
        };
        self.incidents
            .execute(&id.to_string(), SecurityCommand::Raise(raise), &self.services, &context)
            .await
            .map_err(ExecuteError::into_error::<AuthError>)?;
        crate::metrics::security_event_raised(kind, kind.severity());
        tracing::warn!(?kind, %user_id, "security event raised");
        Ok(())
    }

    async fn open_session(&self, user_id: UserId, role: Role, family: uuid::Uuid, app: Option<AppGrant>) -> Result<TokenPair, AuthError> {
        let now = self.services.now();
        let claims = AccessClaims {
            iss: tokens::ISSUER.into(),
            aud: tokens::API_AUDIENCE.into(),
            sub: user_id,
            role,
            sid: family,
            iat: now.timestamp(),
            exp: (now + self.policy.access_ttl).timestamp(),
            jti: uuid::Uuid::new_v4(),
            app: app.clone(),
        };
        let access_token = self.tokens.access(&claims)?;
        let refresh_token = tokens::new_refresh_token()?;
        let entry = serde_json::to_string(&RefreshEntry { user: user_id, family, issued_at: now.timestamp(), app })
            .map_err(|e| AuthError::Crypto(e.to_string()))?;
        self.sessions.put(&Self::refresh_key(&refresh_token), &entry, self.policy.refresh_ttl).await?;
        Ok(TokenPair { access_token, token_type: "Bearer", expires_in: self.policy.access_ttl.as_secs(), refresh_token })
    }

    fn revoked_key(family: uuid::Uuid) -> String {
        format!("session-revoked:{family}")
    }

    fn reauthentication_key(user_id: UserId) -> String {
        format!("reauthenticate-before-ms:{user_id}")
    }

    /// A new session's family id: a UUIDv7 of the instant it opens, so that a
    /// forced re-authentication can tell sessions apart to the millisecond.
    fn new_family(&self) -> uuid::Uuid {
        let now = self.services.now();
        let seconds = u64::try_from(now.timestamp()).unwrap_or_default();
        uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, now.timestamp_subsec_nanos()))
    }

    /// When the session `family` opened, in milliseconds since the epoch. A family
    /// id without a time in it (a session opened before families were UUIDv7)
    /// counts as opened at the end of the second its token was issued.
    fn opened_at_ms(family: uuid::Uuid, issued_at: i64) -> i64 {
        match family.get_timestamp() {
            Some(timestamp) => {
                let (seconds, nanos) = timestamp.to_unix();
                i64::try_from(seconds).unwrap_or(i64::MAX / 1000) * 1000 + i64::from(nanos / 1_000_000)
            }
            None => issued_at.saturating_mul(1000).saturating_add(999),
        }
    }

    /// Whether a session of `user_id` opened at `opened_at_ms` predates a forced
    /// re-authentication. One opened in the cutoff's own millisecond counts as
    /// before it: an attacker's session opened just ahead of the response must
    /// not survive it, and a sign-in after it cannot happen that fast.
    async fn before_reauthentication(&self, user_id: UserId, opened_at_ms: i64) -> Result<bool, AuthError> {
        let cutoff = self.sessions.get(&Self::reauthentication_key(user_id)).await?;
        Ok(cutoff.and_then(|text| text.parse::<i64>().ok()).is_some_and(|cutoff| opened_at_ms <= cutoff))
    }

    /// Ends every session `user_id` holds now: their next request or refresh is
    /// refused, and they must pass the password and MFA steps again (a response
    /// to a security event).
    pub async fn force_reauthentication(&self, user_id: UserId) -> Result<(), AuthError> {
        let cutoff = self.services.now().timestamp_millis().to_string();
        self.sessions.put(&Self::reauthentication_key(user_id), &cutoff, self.policy.refresh_ttl).await?;
        Ok(())
    }

    /// Locks `user_id` until an administrator unlocks it with a reason (the
    /// response to a critical security event), and ends their sessions.
    pub async fn suspend(&self, user_id: UserId, security_event: SecurityEventId) -> Result<(), AuthError> {
        self.execute_account(user_id, AccountCommand::Suspend { security_event }, &CommandContext::new(Actor::system())).await?;
        self.force_reauthentication(user_id).await
    }

    /// Trades a refresh token for a new pair. A token is good once: presenting a
    /// used one revokes its session and raises a security event.
    pub async fn refresh(&self, refresh_token: &str, client: Option<IpAddr>) -> Result<TokenPair, AuthError> {
        let digest = tokens::refresh_token_digest(refresh_token);
        let Some(entry) = self.sessions.take(&Self::refresh_key(refresh_token)).await? else {
            if let Some(used) = self.sessions.get(&format!("refresh-used:{digest}")).await? {
                let entry: RefreshEntry = serde_json::from_str(&used).map_err(|e| AuthError::Crypto(e.to_string()))?;
                self.sessions.put(&Self::revoked_key(entry.family), "reuse", self.policy.refresh_ttl).await?;
                self.raise(SecurityEventKind::RefreshTokenReused, entry.user).await?;
                return Err(AuthError::RefreshTokenReused);
            }
            return Err(TokenError::Invalid("is not a live refresh token").into());
        };
        self.sessions.put(&format!("refresh-used:{digest}"), &entry, self.policy.refresh_ttl).await?;
        let entry: RefreshEntry = serde_json::from_str(&entry).map_err(|e| AuthError::Crypto(e.to_string()))?;
        if self.sessions.get(&Self::revoked_key(entry.family)).await?.is_some()
            || self.before_reauthentication(entry.user, Self::opened_at_ms(entry.family, entry.issued_at)).await?
        {
            return Err(AuthError::SessionRevoked);
        }
        let account = self.accounts.load(&entry.user.to_string()).await?.state().clone();
        let user_id = self.usable(&account)?;
        let role = account.role().ok_or(AuthError::InvalidCredentials)?;
        self.record_session(entry.family, SessionCommand::Refresh { client }).await?;
        self.open_session(user_id, role, entry.family, entry.app).await
    }

    /// Ends the session an access token belongs to.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), AuthError> {
        self.sessions.put(&Self::revoked_key(claims.sid), "logout", self.policy.refresh_ttl).await?;
        Ok(())
    }

    /// Authenticates a bearer token: signature, issuer, audience, expiry, and a
    /// session that was not revoked.
    pub async fn authenticate(&self, bearer: &str) -> Result<AccessClaims, AuthError> {
        let claims = self.tokens.verify_access(bearer)?;
        if self.sessions.get(&Self::revoked_key(claims.sid)).await?.is_some()
            || self.before_reauthentication(claims.sub, Self::opened_at_ms(claims.sid, claims.iat)).await?
        {
            return Err(AuthError::SessionRevoked);
        }
        Ok(claims)
    }

    /// Whether `admin` may manage accounts: decided by role alone (no PHI is
    /// involved, so a refusal is not a denial to record).
    pub fn may_administer(admin: &Actor) -> Result<(), AuthError> {
        access::rule(admin.role, Action::ManageAccounts).evaluate(admin, Action::ManageAccounts, &Facts::default())?;
        Ok(())
    }

    /// An administrator acts on an account (lock lifting, deactivation), as the
    /// command `context` (its actor, idempotency key and expected version) says.
    pub async fn administer(&self, context: &CommandContext, user_id: UserId, command: AccountCommand) -> Result<(), AuthError> {
        Self::may_administer(&context.actor)?;
        self.execute_account(user_id, command, context).await
    }

    /// An administrator moves a staff account to another role (see
    /// `AccountCommand::ChangeRole`); the account's sessions end, so its next
    /// sign-in carries the new role.
    pub async fn change_role(
        &self,
        context: &CommandContext,
        user_id: UserId,
        role: Role,
        profile: Option<PractitionerProfile>,
        reason: ShortText,
    ) -> Result<(), AuthError> {
        let by = context.actor.user_id;
        self.administer(context, user_id, AccountCommand::ChangeRole { role, profile, by, reason }).await?;
        self.force_reauthentication(user_id).await
    }

    /// An administrator clears an account's TOTP enrolment (see
    /// `AccountCommand::ResetMfa`); the account's sessions end, and its next
    /// sign-in enrols a new secret.
    pub async fn reset_mfa(&self, context: &CommandContext, user_id: UserId, reason: ShortText) -> Result<(), AuthError> {
        self.administer(context, user_id, AccountCommand::ResetMfa { by: context.actor.user_id, reason }).await?;
        self.force_reauthentication(user_id).await
    }

    /// Whether the session store answers (readiness).
    pub async fn check_sessions(&self) -> Result<(), AuthError> {
        self.sessions.get("readiness-probe").await?;
        Ok(())
    }

    /// An account as of now (for administrators and the account holder).
    pub async fn account(&self, user_id: UserId) -> Result<Account, AuthError> {
        Ok(self.versioned_account(user_id).await?.0)
    }

    /// An account and its version (events applied), which a command may name
    /// as the version it expects.
    pub async fn versioned_account(&self, user_id: UserId) -> Result<(Account, u64), AuthError> {
        let loaded = self.accounts.load(&user_id.to_string()).await?;
        Ok((loaded.state().clone(), loaded.sequence()))
    }
}
