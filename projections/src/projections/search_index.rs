//! `patient_search_terms` and `record_search_terms`: a blind index of what patients
//! and records are found by ([`LookupKey`]), so that FHIR searches by name, birth
//! date, gender, identifier and diagnosis code run in the read models while the
//! read models still hold no PHI.
//!
//! Unlike every other projector this one opens PHI (it holds a [`PhiCodec`]), and
//! writes only keyed hashes of it ([`BlindIndex::term`]). An erased patient's terms
//! are deleted when the erasure is projected; on a rebuild their sealed values open
//! as shredded, so no term of theirs is ever written again.
//!
//! What the index reveals to someone holding the read models but not the index
//! key: which patients share a term (equal names, birth years, genders), not what
//! the term says. With the key, a guess can be tested: the key is a secret of the
//! API and projector processes, like the keyring.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use emr_domain::lookup::{Field, LookupKey};
use emr_domain::patient::PatientEvent;
use emr_domain::record::RecordEvent;
use emr_eventstore::PhiCodec;
use ring::hmac;

use crate::db::{Tx, Value};
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{Upsert, values};

/// Keyed hashes of lookup keys: equal keys give equal terms under one index key.
pub struct BlindIndex {
    key: hmac::Key,
}

impl BlindIndex {
    /// Bytes of HMAC-SHA-256 kept per term: 128 bits make a collision between two
    /// different keys of one deployment practically impossible.
    const TERM_BYTES: usize = 16;

    /// An index under `secret` (the deployment's index key).
    pub fn new(secret: &[u8; 32]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// The term of `key`: hex of the first 16 bytes of HMAC-SHA-256 over the
    /// field and the key's canonical text.
    pub fn term(&self, key: &LookupKey) -> String {
        let message = format!("emr-search/1\u{0}{}\u{0}{}", key.field().as_str(), key.text());
        let tag = hmac::sign(&self.key, message.as_bytes());
        tag.as_ref()[..Self::TERM_BYTES].iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// The search index projection.
#[derive(Clone)]
pub struct SearchIndex {
    codec: Arc<PhiCodec>,
    index: Arc<BlindIndex>,
}

impl SearchIndex {
    /// Its name.
    pub const NAME: &'static str = "search_index";

    /// Its tables, the checkpoint first.
    pub const TABLES: &'static [&'static str] = &["search_index_checkpoint", "patient_search_terms", "record_search_terms"];

    /// A projector that opens PHI with `codec` and writes terms of `index`.
    pub fn new(codec: Arc<PhiCodec>, index: Arc<BlindIndex>) -> Self {
        Self { codec, index }
    }
}

const PATIENT_TERMS: Upsert = Upsert {
    table: "patient_search_terms",
    columns: &["term", "patient_id", "field"],
    key: &["term", "patient_id"],
    replace: &["field"],
    add: &[],
};

const RECORD_TERMS: Upsert = Upsert {
    table: "record_search_terms",
    columns: &["term", "record_id", "patient_id"],
    key: &["term", "record_id"],
    replace: &["patient_id"],
    add: &[],
};

/// What one batch changes for a patient.
#[derive(Default)]
struct PatientChange {
    /// Terms of identifiers (written once, at registration).
    identity: Vec<(String, Field)>,
    /// The latest demographics' terms, replacing the stored ones.
    demographics: Option<Vec<(String, Field)>>,
    /// Erased in this batch: every term of theirs goes, none is written.
    erased: bool,
}

/// Deletes rows of `table` whose `column` is among `ids`, `extra` narrowing it.
async fn delete_in(tx: &mut Tx, table: &str, column: &str, extra: &str, ids: &[String]) -> Result<(), ProjectionError> {
    for chunk in ids.chunks(1000) {
        let sql = format!("DELETE FROM {table} WHERE {column} IN ({}){extra}", vec!["?"; chunk.len()].join(", "));
        tx.execute(&sql, chunk.iter().map(Value::from).collect()).await?;
    }
    Ok(())
}

impl SearchIndex {
    fn terms(&self, keys: Vec<LookupKey>) -> Vec<(String, Field)> {
        keys.iter().map(|key| (self.index.term(key), key.field())).collect()
    }

    /// The terms a record version is found by (none once its patient was erased).
    async fn record_terms(
        &self,
        content: &emr_domain::phi::Phi<emr_domain::values::RecordContent>,
    ) -> Result<Vec<String>, ProjectionError> {
        let keys = self.open(content).await?.map(|content| LookupKey::of_record(&content)).unwrap_or_default();
        Ok(keys.iter().map(|key| self.index.term(key)).collect())
    }

    async fn open<T: Clone + serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        phi: &emr_domain::phi::Phi<T>,
    ) -> Result<Option<T>, ProjectionError> {
        self.codec.open_one(phi).await.map_err(|source| ProjectionError::Phi { subject: phi.subject().to_string(), source })
    }
}

impl Projection for SearchIndex {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        Self::TABLES
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let mut patients: BTreeMap<String, PatientChange> = BTreeMap::new();
        // Record id → (patient id, terms of its latest content).
        let mut records: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for fact in facts {
            match &fact.payload {
                Payload::Patient(PatientEvent::PatientRegistered { hospital_id, identifiers, demographics, .. }) => {
                    let identifiers = self.open(identifiers).await?;
                    let demographics = self.open(demographics).await?;
                    let change = patients.entry(fact.aggregate_id.clone()).or_default();
                    change.identity = self.terms(identifiers.map(|i| LookupKey::of_identifiers(hospital_id, &i)).unwrap_or_default());
                    change.demographics = Some(self.terms(demographics.map(|d| LookupKey::of_demographics(&d)).unwrap_or_default()));
                }
                Payload::Patient(PatientEvent::DemographicsUpdated { demographics }) => {
                    let keys = self.open(demographics).await?.map(|d| LookupKey::of_demographics(&d)).unwrap_or_default();
                    patients.entry(fact.aggregate_id.clone()).or_default().demographics = Some(self.terms(keys));
                }
                Payload::Patient(PatientEvent::PatientErased { .. }) => {
                    patients.insert(fact.aggregate_id.clone(), PatientChange { erased: true, ..PatientChange::default() });
                    records.retain(|_, (patient, _)| *patient != fact.aggregate_id);
                }
                Payload::Record(RecordEvent::RecordCreated { patient_id, content, .. }) => {
                    records.insert(fact.aggregate_id.clone(), (patient_id.to_string(), self.record_terms(content).await?));
                }
                Payload::Record(RecordEvent::RecordAmended { content, .. }) => {
                    records.insert(fact.aggregate_id.clone(), (content.subject().to_string(), self.record_terms(content).await?));
                }
                _ => {}
            }
        }
        if patients.is_empty() && records.is_empty() {
            return Ok(());
        }
        let erased: Vec<String> = patients.iter().filter(|(_, c)| c.erased).map(|(id, _)| id.clone()).collect();
        delete_in(tx, "patient_search_terms", "patient_id", "", &erased).await?;
        delete_in(tx, "record_search_terms", "patient_id", "", &erased).await?;
        let changed: Vec<String> = patients.iter().filter(|(_, c)| c.demographics.is_some()).map(|(id, _)| id.clone()).collect();
        delete_in(tx, "patient_search_terms", "patient_id", " AND field IN ('name', 'birthdate', 'gender')", &changed).await?;
        let amended: Vec<String> = records.keys().cloned().collect();
        delete_in(tx, "record_search_terms", "record_id", "", &amended).await?;

