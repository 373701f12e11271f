//! Patient search at scale: how long one page of the patient list takes
//! (the web application's search box and `GET /v1/patients`) when the index
//! holds PATIENTS patients, beside a floor measured in the same run.
//!
//! A page is what `GET /v1/patients` does: the blind-index query in the read
//! models (MariaDB), then each match read through the authorization rule and
//! recorded as a disclosure. The floor is the same number of patients taken
//! straight from the directory and loaded from the log, with no index, no rule
//! and no disclosure. Queries: a common surname's first page and a page deep in
//! it, a whole name, a birth year, an MRN, and a physician's search among the
//! patients who granted them access.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-patient-search -- [PATIENTS]`
//! (default 10000; 100000 for the web application issue's figure). Embedded
//! SQLite log, MariaDB read models at the test server. Writes
//! `bench-patient-search.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use emr_commands::Clinic;
use emr_domain::actor::{Actor, Role};
use emr_domain::grant::{GrantCommand, Scope};
use emr_domain::ids::{GrantId, HospitalId, PatientId, UserId};
use emr_domain::lookup::{LookupKey, PartialDate};
use emr_domain::patient::PatientCommand;
use emr_domain::values::{Demographics, Gender, Mrn, PatientIdentifiers, ShortText};
use emr_projections::queries::{ExportScope, PatientQuery};
use emr_projections::{ReadModelDb, Value};
use emr_tests::charts::system;
use emr_tests::read_models::{Store, TestReadModels};

emr_tests::shipped_allocator!();

const SURNAMES: [&str; 20] = [
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Hu", "Zhu", "Gao", "Lin", "He", "Guo", "Ma",
    "Luo",
];
const GIVEN: [&str; 40] = [
    "Fang", "Wei", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong", "Yan", "Jie", "Tao", "Ming", "Chao", "Xiu", "Hua", "Ping",
    "Gang", "Hui", "Ying", "Hong", "Bo", "Xin", "Lan", "Dan", "Ning", "Kai", "Rui", "Hao", "Yu", "Mei", "Na", "Ting", "Xue", "Peng", "Fei",
    "Bin", "Long", "Qing",
];
/// Patients per page, as the web application asks.
const PAGE: u32 = 20;
/// Timed runs of each query.
const RUNS: usize = 30;
/// One patient in this many granted the physician read access.
const GRANT_EVERY: usize = 50;

fn name_of(n: usize) -> String {
    format!("{} {}", SURNAMES[n % SURNAMES.len()], GIVEN[(n / SURNAMES.len()) % GIVEN.len()])
}

fn born(n: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(1930, 1, 1).unwrap() + chrono::Days::new(((n * 7919) % 30_000) as u64)
}

fn registration(patient: PatientId, n: usize) -> PatientCommand {
    PatientCommand::Register {
        patient_id: patient,
        hospital_id: HospitalId::parse(if n.is_multiple_of(3) { "HOSP-002" } else { "HOSP-001" }).unwrap(),
        identifiers: PatientIdentifiers { mrn: Mrn::parse(&format!("MRN-{n:07}")).unwrap(), external: vec![] },
        demographics: Demographics {
            full_name: ShortText::parse("name", name_of(n)).unwrap(),
            date_of_birth: born(n),
            gender: if n.is_multiple_of(2) { Gender::Female } else { Gender::Male },
            phone_number: None,
            email: None,
            address: None,
        },
    }
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99))
}

/// One page as `GET /v1/patients` serves it: the index query, then each match
/// read through the authorization rule and recorded. Returns how many it found.
async fn page(db: &ReadModelDb, clinic: &Clinic, actor: &Actor, query: &PatientQuery) -> usize {
    let matches = emr_projections::queries::search_patients(db, query, Utc::now()).await.unwrap();
    for id in &matches {
        let patient: PatientId = id.parse().unwrap();
        clinic.read_patient(actor, patient, None).await.unwrap();
    }
    matches.len()
}

/// The floor: a page of ids straight from the directory, each patient loaded from the log.
async fn floor(db: &ReadModelDb, clinic: &Clinic, offset: u32) -> usize {
    let rows: Vec<(String,)> = db
        .fetch_all(
            "SELECT patient_id FROM patients ORDER BY patient_id LIMIT ? OFFSET ?",
            vec![Value::from(u64::from(PAGE)), Value::from(u64::from(offset))],
        )
        .await
        .unwrap();
    for (id,) in &rows {
        clinic.load_patient(id.parse().unwrap()).await.unwrap();
    }
    rows.len()
}

