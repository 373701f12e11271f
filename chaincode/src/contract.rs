//! What a contract sees of one transaction, and the functions it answers.
//!
//! Contracts are written against [`WorldState`] and [`Invocation`] only: the shim
//! (`shim.rs`) provides them over the peer's stream, tests and harnesses can
//! provide them from memory. Everything a contract decides from comes from the
//! signed proposal (creator, timestamp) or the world state, never from the
//! endorsing peer's clock, so every endorser computes the same result.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::{anchor, permission};

/// Keys with their values, in key order.
pub type Entries = Vec<(String, Vec<u8>)>;

/// The ledger's key-value state, as one transaction reads and writes it.
pub trait WorldState: Send {
    /// The value at `key`, if any.
    fn get<'a>(&'a mut self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, ContractError>>;
    /// Writes `value` at `key` (committed with the transaction; not visible to its
    /// own reads, as in Fabric).
    fn put<'a>(&'a mut self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), ContractError>>;
    /// Keys in `[start, end)` with their values, in key order.
    fn range<'a>(&'a mut self, start: &'a str, end: &'a str) -> BoxFuture<'a, Result<Entries, ContractError>>;
}

/// Who submitted the transaction: the creator of the signed proposal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Creator {
    /// The creator's organisation (MSP id).
    pub msp_id: String,
    /// SHA-256 of the creator's certificate (PEM as serialized), hex: names one
    /// identity without storing the certificate in every record.
    pub certificate_sha256: String,
}

impl Creator {
    /// The creator named by its MSP id and the SHA-256 of its certificate as
    /// serialized in the proposal.
    pub fn of(msp_id: impl Into<String>, certificate: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, certificate);
        Self { msp_id: msp_id.into(), certificate_sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect() }
    }
}

/// One call of the chaincode.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The function (first argument).
    pub function: String,
    /// The remaining arguments.
    pub args: Vec<Vec<u8>>,
    /// Who submitted it.
    pub creator: Creator,
    /// The proposal's timestamp (the channel header's): the transaction's "now".
    pub timestamp: DateTime<Utc>,
    /// The transaction id.
    pub transaction_id: String,
}

impl Invocation {
    /// Argument `index` as text.
    pub(crate) fn text(&self, index: usize, name: &str) -> Result<&str, ContractError> {
        let bytes =
            self.args.get(index).ok_or_else(|| ContractError::BadRequest(format!("{}: missing argument `{name}`", self.function)))?;
        std::str::from_utf8(bytes).map_err(|_| ContractError::BadRequest(format!("{}: `{name}` is not UTF-8", self.function)))
    }

    /// Refuses arguments beyond `count`.
    pub(crate) fn expect_args(&self, count: usize) -> Result<(), ContractError> {
        if self.args.len() == count {
            Ok(())
        } else {
            Err(ContractError::BadRequest(format!("{} takes {count} argument(s), got {}", self.function, self.args.len())))
        }
    }
}

/// Why a call failed; the status goes back to the peer in the `Response`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// Malformed or invalid arguments.
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at the key asked for.
    #[error("{0}")]
    NotFound(String),
    /// The call contradicts what the ledger holds.
    #[error("{0}")]
    Conflict(String),
    /// The peer refused a state call, or the state holds something unreadable.
    #[error("ledger: {0}")]
    Ledger(String),
}

impl ContractError {
    /// The status of the chaincode `Response` (Fabric treats ≥ 400 as an error).
    pub fn status(&self) -> i32 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::Ledger(_) => 500,
        }
    }
}

/// The functions the chaincode answers.
pub const FUNCTIONS: [&str; 7] =
    ["RecordHead", "HeadBySize", "LatestHead", "AnchoredHeads", "GrantPermission", "RevokePermission", "ActivePermissions"];

/// Runs one call; returns the response payload (JSON).
pub async fn invoke(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    match invocation.function.as_str() {
        "RecordHead" => anchor::record_head(invocation, state).await,
        "HeadBySize" => anchor::head_by_size(invocation, state).await,
        "LatestHead" => anchor::latest_head(invocation, state).await,
        "AnchoredHeads" => anchor::anchored_heads(invocation, state).await,
        "GrantPermission" => permission::grant(invocation, state).await,
        "RevokePermission" => permission::revoke(invocation, state).await,
        "ActivePermissions" => permission::active(invocation, state).await,
        other => Err(ContractError::BadRequest(format!("no function `{other}`; known: {}", FUNCTIONS.join(", ")))),
    }
}

/// JSON of `value`.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ContractError> {
    serde_json::to_vec(value).map_err(|e| ContractError::Ledger(format!("encoding: {e}")))
}

/// `T` from JSON stored at `key`.
pub(crate) fn from_stored<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ContractError> {
    serde_json::from_slice(bytes).map_err(|e| ContractError::Ledger(format!("state at `{key}` is unreadable: {e}")))
}
