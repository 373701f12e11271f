//! Realistic hospital access traces with injected attacks, for measuring threat
//! detection: departments with physicians (day shifts) and nurses (day and night
//! shifts), patient panels with regular encounters, consults across departments
//! under grants, logins with the odd typo, sessions refreshed through the shift,
//! reads of the department's patients, attachment downloads, the occasional
//! refused access and emergency break-glass.
//!
//! Attacks of every rule's kind are injected after a warm-up, each labelled, so
//! a run can tell detections of attacks from false positives. The same trace
//! feeds the pure detector (the quality report) or the real log (the
//! integration test and the benchmark), as the same domain events.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use emr_domain::access::{Action, Basis, Denied};
use emr_domain::account::{AccountEvent, LicenceNumber, PractitionerProfile, Username};
use emr_domain::actor::{Actor, Role};
use emr_domain::authentication::{SessionEvent, SignInEvent, SignInOutcome};
use emr_domain::denial::DenialEvent;
use emr_domain::disclosure::{DisclosureEvent, Resource};
use emr_domain::fixtures::{content, text};
use emr_domain::grant::{GrantEvent, Scope};
use emr_domain::ids::{
    AttachmentId, CommandId, DenialId, DisclosureId, EventId, GrantId, HospitalId, PatientId, RecordId, SessionId, SignInId, UserId,
};
use emr_domain::metadata::{CommandContext, EventMetadata};
use emr_domain::phi::Phi;
use emr_domain::record::RecordEvent;
use emr_domain::security::{SecurityEventKind, Severity};
use emr_domain::values::{RecordType, Sha256Digest};
use emr_projections::{Fact, Payload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How big a hospital and how long a trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceShape {
    /// Days simulated (the care-relationship attack needs more than 31).
    pub days: i64,
    /// Departments (at most 6).
    pub departments: usize,
    /// Physicians per department.
    pub physicians: usize,
    /// Nurses per department (half on nights).
    pub nurses: usize,
    /// Patients in each department's panel.
    pub panel: usize,
    /// Instances of each attack.
    pub rounds: usize,
    /// The random seed.
    pub seed: u64,
    /// Harder conditions: a quarter of the day nurses rotate to nights halfway
    /// through, and attacks kept below the thresholds are planted beside the others.
    pub hard: bool,
}

impl TraceShape {
    /// A small hospital for the integration test.
    pub fn small() -> Self {
        Self { days: 36, departments: 3, physicians: 3, nurses: 2, panel: 30, rounds: 2, seed: 7, hard: false }
    }

    /// The hospital of the quality report.
    pub fn report() -> Self {
        Self { days: 60, departments: 6, physicians: 8, nurses: 6, panel: 120, rounds: 10, seed: 2026, hard: false }
    }
}

/// An attack planted in the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    /// The rule that should catch it.
    pub kind: SecurityEventKind,
    /// The least severity a catch must carry.
    pub severity: Severity,
    /// What it is.
    pub description: String,
}

/// One event of the trace.
#[derive(Debug, Clone)]
pub struct TraceEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Its id.
    pub event_id: EventId,
    /// Who caused it.
    pub actor: Actor,
    /// Its aggregate type.
    pub aggregate_type: &'static str,
    /// Its aggregate.
    pub aggregate_id: String,
    /// The event.
    pub payload: Payload,
    /// The attack it belongs to (index into [`Trace::attacks`]).
    pub attack: Option<usize>,
}

/// A generated trace, in time order.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Every event.
    pub events: Vec<TraceEvent>,
    /// Every planted attack.
    pub attacks: Vec<Attack>,
}

impl Trace {
    /// PHI reads that belong to no attack.
    pub fn clean_reads(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.attack.is_none() && matches!(e.payload, Payload::Disclosure(DisclosureEvent::PhiDisclosed { .. })))
            .count()
    }

    /// The trace as facts at log positions `first`, `first + 1`, …: what the
    /// detection worker would decode from the log.
    pub fn facts(&self, first: u64) -> Vec<Fact> {
        let mut sequences = std::collections::HashMap::new();
        self.events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let sequence = sequences.entry(event.aggregate_id.clone()).and_modify(|s| *s += 1).or_insert(1u64);
                Fact {
                    aggregate_id: event.aggregate_id.clone(),
                    sequence: *sequence,
                    metadata: EventMetadata {
                        event_id: event.event_id,
                        aggregate_type: event.aggregate_type.to_owned(),
                        recorded_at: event.at,
                        context: CommandContext::with_id(CommandId::new(), event.actor),
                        schema_version: "1.0".to_owned(),
                        position: first + index as u64,
                    },
                    payload: event.payload.clone(),
                }
            })
            .collect()
    }
}

