//! The detector: state folded from observations, and the rules that read it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::network::Network;
use super::risk::RiskScore;
use super::settings::{BaselineRule, DetectionSettings};
use super::{AccountChange, Observation, Observed, detection_id};
use crate::access::Basis;
use crate::actor::{Actor, Role};
use crate::authentication::SignInOutcome;
use crate::disclosure::Resource;
use crate::ids::{PatientId, SessionId, UserId};
use crate::security::{Evidence, Raise, SecurityEventKind, Severity};
use crate::values::Sha256Digest;

/// The most evidence one detection carries (the newest events, the trigger last).
const MAX_EVIDENCE: usize = 20;
/// The most networks remembered per account (the most recently used).
const MAX_KNOWN_NETWORKS: usize = 16;

/// Timestamped evidence in a sliding window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Window<K> {
    entries: VecDeque<(DateTime<Utc>, K, Evidence)>,
}

impl<K> Default for Window<K> {
    fn default() -> Self {
        Self { entries: VecDeque::new() }
    }
}

impl<K: PartialEq + Clone> Window<K> {
    fn push(&mut self, at: DateTime<Utc>, key: K, evidence: Evidence, window_secs: i64) {
        self.entries.push_back((at, key, evidence));
        self.prune(at, window_secs);
    }

    fn prune(&mut self, now: DateTime<Utc>, window_secs: i64) {
        let since = now - Duration::seconds(window_secs);
        while self.entries.front().is_some_and(|(at, ..)| *at < since) {
            self.entries.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn distinct_keys(&self) -> usize {
        let mut keys: Vec<&K> = Vec::new();
        for (_, key, _) in &self.entries {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys.len()
    }

    fn evidence(&self) -> Vec<Evidence> {
        let skip = self.entries.len().saturating_sub(MAX_EVIDENCE);
        self.entries.iter().skip(skip).map(|(.., evidence)| *evidence).collect()
    }
}

/// An exponentially weighted mean and variance of a user's per-bucket counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Baseline {
    mean: f64,
    variance: f64,
    buckets: u32,
}

impl Baseline {
    fn learn(&mut self, count: f64, alpha: f64) {
        if self.buckets == 0 {
            self.mean = count;
        } else {
            let delta = count - self.mean;
            self.mean += alpha * delta;
            self.variance = (1.0 - alpha) * (self.variance + alpha * delta * delta);
        }
        self.buckets += 1;
    }

    /// The count above which `rule` fires, once there is enough history.
    fn limit(&self, rule: &BaselineRule) -> Option<f64> {
        (self.buckets >= rule.min_buckets).then(|| (self.mean + rule.z_score * self.variance.sqrt()).max(f64::from(rule.floor)))
    }
}

/// A user's counts in the current bucket, against their baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Bucketed {
    bucket: i64,
    distinct: BTreeSet<PatientId>,
    count: u32,
    recent: VecDeque<Evidence>,
    fired: bool,
    baseline: Baseline,
}

impl Bucketed {
    /// Counts one event in `bucket` (of `patient`, when distinct patients are
    /// counted) and says whether the bucket just crossed the user's limit.
    fn count(&mut self, bucket: i64, patient: Option<PatientId>, evidence: Evidence, rule: &BaselineRule) -> bool {
        if bucket != self.bucket {
            if self.count > 0 {
                let observed = if self.distinct.is_empty() { self.count } else { self.distinct.len() as u32 };
                self.baseline.learn(f64::from(observed), rule.alpha);
            }
            *self = Self { bucket, baseline: self.baseline, ..Self::default() };
        }
        self.count += 1;
        if let Some(patient) = patient {
            self.distinct.insert(patient);
        }
        self.recent.push_back(evidence);
        if self.recent.len() > MAX_EVIDENCE {
            self.recent.pop_front();
        }
        let observed = if patient.is_some() { self.distinct.len() as u32 } else { self.count };
        match self.baseline.limit(rule) {
            Some(limit) if !self.fired && f64::from(observed) > limit => {
                self.fired = true;
                true
            }
            _ => false,
        }
    }
}

/// A user's reads by hour of day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct HourProfile {
    hours: [u32; 24],
    total: u32,
    days: u32,
    last_day: i64,
}

