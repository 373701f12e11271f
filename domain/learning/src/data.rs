//! Tabular data a hospital keeps: rows of features with a binary label, parsed from
//! CSV. Nothing here leaves the hospital; only sums (for standardisation) and model
//! parameters do.

/// The Breast Cancer Wisconsin (Diagnostic) data set as scikit-learn ships it
/// (`data/README.md` gives its licence and citation).
pub const BREAST_CANCER_CSV: &str = include_str!("../data/breast_cancer.csv");

/// Rows of features with a 0/1 label.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Feature names, in column order.
    pub features: Vec<String>,
    /// One feature vector per row.
    pub rows: Vec<Vec<f64>>,
    /// One label per row, 0.0 or 1.0.
    pub labels: Vec<f64>,
}

/// Why a data file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// No header line.
    #[error("the file is empty")]
    Empty,
    /// A line with the wrong number of fields or a value that is not a number.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Dataset {
    /// Reads CSV with a header of column names, the last of which is the label.
    /// scikit-learn's own header (`rows,features,class names…`, all but the
    /// first two fields not numbers) is recognised, and its features are named
    /// `feature_0` … `feature_29`.
    pub fn from_csv(text: &str) -> Result<Self, DataError> {
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or(DataError::Empty)?;
        let header: Vec<&str> = header.split(',').map(str::trim).collect();
        let scikit_learn = header.len() >= 2 && header[0].parse::<usize>().is_ok() && header[1].parse::<usize>().is_ok();
        let features: Vec<String> = if scikit_learn {
            let count = header[1].parse::<usize>().unwrap_or(0);
            (0..count).map(|i| format!("feature_{i}")).collect()
        } else {
            header[..header.len().saturating_sub(1)].iter().map(|s| (*s).to_owned()).collect()
        };
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (index, line) in lines {
            let fail = |reason: String| DataError::Line { line: index + 1, reason };
            let values = line
                .split(',')
                .map(|field| field.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| fail("every field must be a finite number".into()))?;
            if values.len() != features.len() + 1 {
                return Err(fail(format!("{} fields; expected {}", values.len(), features.len() + 1)));
            }
            let label = values[features.len()];
            if label != 0.0 && label != 1.0 {
                return Err(fail(format!("the label must be 0 or 1, got {label}")));
            }
            rows.push(values[..features.len()].to_vec());
            labels.push(label);
        }
        if rows.is_empty() {
            return Err(DataError::Line { line: 2, reason: "no data rows".into() });
        }
        Ok(Self { features, rows, labels })
    }

    /// The reference data set.
    pub fn breast_cancer() -> Self {
        // The file is part of the crate and parsed by a test; it cannot fail here.
        Self::from_csv(BREAST_CANCER_CSV).unwrap_or_else(|_| Self { features: Vec::new(), rows: Vec::new(), labels: Vec::new() })
    }

    /// Rows in the order of `indices`.
    pub fn select(&self, indices: &[usize]) -> Self {
        Self {
            features: self.features.clone(),
            rows: indices.iter().map(|&i| self.rows[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The sums a hospital shares for standardisation: row count, Σx and Σx² per feature.
    pub fn moments(&self) -> Moments {
        let width = self.features.len();
        let mut moments = Moments { count: 0.0, sum: vec![0.0; width], sum_of_squares: vec![0.0; width] };
        for row in &self.rows {
            moments.count += 1.0;
            for (j, x) in row.iter().enumerate() {
                moments.sum[j] += x;
                moments.sum_of_squares[j] += x * x;
            }
        }
        moments
    }

    /// Standardises every feature in place: (x − mean) / std.
    pub fn standardize(&mut self, scaler: &Scaler) {
        for row in &mut self.rows {
            for (j, x) in row.iter_mut().enumerate() {
                *x = (*x - scaler.mean[j]) / scaler.std[j];
            }
        }
    }
}

/// Row count and per-feature Σx and Σx²: what standardisation needs, added up across
/// hospitals (under secure aggregation, only the total is ever seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// Rows.
    pub count: f64,
    /// Σx per feature.
    pub sum: Vec<f64>,
    /// Σx² per feature.
    pub sum_of_squares: Vec<f64>,
}

impl Moments {
    /// The moments as one vector (count, Σx…, Σx²…), the form they are summed in.
    pub fn to_vector(&self) -> Vec<f64> {
        std::iter::once(self.count).chain(self.sum.iter().copied()).chain(self.sum_of_squares.iter().copied()).collect()
    }

    /// The inverse of [`Self::to_vector`].
    pub fn from_vector(vector: &[f64]) -> Self {
        let width = vector.len().saturating_sub(1) / 2;
        Self { count: vector[0], sum: vector[1..=width].to_vec(), sum_of_squares: vector[width + 1..].to_vec() }
    }
}

/// Mean and population standard deviation (ddof 0) per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    /// Mean per feature.
    pub mean: Vec<f64>,
    /// Standard deviation per feature (1 where a feature is constant).
    pub std: Vec<f64>,
}

impl Scaler {
    /// The scaler the summed moments give.
    pub fn from_moments(total: &Moments) -> Self {
        let n = total.count;
        let mean: Vec<f64> = total.sum.iter().map(|s| s / n).collect();
        let std = total
            .sum_of_squares
            .iter()
            .zip(&mean)
            .map(|(sq, m)| {
                let variance = (sq / n - m * m).max(0.0);
                if variance > 0.0 { variance.sqrt() } else { 1.0 }
            })
            .collect();
        Self { mean, std }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_data_set_has_569_rows_of_30_features_and_212_malignant() {
        let data = Dataset::from_csv(BREAST_CANCER_CSV).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((data.len(), data.features.len()), (569, 30));
        assert_eq!(data.labels.iter().filter(|&&y| y == 0.0).count(), 212);
    }

    #[test]
    fn summed_moments_standardise_like_the_pooled_data() {
        let data = Dataset::breast_cancer();
        let (a, b) = (data.select(&(0..100).collect::<Vec<_>>()), data.select(&(100..569).collect::<Vec<_>>()));
        let summed: Vec<f64> = a.moments().to_vector().iter().zip(b.moments().to_vector()).map(|(x, y)| x + y).collect();
        let scaler = Scaler::from_moments(&Moments::from_vector(&summed));
        let mut pooled = data.clone();
        pooled.standardize(&scaler);
        let column: Vec<f64> = pooled.rows.iter().map(|r| r[3]).collect();
        let mean = column.iter().sum::<f64>() / 569.0;
        let variance = column.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 569.0;
        assert!(mean.abs() < 1e-12 && (variance - 1.0).abs() < 1e-9, "{mean} {variance}");
    }

    #[test]
    fn malformed_files_name_the_line_and_the_fault() {
        assert_eq!(Dataset::from_csv(""), Err(DataError::Empty));
        assert!(matches!(Dataset::from_csv("a,b,label\n1,2,0\n1,x,1\n"), Err(DataError::Line { line: 3, .. })));
        assert!(matches!(Dataset::from_csv("a,b,label\n1,2\n"), Err(DataError::Line { line: 2, .. })));
        assert!(matches!(Dataset::from_csv("a,label\n1,2\n"), Err(DataError::Line { line: 2, .. })));
        assert!(matches!(Dataset::from_csv("a,label\n1,NaN\n"), Err(DataError::Line { line: 2, .. })));
        let named = Dataset::from_csv("age,bp,label\n40,120,1\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(named.features, vec!["age".to_owned(), "bp".to_owned()]);
    }
}