/// A member of staff.
#[derive(Debug, Clone)]
struct Staff {
    actor: Actor,
    username: String,
    department: usize,
    /// Shift start, minutes after midnight UTC.
    shift_start: i64,
    shift_minutes: i64,
    workstation: IpAddr,
    home: IpAddr,
}

const DEPARTMENTS: [&str; 6] = ["emergency", "cardiology", "oncology", "pediatrics", "surgery", "internal_medicine"];

/// SHA-256 of a lowercased username, as the identity service records it.
pub fn username_digest(username: &str) -> Sha256Digest {
    let digest = ring::digest::digest(&ring::digest::SHA256, username.to_lowercase().as_bytes());
    Sha256Digest::from_bytes(digest.as_ref().try_into().unwrap())
}

struct Builder {
    rng: StdRng,
    start: DateTime<Utc>,
    events: Vec<TraceEvent>,
    attacks: Vec<Attack>,
    staff: Vec<Staff>,
    panels: Vec<Vec<PatientId>>,
    /// Each department's encounters: who it is seeing lately.
    seen: Vec<Vec<(DateTime<Utc>, PatientId)>>,
    /// The attack the events being added belong to.
    current: Option<usize>,
    /// The administrator who resets authenticators.
    admin: UserId,
}

impl Builder {
    fn push(&mut self, at: DateTime<Utc>, actor: Actor, aggregate_type: &'static str, aggregate_id: String, payload: Payload) {
        self.events.push(TraceEvent { at, event_id: EventId::new(), actor, aggregate_type, aggregate_id, payload, attack: self.current });
    }

    fn day(&self, day: i64) -> DateTime<Utc> {
        self.start + Duration::days(day)
    }

    fn sign_in(&mut self, at: DateTime<Utc>, staff: &Staff, client: IpAddr, outcome: SignInOutcome) {
        let attempt_id = SignInId::new();
        let event = SignInEvent::SignInAttempted {
            attempt_id,
            user_id: Some(staff.actor.user_id),
            username_digest: username_digest(&staff.username),
            client: Some(client),
            outcome,
        };
        self.push(at, Actor::system(), "sign_in", attempt_id.to_string(), Payload::SignIn(event));
    }

    fn guess(&mut self, at: DateTime<Utc>, username: &str, user: Option<UserId>, client: IpAddr, outcome: SignInOutcome) {
        let attempt_id = SignInId::new();
        let event = SignInEvent::SignInAttempted {
            attempt_id,
            user_id: user,
            username_digest: username_digest(username),
            client: Some(client),
            outcome,
        };
        self.push(at, Actor::system(), "sign_in", attempt_id.to_string(), Payload::SignIn(event));
    }

    fn session(&mut self, at: DateTime<Utc>, session: SessionId, user: UserId, client: IpAddr, opened: bool) {
        let client = Some(client);
        let event = if opened {
            SessionEvent::SessionOpened { session_id: session, user_id: user, client }
        } else {
            SessionEvent::SessionRefreshed { session_id: session, user_id: user, client }
        };
        self.push(at, Actor::system(), "session", session.to_string(), Payload::Session(event));
    }

    fn read(&mut self, at: DateTime<Utc>, reader: Actor, patient: PatientId, resource: Resource, basis: Basis) {
        let disclosure_id = DisclosureId::new();
        let event = DisclosureEvent::PhiDisclosed { disclosure_id, patient_id: patient, resource, accessor: reader, basis };
        self.push(at, reader, "disclosure", disclosure_id.to_string(), Payload::Disclosure(event));
    }

