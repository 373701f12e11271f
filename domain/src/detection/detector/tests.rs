use super::*;
use crate::ids::{EventId, GrantId, RecordId};

/// Feeds observations at chosen times and collects what fires.
struct Bench {
    detector: Detector,
    start: DateTime<Utc>,
    position: u64,
}

impl Bench {
    fn new() -> Self {
        // A Monday, 00:00 UTC.
        let start = DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z").unwrap().with_timezone(&Utc);
        Self { detector: Detector::new(DetectionSettings::default()), start, position: 0 }
    }

    fn at(&mut self, seconds: i64, observed: Observed) -> Vec<Raise> {
        self.position += 1;
        let evidence = Evidence { position: self.position, event_id: EventId::new() };
        self.detector.observe(&Observation { at: self.start + Duration::seconds(seconds), evidence, observed })
    }

    fn kinds(&mut self, seconds: i64, observed: Observed) -> Vec<(SecurityEventKind, Severity)> {
        self.at(seconds, observed).iter().map(|d| (d.kind, d.severity)).collect()
    }
}

fn digest(name: &str) -> Sha256Digest {
    let mut bytes = [0u8; 32];
    bytes[..name.len().min(32)].copy_from_slice(&name.as_bytes()[..name.len().min(32)]);
    Sha256Digest::from_bytes(bytes)
}

fn failed(user: Option<UserId>, account: &str, client: &str) -> Observed {
    Observed::SignIn { user, account: digest(account), client: Some(client.parse().unwrap()), outcome: SignInOutcome::WrongPassword }
}

fn physician() -> Actor {
    Actor::new(UserId::new(), Role::Physician)
}

fn read(reader: Actor, patient: PatientId) -> Observed {
    Observed::Read {
        reader,
        patient,
        resource: Resource::Record { record_id: RecordId::new() },
        basis: Basis::Grant { grant_id: GrantId::new() },
    }
}

#[test]
fn brute_force_fires_once_on_the_fifth_failure_within_ten_minutes() {
    let mut bench = Bench::new();
    let user = Some(UserId::new());
    for i in 0..4 {
        assert!(bench.kinds(i * 60, failed(user, "alice", "198.51.100.1")).is_empty());
    }
    assert_eq!(bench.kinds(240, failed(user, "alice", "198.51.100.1")), [(SecurityEventKind::BruteForce, Severity::High)]);
    assert!(bench.kinds(250, failed(user, "alice", "198.51.100.1")).is_empty(), "quiet for the window");
}

#[test]
fn failures_spread_beyond_the_window_are_not_brute_force() {
    let mut bench = Bench::new();
    for i in 0..10 {
        assert!(bench.kinds(i * 700, failed(None, "bob", "198.51.100.1")).is_empty());
    }
}

#[test]
fn spraying_fires_on_five_accounts_from_one_address_and_a_later_success_is_critical() {
    let mut bench = Bench::new();
    for (i, account) in ["a", "b", "c", "d"].iter().enumerate() {
        assert!(bench.kinds(i as i64 * 10, failed(None, account, "203.0.113.7")).is_empty());
    }
    assert_eq!(bench.kinds(50, failed(None, "e", "203.0.113.7")), [(SecurityEventKind::PasswordSpraying, Severity::High)]);
    let victim = UserId::new();
    let success = Observed::SignIn {
        user: Some(victim),
        account: digest("f"),
        client: Some("203.0.113.7".parse().unwrap()),
        outcome: SignInOutcome::Succeeded,
    };
    let detections = bench.at(60, success);
    assert_eq!(detections.len(), 1);
    assert_eq!(
        (detections[0].kind, detections[0].severity, detections[0].user_id),
        (SecurityEventKind::PasswordSpraying, Severity::Critical, Some(victim))
    );
    assert!(detections[0].evidence.len() >= 6, "the failures and the success");
}

