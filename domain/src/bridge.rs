//! Bridge attestations: validators vouching for a tree head on a target chain.
//!
//! A validator re-derives a tree head from the source ledger and the event log
//! on its own and signs it for one target chain's bridge contract (EIP-712, so
//! the signature is bound to that chain and contract). Each signature is a fact
//! in the log: relayers gather k of them from here, and auditors see who vouched
//! for what. One aggregate per (target chain, contract, tree size).
//!
//! A validator that signs two different roots for the same head has equivocated:
//! that is recorded as evidence and its second signature never counts.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::clock::DomainServices;
use crate::decided::write_decided;

/// Which head, for which target: what a signature is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgedHead {
    /// Target chain id.
    pub chain_id: u64,
    /// Bridge contract on that chain, `0x` and 40 lowercase hex digits.
    pub contract: String,
    /// Tree size of the head.
    pub tree_size: u64,
    /// Its Merkle root, 64 lowercase hex digits.
    pub root: String,
    /// The ledger the head was read from (`file`, `fabric`).
    pub source_ledger: String,
    /// Its block on that ledger.
    pub source_block: u64,
}

impl BridgedHead {
    /// The aggregate id of this head's attestations: chain, the contract's first
    /// 16 hex digits (ids are at most 64 characters) and tree size.
    pub fn attestation_id(&self) -> String {
        attestation_id(self.chain_id, &self.contract, self.tree_size)
    }
}

/// The aggregate id of the attestations for `tree_size` on `contract` at `chain_id`.
pub fn attestation_id(chain_id: u64, contract: &str, tree_size: u64) -> String {
    let digits = contract.trim_start_matches("0x");
    format!("{chain_id}-{}-{tree_size}", &digits[..digits.len().min(16)])
}

/// A validator's signature over a head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attest {
    /// The head signed.
    pub head: BridgedHead,
    /// The validator's address, `0x` and 40 lowercase hex digits.
    pub validator: String,
    /// Its 65-byte signature (r ‖ s ‖ v), hex.
    pub signature: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AttestationEvent {
    /// A validator signed a head.
    HeadAttested {
        /// The head.
        head: BridgedHead,
        /// Who signed.
        validator: String,
        /// The signature, hex.
        signature: String,
    },
    /// A validator signed a second, different root for a head it had signed:
    /// evidence of a faulty or dishonest validator. The signature never counts.
    ValidatorEquivocated {
        /// The head as signed the second time.
        head: BridgedHead,
        /// Who signed.
        validator: String,
        /// The second signature, hex.
        signature: String,
        /// The root it had signed first.
        first_root: String,
    },
}

