//! Who a patient is: identifiers and demographics. All of it is PHI and travels
//! inside [`crate::phi::Phi`].

use serde::{Deserialize, Serialize};

use super::{InvalidValue, LongText, ShortText};

/// A medical record number assigned by the registering hospital.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^[A-Za-z0-9_./-]{1,32}$", example = "MRN-0001"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mrn(String);

impl Mrn {
    /// 1–32 ASCII letters, digits, `-`, `_`, `.` or `/`.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let ok = (1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        if ok { Ok(Self(value.to_owned())) } else { Err(InvalidValue::new("mrn", "1 to 32 ASCII letters, digits, '-', '_', '.' or '/'")) }
    }

    /// The MRN text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace of the MRNs `hospital` assigns (an MRN is unique only within it).
    pub fn system(hospital: &crate::ids::HospitalId) -> String {
        format!("urn:emr-ledger:hospital:{}:mrn", hospital.as_str())
    }
}

impl TryFrom<String> for Mrn {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Mrn> for String {
    fn from(value: Mrn) -> Self {
        value.0
    }
}

/// An identifier issued by another system (national id, insurer, another hospital),
/// in the FHIR `Identifier` spirit: a namespace and a value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExternalIdentifier {
    /// The namespace (a URI or a well-known system name).
    pub system: ShortText,
    /// The identifier within that namespace.
    pub value: ShortText,
}

/// How a patient is identified.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientIdentifiers {
    /// The registering hospital's MRN.
    pub mrn: Mrn,
    /// Other identifiers (at most [`PatientIdentifiers::MAX_EXTERNAL`]).
    pub external: Vec<ExternalIdentifier>,
}

impl PatientIdentifiers {
    /// Most external identifiers a patient may carry.
    pub const MAX_EXTERNAL: usize = 16;

    /// Checks the rules that span fields.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.external.len() > Self::MAX_EXTERNAL {
            return Err(InvalidValue::new("external identifiers", "at most 16 external identifiers"));
        }
        Ok(())
    }
}

/// Administrative gender (FHIR's value set).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
    /// Unknown or not stated.
    Unknown,
}

/// Demographics (the seed's Users columns that describe a person).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demographics {
    /// Full name as written by the patient.
    pub full_name: ShortText,
    /// Date of birth.
    pub date_of_birth: chrono::NaiveDate,
    /// Administrative gender.
    pub gender: Gender,
    /// Phone number as written.
    pub phone_number: Option<ShortText>,
    /// E-mail address as written.
    pub email: Option<ShortText>,
    /// Postal address.
    pub address: Option<LongText>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrns_refuse_spaces_and_overlong_values() {
        assert!(Mrn::parse("MRN-2024/0001").is_ok());
        assert!(Mrn::parse("").is_err());
        assert!(Mrn::parse("has space").is_err());
        assert!(Mrn::parse(&"9".repeat(33)).is_err());
    }
}
