//! The rules' settings. Every rule can be switched off and tuned; the defaults
//! are the ones the detection quality report (docs/detection-quality.md) measured.

use serde::{Deserialize, Serialize};

/// A rule that fires when `count` events fall in a sliding `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Events (or distinct accounts) in the window that fire it.
    pub count: usize,
    /// The window.
    pub window_secs: i64,
}

/// A rule that fires when a user's count in a bucket (a day, an hour) exceeds
/// their own baseline: an exponentially weighted mean and variance of earlier
/// active buckets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Active buckets of history before the rule judges a user.
    pub min_buckets: u32,
    /// Standard deviations above the mean that fire it.
    pub z_score: f64,
    /// Never fire at or below this count, whatever the baseline.
    pub floor: u32,
    /// EWMA weight of the newest bucket (0–1).
    pub alpha: f64,
}

/// Break-glass: every use is raised; repeated use, or use outside the patient's
/// care departments, is raised as high.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Uses by one user in the window that make it high.
    pub repeat_count: usize,
    /// The window.
    pub repeat_window_secs: i64,
}

/// Off-hours: a read in an hour (± one) that holds less than `rare_share` of
/// the user's own reads, once they have a history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffHoursRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Reads of history before the rule judges a user.
    pub min_reads: u32,
    /// Active days of history before the rule judges a user.
    pub min_days: u32,
    /// Share of the user's reads below which an hour is "off".
    pub rare_share: f64,
    /// Fire at most once per user in this many seconds.
    pub cooldown_secs: i64,
}

/// No care relationship: a practitioner reads a patient with whom neither they
/// nor anyone in their department had an encounter, and who granted them
/// nothing, within `window_days`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareRelationshipRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// How long an encounter or a grant counts as a relationship.
    pub window_days: i64,
}

/// Distant sessions: one user's sessions used from two different networks
/// (neither of them the hospital's private ones) within the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistantSessionsRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// The window.
    pub window_secs: i64,
}

/// Account security changes: every role change and MFA reset an administrator
/// makes becomes a security event to review; and a session from a network the
/// account had not used, soon after its MFA reset, is a likely takeover (the
/// reset was talked out of the help desk by someone else).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountChangesRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// How long after an MFA reset a session from a new network is high.
    #[serde(default = "AccountChangesRule::default_takeover_window_secs")]
    pub takeover_window_secs: i64,
    /// How long a network an account used stays known to it.
    #[serde(default = "AccountChangesRule::default_known_network_days")]
    pub known_network_days: i64,
}

impl AccountChangesRule {
    fn default_takeover_window_secs() -> i64 {
        86_400
    }

    fn default_known_network_days() -> i64 {
        30
    }
}

/// Per-user risk scores: each detection adds its severity's weight; the sum
/// halves every `half_life_hours`, and never exceeds 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSettings {
    /// Hours for a score to halve.
    pub half_life_hours: f64,
    /// Weights of low, medium, high and critical detections.
    pub weights: [f64; 4],
}

/// Every rule's settings (`detection.rules` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionSettings {
    /// Brute force: failed passwords on one account (known or not).
    pub brute_force: CountRule,
    /// Password spraying: failed passwords on distinct accounts from one
    /// address; a success from that address while it is flagged is critical
    /// (credential stuffing that worked).
    pub password_spraying: CountRule,
    /// Refused accesses by one user.
    pub access_denied_burst: CountRule,
    /// Break-glass reads.
    pub break_glass: BreakGlassRule,
    /// Reads at the user's unusual hours.
    pub off_hours: OffHoursRule,
    /// Distinct patients read per day against the user's baseline.
    pub patient_volume: BaselineRule,
    /// Attachments downloaded per hour against the user's baseline.
    pub bulk_download: BaselineRule,
    /// Reads without a care relationship.
    pub care_relationship: CareRelationshipRule,
    /// Sessions from distant networks at once.
    pub distant_sessions: DistantSessionsRule,
    /// Role changes and MFA resets by administrators.
    pub account_changes: AccountChangesRule,
    /// Risk scores.
    pub risk: RiskSettings,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        Self {
            brute_force: CountRule { enabled: true, count: 5, window_secs: 600 },
            password_spraying: CountRule { enabled: true, count: 5, window_secs: 600 },
            access_denied_burst: CountRule { enabled: true, count: 5, window_secs: 300 },
            break_glass: BreakGlassRule { enabled: true, repeat_count: 3, repeat_window_secs: 86_400 },
            off_hours: OffHoursRule { enabled: true, min_reads: 200, min_days: 5, rare_share: 0.003, cooldown_secs: 6 * 3600 },
            patient_volume: BaselineRule { enabled: true, min_buckets: 5, z_score: 4.0, floor: 40, alpha: 0.1 },
            bulk_download: BaselineRule { enabled: true, min_buckets: 5, z_score: 4.0, floor: 30, alpha: 0.1 },
            care_relationship: CareRelationshipRule { enabled: true, window_days: 30 },
            distant_sessions: DistantSessionsRule { enabled: true, window_secs: 1800 },
            account_changes: AccountChangesRule {
                enabled: true,
                takeover_window_secs: AccountChangesRule::default_takeover_window_secs(),
                known_network_days: AccountChangesRule::default_known_network_days(),
            },
            risk: RiskSettings { half_life_hours: 24.0, weights: [5.0, 15.0, 40.0, 80.0] },
        }
    }
}

impl DetectionSettings {
    /// What is wrong with these settings, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let counts = [
            ("brute_force", self.brute_force),
            ("password_spraying", self.password_spraying),
            ("access_denied_burst", self.access_denied_burst),
        ];
        for (name, rule) in counts {
            if rule.count == 0 || rule.window_secs <= 0 {
                problems.push(format!("detection.rules.{name}: count and window_secs must be positive"));
            }
        }
        for (name, rule) in [("patient_volume", self.patient_volume), ("bulk_download", self.bulk_download)] {
            if !(rule.alpha > 0.0 && rule.alpha <= 1.0 && rule.z_score.is_finite() && rule.z_score >= 0.0) {
                problems.push(format!("detection.rules.{name}: alpha must be in (0, 1] and z_score non-negative"));
            }
        }
        if self.break_glass.repeat_count == 0 || self.break_glass.repeat_window_secs <= 0 {
            problems.push("detection.rules.break_glass: repeat_count and repeat_window_secs must be positive".into());
        }
        if !(0.0..1.0).contains(&self.off_hours.rare_share) || self.off_hours.cooldown_secs < 0 {
            problems.push("detection.rules.off_hours: rare_share must be in [0, 1) and cooldown_secs non-negative".into());
        }
        if self.care_relationship.window_days <= 0 || self.distant_sessions.window_secs <= 0 {
            problems.push("detection.rules: care_relationship.window_days and distant_sessions.window_secs must be positive".into());
        }
        if self.account_changes.takeover_window_secs <= 0 || self.account_changes.known_network_days <= 0 {
            problems.push("detection.rules.account_changes: takeover_window_secs and known_network_days must be positive".into());
        }
        if self.risk.half_life_hours.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || self.risk.weights.iter().any(|w| !w.is_finite() || *w < 0.0)
        {
            problems.push("detection.rules.risk: half_life_hours must be positive and weights non-negative".into());
        }
        problems
    }
}
