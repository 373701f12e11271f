//! `emr ai predict`: the diagnosis pipeline from the command line, for operators
//! validating a model on their own images before it serves physicians; `emr ai
//! install`: a model's artifact put where this deployment's workers load it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use emr_diagnosis::Diagnoser;
use emr_domain::diagnosis::ModelCard;
use emr_onnx::OnnxModel;
use serde_json::json;

#[derive(Subcommand)]
pub(crate) enum AiAction {
    /// Classify images or DICOM files with a model and print, per input, one JSON
    /// line: the class probabilities and the top class (or inconclusive), or why
    /// the input was refused. Exits non-zero when any input got no prediction.
    Predict(PredictArgs),
    /// Install a model's artifact into `diagnosis.models_dir` (as `PUT
    /// /v1/ai/models/{id}/artifact` does): refused unless its bytes hash to the
    /// card and its graph fits the card's input contract. Prints the installed path.
    Install {
        /// The model artifact (ONNX).
        #[arg(long)]
        model: PathBuf,
        /// Its card (JSON).
        #[arg(long)]
        card: PathBuf,
    },
}

fn read_card(path: &std::path::Path) -> anyhow::Result<ModelCard> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a model card", path.display()))
}

/// Checks and installs an artifact into `models_dir`; answers where it went.
pub(crate) fn install(models_dir: &std::path::Path, card: &std::path::Path, model: &std::path::Path) -> anyhow::Result<PathBuf> {
    let card = read_card(card)?;
    let artifact = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    emr_onnx::ModelDirectory::open(models_dir).install_artifact(&card, &artifact).with_context(|| format!("installing {}", model.display()))
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
    let card = read_card(&args.card)?;
    let artifact = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let model = OnnxModel::for_card(&card, &artifact).with_context(|| format!("loading {}", args.model.display()))?;
    drop(artifact);
    let diagnoser = Diagnoser::new(card, model, args.min_confidence)?;

    let mut failed = 0;
    for inputs in args.inputs.chunks(usize::from(args.batch)) {
        let (mut ready, mut refusals) = (Vec::new(), Vec::with_capacity(inputs.len()));
        for input in inputs {
            let examined = std::fs::read(input)
                .map_err(|e| e.to_string())
                .and_then(|bytes| diagnoser.examine(&bytes, args.frame).map_err(|e| e.to_string()));
            match examined {
                Ok(examination) => {
                    ready.push(examination);
                    refusals.push(None);
                }
                Err(error) => refusals.push(Some(error)),
            }
        }
        let predicted = diagnoser.predict(ready).map_err(|e| e.to_string());
        // Answers in input order: an input's line is its own refusal, its
        // prediction (predictions come in the order of the admitted inputs), or
        // the batch's failure.
        let mut predictions = predicted.as_ref().map(|p| p.iter());
        for (input, refusal) in inputs.iter().zip(refusals) {
            let line = match (refusal, &mut predictions) {
                (Some(error), _) => json!({ "input": input, "error": error }),
                (None, Ok(next)) => json!({ "input": input, "prediction": next.next() }),
                (None, Err(error)) => json!({ "input": input, "error": error }),
            };
            failed += usize::from(line.get("error").is_some());
            writeln!(out, "{line}")?;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} inputs got no prediction", args.inputs.len());
    Ok(())
}
