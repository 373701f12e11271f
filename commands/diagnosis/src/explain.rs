//! Why the model said what it said: occlusion sensitivity (Zeiler and Fergus,
//! "Visualizing and Understanding Convolutional Networks", 2014). Each cell of
//! a grid over the input is hidden in turn (set to the input's mean) and the
//! network run again; how far the top class's probability falls is that
//! region's importance. It needs only forward passes, so it works for any
//! network behind the [`Classifier`] port, ONNX graphs included.

use emr_domain::diagnosis::{InputContract, Layout};
use serde::{Deserialize, Serialize};

use crate::{Classifier, ClassifierError, Diagnoser, DiagnosisError, Examination};

/// How much hiding each region lowered the top class's probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// The class explained (the model's top class, whether or not it was confident enough).
    pub label: String,
    /// Its probability on the whole input.
    pub baseline: f32,
    /// Cells per side.
    pub grid: usize,
    /// Per cell, row by row from the top left: the baseline minus the
    /// probability with the cell hidden (negative when hiding it helped).
    pub drops: Vec<f32>,
}

impl Sensitivity {
    /// The cell whose hiding lowered the probability most, as (row, column).
    pub fn most_important_cell(&self) -> Option<(usize, usize)> {
        let (index, _) = self.drops.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
        Some((index / self.grid, index % self.grid))
    }
}

impl Sensitivity {
    /// A PNG of the input as the model read it (grey, stretched to the full
    /// range) with each region tinted by its importance.
    pub fn render(&self, examination: &Examination) -> Result<Vec<u8>, DiagnosisError> {
        let contract = &examination.preprocessing.contract;
        let (w, h, channels) = (contract.width as usize, contract.height as usize, contract.channels.count());
        let means: Vec<f32> = (0..w * h)
            .map(|p| {
                (0..channels).map(|c| examination.tensor.get(index(contract, p % w, p / w, c)).copied().unwrap_or(0.0)).sum::<f32>()
                    / channels as f32
            })
            .collect();
        let (low, high) = means.iter().fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let span = if high > low { high - low } else { 1.0 };
        let grey: Vec<u8> = means.iter().map(|v| ((v - low) / span * 255.0).round().clamp(0.0, 255.0) as u8).collect();
        Ok(emr_imaging::heat_map_png(&grey, contract.width, contract.height, &self.drops, self.grid)?)
    }
}

/// Pixel `(x, y)`, channel `c`'s index in one input's tensor.
fn index(contract: &InputContract, x: usize, y: usize, c: usize) -> usize {
    let (w, h, channels) = (contract.width as usize, contract.height as usize, contract.channels.count());
    match contract.layout {
        Layout::Nhwc => (y * w + x) * channels + c,
        Layout::Nchw => (c * h + y) * w + x,
    }
}

/// The input with cell `(row, column)` of a `grid`-square grid set to `fill`.
fn occluded(examination: &Examination, contract: &InputContract, grid: usize, row: usize, column: usize, fill: &[f32]) -> Vec<f32> {
    let (w, h) = (contract.width as usize, contract.height as usize);
    let (x0, x1) = (column * w / grid, (column + 1) * w / grid);
    let (y0, y1) = (row * h / grid, (row + 1) * h / grid);
    let mut tensor = examination.tensor.clone();
    for y in y0..y1 {
        for x in x0..x1 {
            for (c, value) in fill.iter().enumerate() {
                tensor[index(contract, x, y, c)] = *value;
            }
        }
    }
    tensor
}