    fn break_glass(&mut self, at: DateTime<Utc>, reader: Actor, patient: PatientId) {
        let disclosure_id = DisclosureId::new();
        let reason = Phi::new(patient, text("unresponsive on arrival"));
        let glass = DisclosureEvent::BreakGlassInvoked { disclosure_id, patient_id: patient, accessor: reader, reason };
        self.push(at, reader, "disclosure", disclosure_id.to_string(), Payload::Disclosure(glass));
        let resource = Resource::Patient;
        let read =
            DisclosureEvent::PhiDisclosed { disclosure_id, patient_id: patient, resource, accessor: reader, basis: Basis::BreakGlass };
        self.push(at, reader, "disclosure", disclosure_id.to_string(), Payload::Disclosure(read));
    }

    fn encounter(&mut self, at: DateTime<Utc>, author: Actor, patient: PatientId) {
        let record_id = RecordId::new();
        let event = RecordEvent::RecordCreated {
            record_id,
            patient_id: patient,
            doctor_id: author.user_id,
            hospital_id: HospitalId::parse("HOSP-001").unwrap(),
            record_type: RecordType::Consultation,
            visit_date: at.date_naive(),
            content: Phi::new(patient, content("Follow-up")),
        };
        self.push(at, author, "medical_record", record_id.to_string(), Payload::Record(event));
    }

    fn grant(&mut self, at: DateTime<Utc>, patient: PatientId, grantee: UserId) {
        let grant_id = GrantId::new();
        let actor = Actor::new(UserId::from(patient.as_uuid()), Role::Patient);
        let event = GrantEvent::AccessGranted {
            grant_id,
            patient_id: patient,
            grantee,
            scopes: [Scope::Read].into_iter().collect(),
            expires_at: at + Duration::days(365),
            granted_by: actor.user_id,
            reason: Phi::new(patient, text("consultation")),
        };
        self.push(at, actor, "access_grant", grant_id.to_string(), Payload::Grant(event));
    }

    fn denial(&mut self, at: DateTime<Utc>, actor: Actor, patient: PatientId) {
        let denial_id = DenialId::new();
        let event = DenialEvent::AccessDenied {
            denial_id,
            actor,
            action: Action::ReadRecord,
            patient_id: Some(patient),
            reason: Denied::NoActiveGrant { scope: Scope::Read },
        };
        self.push(at, actor, "access_denial", denial_id.to_string(), Payload::Denial(event));
    }

    /// An administrator clears `staff`'s MFA enrolment (a lost phone, or an
    /// impostor's call to the help desk).
    fn mfa_reset(&mut self, at: DateTime<Utc>, staff: &Staff) {
        let event = AccountEvent::MfaReset { by: self.admin, reason: text("lost phone") };
        self.push(at, Actor::new(self.admin, Role::Admin), "account", staff.actor.user_id.to_string(), Payload::Account(event));
    }

    fn grant_basis() -> Basis {
        Basis::Grant { grant_id: GrantId::new() }
    }

    fn attack(&mut self, kind: SecurityEventKind, severity: Severity, description: String) {
        self.attacks.push(Attack { kind, severity, description });
        self.current = Some(self.attacks.len() - 1);
    }
}

