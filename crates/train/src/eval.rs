//! Evaluation on held-out data: confusion matrix, per-class precision, recall and F1.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub class: String,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// Held-out windows of this class.
    pub support: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub classes: Vec<String>,
    /// `confusion[truth][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub per_class: Vec<ClassScore>,
    /// Mean F1 over the classes present in the held-out truth.
    pub macro_f1: f64,
    pub accuracy: f64,
    pub samples: usize,
}

pub fn evaluate(classes: &[String], truth: &[usize], predicted: &[usize]) -> Evaluation {
    let k = classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let mut per_class = Vec::with_capacity(k);
    let mut f1s = Vec::new();
    for c in 0..k {
        let tp = confusion[c][c] as f64;
        let support: usize = confusion[c].iter().sum();
        let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
        let precision = (predicted_c > 0).then(|| tp / predicted_c as f64);
        let recall = (support > 0).then(|| tp / support as f64);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (_, Some(_)) => Some(0.0),
            _ => None,
        };
        if support > 0 {
            f1s.push(f1.unwrap_or(0.0));
        }
        per_class.push(ClassScore { class: classes[c].clone(), precision, recall, f1, support });
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    Evaluation {
        classes: classes.to_vec(),
        macro_f1: if f1s.is_empty() { 0.0 } else { f1s.iter().sum::<f64>() / f1s.len() as f64 },
        accuracy: if truth.is_empty() { 0.0 } else { correct as f64 / truth.len() as f64 },
        samples: truth.len(),
        confusion,
        per_class,
    }
}

impl Evaluation {
    pub fn markdown(&self, title: &str) -> String {
        let pct = |v: Option<f64>| v.map(|v| format!("{:.3}", v)).unwrap_or_else(|| "-".into());
        let mut s = format!(
            "### {title}\n\n{} held-out windows, accuracy {:.3}, macro-F1 {:.3}\n\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n",
            self.samples, self.accuracy, self.macro_f1
        );
        for c in &self.per_class {
            s += &format!(
                "| {} | {} | {} | {} | {} |\n",
                c.class,
                pct(c.precision),
                pct(c.recall),
                pct(c.f1),
                c.support
            );
        }
        s += "\nConfusion matrix (rows: truth, columns: predicted)\n\n| |";
        for c in &self.classes {
            s += &format!(" {c} |");
        }
        s += "\n|---|";
        s += &"---|".repeat(self.classes.len());
        s += "\n";
        for (t, row) in self.confusion.iter().enumerate() {
            s += &format!("| **{}** |", self.classes[t]);
            for v in row {
                s += &format!(" {v} |");
            }
            s += "\n";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        let classes = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        // truth a,a,b,b ; predicted a,b,b,b ; c absent
        let e = evaluate(&classes, &[0, 0, 1, 1], &[0, 1, 1, 1]);
        assert_eq!(e.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![0, 0, 0]]);
        assert_eq!(e.per_class[0].precision, Some(1.0));
        assert_eq!(e.per_class[0].recall, Some(0.5));
        assert!((e.per_class[1].f1.unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(e.per_class[2].f1, None);
        // macro over present classes only: (2/3 + 0.8) / 2
        assert!((e.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        assert!((e.accuracy - 0.75).abs() < 1e-12);
    }
}
