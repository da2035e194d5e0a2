//! Sentence embeddings: the [`Embedder`] trait and its fastembed
//! implementation, all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions, mean pooling)
//! on an ONNX Runtime shared library loaded at run time. Nothing is
//! downloaded here: the files come from `scripts/install-model`.
//!
//! Where the files are looked for, first match wins:
//!
//! 1. the gateway config, `model_dir` and `ort_dylib_path`;
//! 2. `SWITCHBOARD_MODEL_DIR` and `ORT_DYLIB_PATH`;
//! 3. `${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/model`, where the
//!    install script puts them.
//!
//! The model directory holds `model.onnx`, `tokenizer.json`, `config.json`,
//! `special_tokens_map.json` and `tokenizer_config.json`; the ONNX Runtime
//! library defaults to `libonnxruntime.so.1.32.0` inside it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The model the install script provides.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// sha256 of the int8 `model.onnx` the install script verifies.
pub const MODEL_SHA256: &str = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6";
/// File name of the ONNX Runtime library inside the model directory.
pub const ORT_LIBRARY: &str = "libonnxruntime.so.1.32.0";
/// The model file.
pub const MODEL_FILE: &str = "model.onnx";
/// The tokenizer files, in [`TokenizerFiles`] order.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];
/// Tokens the model reads from one string (its training window); longer
/// strings are cut by the tokenizer.
pub const MAX_TOKENS: usize = 256;
/// How to get the model, for messages.
pub const INSTALL_HINT: &str = "install it with `scripts/install-model` from a Switchboard \
     checkout (python3 with pip, reaches PyPI only), or point `model_dir` / \
     SWITCHBOARD_MODEL_DIR and `ort_dylib_path` / ORT_DYLIB_PATH at the files";

