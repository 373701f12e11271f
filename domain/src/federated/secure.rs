//! The secure-aggregation protocol of one round, as the task records it (Bonawitz et
//! al., CCS 2017). The cryptography runs at the hospitals and in the coordinator's
//! unmasking (crate `emr-learning`); the task only relays opaque messages and decides
//! which step may happen next, so every step is an event and a crash loses none.
//!
//! 1. **Advertising**: each enrolled hospital publishes two public keys.
//! 2. The coordinator fixes the roster (the advertisers) and the threshold.
//!    **Sharing**: each roster member sends one sealed share to every member.
//! 3. The coordinator closes sharing; the sharers are who may mask.
//!    **Masking**: each sharer submits its masked update (as its round update).
//! 4. The coordinator closes masking; the survivors are who submitted.
//!    **Unmasking**: each survivor reveals, for every sharer, the share of its
//!    self-mask seed if it survived and of its mask key if it dropped out.
//! 5. With the threshold's worth of reveals, the coordinator aggregates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::HospitalId;

/// Bytes the task relays without reading (public keys, sealed and revealed shares);
/// base64 in JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct Opaque(Vec<u8>);

impl Opaque {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opaque({} bytes)", self.0.len())
    }
}

impl Serialize for Opaque {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Opaque {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text.as_bytes()).map(Self).map_err(|_| serde::de::Error::custom("expected base64"))
    }
}

/// Length of an X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of a sealed share: sender and recipient, two Shamir shares of a 32-byte
/// secret (1 + 32 bytes each) and the Poly1305 tag.
pub const SEALED_SHARE_LEN: usize = 2 + 33 + 33 + 16;
/// Length of a revealed Shamir share of a 32-byte secret.
pub const REVEALED_SHARE_LEN: usize = 33;

/// Which secret of a hospital a revealed share rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// The self-mask seed of a hospital whose masked update arrived.
    SelfMask,
    /// The mask key of a hospital that dropped out after sharing.
    MaskKey,
}

/// One revealed share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevealedShare {
    /// The hospital whose secret it is a share of.
    pub owner: HospitalId,
    /// Which secret.
    pub secret: SecretKind,
    /// The share.
    pub share: Opaque,
}

/// What a hospital sends in one step of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SecureMessage {
    /// Its public keys (advertising).
    Keys {
        /// X25519 key that seals shares sent to it.
        sealing_key: Opaque,
        /// X25519 key that agrees pairwise masks with it.
        masking_key: Opaque,
    },
    /// One sealed share for every roster member, itself included (sharing).
    Shares {
        /// Recipient → sealed share.
        shares: BTreeMap<HospitalId, Opaque>,
    },
    /// Its shares of every sharer's secret (unmasking).
    Reveal {
        /// One per sharer.
        shares: Vec<RevealedShare>,
    },
}

impl SecureMessage {
    /// The step it belongs to.
    pub fn step(&self) -> SecureStep {
        match self {
            Self::Keys { .. } => SecureStep::Advertising,
            Self::Shares { .. } => SecureStep::Sharing,
            Self::Reveal { .. } => SecureStep::Unmasking,
        }
    }
}

/// The steps of a secure round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureStep {
    /// Hospitals publish keys.
    #[default]
    Advertising,
    /// Roster members exchange sealed shares.
    Sharing,
    /// Sharers submit masked updates.
    Masking,
    /// Survivors reveal shares.
    Unmasking,
}

impl SecureStep {
    /// The step as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advertising => "advertising",
            Self::Sharing => "sharing",
            Self::Masking => "masking",
            Self::Unmasking => "unmasking",
        }
    }
}

/// A hospital's public keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeys {
    /// X25519 key that seals shares sent to it.
    pub sealing_key: Opaque,
    /// X25519 key that agrees pairwise masks with it.
    pub masking_key: Opaque,
}

/// Where a secure round stands, and everything relayed so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecureRound {
    /// The current step.
    pub step: SecureStep,
    /// Shares needed to rebuild a secret (fixed with the roster).
    pub threshold: Option<u32>,
    /// Public keys by hospital; once sharing starts, exactly the roster.
    pub keys: BTreeMap<HospitalId, PublicKeys>,
    /// Sealed shares by sender, then recipient.
    pub shares: BTreeMap<HospitalId, BTreeMap<HospitalId, Opaque>>,
    /// Who shared (fixed when masking starts): who may mask.
    pub sharers: BTreeSet<HospitalId>,
    /// Whose masked updates arrived (fixed when unmasking starts).
    pub survivors: BTreeSet<HospitalId>,
    /// Revealed shares by survivor.
    pub reveals: BTreeMap<HospitalId, Vec<RevealedShare>>,
}