/// Everything the detector has learned; serializable, so the worker can save it
/// with the log position it reflects and resume from there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    failures_by_account: HashMap<Sha256Digest, Window<()>>,
    failures_by_client: HashMap<IpAddr, Window<Sha256Digest>>,
    denials: HashMap<UserId, Window<()>>,
    break_glass: HashMap<UserId, Window<PatientId>>,
    hours: HashMap<UserId, HourProfile>,
    daily_patients: HashMap<UserId, Bucketed>,
    hourly_downloads: HashMap<UserId, Bucketed>,
    departments: HashMap<UserId, String>,
    /// Last encounter or grant per practitioner and patient.
    relationships: HashMap<UserId, HashMap<PatientId, DateTime<Utc>>>,
    /// Last encounter per patient and department.
    care_departments: HashMap<PatientId, HashMap<String, DateTime<Utc>>>,
    sessions: HashMap<UserId, Window<(SessionId, IpAddr)>>,
    /// The networks each account's sessions came from, with when last.
    #[serde(default)]
    known_networks: HashMap<UserId, Vec<(Network, DateTime<Utc>)>>,
    /// MFA resets still within the takeover window: when, and the reset's evidence.
    #[serde(default)]
    mfa_resets: HashMap<UserId, (DateTime<Utc>, Evidence)>,
    /// Until when a rule stays quiet for a key (`rule:key`).
    quiet_until: HashMap<String, DateTime<Utc>>,
    risk: HashMap<UserId, RiskScore>,
    /// The hour of the last pruning of stale entries.
    pruned_hour: i64,
}

/// Folds observations into detections.
#[derive(Debug, Clone)]
pub struct Detector {
    settings: DetectionSettings,
    state: DetectorState,
}

/// A detection before its risk score is known.
struct Finding {
    kind: SecurityEventKind,
    severity: Severity,
    user_id: Option<UserId>,
    patient_id: Option<PatientId>,
    client: Option<IpAddr>,
    evidence: Vec<Evidence>,
    summary: String,
}

impl Detector {
    /// A detector that knows nothing yet.
    pub fn new(settings: DetectionSettings) -> Self {
        Self::restore(settings, DetectorState::default())
    }

    /// A detector resuming from saved state.
    pub fn restore(settings: DetectionSettings, state: DetectorState) -> Self {
        Self { settings, state }
    }

    /// What it has learned (to save).
    pub fn state(&self) -> &DetectorState {
        &self.state
    }

    /// A user's risk score at `at`.
    pub fn risk(&self, user: UserId, at: DateTime<Utc>) -> f64 {
        self.state.risk.get(&user).map(|score| score.at(at, &self.settings.risk)).unwrap_or_default()
    }

    /// Learns from one observation; returns the detections it completes, each
    /// as the command that raises it.
    pub fn observe(&mut self, observation: &Observation) -> Vec<Raise> {
        let Observation { at, evidence, observed } = observation;
        let (at, evidence) = (*at, *evidence);
        self.prune(at);
        let findings = match observed {
            Observed::SignIn { user, account, client, outcome } => self.sign_in(at, evidence, *user, *account, *client, *outcome),
            Observed::SessionUse { session, user, client } => client
                .map(|c| {
                    let mut findings = self.takeover_after_reset(at, evidence, *user, c);
                    findings.extend(self.session_use(at, evidence, *session, *user, c));
                    findings
                })
                .unwrap_or_default(),
            Observed::Denied { actor, .. } => self.denied(at, evidence, actor),
            Observed::Read { reader, patient, resource, basis } => self.read(at, evidence, reader, *patient, resource, basis),
            Observed::BreakGlass { reader, patient } => self.break_glass(at, evidence, reader, *patient),
            Observed::AccountOpened { user, department, .. } => {
                if let Some(department) = department {
                    self.state.departments.insert(*user, department.clone());
                }
                vec![]
            }
            Observed::Encounter { author, patient } => {
                self.state.relationships.entry(*author).or_default().insert(*patient, at);
                if let Some(department) = self.state.departments.get(author) {
                    self.state.care_departments.entry(*patient).or_default().insert(department.clone(), at);
                }
                vec![]
            }
            Observed::Granted { grantee, patient } => {
                self.state.relationships.entry(*grantee).or_default().insert(*patient, at);
                vec![]
            }
            Observed::AccountChanged { user, by, change } => self.account_changed(at, evidence, *user, *by, *change),
            Observed::RaisedAtSource { user, severity } => {
                if let Some(user) = user {
                    let previous = self.state.risk.get(user).copied();
                    self.state.risk.insert(*user, RiskScore::raised(previous, *severity, at, &self.settings.risk));
                }
                vec![]
            }
        };
        findings.into_iter().map(|finding| self.detection(at, evidence, finding)).collect()
    }

