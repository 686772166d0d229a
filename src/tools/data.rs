//! Training and evaluation data: the tasks and their labels, the file formats (SMS-style
//! `label<TAB>text`, GoEmotions `text<TAB>ids<TAB>id`, one message per line), reproducible
//! dev splits and cross-validation folds, and digests of the files a model was built from.

use std::path::{Path, PathBuf};

use crate::ml::features::Fnv1a;
use crate::ml::quantized::QuantizedBag;
use crate::ml::{Label, Models, SentimentLabel, SpamLabel, names};
use crate::tools::ToolError;

/// Which classifier to build or measure; its label type (in `crate::ml`) fixes the label set
/// and its order in the model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Task {
    Spam,
    Sentiment,
}

impl Task {
    pub(crate) fn labels(self) -> Vec<&'static str> {
        match self {
            Task::Spam => names::<SpamLabel>(),
            Task::Sentiment => names::<SentimentLabel>(),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Task::Spam => SpamLabel::TASK,
            Task::Sentiment => SentimentLabel::TASK,
        }
    }

    /// This task's classifier among the loaded models.
    pub(crate) fn model(self, models: &Models) -> &QuantizedBag {
        match self {
            Task::Spam => models.spam(),
            Task::Sentiment => models.sentiment(),
        }
    }

    /// The class of a label name; called once per data row, so it allocates nothing.
    fn label_index(self, label: &str) -> Option<usize> {
        fn index<L: Label>(label: &str) -> Option<usize> {
            L::ALL.iter().position(|l| l.as_str() == label)
        }
        match self {
            Task::Spam => index::<SpamLabel>(label),
            Task::Sentiment => index::<SentimentLabel>(label),
        }
    }
}

/// Which rows of each file to use: a fixed share (every `every`-th kept row) is the dev split,
/// so a model trained on `Train` can be measured on `Dev` of the same files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Split {
    All,
    Train,
    Dev,
}

#[derive(Debug, Clone)]
pub(crate) struct Example {
    pub text: String,
    pub(crate) label: usize,
}

/// A file read into a data set, for the model's provenance metadata.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) fnv1a64: u64,
    pub(crate) rows: usize,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Dataset {
    pub(crate) examples: Vec<Example>,
    pub(crate) sources: Vec<Source>,
}

impl Dataset {
    #[cfg(test)]
    fn labels(&self) -> Vec<usize> {
        self.examples.iter().map(|e| e.label).collect()
    }
}

/// Reads `specs`, each `PATH` or `LABEL=PATH`. A `.tsv` is `label<TAB>text` for spam and
/// GoEmotions `text<TAB>ids[<TAB>id]` for sentiment (rows with exactly one non-ambiguous
/// label kept); any other file holds one message per line, labelled by `LABEL=` or by the last
/// `-`-separated part of its name (`tg-spam-ham.txt` → ham).
pub(crate) fn load(
    task: Task,
    specs: &[String],
    split: Split,
    every: usize,
) -> Result<Dataset, ToolError> {
    if every < 2 && split != Split::All {
        return Err(ToolError::Invalid("--dev-every must be at least 2".into()));
    }
    let mut data = Dataset::default();
    for spec in specs {
        let (label, path) = match spec.split_once('=') {
            Some((l, p)) if task.label_index(l).is_some() => (Some(l), PathBuf::from(p)),
            _ => (None, PathBuf::from(spec)),
        };
        let bytes = std::fs::read(&path).map_err(|source| ToolError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| ToolError::Data {
            path: path.clone(),
            line: 0,
            reason: format!("not UTF-8: {e}"),
        })?;
        let rows = parse(task, &path, label, &text)?;
        let mut h = Fnv1a::new();
        h.write(text.as_bytes());
        data.sources.push(Source {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            fnv1a64: h.finish(),
            rows: rows.len(),
        });
        data.examples.extend(
            rows.into_iter()
                .enumerate()
                .filter(|(i, _)| match split {
                    Split::All => true,
                    Split::Dev => i % every == every - 1,
                    Split::Train => i % every != every - 1,
                })
                .map(|(_, e)| e),
        );
    }
    Ok(data)
}

