//! Protected health information (PHI) as a type.
//!
//! Every field of an event or aggregate that could identify a patient or describe
//! their health is a [`Phi<T>`], tagged with the patient it belongs to (the data
//! subject). In memory it is clear text; in the event log it is sealed with that
//! patient's data key. The event store finds PHI by its JSON tag ([`wire::TAG`]),
//! so sealing needs no knowledge of individual event types.
//!
//! Erasing a patient destroys their data key. From then on their PHI loads as
//! [`Phi::Shredded`]: the events, their order and their hashes remain; what they
//! said about the patient does not.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::PatientId;

/// The JSON shape of PHI, shared with the event store's sealing codec.
pub mod wire {
    /// The single key of a PHI object: `{"$phi": {...}}`.
    pub const TAG: &str = "$phi";
    /// The patient whose key seals the value.
    pub const SUBJECT: &str = "subject";
    /// The value in clear text (only ever in memory).
    pub const CLEAR: &str = "clear";
    /// The sealed value, base64 of nonce ‖ ciphertext (only ever in storage).
    pub const SEALED: &str = "sealed";
    /// Present (true) when the subject's key was destroyed.
    pub const SHREDDED: &str = "shredded";
}

/// A piece of PHI belonging to one patient.
#[derive(Clone, PartialEq, Eq)]
pub enum Phi<T> {
    /// Readable: the patient's key exists (or the value was just created).
    Clear {
        /// The data subject.
        subject: PatientId,
        /// The protected value.
        value: T,
    },
    /// As stored: sealed, not opened in this process (read models and audits
    /// never open PHI). The ciphertext is kept so the value round-trips.
    Sealed {
        /// The data subject.
        subject: PatientId,
        /// Base64 of nonce ‖ ciphertext.
        sealed: String,
    },
    /// Unreadable forever: the patient was erased and their key destroyed.
    Shredded {
        /// The data subject.
        subject: PatientId,
    },
}

impl<T> Phi<T> {
    /// Wraps a value belonging to `subject`.
    pub fn new(subject: PatientId, value: T) -> Self {
        Self::Clear { subject, value }
    }

    /// The patient this PHI belongs to.
    pub fn subject(&self) -> PatientId {
        match self {
            Self::Clear { subject, .. } | Self::Sealed { subject, .. } | Self::Shredded { subject } => *subject,
        }
    }

    /// The value, unless it was shredded.
    pub fn value(&self) -> Option<&T> {
        match self {
            Self::Clear { value, .. } => Some(value),
            Self::Sealed { .. } | Self::Shredded { .. } => None,
        }
    }

    /// True once the subject's key is destroyed.
    pub fn is_shredded(&self) -> bool {
        matches!(self, Self::Shredded { .. })
    }
}

impl<T> std::fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Clear { subject, .. } => write!(f, "Phi(<clear> of {subject})"),
            Self::Sealed { subject, .. } => write!(f, "Phi(<sealed> of {subject})"),
            Self::Shredded { subject } => write!(f, "Phi(<shredded> of {subject})"),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Tagged<B> {
    #[serde(rename = "$phi")]
    body: B,
}

#[derive(Serialize)]
struct BodyOut<'a, T> {
    subject: PatientId,
    #[serde(skip_serializing_if = "Option::is_none")]
    clear: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    shredded: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyIn<T> {
    subject: PatientId,
    clear: Option<T>,
    #[serde(default)]
    shredded: bool,
    sealed: Option<String>,
}

impl<T: Serialize> Serialize for Phi<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = match self {
            Self::Clear { subject, value } => BodyOut { subject: *subject, clear: Some(value), sealed: None, shredded: false },
            Self::Sealed { subject, sealed } => BodyOut { subject: *subject, clear: None, sealed: Some(sealed), shredded: false },
            Self::Shredded { subject } => BodyOut { subject: *subject, clear: None, sealed: None, shredded: true },
        };
        Tagged { body }.serialize(serializer)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Phi<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let Tagged { body } = Tagged::<BodyIn<T>>::deserialize(deserializer)?;
        match body {
            BodyIn { subject, clear: Some(value), sealed: None, shredded: false } => Ok(Self::Clear { subject, value }),
            BodyIn { subject, clear: None, sealed: Some(sealed), shredded: false } => Ok(Self::Sealed { subject, sealed }),
            BodyIn { subject, clear: None, sealed: None, shredded: true } => Ok(Self::Shredded { subject }),
            _ => Err(D::Error::custom("PHI must be exactly one of clear, sealed or shredded")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clear_phi_is_tagged_with_its_subject() {
        let subject = PatientId::new();
        let phi = Phi::new(subject, "Li Lei".to_owned());
        let json = serde_json::to_value(&phi).unwrap();
        assert_eq!(json, json!({"$phi": {"subject": subject, "clear": "Li Lei"}}));
        assert_eq!(serde_json::from_value::<Phi<String>>(json).unwrap(), phi);
    }

    #[test]
    fn shredded_phi_round_trips_without_a_value() {
        let phi: Phi<String> = Phi::Shredded { subject: PatientId::new() };
        let json = serde_json::to_value(&phi).unwrap();
        assert_eq!(serde_json::from_value::<Phi<String>>(json).unwrap(), phi);
    }

    #[test]
    fn sealed_phi_stays_opaque_and_round_trips() {
        let json = json!({"$phi": {"subject": PatientId::new(), "sealed": "AAAA"}});
        let phi = serde_json::from_value::<Phi<String>>(json.clone()).unwrap();
        assert_eq!(phi.value(), None);
        assert_eq!(serde_json::to_value(&phi).unwrap(), json);
    }

    #[test]
    fn ambiguous_phi_is_refused() {
        let json = json!({"$phi": {"subject": PatientId::new(), "sealed": "AAAA", "clear": "x"}});
        assert!(serde_json::from_value::<Phi<String>>(json).is_err());
        assert!(serde_json::from_value::<Phi<String>>(json!({"$phi": {"subject": PatientId::new()}})).is_err());
    }

    #[test]
    fn debug_never_prints_the_value() {
        let phi = Phi::new(PatientId::new(), "HIV positive".to_owned());
        assert!(!format!("{phi:?}").contains("HIV"));
    }
}