/// What the coordinator fixes when it moves a secure round on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum SecureAdvance {
    /// Sharing starts among the advertisers.
    Sharing {
        /// The roster.
        roster: BTreeSet<HospitalId>,
        /// Shares needed to rebuild a secret.
        threshold: u32,
    },
    /// Masking starts for the hospitals that shared.
    Masking {
        /// The sharers.
        sharers: BTreeSet<HospitalId>,
    },
    /// Unmasking starts; who survived is fixed.
    Unmasking {
        /// The hospitals whose masked updates arrived.
        survivors: BTreeSet<HospitalId>,
    },
}

/// Why a secure-aggregation step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// The task does not use secure aggregation.
    #[error("this task does not use secure aggregation")]
    NotSecure,
    /// A message or command for another step.
    #[error("the secure round is in its {current} step; {expected}")]
    WrongStep {
        /// The current step.
        current: &'static str,
        /// What was needed.
        expected: &'static str,
    },
    /// A hospital outside the step's members.
    #[error("hospital {hospital} takes no part in the {step} step")]
    NotAMember {
        /// The hospital.
        hospital: HospitalId,
        /// The step.
        step: &'static str,
    },
    /// A second message from one hospital in one step.
    #[error("hospital {0} already sent its message for this step")]
    AlreadySent(HospitalId),
    /// A message whose contents do not fit the step.
    #[error("malformed {step} message: {reason}")]
    Malformed {
        /// The step.
        step: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Too few hospitals to move on.
    #[error("the {step} step has {got} hospitals; at least {needed} are needed to go on")]
    TooFew {
        /// The step.
        step: &'static str,
        /// Hospitals so far.
        got: usize,
        /// Hospitals needed.
        needed: usize,
    },
}

/// The threshold for `members` roster members: ⌈2n/3⌉, at least 2, so a coordinator
/// that invents dropouts still cannot rebuild both secrets of one hospital.
pub fn threshold_for(members: usize) -> usize {
    (2 * members).div_ceil(3).max(2)
}

fn malformed(step: SecureStep, reason: impl Into<String>) -> SecureError {
    SecureError::Malformed { step: step.as_str(), reason: reason.into() }
}

impl SecureRound {
    fn expect_step(&self, step: SecureStep, expected: &'static str) -> Result<(), SecureError> {
        if self.step == step { Ok(()) } else { Err(SecureError::WrongStep { current: self.step.as_str(), expected }) }
    }

    /// The threshold, once fixed.
    pub fn threshold(&self) -> usize {
        self.threshold.unwrap_or(0) as usize
    }

    /// Checks a hospital's message for the current step.
    pub fn check_message(&self, hospital: &HospitalId, message: &SecureMessage) -> Result<(), SecureError> {
        let step = message.step();
        self.expect_step(step, "this message belongs to another step")?;
        let not_a_member = || SecureError::NotAMember { hospital: hospital.clone(), step: step.as_str() };
        match message {
            SecureMessage::Keys { sealing_key, masking_key } => {
                if self.keys.contains_key(hospital) {
                    return Err(SecureError::AlreadySent(hospital.clone()));
                }
                if sealing_key.as_bytes().len() != PUBLIC_KEY_LEN || masking_key.as_bytes().len() != PUBLIC_KEY_LEN {
                    return Err(malformed(step, "each key is 32 bytes"));
                }
                if sealing_key == masking_key {
                    return Err(malformed(step, "the sealing and masking keys must differ"));
                }
            }
            SecureMessage::Shares { shares } => {
                if !self.keys.contains_key(hospital) {
                    return Err(not_a_member());
                }
                if self.shares.contains_key(hospital) {
                    return Err(SecureError::AlreadySent(hospital.clone()));
                }
                if !shares.keys().eq(self.keys.keys()) {
                    return Err(malformed(step, "one sealed share for every roster member, and no one else"));
                }
                if shares.values().any(|s| s.as_bytes().len() != SEALED_SHARE_LEN) {
                    return Err(malformed(step, format!("each sealed share is {SEALED_SHARE_LEN} bytes")));
                }
            }
            SecureMessage::Reveal { shares } => {
                if !self.survivors.contains(hospital) {
                    return Err(not_a_member());
                }
                if self.reveals.contains_key(hospital) {
                    return Err(SecureError::AlreadySent(hospital.clone()));
                }
                let owners: BTreeSet<&HospitalId> = shares.iter().map(|s| &s.owner).collect();
                if owners.len() != shares.len() || !owners.into_iter().eq(self.sharers.iter()) {
                    return Err(malformed(step, "exactly one share for every hospital that shared"));
                }
                for revealed in shares {
                    let due = if self.survivors.contains(&revealed.owner) { SecretKind::SelfMask } else { SecretKind::MaskKey };
                    if revealed.secret != due {
                        // Revealing both secrets of one hospital would unmask its update.
                        return Err(malformed(step, format!("the share of {} must be of its {due:?} secret", revealed.owner)));
                    }
                    if revealed.share.as_bytes().len() != REVEALED_SHARE_LEN {
                        return Err(malformed(step, format!("each share is {REVEALED_SHARE_LEN} bytes")));
                    }
                }
            }
        }
        Ok(())
    }

