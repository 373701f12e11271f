//! Aggregation strategies: how the coordinator combines the hospitals' models into
//! the next global model. Each takes the models as flat parameter vectors (every
//! layer's weights and biases in one order) with their sample counts.
//!
//! They follow Flower's own aggregation functions (`flwr.server.strategy.aggregate`)
//! operation for operation, so the same updates give the same model to 1e-9; the
//! tests compare against outputs `tests/fl/reference.py` took from Flower.

use emr_domain::federated::Strategy;

/// One hospital's model for a round.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientModel {
    /// The parameters, flattened.
    pub parameters: Vec<f64>,
    /// The training examples behind it.
    pub samples: u64,
}

/// Why models could not be aggregated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregationError {
    /// No models at all.
    #[error("no models to aggregate")]
    Empty,
    /// Models of different sizes.
    #[error("model {index} has {got} parameters; the first has {expected}")]
    Shape {
        /// Which model.
        index: usize,
        /// Its size.
        got: usize,
        /// The first model's size.
        expected: usize,
    },
    /// A weighted average over no samples.
    #[error("the models carry no samples to weight by")]
    NoSamples,
    /// More models asked for than given.
    #[error("multi-krum selects {selected} models of {given}")]
    TooFewModels {
        /// Models to select.
        selected: usize,
        /// Models given.
        given: usize,
    },
}

/// Combines `models` by `strategy`.
pub fn aggregate(strategy: &Strategy, models: &[ClientModel]) -> Result<Vec<f64>, AggregationError> {
    check_shapes(models)?;
    match strategy {
        Strategy::FedAvg | Strategy::FedProx { .. } => weighted_average(models.iter()),
        Strategy::Median => Ok(coordinate_wise(models, median)),
        Strategy::TrimmedMean { beta } => Ok(coordinate_wise(models, |column| trimmed_mean(column, *beta))),
        Strategy::Krum { byzantine } => {
            let scores = krum_scores(models, *byzantine as usize);
            let best = (0..scores.len()).fold(0, |best, i| if scores[i] < scores[best] { i } else { best });
            Ok(models[best].parameters.clone())
        }
        Strategy::MultiKrum { byzantine, selected } => {
            let selected = *selected as usize;
            if selected > models.len() {
                return Err(AggregationError::TooFewModels { selected, given: models.len() });
            }
            let chosen = multi_krum_selection(&krum_scores(models, *byzantine as usize), selected);
            weighted_average(chosen.into_iter().map(|i| &models[i]))
        }
    }
}

fn check_shapes(models: &[ClientModel]) -> Result<(), AggregationError> {
    let first = models.first().ok_or(AggregationError::Empty)?;
    let expected = first.parameters.len();
    match models.iter().position(|m| m.parameters.len() != expected) {
        Some(index) => Err(AggregationError::Shape { index, got: models[index].parameters.len(), expected }),
        None => Ok(()),
    }
}

/// Σ nᵢ·wᵢ / Σ nᵢ, multiplying before summing as Flower's `aggregate` does.
fn weighted_average<'a>(models: impl Iterator<Item = &'a ClientModel> + Clone) -> Result<Vec<f64>, AggregationError> {
    let total: u64 = models.clone().map(|m| m.samples).sum();
    if total == 0 {
        return Err(AggregationError::NoSamples);
    }
    let mut sum: Option<Vec<f64>> = None;
    for model in models {
        let weight = model.samples as f64;
        match &mut sum {
            None => sum = Some(model.parameters.iter().map(|p| p * weight).collect()),
            Some(sum) => sum.iter_mut().zip(&model.parameters).for_each(|(s, p)| *s += p * weight),
        }
    }
    let total = total as f64;
    Ok(sum.unwrap_or_default().into_iter().map(|s| s / total).collect())
}

/// Applies `statistic` to each coordinate's column of values.
fn coordinate_wise(models: &[ClientModel], statistic: impl Fn(&mut [f64]) -> f64) -> Vec<f64> {
    let mut column = vec![0.0; models.len()];
    (0..models[0].parameters.len())
        .map(|coordinate| {
            column.iter_mut().zip(models).for_each(|(c, m)| *c = m.parameters[coordinate]);
            statistic(&mut column)
        })
        .collect()
}

fn sort(values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
}