#[test]
fn a_burst_of_denials_fires_and_the_system_is_never_judged() {
    let mut bench = Bench::new();
    let nurse = Actor::new(UserId::new(), Role::Nurse);
    let found: Vec<_> = (0..5).flat_map(|i| bench.kinds(i * 20, Observed::Denied { actor: nurse, patient: None })).collect();
    assert_eq!(found, [(SecurityEventKind::AccessDeniedBurst, Severity::Medium)]);
    let system = Actor::system();
    assert!((0..10).all(|i| bench.kinds(200 + i, Observed::Denied { actor: system, patient: None }).is_empty()));
}

#[test]
fn every_break_glass_is_raised_and_repeats_or_other_departments_make_it_high() {
    let mut bench = Bench::new();
    let (doctor, cardiologist) = (physician(), physician());
    bench.at(0, Observed::AccountOpened { user: doctor.user_id, role: Role::Physician, department: Some("emergency".into()) });
    bench.at(0, Observed::AccountOpened { user: cardiologist.user_id, role: Role::Physician, department: Some("cardiology".into()) });
    let patient = PatientId::new();
    bench.at(10, Observed::Encounter { author: cardiologist.user_id, patient });
    assert_eq!(
        bench.kinds(20, Observed::BreakGlass { reader: cardiologist, patient }),
        [(SecurityEventKind::BreakGlassUse, Severity::Medium)]
    );
    assert_eq!(bench.kinds(30, Observed::BreakGlass { reader: doctor, patient }), [(SecurityEventKind::BreakGlassUse, Severity::High)]);
    let unknown = PatientId::new();
    assert_eq!(
        bench.kinds(40, Observed::BreakGlass { reader: cardiologist, patient: unknown }),
        [(SecurityEventKind::BreakGlassUse, Severity::Medium)]
    );
    assert_eq!(
        bench.kinds(50, Observed::BreakGlass { reader: cardiologist, patient: unknown }),
        [(SecurityEventKind::BreakGlassUse, Severity::High)]
    );
}

#[test]
fn a_read_far_outside_the_users_hours_fires_once_they_have_a_history() {
    let mut bench = Bench::new();
    let doctor = physician();
    let patient = PatientId::new();
    bench.at(0, Observed::Granted { grantee: doctor.user_id, patient });
    for day in 0..6 {
        for i in 0..50 {
            let at = day * 86_400 + 9 * 3600 + i * 600;
            assert!(bench.kinds(at, read(doctor, patient)).is_empty(), "day {day} read {i}");
        }
    }
    let night = 6 * 86_400 + 2 * 3600;
    assert_eq!(bench.kinds(night, read(doctor, patient)), [(SecurityEventKind::OffHoursAccess, Severity::Low)]);
    assert!(bench.kinds(night + 60, read(doctor, patient)).is_empty(), "once per cooldown");
}

#[test]
fn far_more_patients_than_the_users_daily_baseline_fires_once_that_day() {
    let mut bench = Bench::new();
    let doctor = physician();
    let panel: Vec<PatientId> = (0..120).map(|_| PatientId::new()).collect();
    for patient in &panel {
        bench.at(0, Observed::Granted { grantee: doctor.user_id, patient: *patient });
    }
    for day in 0..6 {
        for i in 0..20 {
            let patient = panel[(day * 7 + i) as usize % 30];
            assert!(bench.kinds(day * 86_400 + 9 * 3600 + i * 60, read(doctor, patient)).is_empty());
        }
    }
    let today = 6 * 86_400 + 10 * 3600;
    let found: Vec<_> = panel.iter().enumerate().flat_map(|(i, p)| bench.kinds(today + i as i64, read(doctor, *p))).collect();
    assert_eq!(found, [(SecurityEventKind::UnusualPatientVolume, Severity::High)]);
}