/// Generates a trace of `shape`, starting on a Monday.
pub fn generate(shape: TraceShape) -> Trace {
    let start = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut b = Builder {
        rng: StdRng::seed_from_u64(shape.seed),
        start,
        events: vec![],
        attacks: vec![],
        staff: vec![],
        panels: vec![],
        seen: vec![],
        current: None,
        admin: UserId::new(),
    };
    let admin = AccountEvent::AccountRegistered {
        user_id: b.admin,
        username: Username::parse("it-admin").unwrap(),
        role: Role::Admin,
        profile: None,
        registered_by: None,
    };
    b.push(start - Duration::days(30), Actor::system(), "account", b.admin.to_string(), Payload::Account(admin));
    let departments = shape.departments.min(DEPARTMENTS.len());
    for department in 0..departments {
        b.panels.push((0..shape.panel).map(|_| PatientId::new()).collect());
        for index in 0..shape.physicians + shape.nurses {
            let (role, shift_start, shift_minutes) = match index {
                i if i < shape.physicians => (Role::Physician, 8 * 60, 10 * 60),
                i if (i - shape.physicians) % 2 == 0 => (Role::Nurse, 7 * 60, 12 * 60),
                _ => (Role::Nurse, 19 * 60, 12 * 60),
            };
            let n = b.staff.len() as u8;
            let staff = Staff {
                actor: Actor::new(UserId::new(), role),
                username: format!("{}-{department}-{index}", if role == Role::Physician { "dr" } else { "rn" }),
                department,
                shift_start,
                shift_minutes,
                workstation: IpAddr::V4(Ipv4Addr::new(10, department as u8, 1, n)),
                home: IpAddr::V4(Ipv4Addr::new(81, 2 + n / 64, n % 64, 10)),
            };
            let profile = PractitionerProfile {
                full_name: text(&staff.username),
                licence_number: LicenceNumber::parse(&format!("LIC-{}", 1000 + u32::from(n))).unwrap(),
                department: text(DEPARTMENTS[department]),
                specialization: text(DEPARTMENTS[department]),
            };
            let event = AccountEvent::AccountRegistered {
                user_id: staff.actor.user_id,
                username: Username::parse(&staff.username).unwrap(),
                role,
                profile: Some(profile),
                registered_by: None,
            };
            b.push(start - Duration::days(30), Actor::system(), "account", staff.actor.user_id.to_string(), Payload::Account(event));
            b.staff.push(staff);
        }
    }
    // Care began before the trace: every panel patient had an encounter in the
    // week before it.
    for department in 0..departments {
        b.seen.push(Vec::new());
        let author = b.staff.iter().find(|s| s.department == department && s.actor.role == Role::Physician).unwrap().actor;
        for patient in b.panels[department].clone() {
            let at = start - Duration::minutes(b.rng.random_range(60..7 * 24 * 60));
            b.encounter(at, author, patient);
            b.seen[department].push((at, patient));
        }
    }
    // Stale grants for the care-relationship attacks: consults long finished.
    let mut stale = Vec::new();
    for round in 0..shape.rounds {
        let insider = b.staff[(round * 5 + 1) % b.staff.len()].clone();
        let other = (insider.department + 1) % departments;
        let patient = b.panels[other][round % shape.panel];
        b.grant(start + Duration::hours(10), patient, insider.actor.user_id);
        stale.push((insider, patient));
    }
    for day in 0..shape.days {
        // Under hard conditions every fourth day nurse moves to nights halfway through.
        let rotation = shape.hard && day >= shape.days / 2;
        clean_day(&mut b, day, departments, rotation);
    }
    inject_attacks(&mut b, shape, departments, &stale);
    if shape.hard {
        inject_subtle_attacks(&mut b, shape, departments);
    }
    b.events.sort_by_key(|event| event.at);
    Trace { events: b.events, attacks: b.attacks }
}

fn clean_day(b: &mut Builder, day: i64, departments: usize, rotation: bool) {
    let midnight = b.day(day);
    let weekday = day % 7 < 5;
    // Encounters: each department sees a fifth of its panel every weekday.
    for department in 0..departments {
        let physicians: Vec<Staff> =
            b.staff.iter().filter(|s| s.department == department && s.actor.role == Role::Physician).cloned().collect();
        let panel = b.panels[department].clone();
        let visits = if weekday { panel.len() / 5 } else { panel.len() / 20 };
        for _ in 0..visits {
            let patient = panel[b.rng.random_range(0..panel.len())];
            let author = &physicians[b.rng.random_range(0..physicians.len())];
            let at = midnight + Duration::minutes(b.rng.random_range(8 * 60..18 * 60));
            b.encounter(at, author.actor, patient);
            b.seen[department].push((at, patient));
        }
    }
    for (index, mut staff) in b.staff.clone().into_iter().enumerate() {
        if rotation && staff.actor.role == Role::Nurse && staff.shift_start == 7 * 60 && index % 4 == 0 {
            staff.shift_start = 19 * 60;
        }
        let works = match staff.actor.role {
            Role::Physician => weekday || b.rng.random_bool(0.15),
            _ => b.rng.random_bool(5.0 / 7.0),
        };
        if works {
            shift(b, &staff, midnight, departments);
        }
    }
}

