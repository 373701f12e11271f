//! [`ModelDirectory`]: the installed ONNX artifacts of registered models, one
//! file per artifact named by its SHA-256 (`<sha256>.onnx`), so a file can
//! only ever be the model its name says once its bytes are checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use emr_diagnosis::{Classifier, DiagnosisError, ModelShelf};
use emr_domain::diagnosis::ModelCard;
use emr_domain::values::Sha256Digest;

use crate::{OnnxError, OnnxModel};

/// A directory of model artifacts, each loaded once and kept.
pub struct ModelDirectory {
    dir: PathBuf,
    loaded: Mutex<HashMap<Sha256Digest, Arc<OnnxModel>>>,
}

impl ModelDirectory {
    /// The artifacts under `dir`, created by the first install: a process that
    /// only reads models (or none) never needs to write there.
    pub fn open(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), loaded: Mutex::new(HashMap::new()) }
    }

    fn path_of(&self, sha256: &Sha256Digest) -> PathBuf {
        self.dir.join(format!("{sha256}.onnx"))
    }

    /// Installs `artifact` as the model `card` names, after checking that it
    /// is (its hash, its graph against the card's input contract). Written to a
    /// temporary file and renamed, so a crash never leaves half a model.
    pub fn install_artifact(&self, card: &ModelCard, artifact: &[u8]) -> Result<PathBuf, OnnxError> {
        OnnxModel::for_card(card, artifact)?;
        let path = self.path_of(&card.sha256);
        let partial = self.dir.join(format!("{}.partial", card.sha256));
        let io = |e: std::io::Error| OnnxError::Malformed(format!("cannot install into {}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        std::fs::write(&partial, artifact).map_err(io)?;
        std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)?;
        Ok(path)
    }
}

impl ModelShelf for ModelDirectory {
    fn classifier(&self, card: &ModelCard) -> Result<Arc<dyn Classifier>, DiagnosisError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(model) = loaded.get(&card.sha256) {
            return Ok(model.clone());
        }
        let path = self.path_of(&card.sha256);
        let not_installed =
            |detail: String| DiagnosisError::NotInstalled { name: card.name.clone(), version: card.version.clone(), detail };
        let artifact = std::fs::read(&path).map_err(|e| not_installed(format!("{}: {e}", path.display())))?;
        let model = Arc::new(OnnxModel::for_card(card, &artifact).map_err(|e| not_installed(e.to_string()))?);
        loaded.insert(card.sha256, model.clone());
        Ok(model)
    }

    fn install(&self, card: &ModelCard, artifact: &[u8]) -> Result<(), DiagnosisError> {
        self.install_artifact(card, artifact).map(drop).map_err(|e| match e {
            OnnxError::NotTheCardsArtifact(mismatch) => mismatch,
            other => DiagnosisError::NotInstalled { name: card.name.clone(), version: card.version.clone(), detail: other.to_string() },
        })
    }

    fn contains(&self, card: &ModelCard) -> bool {
        self.path_of(&card.sha256).is_file()
    }
}