/// Why embeddings are unavailable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    /// A file is not where it was looked for.
    #[error("{what} not found at {path}")]
    Missing {
        /// Which file.
        what: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// The ONNX Runtime library did not load.
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime {
        /// The library.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The model or tokenizer did not load.
    #[error("cannot load the embedding model from {path}: {reason}")]
    Model {
        /// The model directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Embedding a text failed.
    #[error("embedding failed: {0}")]
    Inference(String),
}

/// Turns texts into unit-length vectors. Blocking and CPU-bound: call it from
/// a blocking thread (`spawn_blocking`), never on an async worker.
pub trait Embedder: Send + Sync {
    /// Identifies the model and its weights; stored with every vector so
    /// vectors of different models are never compared.
    fn model_id(&self) -> &str;
    /// A name for people, e.g. in responses and logs.
    fn description(&self) -> &str;
    /// Length of every vector.
    fn dimensions(&self) -> usize;
    /// One L2-normalized vector per text, in order.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Where the model and ONNX Runtime are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelPaths {
    /// Directory with `model.onnx` and the tokenizer files.
    pub model_dir: PathBuf,
    /// The ONNX Runtime shared library.
    pub ort_dylib: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl ModelPaths {
    /// Resolves the paths: the given config values, else the environment,
    /// else the cache directory (see the module docs).
    pub fn resolve(model_dir: Option<&Path>, ort_dylib: Option<&Path>) -> ModelPaths {
        let model_dir = model_dir
            .map(Path::to_path_buf)
            .or_else(|| env_path("SWITCHBOARD_MODEL_DIR"))
            .unwrap_or_else(Self::default_model_dir);
        let ort_dylib = ort_dylib
            .map(Path::to_path_buf)
            .or_else(|| env_path("ORT_DYLIB_PATH"))
            .unwrap_or_else(|| model_dir.join(ORT_LIBRARY));
        ModelPaths {
            model_dir,
            ort_dylib,
        }
    }

    /// Both files in one directory, as the install script lays them out.
    pub fn in_dir(dir: impl Into<PathBuf>) -> ModelPaths {
        let model_dir = dir.into();
        ModelPaths {
            ort_dylib: model_dir.join(ORT_LIBRARY),
            model_dir,
        }
    }

    /// `${SWITCHBOARD_CACHE:-$HOME/.cache/switchboard}/model`.
    pub fn default_model_dir() -> PathBuf {
        env_path("SWITCHBOARD_CACHE")
            .or_else(|| env_path("HOME").map(|h| h.join(".cache").join("switchboard")))
            .unwrap_or_else(|| PathBuf::from(".cache/switchboard"))
            .join("model")
    }

    /// Every file there? The first one missing is the error.
    pub fn check(&self) -> Result<(), EmbedError> {
        let missing = |what: &str, path: PathBuf| EmbedError::Missing {
            what: what.to_owned(),
            path,
        };
        if !self.ort_dylib.is_file() {
            return Err(missing("the ONNX Runtime library", self.ort_dylib.clone()));
        }
        for f in std::iter::once(MODEL_FILE).chain(TOKENIZER_FILES) {
            let p = self.model_dir.join(f);
            if !p.is_file() {
                return Err(missing(&format!("the model file {f}"), p));
            }
        }
        Ok(())
    }
}

/// all-MiniLM-L6-v2 through fastembed. One ONNX session behind a mutex:
/// embedding calls take turns (each uses every core).
pub struct FastEmbedder {
    model: Mutex<TextEmbedding>,
    id: String,
    description: String,
    dimensions: usize,
}

/// The library ONNX Runtime was loaded from; one per process.
static ORT_LOADED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Models shared by every gateway in the process (see [`FastEmbedder::load_shared`]).
static SHARED_MODELS: Mutex<Option<HashMap<ModelPaths, Arc<FastEmbedder>>>> = Mutex::new(None);

/// Drops the process's shared models. Call it before the process exits, after
/// everything that used them has stopped: an ONNX Runtime session still alive
/// while the runtime library tears itself down at exit can crash the process.
pub fn release_shared_models() {
    SHARED_MODELS.lock().take();
}

fn init_ort(path: &Path) -> Result<(), EmbedError> {
    let mut loaded = ORT_LOADED.lock();
    match &*loaded {
        Some(p) if p == path => return Ok(()),
        Some(p) => {
            tracing::warn!(
                loaded = %p.display(),
                requested = %path.display(),
                "ONNX Runtime is already loaded in this process; the other library is not used"
            );
            return Ok(());
        }
        None => {}
    }
    // Loads the library now, so fastembed's sessions never fall back to
    // ORT_DYLIB_PATH or the system search path.
    let builder = ort::init_from(path).map_err(|e| EmbedError::Runtime {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    drop(builder);
    *loaded = Some(path.to_path_buf());
    Ok(())
}

impl FastEmbedder {
    /// Loads ONNX Runtime, the model and the tokenizer, and embeds one probe
    /// text to learn the dimensions. Takes a few hundred milliseconds.
    pub fn load(paths: &ModelPaths) -> Result<FastEmbedder, EmbedError> {
        paths.check()?;
        init_ort(&paths.ort_dylib)?;
        let model_err = |reason: String| EmbedError::Model {
            path: paths.model_dir.clone(),
            reason,
        };
        let read = |f: &str| {
            std::fs::read(paths.model_dir.join(f)).map_err(|e| model_err(format!("{f}: {e}")))
        };
        let onnx = read(MODEL_FILE)?;
        let sha = hex::encode(Sha256::digest(&onnx));
        let (id, description) = if sha == MODEL_SHA256 {
            (
                format!("{MODEL_NAME}-int8@{}", &sha[..12]),
                format!("{MODEL_NAME} (int8 ONNX, sha256 {}…)", &sha[..12]),
            )
        } else {
            tracing::warn!(
                sha256 = %sha,
                expected = MODEL_SHA256,
                "model.onnx is not the int8 {MODEL_NAME} the install script verifies; using it as given"
            );
            (
                format!("onnx@{}", &sha[..12]),
                format!("ONNX model, sha256 {}…", &sha[..12]),
            )
        };
        let tokenizer = TokenizerFiles {
            tokenizer_file: read(TOKENIZER_FILES[0])?,
            config_file: read(TOKENIZER_FILES[1])?,
            special_tokens_map_file: read(TOKENIZER_FILES[2])?,
            tokenizer_config_file: read(TOKENIZER_FILES[3])?,
        };
        let user_model =
            UserDefinedEmbeddingModel::new(onnx, tokenizer).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_max_length(MAX_TOKENS)
            // Idle intra-op threads sleep instead of spinning: the gateway
            // shares its cores with the proxy path.
            .with_session_config("session.intra_op.allow_spinning", "0");
        let mut model = TextEmbedding::try_new_from_user_defined(user_model, options)
            .map_err(|e| model_err(e.to_string()))?;
        let probe = model
            .embed(["probe"], None)
            .map_err(|e| model_err(format!("probe embedding failed: {e}")))?;
        let dimensions = probe.first().map_or(0, Vec::len);
        if dimensions == 0 {
            return Err(model_err("the model produced an empty vector".into()));
        }
        Ok(FastEmbedder {
            model: Mutex::new(model),
            id,
            description,
            dimensions,
        })
    }

    /// [`Self::load`], once per set of paths per process: gateways started in
    /// the same process (tests, the console) share one loaded model.
    /// Failures are not remembered, so a later call tries again.
    pub fn load_shared(paths: &ModelPaths) -> Result<Arc<FastEmbedder>, EmbedError> {
        let mut loaded = SHARED_MODELS.lock();
        let map = loaded.get_or_insert_with(HashMap::new);
        if let Some(m) = map.get(paths) {
            return Ok(m.clone());
        }
        let m = Arc::new(FastEmbedder::load(paths)?);
        map.insert(paths.clone(), m.clone());
        Ok(m)
    }
}

impl Embedder for FastEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .model
            .lock()
            .embed(texts, None)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        if out.len() != texts.len() || out.iter().any(|v| v.len() != self.dimensions) {
            return Err(EmbedError::Inference(format!(
                "expected {} vectors of {} dimensions",
                texts.len(),
                self.dimensions
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ModelPaths::in_dir(dir.path());
        let err = paths.check().unwrap_err().to_string();
        assert!(
            err.contains("ONNX Runtime library") && err.contains(ORT_LIBRARY),
            "{err}"
        );
        std::fs::write(dir.path().join(ORT_LIBRARY), b"").unwrap();
        let err = paths.check().unwrap_err().to_string();
        assert!(err.contains("model.onnx"), "{err}");
    }

    #[test]
    fn config_wins_over_everything() {
        let p = ModelPaths::resolve(Some(Path::new("/m")), Some(Path::new("/lib/ort.so")));
        assert_eq!(
            p,
            ModelPaths {
                model_dir: "/m".into(),
                ort_dylib: "/lib/ort.so".into()
            }
        );
    }
}