        let mut patient_rows = BTreeSet::new();
        for (patient_id, change) in patients.into_iter().filter(|(_, c)| !c.erased) {
            for (term, field) in change.identity.into_iter().chain(change.demographics.into_iter().flatten()) {
                patient_rows.insert((term, patient_id.clone(), field.as_str()));
            }
        }
        let patient_rows: Vec<_> = patient_rows.into_iter().collect();
        PATIENT_TERMS.run(tx, &patient_rows, |(term, patient, field)| values![term.as_str(), patient.as_str(), *field]).await?;
        let record_rows: Vec<(String, String, String)> = records
            .into_iter()
            .flat_map(|(record, (patient, terms))| terms.into_iter().map(move |term| (term, record.clone(), patient.clone())))
            .collect();
        RECORD_TERMS.run(tx, &record_rows, |(term, record, patient)| values![term.as_str(), record.as_str(), patient.as_str()]).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn terms_depend_on_the_index_key_and_on_the_field() {
        let (one, other) = (BlindIndex::new(&[1; 32]), BlindIndex::new(&[2; 32]));
        let key = LookupKey::name_prefix("wang").unwrap();
        assert_eq!(one.term(&key), one.term(&LookupKey::name_prefix("WANG").unwrap()));
        assert_ne!(one.term(&key), other.term(&key), "another deployment's terms do not match");
        assert_eq!(one.term(&key).len(), 32);
        let year = LookupKey::BirthDate(emr_domain::lookup::PartialDate::Year(1980));
        assert_ne!(one.term(&LookupKey::name_prefix("1980").unwrap()), one.term(&year));
    }
}
