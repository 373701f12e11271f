//! How good a binary classifier is: mean cross-entropy, accuracy at 0.5, and the area
//! under the ROC curve.

use emr_domain::federated::ModelMetrics;

/// Mean binary cross-entropy of probabilities `p` against labels `y` (clamped away from 0 and 1).
pub fn cross_entropy(p: &[f64], y: &[f64]) -> f64 {
    let eps = 1e-15;
    let total: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(eps, 1.0 - eps);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum();
    total / p.len().max(1) as f64
}

/// Share of rows whose probability falls on the side of 0.5 their label is on.
pub fn accuracy(p: &[f64], y: &[f64]) -> f64 {
    let right = p.iter().zip(y).filter(|(p, y)| (**p >= 0.5) == (**y == 1.0)).count();
    right as f64 / p.len().max(1) as f64
}

/// The area under the ROC curve: the chance that a random positive scores above a
/// random negative, ties counting half (Mann–Whitney U over average ranks).
pub fn auc(p: &[f64], y: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut ranks = vec![0.0; p.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && p[order[end + 1]] == p[order[start]] {
            end += 1;
        }
        let average = (start + end) as f64 / 2.0 + 1.0;
        order[start..=end].iter().for_each(|&i| ranks[i] = average);
        start = end + 1;
    }
    let positives = y.iter().filter(|&&y| y == 1.0).count() as f64;
    let negatives = y.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = ranks.iter().zip(y).filter(|(_, y)| **y == 1.0).map(|(r, _)| r).sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// All three figures.
pub fn evaluate(p: &[f64], y: &[f64]) -> ModelMetrics {
    ModelMetrics { loss: cross_entropy(p, y), accuracy: accuracy(p, y), auc: auc(p, y) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_as_half() {
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[0.0, 0.0, 1.0, 1.0]), 0.75);
        assert_eq!(auc(&[0.5, 0.5], &[0.0, 1.0]), 0.5);
        assert_eq!(auc(&[0.2, 0.9], &[0.0, 1.0]), 1.0);
    }

    #[test]
    fn accuracy_and_loss_reward_confident_right_answers() {
        assert_eq!(accuracy(&[0.9, 0.2, 0.6], &[1.0, 0.0, 0.0]), 2.0 / 3.0);
        assert!(cross_entropy(&[0.99], &[1.0]) < cross_entropy(&[0.6], &[1.0]));
        assert!(cross_entropy(&[0.0], &[1.0]).is_finite());
    }
}
