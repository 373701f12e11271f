//! ONNX models run by candle on the CPU.
//!
//! [`OnnxModel`] parses an ONNX file (protobuf), finds its single input and
//! output, and evaluates the graph with candle-onnx. It implements
//! [`Classifier`], the port the diagnosis pipeline runs networks through;
//! [`ModelDirectory`] keeps the installed artifacts of registered models.

mod shelf;

pub use shelf::ModelDirectory;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_onnx::onnx::{ModelProto, tensor_shape_proto, type_proto};
use emr_diagnosis::{Classifier, ClassifierError, DiagnosisError, verify_artifact};
use emr_domain::diagnosis::ModelCard;
use prost::Message;

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not an ONNX model.
    #[error("not an ONNX model: {0}")]
    Malformed(String),
    /// The artifact is not the one the card names.
    #[error(transparent)]
    NotTheCardsArtifact(DiagnosisError),
    /// The card's input contract does not fit the graph's declared input.
    #[error("the card's input {contract:?} does not fit the model's declared input {declared:?}")]
    ContractMismatch {
        /// The contract's tensor shape for one input.
        contract: [usize; 4],
        /// The graph's input dimensions (`None`: free).
        declared: Vec<Option<usize>>,
    },
    /// The graph does not have exactly one input and one output.
    #[error("the model must have one input and one output; it has {inputs} and {outputs}")]
    Arity {
        /// Graph inputs (initializers excluded).
        inputs: usize,
        /// Graph outputs.
        outputs: usize,
    },
}

/// One ONNX graph with one input tensor and one output tensor.
pub struct OnnxModel {
    model: ModelProto,
    input: String,
    output: String,
    input_dims: Vec<Option<usize>>,
}

impl OnnxModel {
    /// Parses an ONNX model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxError> {
        let model = ModelProto::decode(bytes).map_err(|e| OnnxError::Malformed(e.to_string()))?;
        let graph = model.graph.as_ref().ok_or_else(|| OnnxError::Malformed("no graph".to_owned()))?;
        let weights: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<_> = graph.input.iter().filter(|i| !weights.contains(&i.name.as_str())).collect();
        let ([input], [output]) = (inputs.as_slice(), graph.output.as_slice()) else {
            return Err(OnnxError::Arity { inputs: inputs.len(), outputs: graph.output.len() });
        };
        let input_dims = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(tensor)) => tensor
                .shape
                .iter()
                .flat_map(|s| &s.dim)
                .map(|d| match d.value {
                    Some(tensor_shape_proto::dimension::Value::DimValue(v)) => usize::try_from(v).ok(),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self { input: input.name.clone(), output: output.name.clone(), input_dims, model })
    }

    /// Loads `artifact` as the model `card` names: the bytes must hash to the
    /// card's SHA-256 and the card's input contract must fit the graph.
    pub fn for_card(card: &ModelCard, artifact: &[u8]) -> Result<Self, OnnxError> {
        verify_artifact(card, artifact).map_err(OnnxError::NotTheCardsArtifact)?;
        let model = Self::from_bytes(artifact)?;
        let contract = card.contract.shape(1);
        if !model.accepts(&contract) {
            return Err(OnnxError::ContractMismatch { contract, declared: model.input_dims.clone() });
        }
        Ok(model)
    }

    /// The input's declared dimensions; `None` where the graph leaves one free
    /// (the batch size, usually).
    pub fn input_dims(&self) -> &[Option<usize>] {
        &self.input_dims
    }

    /// Whether a tensor of `shape` fits the declared input.
    pub fn accepts(&self, shape: &[usize]) -> bool {
        self.input_dims.is_empty()
            || (self.input_dims.len() == shape.len() && self.input_dims.iter().zip(shape).all(|(d, s)| d.is_none_or(|d| d == *s)))
    }

    fn run(&self, batch: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ClassifierError> {
        if !self.accepts(&shape) {
            return Err(ClassifierError(format!("input shape {shape:?} does not fit the model's {:?}", self.input_dims)));
        }
        let failed = |e: candle_core::Error| ClassifierError(e.to_string());
        let tensor = Tensor::from_slice(batch, &shape, &Device::Cpu).map_err(failed)?;
        let inputs = HashMap::from([(self.input.clone(), tensor)]);
        let mut outputs = candle_onnx::simple_eval(&self.model, inputs).map_err(failed)?;
        let output = outputs.remove(&self.output).ok_or_else(|| ClassifierError(format!("no output named {}", self.output)))?;
        output.flatten_from(1).and_then(|o| o.to_dtype(candle_core::DType::F32)).and_then(|o| o.to_vec2::<f32>()).map_err(failed)
    }
}

impl Classifier for OnnxModel {
    fn classify(&self, batch: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ClassifierError> {
        // candle-onnx evaluates whatever graph it is given; an operator it
        // mishandles must not take the process down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(batch, shape)))
            .unwrap_or_else(|_| Err(ClassifierError("the ONNX evaluator failed".to_owned())))
    }
}