    fn detection(&mut self, at: DateTime<Utc>, trigger: Evidence, finding: Finding) -> Raise {
        let Finding { kind, severity, user_id, patient_id, client, mut evidence, summary } = finding;
        if evidence.last() != Some(&trigger) {
            evidence.push(trigger);
        }
        let risk_score = match user_id {
            Some(user) => {
                let score = RiskScore::raised(self.state.risk.get(&user).copied(), severity, at, &self.settings.risk);
                self.state.risk.insert(user, score);
                score.value
            }
            None => 0.0,
        };
        Raise { id: detection_id(kind, &trigger), kind, severity, user_id, patient_id, client, risk_score, evidence, summary }
    }

    /// Whether the rule may fire for `key` now; if so, it stays quiet for `secs`.
    fn may_fire(&mut self, rule: SecurityEventKind, key: impl std::fmt::Display, at: DateTime<Utc>, secs: i64) -> bool {
        let key = format!("{}:{key}", rule.name());
        if self.state.quiet_until.get(&key).is_some_and(|until| at < *until) {
            return false;
        }
        self.state.quiet_until.insert(key, at + Duration::seconds(secs));
        true
    }

    fn is_quiet(&self, rule: SecurityEventKind, key: impl std::fmt::Display, at: DateTime<Utc>) -> bool {
        self.state.quiet_until.get(&format!("{}:{key}", rule.name())).is_some_and(|until| at < *until)
    }

    fn sign_in(
        &mut self,
        at: DateTime<Utc>,
        evidence: Evidence,
        user: Option<UserId>,
        account: Sha256Digest,
        client: Option<IpAddr>,
        outcome: SignInOutcome,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let (brute, spray) = (self.settings.brute_force, self.settings.password_spraying);
        if outcome == SignInOutcome::Succeeded {
            // A success from an address flagged for spraying: the stuffing worked.
            if spray.enabled
                && let Some(client) = client
                && self.is_quiet(SecurityEventKind::PasswordSpraying, client, at)
                && let Some(user) = user
            {
                let tried = self.state.failures_by_client.get(&client).map(Window::evidence).unwrap_or_default();
                findings.push(Finding {
                    kind: SecurityEventKind::PasswordSpraying,
                    severity: Severity::Critical,
                    user_id: Some(user),
                    patient_id: None,
                    client: Some(client),
                    evidence: tried,
                    summary: format!("a password matched from {client}, which was spraying passwords across accounts"),
                });
            }
            return findings;
        }
        if brute.enabled {
            let window = self.state.failures_by_account.entry(account).or_default();
            window.push(at, (), evidence, brute.window_secs);
            let (failures, tried) = (window.len(), window.evidence());
            if failures >= brute.count && self.may_fire(SecurityEventKind::BruteForce, account, at, brute.window_secs) {
                findings.push(Finding {
                    kind: SecurityEventKind::BruteForce,
                    severity: SecurityEventKind::BruteForce.severity(),
                    user_id: user,
                    patient_id: None,
                    client,
                    evidence: tried,
                    summary: format!("{failures} failed passwords on one account within {} s", brute.window_secs),
                });
            }
        }
        if spray.enabled
            && let Some(client) = client
        {
            let window = self.state.failures_by_client.entry(client).or_default();
            window.push(at, account, evidence, spray.window_secs);
            let (accounts, tried) = (window.distinct_keys(), window.evidence());
            if accounts >= spray.count && self.may_fire(SecurityEventKind::PasswordSpraying, client, at, spray.window_secs) {
                findings.push(Finding {
                    kind: SecurityEventKind::PasswordSpraying,
                    severity: SecurityEventKind::PasswordSpraying.severity(),
                    user_id: None,
                    patient_id: None,
                    client: Some(client),
                    evidence: tried,
                    summary: format!("failed passwords on {accounts} accounts from {client} within {} s", spray.window_secs),
                });
            }
        }
        findings
    }

