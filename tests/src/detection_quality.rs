//! Scoring detections against a trace's planted attacks: precision and recall
//! per rule, and false positives per 10,000 clean reads.

use std::collections::{BTreeMap, HashMap};

use emr_domain::detection::{DetectionSettings, Detector};
use emr_domain::ids::{EventId, SecurityEventId};
use emr_domain::security::{SecurityEventKind, Severity};

use crate::hospital_trace::Trace;

/// A detection as scored: its id, kind, severity and evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its security event id (derived from rule and trigger: equal in every run).
    pub id: SecurityEventId,
    /// The rule.
    pub kind: SecurityEventKind,
    /// How urgent.
    pub severity: Severity,
    /// The events it rests on.
    pub evidence: Vec<EventId>,
}

/// One rule's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleQuality {
    /// Attacks of this kind planted.
    pub attacks: usize,
    /// Of which caught (a detection of the kind, at least as severe, resting on
    /// one of the attack's events).
    pub caught: usize,
    /// Detections of this kind.
    pub detections: usize,
    /// Of which rest on no planted attack.
    pub false_positives: usize,
    /// Reviews of clean work: break-glass emergencies, account changes (raised by design, not errors).
    pub reviews: usize,
}

impl RuleQuality {
    /// Caught / planted (1 when nothing was planted).
    pub fn recall(&self) -> f64 {
        if self.attacks == 0 { 1.0 } else { self.caught as f64 / self.attacks as f64 }
    }

    /// True detections / detections (1 when nothing was detected).
    pub fn precision(&self) -> f64 {
        let judged = self.detections - self.reviews;
        if judged == 0 { 1.0 } else { (judged - self.false_positives) as f64 / judged as f64 }
    }
}

/// Every rule's figures over one trace.
#[derive(Debug, Clone, Default)]
pub struct Quality {
    /// By rule.
    pub rules: BTreeMap<SecurityEventKind, RuleQuality>,
    /// PHI reads outside any attack.
    pub clean_reads: usize,
    /// Events in the trace.
    pub events: usize,
}

impl Quality {
    /// False positives (reviews aside) per 10,000 clean reads.
    pub fn false_positives_per_10k_reads(&self) -> f64 {
        let false_positives: usize = self.rules.values().map(|rule| rule.false_positives).sum();
        false_positives as f64 * 10_000.0 / self.clean_reads.max(1) as f64
    }

    /// The lowest recall of any rule with planted attacks.
    pub fn worst_recall(&self) -> f64 {
        self.rules.values().filter(|rule| rule.attacks > 0).map(RuleQuality::recall).fold(1.0, f64::min)
    }
}

/// Scores `found` against the attacks planted in `trace`.
pub fn score(trace: &Trace, found: &[Found]) -> Quality {
    let attack_of: HashMap<EventId, usize> = trace.events.iter().filter_map(|e| e.attack.map(|a| (e.event_id, a))).collect();
    let mut quality = Quality { clean_reads: trace.clean_reads(), events: trace.events.len(), ..Quality::default() };
    for kind in SecurityEventKind::ALL.into_iter().filter(|kind| !kind.raised_at_source()) {
        quality.rules.insert(kind, RuleQuality::default());
    }
    let mut caught = vec![false; trace.attacks.len()];
    for detection in found {
        let rule = quality.rules.entry(detection.kind).or_default();
        rule.detections += 1;
        let attacks: Vec<usize> = detection.evidence.iter().filter_map(|id| attack_of.get(id).copied()).collect();
        if attacks.is_empty() {
            if is_review(detection) {
                rule.reviews += 1;
            } else {
                rule.false_positives += 1;
            }
        }
        for attack in attacks {
            let planted = &trace.attacks[attack];
            if planted.kind == detection.kind && detection.severity >= planted.severity {
                caught[attack] = true;
            }
        }
    }
    for (attack, planted) in trace.attacks.iter().enumerate() {
        let rule = quality.rules.entry(planted.kind).or_default();
        rule.attacks += 1;
        rule.caught += usize::from(caught[attack]);
    }
    quality
}

/// A detection raised by design on clean work, for a person to look at: every
/// break-glass (medium) and every role change or MFA reset (medium or low). Only
/// the high ones claim an attack.
fn is_review(detection: &Found) -> bool {
    match detection.kind {
        SecurityEventKind::BreakGlassUse | SecurityEventKind::AccountSecurityChange => detection.severity < Severity::High,
        _ => false,
    }
}

/// Runs the pure detector over `trace` (as the worker would see it in the log).
pub fn detect(trace: &Trace, settings: DetectionSettings) -> Vec<Found> {
    let mut detector = Detector::new(settings);
    trace
        .facts(1)
        .iter()
        .filter_map(emr_detection::observe::observation)
        .flat_map(|observation| detector.observe(&observation))
        .map(|d| Found { id: d.id, kind: d.kind, severity: d.severity, evidence: d.evidence.iter().map(|e| e.event_id).collect() })
        .collect()
}

/// The quality table in Markdown.
pub fn markdown(quality: &Quality) -> String {
    let mut table = String::from(
        "| rule | attacks planted | caught | recall | detections | false positives | precision |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (kind, rule) in &quality.rules {
        let reviews = if rule.reviews > 0 { format!(" (+{} reviews)", rule.reviews) } else { String::new() };
        table.push_str(&format!(
            "| {} | {} | {} | {:.2} | {}{} | {} | {:.2} |\n",
            kind.name(),
            rule.attacks,
            rule.caught,
            rule.recall(),
            rule.detections - rule.reviews,
            reviews,
            rule.false_positives,
            rule.precision()
        ));
    }
    table
}
