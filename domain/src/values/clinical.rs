//! Clinical content of a medical record: its type, diagnosis (ICD-10), treatment
//! and medications.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{InvalidValue, LongText, ShortText};

/// An ICD-10 code in its dotted form: a letter, two characters, and an optional
/// extension of one to four characters after the dot (`J18.9`, `S72.001A`, `E11`).
/// WHO ICD-10 and ICD-10-CM share this shape; whether a code exists in a given
/// release is checked against terminology services, not here.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^[A-Za-z][0-9][0-9ABab](\.[0-9A-Za-z]{1,4})?$", example = "J18.9"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Icd10Code(String);

impl Icd10Code {
    /// Parses a code; lowercase letters are accepted and upper-cased.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let invalid = InvalidValue::new(
            "icd10 code",
            "a letter, a digit, a digit or A/B, then optionally '.' and 1-4 letters or digits (e.g. J18.9)",
        );
        let code = value.to_ascii_uppercase();
        let (category, extension) = match code.split_once('.') {
            Some((category, extension)) => (category, Some(extension)),
            None => (code.as_str(), None),
        };
        let c = category.as_bytes();
        let category_ok =
            c.len() == 3 && c[0].is_ascii_uppercase() && c[1].is_ascii_digit() && (c[2].is_ascii_digit() || c[2] == b'A' || c[2] == b'B');
        let extension_ok =
            extension.is_none_or(|e| (1..=4).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        if category_ok && extension_ok { Ok(Self(code)) } else { Err(invalid) }
    }

    /// The code text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Icd10Code {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Icd10Code> for String {
    fn from(value: Icd10Code) -> Self {
        value.0
    }
}

/// A coded diagnosis.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// ICD-10 code.
    pub code: Icd10Code,
    /// The clinician's wording.
    pub description: ShortText,
}

/// The kinds of medical record (the seed's `record_type` enum).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// Outpatient consultation.
    Consultation,
    /// Diagnosis note.
    Diagnosis,
    /// Laboratory result.
    LabResult,
    /// Imaging study (radiology report, DICOM attachments).
    Imaging,
    /// Prescription.
    Prescription,
    /// Surgical or procedure note.
    Surgery,
    /// Discharge summary.
    DischargeSummary,
    /// Immunisation record.
    Vaccination,
}

impl RecordType {
    /// Every record type, for validation messages and dashboards.
    pub const ALL: [RecordType; 8] = [
        Self::Consultation,
        Self::Diagnosis,
        Self::LabResult,
        Self::Imaging,
        Self::Prescription,
        Self::Surgery,
        Self::DischargeSummary,
        Self::Vaccination,
    ];
}

/// Units a dose may be expressed in (UCUM codes).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DoseUnit {
    /// milligram
    #[serde(rename = "mg")]
    Milligram,
    /// gram
    #[serde(rename = "g")]
    Gram,
    /// microgram
    #[serde(rename = "ug")]
    Microgram,
    /// millilitre
    #[serde(rename = "mL")]
    Millilitre,
    /// international unit
    #[serde(rename = "[iU]")]
    InternationalUnit,
    /// tablet, capsule, puff: a countable unit
    #[serde(rename = "{unit}")]
    Unit,
}

/// A dose: a positive decimal amount with up to three decimals, kept as an integer
/// count of thousandths so that no rounding ever creeps in (no floats for doses).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "DoseWire", into = "DoseWire")]
pub struct Dose {
    thousandths: u64,
    unit: DoseUnit,
}

/// A dose as it travels: an exact decimal amount as text (`"2.5"`) and a unit.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Dose))]
pub(crate) struct DoseWire {
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{1,7}(\.[0-9]{1,3})?$", example = "2.5"))]
    amount: String,
    unit: DoseUnit,
}

impl Dose {
    /// Largest accepted amount (in the dose's unit).
    pub const MAX_AMOUNT: u64 = 1_000_000;