fn parse(
    task: Task,
    path: &Path,
    label: Option<&str>,
    text: &str,
) -> Result<Vec<Example>, ToolError> {
    let bad = |line: usize, reason: String| ToolError::Data {
        path: path.to_owned(),
        line,
        reason,
    };
    let is_tsv = path.extension().is_some_and(|e| e == "tsv") && label.is_none();
    let mut out = Vec::new();
    if !is_tsv {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = label.unwrap_or_else(|| stem.rsplit('-').next().unwrap_or(""));
        let label = task.label_index(name).ok_or_else(|| {
            bad(
                0,
                format!(
                    "no label: name the file *-LABEL.txt or pass LABEL=PATH, LABEL one of {:?}",
                    task.labels()
                ),
            )
        })?;
        for line in text.lines() {
            if !line.trim().is_empty() {
                out.push(Example {
                    text: line.to_owned(),
                    label,
                });
            }
        }
        return Ok(out);
    }
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split('\t');
        let (a, b) = (cols.next().unwrap_or(""), cols.next());
        let Some(b) = b else {
            return Err(bad(
                n + 1,
                "expected at least two tab-separated columns".into(),
            ));
        };
        match task {
            Task::Spam => {
                let label = task
                    .label_index(a.trim())
                    .ok_or_else(|| bad(n + 1, format!("unknown label {:?}", a.trim())))?;
                out.push(Example {
                    text: b.to_owned(),
                    label,
                });
            }
            Task::Sentiment => {
                let ids: Vec<&str> = b.split(',').map(str::trim).collect();
                // 0 ambiguous, 1 negative, 2 neutral, 3 positive; multi-label rows are dropped.
                let label = match ids.as_slice() {
                    [one] => match *one {
                        "0" => continue,
                        "1" => 0,
                        "2" => 1,
                        "3" => 2,
                        other => return Err(bad(n + 1, format!("unknown label id {other:?}"))),
                    },
                    _ => continue,
                };
                out.push(Example {
                    text: a.to_owned(),
                    label,
                });
            }
        }
    }
    Ok(out)
}

/// Stratified fold of each example: each class is shuffled with `seed` and dealt round-robin,
/// so every fold keeps the class balance and the assignment is reproducible.
pub(crate) fn folds(labels: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut fold = vec![0; labels.len()];
    let classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut rng = fastrand::Rng::with_seed(seed);
    for class in 0..classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        for (rank, i) in idx.into_iter().enumerate() {
            fold[i] = rank % k;
        }
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_splits() {
        let dir = tempfile::tempdir().unwrap();
        let tsv = dir.path().join("s.tsv");
        std::fs::write(&tsv, "ham\thi\nspam\twin\nham\tyo\nham\tok\nspam\tfree\n").unwrap();
        let txt = dir.path().join("x-spam.txt");
        std::fs::write(&txt, "buy now\n\nclick here\n").unwrap();
        let specs = [
            tsv.to_string_lossy().into_owned(),
            txt.to_string_lossy().into_owned(),
        ];
        let all = load(Task::Spam, &specs, Split::All, 5).unwrap();
        assert_eq!(all.labels(), [0, 1, 0, 0, 1, 1, 1]);
        let dev = load(Task::Spam, &specs[..1], Split::Dev, 5).unwrap();
        assert_eq!(dev.examples.len(), 1);
        assert_eq!(dev.examples[0].text, "free");
        let train = load(Task::Spam, &specs[..1], Split::Train, 5).unwrap();
        assert_eq!(train.examples.len(), 4);

        let ge = dir.path().join("ge.tsv");
        std::fs::write(&ge, "a\t1\tx\nb\t0\ty\nc\t1,3\tz\nd\t3\tw\n").unwrap();
        let s = load(
            Task::Sentiment,
            &[ge.to_string_lossy().into_owned()],
            Split::All,
            5,
        )
        .unwrap();
        assert_eq!(s.labels(), [0, 2]);
    }

    #[test]
    fn folds_are_stratified_and_reproducible() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let f = folds(&labels, 5, 1);
        assert_eq!(f, folds(&labels, 5, 1));
        for k in 0..5 {
            let spam = (0..100).filter(|&i| f[i] == k && labels[i] == 1).count();
            assert_eq!(spam, 5);
        }
    }
}
