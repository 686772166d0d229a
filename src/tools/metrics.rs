//! Classification metrics: confusion matrix, accuracy and per-class precision, recall and F1,
//! with a plain-text report for `edgebot model eval` and `cv`.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Confusion {
    labels: Vec<String>,
    /// `matrix[truth][predicted]`.
    matrix: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ClassScores {
    precision: f64,
    recall: f64,
    f1: f64,
    support: usize,
}

impl Confusion {
    pub fn new(labels: &[&str]) -> Self {
        Self {
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            matrix: vec![vec![0; labels.len()]; labels.len()],
        }
    }

    pub(crate) fn add(&mut self, truth: usize, predicted: usize) {
        self.matrix[truth][predicted] += 1;
    }

    pub(crate) fn merge(&mut self, other: &Confusion) {
        for (row, o) in self.matrix.iter_mut().zip(&other.matrix) {
            for (a, b) in row.iter_mut().zip(o) {
                *a += b;
            }
        }
    }

    pub(crate) fn total(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }

    pub(crate) fn accuracy(&self) -> f64 {
        let correct: usize = (0..self.labels.len()).map(|i| self.matrix[i][i]).sum();
        ratio(correct, self.total())
    }

    pub(crate) fn class(&self, c: usize) -> ClassScores {
        let tp = self.matrix[c][c];
        let predicted: usize = self.matrix.iter().map(|row| row[c]).sum();
        let support: usize = self.matrix[c].iter().sum();
        let precision = ratio(tp, predicted);
        let recall = ratio(tp, support);
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        ClassScores {
            precision,
            recall,
            f1,
            support,
        }
    }

    pub(crate) fn macro_f1(&self) -> f64 {
        let n = self.labels.len();
        (0..n).map(|c| self.class(c).f1).sum::<f64>() / n as f64
    }

    /// Named figures for the model file's metadata, e.g. `accuracy`, `f1.spam`.
    pub(crate) fn figures(&self) -> Vec<(String, f64)> {
        let mut out = vec![
            ("accuracy".to_owned(), self.accuracy()),
            ("macro_f1".to_owned(), self.macro_f1()),
        ];
        for (c, label) in self.labels.iter().enumerate() {
            let s = self.class(c);
            out.push((format!("precision.{label}"), s.precision));
            out.push((format!("recall.{label}"), s.recall));
            out.push((format!("f1.{label}"), s.f1));
        }
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl fmt::Display for Confusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .labels
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(9);
        writeln!(
            f,
            "examples: {}  accuracy: {:.4}  macro-F1: {:.4}",
            self.total(),
            self.accuracy(),
            self.macro_f1()
        )?;
        writeln!(
            f,
            "{:<width$} {:>9} {:>9} {:>9} {:>9}",
            "class", "precision", "recall", "F1", "support"
        )?;
        for (c, label) in self.labels.iter().enumerate() {
            let s = self.class(c);
            writeln!(
                f,
                "{label:<width$} {:>9.4} {:>9.4} {:>9.4} {:>9}",
                s.precision, s.recall, s.f1, s.support
            )?;
        }
        writeln!(f, "confusion matrix (rows: truth, columns: predicted)")?;
        write!(f, "{:<width$}", "")?;
        for label in &self.labels {
            write!(f, " {label:>9}")?;
        }
        writeln!(f)?;
        for (label, row) in self.labels.iter().zip(&self.matrix) {
            write!(f, "{label:<width$}")?;
            for n in row {
                write!(f, " {n:>9}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_from_a_known_matrix() {
        let mut c = Confusion::new(&["ham", "spam"]);
        for (t, p, n) in [(0, 0, 90), (0, 1, 2), (1, 0, 3), (1, 1, 5)] {
            for _ in 0..n {
                c.add(t, p);
            }
        }
        assert!((c.accuracy() - 0.95).abs() < 1e-12);
        let s = c.class(1);
        assert!((s.precision - 5.0 / 7.0).abs() < 1e-12);
        assert!((s.recall - 5.0 / 8.0).abs() < 1e-12);
        assert_eq!(s.support, 8);
        assert!(c.to_string().contains("confusion matrix"));
    }
}