    fn session_use(&mut self, at: DateTime<Utc>, evidence: Evidence, session: SessionId, user: UserId, client: IpAddr) -> Vec<Finding> {
        let rule = self.settings.distant_sessions;
        if !rule.enabled {
            return vec![];
        }
        let window = self.state.sessions.entry(user).or_default();
        window.push(at, (session, client), evidence, rule.window_secs);
        let here = Network::of(client);
        let elsewhere = window.entries.iter().find(|(_, (_, address), _)| Network::of(*address).distant_from(here)).map(|(.., e)| *e);
        match elsewhere {
            Some(other) if self.may_fire(SecurityEventKind::DistantSessions, user, at, rule.window_secs) => vec![Finding {
                kind: SecurityEventKind::DistantSessions,
                severity: SecurityEventKind::DistantSessions.severity(),
                user_id: Some(user),
                patient_id: None,
                client: Some(client),
                evidence: vec![other, evidence],
                summary: format!("sessions used from distant networks within {} s, the latest from {client}", rule.window_secs),
            }],
            _ => vec![],
        }
    }

    fn denied(&mut self, at: DateTime<Utc>, evidence: Evidence, actor: &Actor) -> Vec<Finding> {
        let rule = self.settings.access_denied_burst;
        if !rule.enabled || actor.role == Role::System {
            return vec![];
        }
        let window = self.state.denials.entry(actor.user_id).or_default();
        window.push(at, (), evidence, rule.window_secs);
        let (denials, refused) = (window.len(), window.evidence());
        if denials >= rule.count && self.may_fire(SecurityEventKind::AccessDeniedBurst, actor.user_id, at, rule.window_secs) {
            return vec![Finding {
                kind: SecurityEventKind::AccessDeniedBurst,
                severity: SecurityEventKind::AccessDeniedBurst.severity(),
                user_id: Some(actor.user_id),
                patient_id: None,
                client: None,
                evidence: refused,
                summary: format!("{denials} refused accesses within {} s", rule.window_secs),
            }];
        }
        vec![]
    }

    fn break_glass(&mut self, at: DateTime<Utc>, evidence: Evidence, reader: &Actor, patient: PatientId) -> Vec<Finding> {
        let rule = self.settings.break_glass;
        if !rule.enabled {
            return vec![];
        }
        let window = self.state.break_glass.entry(reader.user_id).or_default();
        window.push(at, patient, evidence, rule.repeat_window_secs);
        let (uses, broken) = (window.len(), window.evidence());
        let department = self.state.departments.get(&reader.user_id);
        let cared_by = self.care_departments(patient, at);
        let outside = department.is_some_and(|department| !cared_by.is_empty() && !cared_by.contains(&department.as_str()));
        let (severity, summary) = match (uses >= rule.repeat_count, outside) {
            (true, _) => (Severity::High, format!("break-glass used {uses} times within {} s", rule.repeat_window_secs)),
            (false, true) => (Severity::High, "break-glass on a patient cared for only by other departments".to_owned()),
            (false, false) => (Severity::Medium, "break-glass read".to_owned()),
        };
        vec![Finding {
            kind: SecurityEventKind::BreakGlassUse,
            severity,
            user_id: Some(reader.user_id),
            patient_id: Some(patient),
            client: None,
            evidence: broken,
            summary,
        }]
    }

    /// Every role change and MFA reset is reviewed. A move into a role that
    /// administers or audits, and an MFA reset (the way into an account whose
    /// holder was talked out of it), are medium; other role changes low.
    fn account_changed(&mut self, at: DateTime<Utc>, evidence: Evidence, user: UserId, by: UserId, change: AccountChange) -> Vec<Finding> {
        if !self.settings.account_changes.enabled {
            return vec![];
        }
        if change == AccountChange::MfaReset {
            self.state.mfa_resets.insert(user, (at, evidence));
        }
        let (severity, summary) = match change {
            AccountChange::Role { from, to } => {
                let severity = if matches!(to, Role::Admin | Role::Auditor) { Severity::Medium } else { Severity::Low };
                (severity, format!("role changed from {} to {} by administrator {by}", from.name(), to.name()))
            }
            AccountChange::MfaReset => (Severity::Medium, format!("MFA enrolment reset by administrator {by}")),
        };
        let kind = SecurityEventKind::AccountSecurityChange;
        vec![Finding { kind, severity, user_id: Some(user), patient_id: None, client: None, evidence: Vec::new(), summary }]
    }

