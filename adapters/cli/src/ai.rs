//! `emr ai predict`: the diagnosis pipeline from the command line, for operators
//! validating a model on their own images before it serves physicians.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use emr_diagnosis::{Diagnoser, DiagnosisError, Examination};
use emr_domain::diagnosis::ModelCard;
use emr_onnx::OnnxModel;
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum AiAction {
    /// Classify images or DICOM files with a model and print, per input, one JSON
    /// line: the class probabilities and the top class (or inconclusive), or why
    /// the input was refused. Exits non-zero when any input got no prediction.
    Predict(PredictArgs),
}

#[derive(Args)]
pub(crate) struct PredictArgs {
    /// The model artifact (ONNX).
    #[arg(long)]
    model: PathBuf,
    /// Its card (JSON; see deploy/models): hash, labels, input contract.
    #[arg(long)]
    card: PathBuf,
    /// The probability the top class needs to be named (0–1).
    #[arg(long, default_value_t = 0.5)]
    min_confidence: f32,
    /// The frame of multi-frame DICOM inputs (0-based).
    #[arg(long, default_value_t = 0)]
    frame: u32,
    /// Inputs per network run.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    batch: u16,
    /// DICOM, JPEG or PNG files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// Runs the pipeline over every input, writing one JSON line each to `out`.
pub(crate) fn predict(args: &PredictArgs, mut out: impl Write) -> anyhow::Result<()> {
    let card: ModelCard = serde_json::from_slice(&std::fs::read(&args.card).with_context(|| format!("reading {}", args.card.display()))?)
        .with_context(|| format!("{} is not a model card", args.card.display()))?;
    let artifact = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let model = OnnxModel::for_card(&card, &artifact).with_context(|| format!("loading {}", args.model.display()))?;
    drop(artifact);
    let diagnoser = Diagnoser::new(card, model, args.min_confidence)?;

    let mut failed = 0;
    for inputs in args.inputs.chunks(usize::from(args.batch)) {
        let examined: Vec<Result<Examination, String>> = inputs
            .iter()
            .map(|input| std::fs::read(input).map_err(|e| e.to_string()).and_then(|bytes| examine(&diagnoser, &bytes, args.frame)))
            .collect();
        let (ready, answers): (Vec<Examination>, Vec<usize>) =
            examined.iter().enumerate().filter_map(|(i, e)| e.as_ref().ok().map(|e| (e.clone(), i))).unzip();
        let mut predicted = diagnoser.predict(ready).map_err(|e| e.to_string());
        // Answers in input order: an input's line is its prediction, its own
        // refusal, or the batch's failure.
        for (i, (input, examination)) in inputs.iter().zip(examined).enumerate() {
            let line = match (examination, &mut predicted) {
                (Err(error), _) => json!({ "input": input, "error": error }),
                (Ok(_), Ok(predictions)) => {
                    let at = answers.iter().position(|&a| a == i).unwrap_or_default();
                    json!({ "input": input, "prediction": predictions[at] })
                }
                (Ok(_), Err(error)) => json!({ "input": input, "error": error }),
            };
            failed += usize::from(line.get("error").is_some());
            writeln!(out, "{line}")?;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} inputs got no prediction", args.inputs.len());
    Ok(())
}

fn examine(diagnoser: &Diagnoser<OnnxModel>, bytes: &[u8], frame: u32) -> Result<Examination, String> {
    diagnoser.examine(bytes, frame).map_err(|e: DiagnosisError| e.to_string())
}