#[test]
fn attachment_downloads_far_above_the_users_hourly_baseline_fire() {
    let mut bench = Bench::new();
    let doctor = physician();
    let patient = PatientId::new();
    bench.at(0, Observed::Granted { grantee: doctor.user_id, patient });
    let download = |reader| Observed::Read {
        reader,
        patient,
        resource: Resource::Attachment { record_id: RecordId::new(), attachment_id: crate::ids::AttachmentId::new() },
        basis: Basis::Grant { grant_id: GrantId::new() },
    };
    for hour in 0..6 {
        for i in 0..3 {
            assert!(bench.kinds(hour * 3600 + 9 * 3600 + i * 60, download(doctor)).is_empty());
        }
    }
    let found: Vec<_> = (0..60).flat_map(|i| bench.kinds(20 * 3600 + i * 10, download(doctor))).collect();
    assert_eq!(found, [(SecurityEventKind::BulkDownload, Severity::High)]);
}

#[test]
fn a_read_without_encounter_grant_or_department_care_fires_but_care_by_the_department_does_not() {
    let mut bench = Bench::new();
    let (nurse, doctor) = (Actor::new(UserId::new(), Role::Nurse), physician());
    bench.at(0, Observed::AccountOpened { user: nurse.user_id, role: Role::Nurse, department: Some("oncology".into()) });
    bench.at(0, Observed::AccountOpened { user: doctor.user_id, role: Role::Physician, department: Some("oncology".into()) });
    let (cared, stranger, stale) = (PatientId::new(), PatientId::new(), PatientId::new());
    bench.at(0, Observed::Granted { grantee: doctor.user_id, patient: stale });
    bench.at(10, Observed::Encounter { author: doctor.user_id, patient: cared });
    assert!(bench.kinds(20, read(nurse, cared)).is_empty(), "the department cares for the patient");
    assert_eq!(bench.kinds(30, read(nurse, stranger)), [(SecurityEventKind::NoCareRelationship, Severity::Medium)]);
    assert!(bench.kinds(40, read(doctor, stale)).is_empty(), "a fresh grant");
    assert_eq!(bench.kinds(31 * 86_400, read(doctor, stale)), [(SecurityEventKind::NoCareRelationship, Severity::Medium)]);
}

#[test]
fn sessions_from_distant_networks_at_once_fire_but_the_hospital_network_is_one_place() {
    let mut bench = Bench::new();
    let user = UserId::new();
    let seen = |client: &str| Observed::SessionUse { session: SessionId::new(), user, client: Some(client.parse().unwrap()) };
    assert!(bench.kinds(0, seen("10.0.4.2")).is_empty());
    assert!(bench.kinds(60, seen("172.16.9.9")).is_empty());
    assert_eq!(bench.kinds(120, seen("203.0.113.50")), [(SecurityEventKind::DistantSessions, Severity::High)]);
}

#[test]
fn every_role_change_and_mfa_reset_is_raised_and_moves_into_administration_or_audit_are_medium() {
    let mut bench = Bench::new();
    let (user, admin) = (UserId::new(), UserId::new());
    let role = |from, to| Observed::AccountChanged { user, by: admin, change: AccountChange::Role { from, to } };
    let change = SecurityEventKind::AccountSecurityChange;
    assert_eq!(bench.kinds(0, role(Role::Nurse, Role::Physician)), [(change, Severity::Low)]);
    assert_eq!(bench.kinds(10, role(Role::Physician, Role::Admin)), [(change, Severity::Medium)]);
    let reset = bench.at(20, Observed::AccountChanged { user, by: admin, change: AccountChange::MfaReset });
    assert_eq!(reset.iter().map(|d| (d.kind, d.severity, d.user_id)).collect::<Vec<_>>(), [(change, Severity::Medium, Some(user))]);
    assert!(reset[0].summary.contains(&admin.to_string()), "the summary names the administrator: {}", reset[0].summary);

    let mut settings = DetectionSettings::default();
    settings.account_changes.enabled = false;
    bench.detector = Detector::new(settings);
    assert!(bench.kinds(30, role(Role::Admin, Role::Auditor)).is_empty(), "a disabled rule stays silent");
}