    /// A session from a network the account had not used, within the takeover
    /// window after its MFA reset: high, once per reset. Every session's network
    /// is remembered for the account either way.
    fn takeover_after_reset(&mut self, at: DateTime<Utc>, evidence: Evidence, user: UserId, client: IpAddr) -> Vec<Finding> {
        let rule = self.settings.account_changes;
        if !rule.enabled {
            return vec![];
        }
        let network = Network::of(client);
        let known = self.state.known_networks.entry(user).or_default();
        let seen_before = known.iter().any(|(n, _)| *n == network);
        known.retain(|(n, _)| *n != network);
        known.push((network, at));
        if known.len() > MAX_KNOWN_NETWORKS {
            known.remove(0);
        }
        let reset =
            self.state.mfa_resets.get(&user).copied().filter(|(when, _)| at - *when <= Duration::seconds(rule.takeover_window_secs));
        match reset {
            Some((when, reset_evidence)) if !seen_before && network != Network::Internal => {
                self.state.mfa_resets.remove(&user);
                let hours = (at - when).num_minutes() as f64 / 60.0;
                vec![Finding {
                    kind: SecurityEventKind::AccountSecurityChange,
                    severity: Severity::High,
                    user_id: Some(user),
                    patient_id: None,
                    client: Some(client),
                    evidence: vec![reset_evidence, evidence],
                    summary: format!(
                        "a session from {client}, a network this account had not used in {} days, {hours:.1} h after its MFA reset",
                        rule.known_network_days
                    ),
                }]
            }
            _ => vec![],
        }
    }

    /// The departments with an encounter with `patient` within the care window.
    fn care_departments(&self, patient: PatientId, at: DateTime<Utc>) -> Vec<&str> {
        let since = at - Duration::days(self.settings.care_relationship.window_days);
        self.state
            .care_departments
            .get(&patient)
            .map(|departments| departments.iter().filter(|(_, last)| **last >= since).map(|(name, _)| name.as_str()).collect())
            .unwrap_or_default()
    }

    fn read(
        &mut self,
        at: DateTime<Utc>,
        evidence: Evidence,
        reader: &Actor,
        patient: PatientId,
        resource: &Resource,
        basis: &Basis,
    ) -> Vec<Finding> {
        if !matches!(reader.role, Role::Physician | Role::Nurse) {
            return vec![];
        }
        let mut findings = Vec::new();
        findings.extend(self.off_hours(at, evidence, reader.user_id));
        findings.extend(self.patient_volume(at, evidence, reader.user_id, patient));
        if matches!(resource, Resource::Attachment { .. }) {
            findings.extend(self.bulk_download(at, evidence, reader.user_id));
        }
        if matches!(basis, Basis::Grant { .. } | Basis::Role) {
            findings.extend(self.care_relationship(at, evidence, reader.user_id, patient));
        }
        findings
    }

    fn off_hours(&mut self, at: DateTime<Utc>, evidence: Evidence, user: UserId) -> Option<Finding> {
        let rule = self.settings.off_hours;
        if !rule.enabled {
            return None;
        }
        let hour = at.hour() as usize;
        let day = at.timestamp().div_euclid(86_400);
        let profile = self.state.hours.entry(user).or_default();
        let near = profile.hours[(hour + 23) % 24] + profile.hours[hour] + profile.hours[(hour + 1) % 24];
        let experienced = profile.total >= rule.min_reads && profile.days >= rule.min_days;
        let rare = experienced && f64::from(near) < rule.rare_share * f64::from(profile.total);
        profile.hours[hour] += 1;
        profile.total += 1;
        if profile.last_day != day {
            profile.last_day = day;
            profile.days += 1;
        }
        (rare && self.may_fire(SecurityEventKind::OffHoursAccess, user, at, rule.cooldown_secs)).then(|| Finding {
            kind: SecurityEventKind::OffHoursAccess,
            severity: SecurityEventKind::OffHoursAccess.severity(),
            user_id: Some(user),
            patient_id: None,
            client: None,
            evidence: vec![evidence],
            summary: format!("a read at {hour:02}:00 UTC, an hour this user almost never works"),
        })
    }

    fn patient_volume(&mut self, at: DateTime<Utc>, evidence: Evidence, user: UserId, patient: PatientId) -> Option<Finding> {
        let rule = self.settings.patient_volume;
        if !rule.enabled {
            return None;
        }
        let day = at.timestamp().div_euclid(86_400);
        let bucket = self.state.daily_patients.entry(user).or_default();
        bucket.count(day, Some(patient), evidence, &rule).then(|| Finding {
            kind: SecurityEventKind::UnusualPatientVolume,
            severity: SecurityEventKind::UnusualPatientVolume.severity(),
            user_id: Some(user),
            patient_id: None,
            client: None,
            evidence: bucket.recent.iter().copied().collect(),
            summary: format!(
                "{} distinct patients read today against a usual {:.0} ± {:.0}",
                bucket.distinct.len(),
                bucket.baseline.mean,
                bucket.baseline.variance.sqrt()
            ),
        })
    }