    /// Parses an amount such as `500`, `2.5` or `0.125`.
    pub fn parse(amount: &str, unit: DoseUnit) -> Result<Self, InvalidValue> {
        let invalid = InvalidValue::new("dose", "a positive decimal amount with at most 3 decimals, at most 1000000");
        let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
        if whole.is_empty() || whole.len() > 7 || fraction.len() > 3 || (amount.contains('.') && fraction.is_empty()) {
            return Err(invalid);
        }
        if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(invalid);
        }
        let whole: u64 = whole.parse().map_err(|_| invalid.clone())?;
        let fraction: u64 = format!("{fraction:0<3}").parse().map_err(|_| invalid.clone())?;
        let thousandths = whole * 1000 + fraction;
        if thousandths == 0 || thousandths > Self::MAX_AMOUNT * 1000 {
            return Err(invalid);
        }
        Ok(Self { thousandths, unit })
    }

    /// The amount in thousandths of the unit.
    pub fn thousandths(&self) -> u64 {
        self.thousandths
    }

    /// The unit.
    pub fn unit(&self) -> DoseUnit {
        self.unit
    }

    /// The amount as exact decimal text, e.g. `"2.5"`.
    pub fn amount_text(&self) -> String {
        let (whole, fraction) = (self.thousandths / 1000, self.thousandths % 1000);
        if fraction == 0 { whole.to_string() } else { format!("{whole}.{fraction:03}").trim_end_matches('0').to_owned() }
    }
}

impl TryFrom<DoseWire> for Dose {
    type Error = InvalidValue;
    fn try_from(wire: DoseWire) -> Result<Self, Self::Error> {
        Self::parse(&wire.amount, wire.unit)
    }
}

impl From<Dose> for DoseWire {
    fn from(dose: Dose) -> Self {
        DoseWire { amount: dose.amount_text(), unit: dose.unit }
    }
}

impl fmt::Debug for Dose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dose({} {:?})", self.amount_text(), self.unit)
    }
}

/// Route of administration.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// By mouth.
    Oral,
    /// Intravenous.
    Intravenous,
    /// Intramuscular.
    Intramuscular,
    /// Subcutaneous.
    Subcutaneous,
    /// On the skin.
    Topical,
    /// Inhaled.
    Inhaled,
    /// Other routes, described in the medication's instructions.
    Other,
}

/// One prescribed or administered medication.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Medication {
    /// Drug name (generic preferred).
    pub name: ShortText,
    /// Dose per administration.
    #[cfg_attr(feature = "openapi", schema(value_type = DoseWire))]
    pub dose: Dose,
    /// Route of administration.
    pub route: Route,
    /// Frequency as written, e.g. "twice daily".
    pub frequency: ShortText,
}

/// The clinical content of a record: what a version of a record says. Amendments
/// replace it whole; earlier versions stay in the log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordContent {
    /// Title.
    pub title: ShortText,
    /// Narrative description.
    pub description: Option<LongText>,
    /// Coded diagnosis, when the record states one.
    pub diagnosis: Option<Diagnosis>,
    /// Treatment plan.
    pub treatment: Option<LongText>,
    /// Medications (at most [`RecordContent::MAX_MEDICATIONS`]).
    pub medications: Vec<Medication>,
}

impl RecordContent {
    /// Most medications one record version may list.
    pub const MAX_MEDICATIONS: usize = 100;

    /// Checks the rules that span fields.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        if self.medications.len() > Self::MAX_MEDICATIONS {
            return Err(InvalidValue::new("medications", "at most 100 medications per record"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_codes_accept_the_dotted_forms_in_use() {
        for good in ["J18.9", "E11", "S72.001A", "c34.90", "O9A.11"] {
            assert!(Icd10Code::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "J1", "18.9", "J18.", "J18.12345", "J18-9", "JJ8.9", "J18.9 "] {
            assert!(Icd10Code::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn doses_are_exact_decimals_without_floats() {
        let dose = Dose::parse("2.5", DoseUnit::Milligram).unwrap();
        assert_eq!(dose.thousandths(), 2500);
        let json = serde_json::to_value(dose).unwrap();
        assert_eq!(json, serde_json::json!({"amount": "2.5", "unit": "mg"}));
        assert_eq!(serde_json::from_value::<Dose>(json).unwrap(), dose);
        for bad in ["0", "-1", "1.2345", "abc", "", ".5", "5.", "99999999", "1e3"] {
            assert!(Dose::parse(bad, DoseUnit::Gram).is_err(), "{bad}");
        }
    }
}
