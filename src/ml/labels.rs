//! What the classifiers predict, as types: a spam verdict and a sentiment. Each label set
//! fixes the order of its model file's classes, and each label serialises as the string the
//! model file and `edgebot analyze` use, so the JSON stays what it was with string labels.

use serde::{Serialize, Serializer};

/// A classifier's label set, in the order of its model file's classes.
pub(crate) trait Label: Copy + 'static {
    /// The task name the model file records.
    const TASK: &'static str;
    /// Every label, in class order.
    const ALL: &'static [Self];

    fn as_str(self) -> &'static str;
}

/// The label names of `L`, in class order.
pub(crate) fn names<L: Label>() -> Vec<&'static str> {
    L::ALL.iter().map(|l| l.as_str()).collect()
}

/// The spam classifier's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpamLabel {
    Ham,
    Spam,
}

impl SpamLabel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SpamLabel::Ham => "ham",
            SpamLabel::Spam => "spam",
        }
    }
}

impl Label for SpamLabel {
    const TASK: &'static str = "spam";
    const ALL: &'static [Self] = &[SpamLabel::Ham, SpamLabel::Spam];

    fn as_str(self) -> &'static str {
        SpamLabel::as_str(self)
    }
}

/// The sentiment classifier's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentimentLabel {
    Negative,
    Neutral,
    Positive,
}

impl SentimentLabel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Positive => "positive",
        }
    }
}

impl Label for SentimentLabel {
    const TASK: &'static str = "sentiment";
    const ALL: &'static [Self] = &[
        SentimentLabel::Negative,
        SentimentLabel::Neutral,
        SentimentLabel::Positive,
    ];

    fn as_str(self) -> &'static str {
        SentimentLabel::as_str(self)
    }
}

// By hand rather than derived, so `as_str` is the one place a label's spelling lives.
impl Serialize for SpamLabel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for SentimentLabel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_the_model_files_names_and_order() {
        assert_eq!(names::<SpamLabel>(), ["ham", "spam"]);
        assert_eq!(
            names::<SentimentLabel>(),
            ["negative", "neutral", "positive"]
        );
        assert_eq!(
            serde_json::to_string(&[SentimentLabel::Neutral]).unwrap(),
            r#"["neutral"]"#
        );
        assert_eq!(
            serde_json::to_string(&SpamLabel::Spam).unwrap(),
            r#""spam""#
        );
    }
}