#[test]
fn a_session_from_a_new_network_soon_after_an_mfa_reset_is_a_likely_takeover_but_a_known_network_is_not() {
    let mut bench = Bench::new();
    let (user, admin) = (UserId::new(), UserId::new());
    let seen = |client: &str| Observed::SessionUse { session: SessionId::new(), user, client: Some(client.parse().unwrap()) };
    let reset = || Observed::AccountChanged { user, by: admin, change: AccountChange::MfaReset };
    let day = 86_400;
    assert!(bench.kinds(0, seen("198.51.100.7")).is_empty(), "the holder's usual network");
    bench.at(day, reset());
    let reset_position = bench.position;
    assert!(bench.kinds(day + 3_600, seen("198.51.3.9")).is_empty(), "the network the account used before (same /16)");
    assert!(bench.kinds(day + 7_200, seen("10.0.0.8")).is_empty(), "inside the hospital");

    let raised = bench.at(day + 14_400, seen("203.0.113.50"));
    let found: Vec<_> = raised.iter().map(|d| (d.kind, d.severity, d.user_id)).collect();
    assert_eq!(found, [(SecurityEventKind::AccountSecurityChange, Severity::High, Some(user))]);
    let evidence: Vec<u64> = raised[0].evidence.iter().map(|e| e.position).collect();
    assert_eq!(evidence, [reset_position, bench.position], "the reset and the session");
    assert!(raised[0].summary.contains("203.0.113.50") && raised[0].summary.contains("4.0 h"), "{}", raised[0].summary);
    assert!(bench.kinds(day + 28_800, seen("192.0.2.1")).is_empty(), "once per reset");

    bench.at(10 * day, reset());
    assert!(bench.kinds(11 * day + 60, seen("45.33.1.1")).is_empty(), "after the takeover window a new network is not tied to the reset");
    assert!(bench.kinds(40 * day, seen("45.33.1.1")).is_empty(), "no reset pending");
}

#[test]
fn the_same_log_yields_the_same_detection_ids() {
    let user = Some(UserId::new());
    let events: Vec<Observation> = (0..5)
        .map(|i| Observation {
            at: DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(i),
            evidence: Evidence { position: i as u64 + 1, event_id: EventId::new() },
            observed: failed(user, "carol", "198.51.100.9"),
        })
        .collect();
    let run = || {
        let mut detector = Detector::new(DetectionSettings::default());
        events.iter().flat_map(|o| detector.observe(o)).map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(run().len(), 1);
    assert_eq!(run(), run());
}

#[test]
fn a_detector_restored_from_its_saved_state_continues_where_it_stopped() {
    let mut bench = Bench::new();
    let user = Some(UserId::new());
    for i in 0..3 {
        bench.at(i, failed(user, "dave", "198.51.100.2"));
    }
    let saved = serde_json::to_string(bench.detector.state()).unwrap();
    bench.detector = Detector::restore(DetectionSettings::default(), serde_json::from_str(&saved).unwrap());
    assert!(bench.kinds(3, failed(user, "dave", "198.51.100.2")).is_empty());
    assert_eq!(bench.kinds(4, failed(user, "dave", "198.51.100.2")), [(SecurityEventKind::BruteForce, Severity::High)]);
}

#[test]
fn detections_raise_the_users_risk_which_decays() {
    let mut bench = Bench::new();
    let user = UserId::new();
    bench.at(0, Observed::RaisedAtSource { user: Some(user), severity: Severity::High });
    let now = bench.start;
    assert_eq!(bench.detector.risk(user, now), 40.0);
    assert!((bench.detector.risk(user, now + Duration::hours(48)) - 10.0).abs() < 1e-9);
}

#[test]
fn disabled_rules_stay_silent() {
    let mut settings = DetectionSettings::default();
    settings.brute_force.enabled = false;
    let mut detector = Detector::new(settings);
    let user = Some(UserId::new());
    let fired: usize = (0..10)
        .map(|i| {
            let evidence = Evidence { position: i + 1, event_id: EventId::new() };
            detector.observe(&Observation { at: DateTime::<Utc>::UNIX_EPOCH, evidence, observed: failed(user, "erin", "10.0.0.1") }).len()
        })
        .sum();
    assert_eq!(fired, 0);
}