/// numpy's median: the middle value, or the mean of the two middle values.
fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (below, middle, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let middle = *middle;
    if n % 2 == 1 {
        middle
    } else {
        // The largest value below the middle is the other middle one.
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + middle) / 2.0
    }
}

/// scipy's `trim_mean`: cut ⌊β·n⌋ values from each end, average the rest. Two
/// selections put the kept values in the middle (unordered), as numpy's partition does.
fn trimmed_mean(values: &mut [f64], beta: f64) -> f64 {
    let n = values.len();
    let cut = (beta * n as f64) as usize;
    if cut > 0 {
        values.select_nth_unstable_by(cut, f64::total_cmp);
        values[cut..].select_nth_unstable_by(n - 2 * cut - 1, f64::total_cmp);
    }
    let kept = &values[cut..n - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

/// Each model's Krum score: the sum of squared distances to its n − f − 2 nearest others.
fn krum_scores(models: &[ClientModel], byzantine: usize) -> Vec<f64> {
    let n = models.len();
    let nearest = n.saturating_sub(byzantine + 2).max(1);
    // ‖a − b‖ as numpy's norm computes it, then squared, as Flower does; the matrix
    // is symmetric, so each pair is measured once.
    let mut distances = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let a = &models[i].parameters;
            let b = &models[j].parameters;
            let norm = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
            distances[i][j] = norm * norm;
            distances[j][i] = norm * norm;
        }
    }
    distances
        .into_iter()
        .map(|mut row| {
            sort(&mut row);
            // row[0] is the model's distance to itself.
            row.iter().skip(1).take(nearest).sum()
        })
        .collect()
}

/// The `selected` models with the lowest scores, in the order Flower takes them.
fn multi_krum_selection(scores: &[f64], selected: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order.truncate(selected);
    order.reverse();
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(rows: &[(&[f64], u64)]) -> Vec<ClientModel> {
        rows.iter().map(|(p, n)| ClientModel { parameters: p.to_vec(), samples: *n }).collect()
    }

    #[test]
    fn fedavg_weights_each_model_by_its_samples() {
        let got = aggregate(&Strategy::FedAvg, &models(&[(&[1.0, 0.0], 1), (&[4.0, 3.0], 2)]));
        assert_eq!(got, Ok(vec![3.0, 2.0]));
    }

    #[test]
    fn the_median_and_trimmed_mean_ignore_one_wild_model() {
        let set = models(&[(&[1.0], 1), (&[2.0], 1), (&[3.0], 1), (&[1000.0], 1)]);
        assert_eq!(aggregate(&Strategy::Median, &set), Ok(vec![2.5]));
        assert_eq!(aggregate(&Strategy::TrimmedMean { beta: 0.25 }, &set), Ok(vec![2.5]));
        assert_eq!(aggregate(&Strategy::TrimmedMean { beta: 0.0 }, &set), Ok(vec![251.5]));
    }

    #[test]
    fn krum_picks_a_model_from_the_honest_cluster() {
        let set = models(&[(&[1.0, 1.0], 1), (&[1.1, 0.9], 1), (&[0.9, 1.0], 1), (&[1.0, 1.1], 1), (&[50.0, -50.0], 1)]);
        let chosen = aggregate(&Strategy::Krum { byzantine: 1 }, &set).unwrap_or_default();
        assert!(chosen[0] < 2.0 && chosen[1] > 0.0, "{chosen:?}");
        let averaged = aggregate(&Strategy::MultiKrum { byzantine: 1, selected: 3 }, &set).unwrap_or_default();
        assert!(averaged.iter().all(|p| (0.8..1.2).contains(p)), "{averaged:?}");
    }

    #[test]
    fn mismatched_or_missing_models_are_refused() {
        assert_eq!(aggregate(&Strategy::FedAvg, &[]), Err(AggregationError::Empty));
        let uneven = models(&[(&[1.0, 2.0], 1), (&[1.0], 1)]);
        assert_eq!(aggregate(&Strategy::Median, &uneven), Err(AggregationError::Shape { index: 1, got: 1, expected: 2 }));
        assert_eq!(aggregate(&Strategy::FedAvg, &models(&[(&[1.0], 0)])), Err(AggregationError::NoSamples));
        let few = models(&[(&[1.0], 1)]);
        assert_eq!(
            aggregate(&Strategy::MultiKrum { byzantine: 0, selected: 2 }, &few),
            Err(AggregationError::TooFewModels { selected: 2, given: 1 })
        );
    }
}
