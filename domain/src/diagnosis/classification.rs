//! A network's output turned into what a physician sees: every class with its
//! probability, and a top class only when the model is confident enough —
//! otherwise "inconclusive". Always marked as requiring review.

use serde::{Deserialize, Serialize};

/// Stated on every suggestion, wherever it is shown.
pub const REVIEW_NOTICE: &str = "AI-assisted, requires physician review";

/// How far a probability vector's sum may stray from 1 (float32 softmax).
const SUM_TOLERANCE: f32 = 1e-3;

/// One class and the model's probability for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassProbability {
    /// The class label.
    pub label: String,
    /// Probability in 0–1.
    pub probability: f32,
}

/// A network output that is not a probability distribution over the labels.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidOutput {
    /// The output has a different number of values than the model has labels.
    #[error("the model has {labels} labels but produced {values} values")]
    Arity {
        /// Labels on the card.
        labels: usize,
        /// Values produced.
        values: usize,
    },
    /// A value is not a probability, or they do not sum to 1.
    #[error("the model's output is not a probability distribution (sum {sum})")]
    NotADistribution {
        /// The sum of the values.
        sum: f32,
    },
}

/// The model's answer for one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Every class, in the model's label order.
    pub probabilities: Vec<ClassProbability>,
    /// The most probable class, or `None` (inconclusive) when its probability
    /// is below the required confidence.
    pub top: Option<String>,
    /// The highest probability.
    pub confidence: f32,
    /// [`REVIEW_NOTICE`].
    pub notice: String,
}

impl Classification {
    /// Reads a softmax output against `labels`. `min_confidence` (0–1) is the
    /// probability the top class needs to be named.
    pub fn from_output(labels: &[String], output: &[f32], min_confidence: f32) -> Result<Self, InvalidOutput> {
        if labels.len() != output.len() {
            return Err(InvalidOutput::Arity { labels: labels.len(), values: output.len() });
        }
        let sum: f32 = output.iter().sum();
        let in_range = output.iter().all(|p| p.is_finite() && (-SUM_TOLERANCE..=1.0 + SUM_TOLERANCE).contains(p));
        if !in_range || !sum.is_finite() || (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(InvalidOutput::NotADistribution { sum });
        }
        let (best, confidence) =
            output.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, p)| if p > best.1 { (i, p) } else { best });
        let probabilities =
            labels.iter().zip(output).map(|(label, &probability)| ClassProbability { label: label.clone(), probability }).collect();
        Ok(Self {
            probabilities,
            top: (confidence >= min_confidence).then(|| labels[best].clone()),
            confidence,
            notice: REVIEW_NOTICE.to_owned(),
        })
    }

    /// The probability given to `label`, if the model has that class.
    pub fn probability_of(&self, label: &str) -> Option<f32> {
        self.probabilities.iter().find(|c| c.label == label).map(|c| c.probability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["glioma", "meningioma", "notumor", "pituitary"].map(String::from).to_vec()
    }

    #[test]
    fn a_confident_output_names_its_top_class_and_keeps_every_probability() {
        let c = Classification::from_output(&labels(), &[0.02, 0.9, 0.05, 0.03], 0.6).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.top.as_deref(), Some("meningioma"));
        assert_eq!(c.confidence, 0.9);
        assert_eq!(c.probability_of("pituitary"), Some(0.03));
        assert_eq!(c.notice, REVIEW_NOTICE);
    }

    #[test]
    fn below_the_required_confidence_the_answer_is_inconclusive() {
        let c = Classification::from_output(&labels(), &[0.4, 0.35, 0.2, 0.05], 0.6).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.top, None);
        assert_eq!(c.probabilities.len(), 4);
    }

    #[test]
    fn outputs_that_are_not_distributions_over_the_labels_are_refused() {
        assert_eq!(Classification::from_output(&labels(), &[0.5, 0.5], 0.5), Err(InvalidOutput::Arity { labels: 4, values: 2 }));
        assert!(matches!(
            Classification::from_output(&labels(), &[3.0, -1.0, 0.0, -1.0], 0.5),
            Err(InvalidOutput::NotADistribution { .. })
        ));
        assert!(matches!(
            Classification::from_output(&labels(), &[f32::NAN, 0.5, 0.25, 0.25], 0.5),
            Err(InvalidOutput::NotADistribution { .. })
        ));
        assert!(matches!(Classification::from_output(&labels(), &[0.1, 0.1, 0.1, 0.1], 0.5), Err(InvalidOutput::NotADistribution { .. })));
    }
}