fn shift(b: &mut Builder, staff: &Staff, midnight: DateTime<Utc>, departments: usize) {
    let begin = midnight + Duration::minutes(staff.shift_start + b.rng.random_range(-20..20));
    let end = begin + Duration::minutes(staff.shift_minutes);
    let remote = staff.actor.role == Role::Physician && b.rng.random_bool(0.1);
    let client = if remote { staff.home } else { staff.workstation };
    // The odd lost phone: the help desk resets the authenticator before the shift,
    // and the holder enrols anew from wherever they work that day.
    if b.rng.random_bool(0.005) {
        let at = begin - Duration::minutes(b.rng.random_range(20..90));
        b.mfa_reset(at, staff);
    }
    if b.rng.random_bool(0.03) {
        b.sign_in(begin - Duration::seconds(40), staff, client, SignInOutcome::WrongPassword);
    }
    b.sign_in(begin, staff, client, SignInOutcome::Succeeded);
    let session = SessionId::new();
    b.session(begin, session, staff.actor.user_id, client, true);
    let mut refresh = begin + Duration::minutes(b.rng.random_range(40..80));
    while refresh < end {
        b.session(refresh, session, staff.actor.user_id, client, false);
        refresh += Duration::minutes(b.rng.random_range(40..80));
    }
    // Staff read the charts of patients their department is seeing this week.
    let since = begin - Duration::days(7);
    let panel: Vec<PatientId> = b.seen[staff.department].iter().filter(|(at, _)| *at >= since && *at <= begin).map(|(_, p)| *p).collect();
    let panel = if panel.is_empty() { b.panels[staff.department].clone() } else { panel };
    let patients = match staff.actor.role {
        Role::Physician => b.rng.random_range(12..25),
        _ => b.rng.random_range(10..20),
    };
    let minutes = staff.shift_minutes - 30;
    for _ in 0..patients {
        let patient = panel[b.rng.random_range(0..panel.len())];
        for _ in 0..b.rng.random_range(1..4) {
            let at = begin + Duration::minutes(b.rng.random_range(10..minutes));
            b.read(at, staff.actor, patient, Resource::Record { record_id: RecordId::new() }, Builder::grant_basis());
        }
        if staff.actor.role == Role::Physician && b.rng.random_bool(0.2) {
            let at = begin + Duration::minutes(b.rng.random_range(10..minutes));
            for _ in 0..b.rng.random_range(1..4) {
                let resource = Resource::Attachment { record_id: RecordId::new(), attachment_id: AttachmentId::new() };
                b.read(at, staff.actor, patient, resource, Builder::grant_basis());
            }
        }
    }
    // A consult: a patient of another department grants this physician access.
    if staff.actor.role == Role::Physician && departments > 1 && b.rng.random_bool(0.1) {
        let other = (staff.department + b.rng.random_range(1..departments)) % departments;
        let patient = b.panels[other][b.rng.random_range(0..b.panels[other].len())];
        let at = begin + Duration::minutes(b.rng.random_range(30..minutes));
        b.grant(at, patient, staff.actor.user_id);
        b.read(at + Duration::minutes(5), staff.actor, patient, Resource::Patient, Builder::grant_basis());
        b.read(at + Duration::minutes(6), staff.actor, patient, Resource::Record { record_id: RecordId::new() }, Builder::grant_basis());
    }
    if b.rng.random_bool(0.02) {
        let patient = b.panels[(staff.department + 1) % departments][0];
        let at = begin + Duration::minutes(b.rng.random_range(10..minutes));
        b.denial(at, staff.actor, patient);
    }
    // Emergency physicians break the glass for the odd unknown arrival.
    if staff.department == 0 && staff.actor.role == Role::Physician && b.rng.random_bool(0.08) {
        let at = begin + Duration::minutes(b.rng.random_range(10..minutes));
        b.break_glass(at, staff.actor, PatientId::new());
    }
}