impl<C: Classifier> Diagnoser<C> {
    /// Occlusion sensitivity of `examination` on a `grid` × `grid` grid (2 to
    /// 16 cells per side), `batch` occluded inputs per network run.
    pub fn occlusion(&self, examination: &Examination, grid: usize, batch: usize) -> Result<Sensitivity, DiagnosisError> {
        let contract = &self.card().contract;
        let grid = grid.clamp(2, 16).min(contract.width.min(contract.height) as usize);
        let batch = batch.max(1);
        let labels = &self.card().labels;
        let baseline_output = self.run(std::slice::from_ref(&examination.tensor))?.pop().unwrap_or_default();
        let (top, baseline) = baseline_output
            .iter()
            .copied()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .ok_or_else(|| ClassifierError("an empty output".to_owned()))?;
        let label = labels.get(top).cloned().ok_or_else(|| ClassifierError(format!("output {top} has no label")))?;
        let channels = contract.channels.count();
        let pixels = (contract.width * contract.height) as usize;
        let fill: Vec<f32> = (0..channels)
            .map(|c| {
                let sum: f32 = (0..pixels)
                    .map(|p| examination.tensor[index(contract, p % contract.width as usize, p / contract.width as usize, c)])
                    .sum();
                sum / pixels as f32
            })
            .collect();
        let cells: Vec<(usize, usize)> = (0..grid).flat_map(|row| (0..grid).map(move |column| (row, column))).collect();
        let mut drops = Vec::with_capacity(cells.len());
        for chunk in cells.chunks(batch) {
            let inputs: Vec<Vec<f32>> =
                chunk.iter().map(|&(row, column)| occluded(examination, contract, grid, row, column, &fill)).collect();
            for output in self.run(&inputs)? {
                drops.push(baseline - output.get(top).copied().unwrap_or(0.0));
            }
        }
        Ok(Sensitivity { label, baseline, grid, drops })
    }

    /// The network's outputs for `inputs`, one per input.
    fn run(&self, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, DiagnosisError> {
        let batch: Vec<f32> = inputs.iter().flatten().copied().collect();
        let outputs = self.classifier.classify(&batch, self.card().contract.shape(inputs.len()))?;
        if outputs.len() != inputs.len() {
            return Err(ClassifierError(format!("{} outputs for a batch of {}", outputs.len(), inputs.len())).into());
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use emr_domain::diagnosis::{Channels, Normalisation};

    use super::*;

    /// A "network" that sees only the top-left quarter: its first class's
    /// probability is that quarter's mean brightness.
    struct TopLeftDetector(InputContract);

    impl Classifier for TopLeftDetector {
        fn classify(&self, batch: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ClassifierError> {
            let per = self.0.values_per_input();
            Ok(batch
                .chunks(per)
                .take(shape[0])
                .map(|input| {
                    let (w, h) = (self.0.width as usize, self.0.height as usize);
                    let quarter: Vec<f32> =
                        (0..h / 2).flat_map(|y| (0..w / 2).map(move |x| (x, y))).map(|(x, y)| input[index(&self.0, x, y, 0)]).collect();
                    let p = quarter.iter().sum::<f32>() / quarter.len() as f32;
                    vec![p, 1.0 - p]
                })
                .collect())
        }
    }

    fn contract(layout: Layout) -> InputContract {
        InputContract {
            modalities: vec![],
            body_parts: vec![],
            width: 8,
            height: 8,
            channels: Channels::Rgb,
            layout,
            normalisation: Normalisation::UnitRange,
        }
    }

    #[test]
    fn hiding_the_region_the_network_reads_is_what_lowers_its_answer() {
        for layout in [Layout::Nhwc, Layout::Nchw] {
            let contract = contract(layout);
            let mut card = emr_domain::fixtures::model_card();
            card.labels = vec!["bright".into(), "dark".into()];
            card.contract = contract.clone();
            let diagnoser = Diagnoser::new(card, TopLeftDetector(contract.clone()), 0.5).unwrap();
            let mut tensor = vec![0.0; contract.values_per_input()];
            for y in 0..4 {
                for x in 0..4 {
                    for c in 0..3 {
                        tensor[index(&contract, x, y, c)] = 1.0;
                    }
                }
            }
            let examination =
                Examination { input_sha256: emr_domain::values::Sha256Digest::of(b"x"), preprocessing: preprocessing(&contract), tensor };
            let map = diagnoser.occlusion(&examination, 2, 3).unwrap();
            assert_eq!((map.label.as_str(), map.baseline), ("bright", 1.0));
            assert_eq!(map.drops.len(), 4);
            assert_eq!(map.most_important_cell(), Some((0, 0)), "{layout:?}: {:?}", map.drops);
            assert!(map.drops[1..].iter().all(|d| d.abs() < 1e-6), "the other cells do not matter: {:?}", map.drops);
            let png = map.render(&examination).unwrap();
            assert_eq!(&png[1..4], b"PNG");
        }
    }

    fn preprocessing(contract: &InputContract) -> crate::Preprocessing {
        crate::Preprocessing {
            source: emr_imaging::SourceFormat::Png,
            voi: emr_imaging::Voi::None,
            decoded_size: (8, 8),
            resize_filter: emr_imaging::RESIZE_FILTER.to_owned(),
            contract: contract.clone(),
        }
    }
}