    fn bulk_download(&mut self, at: DateTime<Utc>, evidence: Evidence, user: UserId) -> Option<Finding> {
        let rule = self.settings.bulk_download;
        if !rule.enabled {
            return None;
        }
        let hour = at.timestamp().div_euclid(3600);
        let bucket = self.state.hourly_downloads.entry(user).or_default();
        bucket.count(hour, None, evidence, &rule).then(|| Finding {
            kind: SecurityEventKind::BulkDownload,
            severity: SecurityEventKind::BulkDownload.severity(),
            user_id: Some(user),
            patient_id: None,
            client: None,
            evidence: bucket.recent.iter().copied().collect(),
            summary: format!(
                "{} attachments downloaded this hour against a usual {:.0} ± {:.0}",
                bucket.count,
                bucket.baseline.mean,
                bucket.baseline.variance.sqrt()
            ),
        })
    }

    fn care_relationship(&mut self, at: DateTime<Utc>, evidence: Evidence, user: UserId, patient: PatientId) -> Option<Finding> {
        let rule = self.settings.care_relationship;
        if !rule.enabled {
            return None;
        }
        let since = at - Duration::days(rule.window_days);
        let own = self.state.relationships.get(&user).and_then(|patients| patients.get(&patient)).is_some_and(|last| *last >= since);
        let department = self.state.departments.get(&user).map(String::as_str);
        let team = department.is_some_and(|department| self.care_departments(patient, at).contains(&department));
        (!own && !team && self.may_fire(SecurityEventKind::NoCareRelationship, format!("{user}:{patient}"), at, 86_400)).then(|| Finding {
            kind: SecurityEventKind::NoCareRelationship,
            severity: SecurityEventKind::NoCareRelationship.severity(),
            user_id: Some(user),
            patient_id: Some(patient),
            client: None,
            evidence: vec![evidence],
            summary: format!("a read with no encounter or grant by the reader or their department in {} days", rule.window_days),
        })
    }

    /// Drops what no rule can use any more, once an hour of event time.
    fn prune(&mut self, at: DateTime<Utc>) {
        let hour = at.timestamp().div_euclid(3600);
        if hour <= self.state.pruned_hour {
            return;
        }
        self.state.pruned_hour = hour;
        let s = &self.settings;
        let state = &mut self.state;
        prune_windows(&mut state.failures_by_account, at, s.brute_force.window_secs);
        prune_windows(&mut state.failures_by_client, at, s.password_spraying.window_secs);
        prune_windows(&mut state.denials, at, s.access_denied_burst.window_secs);
        prune_windows(&mut state.break_glass, at, s.break_glass.repeat_window_secs);
        prune_windows(&mut state.sessions, at, s.distant_sessions.window_secs);
        state.quiet_until.retain(|_, until| *until > at);
        let since = at - Duration::days(s.care_relationship.window_days);
        forget_before(&mut state.relationships, since);
        forget_before(&mut state.care_departments, since);
        let known_since = at - Duration::days(s.account_changes.known_network_days);
        state.known_networks.retain(|_, networks| {
            networks.retain(|(_, last)| *last >= known_since);
            !networks.is_empty()
        });
        let resets_since = at - Duration::seconds(s.account_changes.takeover_window_secs);
        state.mfa_resets.retain(|_, (when, _)| *when >= resets_since);
    }
}

/// Forgets every "last seen" older than `since`, and the entries left empty.
fn forget_before<A: Eq + std::hash::Hash, B: Eq + std::hash::Hash>(seen: &mut HashMap<A, HashMap<B, DateTime<Utc>>>, since: DateTime<Utc>) {
    seen.retain(|_, last_seen| {
        last_seen.retain(|_, last| *last >= since);
        !last_seen.is_empty()
    });
}

/// Drops what fell out of each window, and the windows left empty.
fn prune_windows<Key: Eq + std::hash::Hash, K: PartialEq + Clone>(
    windows: &mut HashMap<Key, Window<K>>,
    now: DateTime<Utc>,
    window_secs: i64,
) {
    windows.retain(|_, window| {
        window.prune(now, window_secs);
        window.len() > 0
    });
}

#[cfg(test)]
mod tests;