fn inject_attacks(b: &mut Builder, shape: TraceShape, departments: usize, stale: &[(Staff, PatientId)]) {
    let staff = b.staff.clone();
    let physicians: Vec<&Staff> = staff.iter().filter(|s| s.actor.role == Role::Physician).collect();
    let nurses: Vec<&Staff> = staff.iter().filter(|s| s.actor.role == Role::Nurse).collect();
    let attack_days = (14..shape.days).collect::<Vec<_>>();
    for round in 0..shape.rounds {
        let day = |offset: usize| attack_days[(round * 7 + offset) % attack_days.len()];
        let r = round as u8;

        let victim = physicians[round % physicians.len()];
        b.attack(SecurityEventKind::BruteForce, Severity::High, format!("8 wrong passwords on {} in 4 min", victim.username));
        let at = b.day(day(0)) + Duration::hours(3);
        for i in 0..8 {
            b.sign_in(at + Duration::seconds(i * 30), victim, IpAddr::V4(Ipv4Addr::new(203, 0, 113, r)), SignInOutcome::WrongPassword);
        }

        let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, r));
        b.attack(SecurityEventKind::PasswordSpraying, Severity::High, format!("one address tries 8 accounts in 3 min (round {round})"));
        let at = b.day(day(1)) + Duration::hours(22);
        for i in 0..8i64 {
            let target = &staff[(round * 3 + i as usize) % staff.len()];
            let (name, user) = if i % 3 == 2 { (format!("admin{i}"), None) } else { (target.username.clone(), Some(target.actor.user_id)) };
            let outcome = if user.is_some() { SignInOutcome::WrongPassword } else { SignInOutcome::UnknownAccount };
            b.guess(at + Duration::seconds(i * 20), &name, user, client, outcome);
        }
        let stuffed = nurses[round % nurses.len()];
        b.attack(
            SecurityEventKind::PasswordSpraying,
            Severity::Critical,
            format!("stuffing from the spraying address logs in as {}", stuffed.username),
        );
        b.sign_in(at + Duration::seconds(200), stuffed, client, SignInOutcome::Succeeded);

        let insider = nurses[(round + 1) % nurses.len()];
        b.attack(SecurityEventKind::AccessDeniedBurst, Severity::Medium, format!("{} refused 6 times in 2 min", insider.username));
        let at = b.day(day(2)) + Duration::minutes(insider.shift_start + 120);
        for i in 0..6 {
            let patient = b.panels[(insider.department + 1) % departments][i];
            b.denial(at + Duration::seconds(i as i64 * 20), insider.actor, patient);
        }

        let glass = nurses[(round + 2) % nurses.len()];
        b.attack(
            SecurityEventKind::BreakGlassUse,
            Severity::High,
            format!("{} breaks the glass 3 times on other departments' patients", glass.username),
        );
        let at = b.day(day(3)) + Duration::minutes(glass.shift_start + 60);
        for i in 0..3 {
            let patient = b.panels[(glass.department + 1) % departments][i + 3];
            b.break_glass(at + Duration::minutes(i as i64 * 50), glass.actor, patient);
        }

        let owl = physicians[(round + 1) % physicians.len()];
        b.attack(SecurityEventKind::OffHoursAccess, Severity::Low, format!("{} reads charts at 02:30", owl.username));
        let at = b.day(day(4)) + Duration::minutes(150);
        for i in 0..4 {
            let patient = b.panels[owl.department][i];
            b.read(
                at + Duration::minutes(i as i64 * 3),
                owl.actor,
                patient,
                Resource::Record { record_id: RecordId::new() },
                Builder::grant_basis(),
            );
        }

        let harvester = physicians[(round + 2) % physicians.len()];
        b.attack(SecurityEventKind::UnusualPatientVolume, Severity::High, format!("{} reads 90 patients in a day", harvester.username));
        let at = b.day(day(5)) + Duration::minutes(harvester.shift_start + 30);
        for i in 0..90usize {
            let own = &b.panels[harvester.department];
            let other = &b.panels[(harvester.department + 1) % departments];
            let patient = if i < own.len() { own[i] } else { other[(i - own.len()) % other.len()] };
            b.read(at + Duration::minutes(i as i64 * 4), harvester.actor, patient, Resource::Patient, Builder::grant_basis());
        }

        let (snoop, patient) = &stale[round % stale.len()];
        b.attack(
            SecurityEventKind::NoCareRelationship,
            Severity::Medium,
            format!("{} reads a patient through a consult grant a month stale", snoop.username),
        );
        let at = b.day(32.max(day(6)).min(shape.days - 1)) + Duration::minutes(snoop.shift_start + 200);
        b.read(at, snoop.actor, *patient, Resource::Record { record_id: RecordId::new() }, Builder::grant_basis());

        let hoarder = physicians[(round + 3) % physicians.len()];
        b.attack(SecurityEventKind::BulkDownload, Severity::High, format!("{} downloads 60 attachments in 40 min", hoarder.username));
        let at = b.day(day(7)) + Duration::minutes(hoarder.shift_start + 240);
        for i in 0..60 {
            let patient = b.panels[hoarder.department][i % 10];
            let resource = Resource::Attachment { record_id: RecordId::new(), attachment_id: AttachmentId::new() };
            b.read(at + Duration::seconds(i as i64 * 40), hoarder.actor, patient, resource, Builder::grant_basis());
        }

        let stolen = nurses[(round + 3) % nurses.len()];
        b.attack(
            SecurityEventKind::DistantSessions,
            Severity::High,
            format!("{}'s session is used from abroad while at work", stolen.username),
        );
        let at = b.day(day(8)) + Duration::minutes(stolen.shift_start + 90);
        let session = SessionId::new();
        b.session(at, session, stolen.actor.user_id, stolen.workstation, true);
        b.session(at + Duration::minutes(7), session, stolen.actor.user_id, IpAddr::V4(Ipv4Addr::new(185, 220, 101, r)), false);

        let impersonated = physicians[(round + 4) % physicians.len()];
        b.attack(
            SecurityEventKind::AccountSecurityChange,
            Severity::High,
            format!("an impostor has {}'s MFA reset and signs in from a new network 3 h later", impersonated.username),
        );
        let at = b.day(day(9)) + Duration::hours(1);
        b.mfa_reset(at, impersonated);
        takeover(b, impersonated, at + Duration::hours(3), IpAddr::V4(Ipv4Addr::new(45, 134, 26, r)));
        b.current = None;
    }
}