    /// What moving on fixes, given the hospitals that submitted masked updates and
    /// the fewest participants the task aggregates with.
    pub fn next(&self, masked: &BTreeSet<HospitalId>, min_participants: usize) -> Result<SecureAdvance, SecureError> {
        let enough = |step: SecureStep, got: usize, needed: usize| {
            if got >= needed { Ok(()) } else { Err(SecureError::TooFew { step: step.as_str(), got, needed }) }
        };
        match self.step {
            SecureStep::Advertising => {
                let roster: BTreeSet<HospitalId> = self.keys.keys().cloned().collect();
                let threshold = threshold_for(roster.len());
                enough(self.step, roster.len(), threshold.max(min_participants))?;
                Ok(SecureAdvance::Sharing { roster, threshold: threshold as u32 })
            }
            SecureStep::Sharing => {
                let sharers: BTreeSet<HospitalId> = self.shares.keys().cloned().collect();
                enough(self.step, sharers.len(), self.threshold().max(min_participants))?;
                Ok(SecureAdvance::Masking { sharers })
            }
            SecureStep::Masking => {
                enough(self.step, masked.len(), self.threshold().max(min_participants))?;
                Ok(SecureAdvance::Unmasking { survivors: masked.clone() })
            }
            SecureStep::Unmasking => Err(SecureError::WrongStep { current: self.step.as_str(), expected: "aggregate the round now" }),
        }
    }

    /// Checks that a hospital may submit its masked update now.
    pub fn check_masked_update(&self, hospital: &HospitalId) -> Result<(), SecureError> {
        self.expect_step(SecureStep::Masking, "masked updates are taken in the masking step")?;
        if self.sharers.contains(hospital) {
            Ok(())
        } else {
            Err(SecureError::NotAMember { hospital: hospital.clone(), step: SecureStep::Masking.as_str() })
        }
    }

    /// Checks that the round can be unmasked: the threshold's worth of survivors revealed.
    pub fn check_unmaskable(&self) -> Result<(), SecureError> {
        self.expect_step(SecureStep::Unmasking, "a secure round is aggregated after its unmasking step")?;
        if self.reveals.len() < self.threshold() {
            return Err(SecureError::TooFew { step: SecureStep::Unmasking.as_str(), got: self.reveals.len(), needed: self.threshold() });
        }
        Ok(())
    }

    /// Folds a hospital's message in.
    pub fn record_message(&mut self, hospital: HospitalId, message: SecureMessage) {
        match message {
            SecureMessage::Keys { sealing_key, masking_key } => {
                self.keys.insert(hospital, PublicKeys { sealing_key, masking_key });
            }
            SecureMessage::Shares { shares } => {
                self.shares.insert(hospital, shares);
            }
            SecureMessage::Reveal { shares } => {
                self.reveals.insert(hospital, shares);
            }
        }
    }

    /// Folds a step change in.
    pub fn record_advance(&mut self, advance: SecureAdvance) {
        match advance {
            SecureAdvance::Sharing { roster, threshold } => {
                self.keys.retain(|hospital, _| roster.contains(hospital));
                self.threshold = Some(threshold);
                self.step = SecureStep::Sharing;
            }
            SecureAdvance::Masking { sharers } => {
                self.sharers = sharers;
                self.step = SecureStep::Masking;
            }
            SecureAdvance::Unmasking { survivors } => {
                self.survivors = survivors;
                self.step = SecureStep::Unmasking;
            }
        }
    }

    /// The sealed shares addressed to `hospital`, by sender.
    pub fn shares_for(&self, hospital: &HospitalId) -> BTreeMap<HospitalId, Opaque> {
        self.shares.iter().filter_map(|(from, to)| Some((from.clone(), to.get(hospital)?.clone()))).collect()
    }

    /// The round as `viewer` may see it: every public key and step, who shared and
    /// who revealed, of the sealed shares only those addressed to `viewer`, and of
    /// the revealed shares only its own (none of either for the coordinator).
    pub fn view_for(&self, viewer: Option<&HospitalId>) -> Self {
        // Who shared stays visible (hospitals need it); what they sent to others does not.
        let mut shares: BTreeMap<HospitalId, BTreeMap<HospitalId, Opaque>> =
            self.shares.keys().map(|from| (from.clone(), BTreeMap::new())).collect();
        if let Some(hospital) = viewer {
            for (from, sealed) in self.shares_for(hospital) {
                shares.entry(from).or_default().insert(hospital.clone(), sealed);
            }
        }
        Self {
            step: self.step,
            threshold: self.threshold,
            keys: self.keys.clone(),
            shares,
            sharers: self.sharers.clone(),
            survivors: self.survivors.clone(),
            // Who revealed is visible; the shares only to the hospital that sent them.
            reveals: self
                .reveals
                .iter()
                .map(|(from, revealed)| (from.clone(), if Some(from) == viewer { revealed.clone() } else { Vec::new() }))
                .collect(),
        }
    }
}
