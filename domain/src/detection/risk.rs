//! A user's risk score: detections add weight, time takes it away.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::settings::RiskSettings;
use crate::security::Severity;

/// The highest score.
const CEILING: f64 = 100.0;

/// A score as of an instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskScore {
    /// The score at `as_of`.
    pub value: f64,
    /// When it was last raised.
    pub as_of: DateTime<Utc>,
}

impl RiskScore {
    /// The score decayed to `at` (never grows with time; an earlier `at` reads as `as_of`).
    pub fn at(&self, at: DateTime<Utc>, settings: &RiskSettings) -> f64 {
        let hours = (at - self.as_of).num_milliseconds().max(0) as f64 / 3_600_000.0;
        self.value * 0.5_f64.powf(hours / settings.half_life_hours)
    }

    /// The score after a detection of `severity` at `at`.
    pub fn raised(previous: Option<RiskScore>, severity: Severity, at: DateTime<Utc>, settings: &RiskSettings) -> RiskScore {
        let decayed = previous.map(|score| score.at(at, settings)).unwrap_or_default();
        let weight = settings.weights[Severity::ALL.iter().position(|s| *s == severity).unwrap_or_default()];
        RiskScore { value: (decayed + weight).min(CEILING), as_of: at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::DetectionSettings;

    #[test]
    fn a_score_halves_every_half_life_and_never_passes_the_ceiling() {
        let settings = DetectionSettings::default().risk;
        let start = DateTime::<Utc>::UNIX_EPOCH;
        let score = RiskScore::raised(None, Severity::High, start, &settings);
        assert_eq!(score.value, 40.0);
        let day_later = start + chrono::Duration::hours(24);
        assert!((score.at(day_later, &settings) - 20.0).abs() < 1e-9);
        let mut capped = score;
        for _ in 0..5 {
            capped = RiskScore::raised(Some(capped), Severity::Critical, start, &settings);
        }
        assert_eq!(capped.value, CEILING);
        assert_eq!(score.at(start - chrono::Duration::hours(1), &settings), 40.0);
    }
}