/// Attacks kept just below the default thresholds: what the rules, as
/// configured, are expected to miss.
fn inject_subtle_attacks(b: &mut Builder, shape: TraceShape, departments: usize) {
    let staff = b.staff.clone();
    let physicians: Vec<&Staff> = staff.iter().filter(|s| s.actor.role == Role::Physician).collect();
    for round in 0..shape.rounds {
        let day = 20 + (round as i64 * 3) % (shape.days - 21).max(1);
        let victim = physicians[(round + 4) % physicians.len()];
        b.attack(SecurityEventKind::BruteForce, Severity::High, format!("4 wrong passwords on {} an hour apart", victim.username));
        let at = b.day(day) + Duration::hours(1);
        for i in 0..4 {
            b.sign_in(
                at + Duration::minutes(i * 61),
                victim,
                IpAddr::V4(Ipv4Addr::new(203, 0, 114, round as u8)),
                SignInOutcome::WrongPassword,
            );
        }
        let harvester = physicians[(round + 5) % physicians.len()];
        b.attack(SecurityEventKind::UnusualPatientVolume, Severity::High, format!("{} reads 35 patients a day", harvester.username));
        let at = b.day(day + 1) + Duration::minutes(harvester.shift_start + 30);
        for i in 0..35usize {
            let panel = &b.panels[(harvester.department + i % departments.max(1)) % departments];
            let patient = panel[(i * 7 + round) % panel.len()];
            b.read(at + Duration::minutes(i as i64 * 9), harvester.actor, patient, Resource::Patient, Builder::grant_basis());
        }
        let impersonated = physicians[(round + 6) % physicians.len()];
        b.attack(
            SecurityEventKind::AccountSecurityChange,
            Severity::High,
            format!("an impostor has {}'s MFA reset and waits 30 h to sign in", impersonated.username),
        );
        let at = b.day(day + 2) + Duration::hours(1);
        b.mfa_reset(at, impersonated);
        takeover(b, impersonated, at + Duration::hours(30), IpAddr::V4(Ipv4Addr::new(91, 219, 236, round as u8)));
        b.current = None;
    }
}

/// An impostor signs in as `victim` from `client` at `at` (with the new
/// authenticator they enrolled) and opens a session.
fn takeover(b: &mut Builder, victim: &Staff, at: DateTime<Utc>, client: IpAddr) {
    b.sign_in(at, victim, client, SignInOutcome::Succeeded);
    b.session(at, SessionId::new(), victim.actor.user_id, client, true);
}