#[tokio::main]
async fn main() {
    let patients: usize = std::env::args().nth(1).map(|a| a.parse().expect("PATIENTS must be a number")).unwrap_or(10_000);
    assert!(patients >= 2 * SURNAMES.len() * GIVEN.len() / 10, "at least 160 patients, so that every query finds a full page");
    let backend = emr_tests::backends::sqlite().await;
    let clinic = emr_tests::backends::clinic(&backend.backend);
    let models = TestReadModels::fresh(Store::MariaDb).await;
    let db = models.db.clone();
    let doctor = UserId::new();

    let started = Instant::now();
    for n in 0..patients {
        let patient = PatientId::new();
        clinic.patient(patient, registration(patient, n), &system()).await.unwrap();
        if n.is_multiple_of(GRANT_EVERY) {
            let grant_id = GrantId::new();
            let grant = GrantCommand::Grant {
                grant_id,
                patient_id: patient,
                grantee: doctor,
                scopes: BTreeSet::from([Scope::Read]),
                expires_at: Utc::now() + chrono::Duration::days(30),
                granted_by: UserId::new(),
                reason: ShortText::parse("reason", "follow-up care").unwrap(),
            };
            clinic.grant(grant_id, grant, &system()).await.unwrap();
        }
    }
    let written = started.elapsed().as_secs_f64();
    let started = Instant::now();
    emr_tests::read_models::fold_all(&db, &backend.backend.log, 1000).await;
    let search = emr_tests::read_models::search_index(backend.backend.phi_codec());
    emr_tests::read_models::fold_search_index(&db, &backend.backend.log, search, 1000).await;
    let folded = started.elapsed().as_secs_f64();
    let terms: i64 = {
        let rows: Vec<(i64,)> = db.fetch_all("SELECT COUNT(*) FROM patient_search_terms", vec![]).await.unwrap();
        rows[0].0
    };

    let index = emr_tests::read_models::blind_index();
    let terms_of = |keys: Vec<LookupKey>| vec![keys.iter().map(|key| index.term(key)).collect::<Vec<_>>()];
    let query = |scope: ExportScope, groups: Vec<Vec<String>>, offset: u32| PatientQuery {
        scope,
        groups,
        ids: None,
        updated_from: None,
        updated_before: None,
        newest_first: None,
        limit: PAGE,
        offset,
    };
    let wang = terms_of(vec![LookupKey::name_prefix("wang").unwrap()]);
    let everyone = ExportScope::Everyone;
    let deep = u32::try_from(patients / SURNAMES.len() / 2).unwrap();
    let cases: Vec<(&str, PatientQuery, Actor)> = vec![
        ("name starts with `wang`, first page (1 in 20 match)", query(everyone.clone(), wang.clone(), 0), Actor::system()),
        ("name starts with `wang`, a page halfway through its matches", query(everyone.clone(), wang.clone(), deep), Actor::system()),
        (
            "whole name `Wang Fang`",
            query(everyone.clone(), terms_of(vec![LookupKey::exact_name("Wang Fang").unwrap()]), 0),
            Actor::system(),
        ),
        (
            "born in 1980",
            query(everyone.clone(), terms_of(vec![LookupKey::BirthDate(PartialDate::parse("1980").unwrap())]), 0),
            Actor::system(),
        ),
        (
            "MRN `MRN-0000042`",
            query(everyone, terms_of(vec![LookupKey::Identifier { system: None, value: "MRN-0000042".into() }]), 0),
            Actor::system(),
        ),
        (
            "a physician's `wang`, among the 1 in 50 who granted access",
            query(ExportScope::GrantedTo(doctor.as_uuid()), wang, 0),
            Actor::new(doctor, Role::Physician),
        ),
    ];

    let mut floor_samples = Vec::with_capacity(RUNS);
    for run in 0..RUNS {
        let offset = u32::try_from((run * 997) % (patients - PAGE as usize)).unwrap();
        let started = Instant::now();
        assert_eq!(floor(&db, &clinic, offset).await, PAGE as usize);
        floor_samples.push(started.elapsed());
    }
    let (floor_p50, floor_p99) = percentiles(floor_samples);

    println!("## Patient search ({patients} patients, {terms} index terms; embedded SQLite log, MariaDB read models)\n");
    println!("Set-up: {written:.1} s writing patients and grants, {folded:.1} s folding the read models and the search index.\n");
    println!("| one page of {PAGE} (query + each read authorized and recorded) | found | p50 ms | p99 ms | p50 / floor |");
    println!("| --- | --- | --- | --- | --- |");
    println!("| floor: {PAGE} ids from the directory, each loaded from the log | {PAGE} | {floor_p50:.1} | {floor_p99:.1} | 1.00 |");
    let mut figures = serde_json::json!({
        "patients": patients, "index_terms": terms, "page": PAGE, "runs": RUNS,
        "setup_write_seconds": written, "setup_fold_seconds": folded,
        "floor": {"p50_ms": floor_p50, "p99_ms": floor_p99},
    });
    for (name, query, actor) in &cases {
        let mut samples = Vec::with_capacity(RUNS);
        let mut found = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            found = page(&db, &clinic, actor, query).await;
            samples.push(started.elapsed());
        }
        assert!(found > 0, "{name}: the query found no one");
        let (p50, p99) = percentiles(samples);
        println!("| {name} | {found} | {p50:.1} | {p99:.1} | {:.2} |", p50 / floor_p50);
        figures[*name] = serde_json::json!({"found": found, "p50_ms": p50, "p99_ms": p99, "ratio_to_floor": p50 / floor_p50});
    }
    std::fs::write("bench-patient-search.json", figures.to_string()).unwrap();
    println!("\n{figures}");
    models.remove().await;
}