impl DomainEvent for AttestationEvent {
    fn event_type(&self) -> String {
        match self {
            Self::HeadAttested { .. } => "HeadAttested",
            Self::ValidatorEquivocated { .. } => "ValidatorEquivocated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// An attestation that cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// A field is malformed.
    #[error("invalid attestation: {0}")]
    Invalid(&'static str),
    /// The attestation names another chain, contract or tree size than this aggregate's.
    #[error("the attestation is for another head than the ones recorded here")]
    OtherHead,
}

/// One validator's signature, as counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The root signed.
    pub root: String,
    /// The head as signed (source ledger and block included).
    pub head: BridgedHead,
    /// The signature, hex.
    pub signature: String,
}

/// The signatures gathered for one head on one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadAttestations {
    target: Option<(u64, String, u64)>,
    signatures: BTreeMap<String, Signature>,
    equivocators: Vec<String>,
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_address(text: &str) -> bool {
    text.strip_prefix("0x").is_some_and(|digits| is_hex(digits, 40))
}

impl HeadAttestations {
    /// The events recording `command`: none when the validator already signed the
    /// same head (a retry), `ValidatorEquivocated` when it signed another root.
    pub fn decide(&self, command: Attest) -> Result<Vec<AttestationEvent>, AttestationError> {
        let Attest { head, validator, signature } = command;
        if !is_address(&validator) || !is_address(&head.contract) {
            return Err(AttestationError::Invalid("addresses are 0x and 40 lowercase hex digits"));
        }
        if !is_hex(&head.root, 64) {
            return Err(AttestationError::Invalid("the root is 64 lowercase hex digits"));
        }
        if !is_hex(&signature, 130) {
            return Err(AttestationError::Invalid("the signature is 65 bytes of lowercase hex"));
        }
        if head.tree_size == 0 || head.source_ledger.is_empty() || head.source_ledger.len() > 64 {
            return Err(AttestationError::Invalid("a head has a size and a source ledger name of at most 64 characters"));
        }
        if self.target.as_ref().is_some_and(|target| *target != (head.chain_id, head.contract.clone(), head.tree_size)) {
            return Err(AttestationError::OtherHead);
        }
        match self.signatures.get(&validator) {
            Some(first) if first.head == head => Ok(Vec::new()),
            Some(first) => Ok(vec![AttestationEvent::ValidatorEquivocated { head, validator, signature, first_root: first.root.clone() }]),
            None => Ok(vec![AttestationEvent::HeadAttested { head, validator, signature }]),
        }
    }

    /// The validators who signed exactly `head`, with their signatures, in
    /// ascending address order (the order the contract wants them in).
    pub fn signatures_for(&self, head: &BridgedHead) -> Vec<(&str, &str)> {
        self.signatures
            .iter()
            .filter(|(validator, signed)| signed.head == *head && !self.equivocators.contains(validator))
            .map(|(validator, signed)| (validator.as_str(), signed.signature.as_str()))
            .collect()
    }

    /// Validators caught signing two roots.
    pub fn equivocators(&self) -> &[String] {
        &self.equivocators
    }
}

impl Aggregate for HeadAttestations {
    const TYPE: &'static str = "bridge_attestation";
    type Command = Attest;
    type Event = AttestationEvent;
    type Error = AttestationError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AttestationEvent::HeadAttested { head, validator, signature } => {
                self.target = Some((head.chain_id, head.contract.clone(), head.tree_size));
                self.signatures.insert(validator, Signature { root: head.root.clone(), head, signature });
            }
            AttestationEvent::ValidatorEquivocated { validator, .. } => {
                if !self.equivocators.contains(&validator) {
                    self.equivocators.push(validator);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(root: u8) -> BridgedHead {
        BridgedHead {
            chain_id: 137,
            contract: format!("0x{}", "ab".repeat(20)),
            tree_size: 12,
            root: format!("{root:02x}").repeat(32),
            source_ledger: "fabric".into(),
            source_block: 4,
        }
    }

    fn attest(validator: u8, head: BridgedHead) -> Attest {
        Attest { head, validator: format!("0x{}", format!("{validator:02x}").repeat(20)), signature: "1b".repeat(65) }
    }

    fn record(state: &mut HeadAttestations, command: Attest) -> Vec<AttestationEvent> {
        let events = state.decide(command).unwrap();
        for event in events.clone() {
            state.apply(event);
        }
        events
    }

    #[test]
    fn signatures_are_gathered_per_validator_in_address_order_and_retries_add_nothing() {
        let mut state = HeadAttestations::default();
        assert_eq!(record(&mut state, attest(0x33, head(1))).len(), 1);
        assert_eq!(record(&mut state, attest(0x11, head(1))).len(), 1);
        assert!(record(&mut state, attest(0x11, head(1))).is_empty(), "the same signature again is a retry");
        let signers: Vec<&str> = state.signatures_for(&head(1)).into_iter().map(|(v, _)| v).collect();
        assert_eq!(signers, [format!("0x{}", "11".repeat(20)), format!("0x{}", "33".repeat(20))]);
        assert!(state.signatures_for(&head(2)).is_empty(), "nobody signed another root");
    }

    #[test]
    fn a_validator_signing_a_second_root_is_recorded_as_equivocating_and_no_longer_counts() {
        let mut state = HeadAttestations::default();
        record(&mut state, attest(0x11, head(1)));
        let events = record(&mut state, attest(0x11, head(2)));
        assert!(
            matches!(&events[..], [AttestationEvent::ValidatorEquivocated { first_root, .. }] if *first_root == head(1).root),
            "{events:?}"
        );
        assert!(state.signatures_for(&head(1)).is_empty());
        assert_eq!(state.equivocators().len(), 1);
    }

    #[test]
    fn malformed_attestations_and_attestations_for_another_head_are_refused() {
        let mut state = HeadAttestations::default();
        record(&mut state, attest(0x11, head(1)));
        let mut other = attest(0x22, head(1));
        other.head.tree_size = 13;
        assert_eq!(state.decide(other), Err(AttestationError::OtherHead));
        let mut bad = attest(0x22, head(1));
        bad.signature = "zz".into();
        assert!(matches!(state.decide(bad), Err(AttestationError::Invalid(_))));
        let mut upper = attest(0x22, head(1));
        upper.validator = upper.validator.to_uppercase();
        assert!(matches!(state.decide(upper), Err(AttestationError::Invalid(_))));
    }

    #[test]
    fn the_id_names_chain_contract_and_size_within_the_id_limit() {
        let id = head(1).attestation_id();
        assert_eq!(id, "137-abababababababab-12");
        assert!(attestation_id(u64::MAX, &format!("0x{}", "f".repeat(40)), u64::MAX).len() <= 64);
    }
}
