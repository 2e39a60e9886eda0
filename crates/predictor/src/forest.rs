//! A random forest for window classification, implementing linfa's `Fit` and `PredictInplace`.
//!
//! Why not `linfa-trees` alone: measured here it needs 30-60 s per depth-12 tree on 100 k x 60
//! samples (it sorts at every node), and `linfa-ensemble` samples features per tree, not per
//! split, and gives no probabilities. This forest follows the classic recipe (Breiman;
//! scikit-learn's `RandomForestClassifier`) with the histogram trick of LightGBM/XGBoost:
//!
//! * features are bucketed once into at most 255 quantile bins (plus one bin for missing);
//! * every split looks at `max_features` features drawn afresh for that node, finds the best
//!   Gini split over bin boundaries, and sends missing values left;
//! * trees grow on bootstrap samples, in parallel, each from its own seed (reproducible);
//! * probabilities are the mean of the leaves' class distributions (as scikit-learn).
//!
//! Trees store real-valued thresholds, so prediction needs no binning: `NaN` (a missing
//! feature) goes left, otherwise `x <= threshold` goes left.

use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, Array2, ArrayBase, ArrayView2, Data, Ix2};
use rand::seq::index::sample as sample_indices;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many features each split considers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MaxFeatures {
    Sqrt,
    Log2,
    All,
    Count(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    pub n_trees: usize,
    pub max_depth: usize,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: MaxFeatures,
    /// Bins per feature (at most 255; one more bin holds missing values).
    pub max_bins: usize,
    pub bootstrap: bool,
    pub seed: u64,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: 20,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            max_bins: 255,
            bootstrap: true,
            seed: 42,
            threads: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForestError {
    #[error("invalid forest parameter: {0}")]
    Params(String),
    #[error("empty or inconsistent training data: {0}")]
    Data(String),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Node {
    Split { feature: u32, threshold: f64, left: u32, right: u32 },
    Leaf { proba: Vec<f32> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn leaf_for(&self, row: &[f64]) -> &[f32] {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Leaf { proba } => return proba,
                Node::Split { feature, threshold, left, right } => {
                    let v = row[*feature as usize];
                    // NaN compares false: the explicit test keeps "missing goes left" obvious.
                    i = if v.is_nan() || v <= *threshold { *left as usize } else { *right as usize };
                }
            }
        }
    }
}

/// A trained forest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RandomForest {
    pub n_features: usize,
    pub n_classes: usize,
    trees: Vec<Tree>,
    /// Mean decrease in Gini impurity per feature, normalised to sum to 1.
    pub importances: Vec<f64>,
}

impl RandomForest {
    /// Class probabilities, one row per sample.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut out = Array2::<f64>::zeros((x.nrows(), self.n_classes));
        let mut row = vec![0.0; self.n_features];
        for (i, xr) in x.rows().into_iter().enumerate() {
            row.iter_mut().zip(xr.iter()).for_each(|(d, s)| *d = *s);
            for t in &self.trees {
                for (c, p) in t.leaf_for(&row).iter().enumerate() {
                    out[[i, c]] += *p as f64;
                }
            }
        }
        out /= self.trees.len().max(1) as f64;
        out
    }

    /// Why the forest gave `row` the class `class`: for every feature, the share of the trees'
    /// votes for that class cast by leaves whose path tested the feature (a tree's vote is its
    /// leaf's probability of the class; a feature counts once per path). Features at the top
    /// decided this window, unlike the global importances, which may be about other classes.
    pub fn decision_weights(&self, row: &[f64], class: usize) -> Vec<f64> {
        let mut w = vec![0.0; self.n_features];
        let mut on_path = vec![false; self.n_features];
        let mut path = Vec::new();
        for t in &self.trees {
            path.clear();
            let mut i = 0usize;
            let vote = loop {
                match &t.nodes[i] {
                    Node::Leaf { proba } => break proba.get(class).copied().unwrap_or(0.0) as f64,
                    Node::Split { feature, threshold, left, right } => {
                        let f = *feature as usize;
                        if !on_path[f] {
                            on_path[f] = true;
                            path.push(f);
                        }
                        let v = row[f];
                        i = if v.is_nan() || v <= *threshold { *left as usize } else { *right as usize };
                    }
                }
            };
            for &f in &path {
                w[f] += vote;
                on_path[f] = false;
            }
        }
        let n = self.trees.len().max(1) as f64;
        w.iter_mut().for_each(|x| *x /= n);
        w
    }

    /// Checks what prediction relies on and training guarantees, for a forest read from a
    /// file: at least one tree; every split tests a feature below `n_features` and points to
    /// children after itself (training appends children after their parent), so every walk
    /// ends at a leaf within the tree; every leaf holds at most `n_classes` probabilities; one
    /// importance per feature. Without this a damaged model file loaded fine, then indexed out
    /// of bounds or looped for ever on the first window (found by fuzzing).
    pub fn check(&self) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("forest without trees".into());
        }
        if self.importances.len() != self.n_features {
            return Err(format!("{} importances for {} features", self.importances.len(), self.n_features));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(format!("tree {t} has no nodes"));
            }
            let n = tree.nodes.len();
            for (i, node) in tree.nodes.iter().enumerate() {
                match node {
                    Node::Split { feature, left, right, .. } => {
                        if *feature as usize >= self.n_features {
                            return Err(format!("tree {t} node {i} tests feature {feature} of {}", self.n_features));
                        }
                        for child in [*left as usize, *right as usize] {
                            if child <= i || child >= n {
                                return Err(format!("tree {t} node {i} points to node {child} (of {n})"));
                            }
                        }
                    }
                    Node::Leaf { proba } => {
                        if proba.len() > self.n_classes {
                            return Err(format!("tree {t} leaf {i} has {} classes of {}", proba.len(), self.n_classes));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    pub fn n_nodes(&self) -> usize {
        self.trees.iter().map(|t| t.nodes.len()).sum()
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<usize>> for RandomForest {
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<usize>) {
        assert_eq!(x.nrows(), y.len(), "one target per sample");
        let proba = self.predict_proba(x.view());
        for (yi, p) in y.iter_mut().zip(proba.rows()) {
            *yi = argmax(p.iter().copied());
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<usize> {
        Array1::zeros(x.nrows())
    }
}

pub fn argmax(it: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in it.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

impl<D, T> Fit<ArrayBase<D, Ix2>, T, ForestError> for ForestParams
where
    D: Data<Elem = f64>,
    T: AsSingleTargets<Elem = usize>,
{
    type Object = RandomForest;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<RandomForest, ForestError> {
        self.validate()?;
        let x = dataset.records().view();
        let targets = dataset.as_single_targets();
        let y: Vec<usize> = targets.iter().copied().collect();
        let (n, n_features) = (x.nrows(), x.ncols());
        if n == 0 || n_features == 0 || y.len() != n {
            return Err(ForestError::Data(format!("{n} samples, {n_features} features, {} targets", y.len())));
        }
        let n_classes = y.iter().max().unwrap() + 1;
        let binned = Binned::new(x, self.max_bins);
        let mtry = match self.max_features {
            MaxFeatures::Sqrt => (n_features as f64).sqrt().round() as usize,
            MaxFeatures::Log2 => (n_features as f64).log2().round() as usize,
            MaxFeatures::All => n_features,
            MaxFeatures::Count(k) => k,
        }
        .clamp(1, n_features);
        let threads = match self.threads {
            0 => std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1),
            t => t,
        }
        .min(self.n_trees);

        let next = AtomicUsize::new(0);
        let mut built: Vec<(usize, Tree, Vec<f64>)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let t = next.fetch_add(1, Ordering::Relaxed);
                            if t >= self.n_trees {
                                break mine;
                            }
                            let mut rng =
                                Xoshiro256PlusPlus::seed_from_u64(self.seed.wrapping_add(t as u64 * 0x9e37_79b9));
                            let samples: Vec<u32> = if self.bootstrap {
                                (0..n).map(|_| rng.random_range(0..n) as u32).collect()
                            } else {
                                (0..n as u32).collect()
                            };
                            let mut gains = vec![0.0; n_features];
                            let tree =
                                TreeBuilder { p: self, binned: &binned, y: &y, n_classes, mtry, gains: &mut gains }
                                    .build(samples, &mut rng);
                            mine.push((t, tree, gains));
                        }
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().expect("tree worker panicked")).collect()
        });
        built.sort_by_key(|(t, _, _)| *t);
        let mut importances = vec![0.0; n_features];
        for (_, _, g) in &built {
            let total: f64 = g.iter().sum();
            if total > 0.0 {
                importances.iter_mut().zip(g).for_each(|(a, b)| *a += b / total);
            }
        }
        let sum: f64 = importances.iter().sum();
        if sum > 0.0 {
            importances.iter_mut().for_each(|v| *v /= sum);
        }
        Ok(RandomForest { n_features, n_classes, trees: built.into_iter().map(|(_, t, _)| t).collect(), importances })
    }
}

impl ForestParams {
    fn validate(&self) -> Result<(), ForestError> {
        let bad = |m: &str| Err(ForestError::Params(m.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be > 0");
        }
        if self.max_depth == 0 {
            return bad("max_depth must be > 0");
        }
        if !(2..=255).contains(&self.max_bins) {
            return bad("max_bins must be within 2..=255");
        }
        if self.min_samples_leaf == 0 || self.min_samples_split < 2 {
            return bad("min_samples_leaf >= 1 and min_samples_split >= 2");
        }
        if let MaxFeatures::Count(0) = self.max_features {
            return bad("max_features must be > 0");
        }
        Ok(())
    }
}

/// Features bucketed column by column: bin 0 = missing, bins 1.. = quantile ranges.
struct Binned {
    /// `bins[f][i]`: bin of sample `i` for feature `f` (column-major for cache-friendly scans).
    bins: Vec<Vec<u8>>,
    /// `edges[f][b-1]` is the largest value of bin `b` (values `<= edges[f][b-1]` have bins `<= b`).
    edges: Vec<Vec<f64>>,
}

impl Binned {
    fn new<S: Data<Elem = f64>>(x: ArrayBase<S, Ix2>, max_bins: usize) -> Binned {
        let mut bins = Vec::with_capacity(x.ncols());
        let mut edges = Vec::with_capacity(x.ncols());
        for col in x.columns() {
            let mut vals: Vec<f64> = col.iter().copied().filter(|v| !v.is_nan()).collect();
            vals.sort_by(|a, b| a.total_cmp(b));
            vals.dedup();
            let e: Vec<f64> = if vals.len() <= max_bins {
                // Few distinct values: cut halfway between neighbours, like exact splitting.
                vals.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect()
            } else {
                let mut e: Vec<f64> = (1..max_bins).map(|k| vals[k * vals.len() / max_bins]).collect();
                e.dedup();
                e
            };
            bins.push(
                col.iter().map(|v| if v.is_nan() { 0 } else { 1 + e.partition_point(|edge| edge < v) as u8 }).collect(),
            );
            edges.push(e);
        }
        Binned { bins, edges }
    }

    fn n_bins(&self, f: usize) -> usize {
        self.edges[f].len() + 2
    }

    /// Real threshold equivalent to "bin <= b".
    fn threshold(&self, f: usize, b: usize) -> f64 {
        if b == 0 {
            f64::NEG_INFINITY
        } else {
            self.edges[f][b - 1]
        }
    }
}

struct TreeBuilder<'a> {
    p: &'a ForestParams,
    binned: &'a Binned,
    y: &'a [usize],
    n_classes: usize,
    mtry: usize,
    gains: &'a mut [f64],
}

struct Best {
    feature: usize,
    bin: usize,
    gain: f64,
}

fn gini_numerator(counts: &[f64], n: f64) -> f64 {
    // n * gini = n - sum(c^2)/n; kept un-normalised so gains compare across nodes.
    if n <= 0.0 {
        0.0
    } else {
        n - counts.iter().map(|c| c * c).sum::<f64>() / n
    }
}

impl TreeBuilder<'_> {
    fn build(self, samples: Vec<u32>, rng: &mut Xoshiro256PlusPlus) -> Tree {
        let mut nodes = vec![Node::Leaf { proba: Vec::new() }];
        // (node index, samples, depth)
        let mut stack = vec![(0usize, samples, 0usize)];
        while let Some((id, samples, depth)) = stack.pop() {
            let counts = self.class_counts(&samples);
            let n = samples.len();
            let pure = counts.iter().filter(|c| **c > 0.0).count() <= 1;
            let split = if pure || depth >= self.p.max_depth || n < self.p.min_samples_split {
                None
            } else {
                self.best_split(&samples, &counts, rng)
            };
            let Some(best) = split else {
                nodes[id] = Node::Leaf { proba: counts.iter().map(|c| (c / n as f64) as f32).collect() };
                continue;
            };
            self.gains[best.feature] += best.gain;
            let col = &self.binned.bins[best.feature];
            let (left, right): (Vec<u32>, Vec<u32>) =
                samples.into_iter().partition(|&s| col[s as usize] as usize <= best.bin);
            let (l, r) = (nodes.len(), nodes.len() + 1);
            nodes.push(Node::Leaf { proba: Vec::new() });
            nodes.push(Node::Leaf { proba: Vec::new() });
            nodes[id] = Node::Split {
                feature: best.feature as u32,
                threshold: self.binned.threshold(best.feature, best.bin),
                left: l as u32,
                right: r as u32,
            };
            stack.push((l, left, depth + 1));
            stack.push((r, right, depth + 1));
        }
        Tree { nodes }
    }

    fn class_counts(&self, samples: &[u32]) -> Vec<f64> {
        let mut c = vec![0.0; self.n_classes];
        for &s in samples {
            c[self.y[s as usize]] += 1.0;
        }
        c
    }

    fn best_split(&self, samples: &[u32], counts: &[f64], rng: &mut Xoshiro256PlusPlus) -> Option<Best> {
        let n_features = self.binned.bins.len();
        let n = samples.len() as f64;
        let parent = gini_numerator(counts, n);
        let k = self.n_classes;
        let min_leaf = self.p.min_samples_leaf as f64;
        let mut best: Option<Best> = None;
        let mut hist: Vec<f64> = Vec::new();
        for f in sample_indices(rng, n_features, self.mtry) {
            let nb = self.binned.n_bins(f);
            hist.clear();
            hist.resize(nb * k, 0.0);
            let col = &self.binned.bins[f];
            for &s in samples {
                hist[col[s as usize] as usize * k + self.y[s as usize]] += 1.0;
            }
            let mut left = vec![0.0; k];
            let mut n_left = 0.0;
            for b in 0..nb - 1 {
                let h = &hist[b * k..(b + 1) * k];
                let nb_here: f64 = h.iter().sum();
                if nb_here == 0.0 {
                    continue;
                }
                left.iter_mut().zip(h).for_each(|(l, v)| *l += v);
                n_left += nb_here;
                let n_right = n - n_left;
                if n_left < min_leaf || n_right < min_leaf {
                    continue;
                }
                let right: Vec<f64> = counts.iter().zip(&left).map(|(c, l)| c - l).collect();
                let gain = parent - gini_numerator(&left, n_left) - gini_numerator(&right, n_right);
                if gain > 1e-12 && best.as_ref().is_none_or(|bst| gain > bst.gain) {
                    best = Some(Best { feature: f, bin: b, gain });
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use ndarray::Array;

    /// Three noisy classes in 6 dimensions (two informative), plus missing values.
    fn toy(n: usize, seed: u64) -> Dataset<f64, usize, ndarray::Ix1> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut x = Array2::<f64>::zeros((n, 6));
        let mut y = Array1::<usize>::zeros(n);
        for i in 0..n {
            let c = i % 3;
            y[i] = c;
            x[[i, 0]] = c as f64 * 2.0 + rng.random::<f64>() * 1.5;
            x[[i, 1]] = if c == 2 { 5.0 } else { rng.random::<f64>() * 4.0 };
            for j in 2..6 {
                x[[i, j]] = rng.random::<f64>();
            }
            if rng.random::<f64>() < 0.1 {
                x[[i, 1]] = f64::NAN;
            }
        }
        Dataset::new(x, y)
    }

    #[test]
    fn learns_separable_classes_and_is_reproducible() {
        let train = toy(3000, 1);
        let test = toy(1000, 2);
        let p = ForestParams { n_trees: 30, ..Default::default() };
        let model = p.fit(&train).unwrap();
        let pred = model.predict(test.records());
        let acc = pred.iter().zip(test.targets()).filter(|(a, b)| a == b).count() as f64 / 1000.0;
        assert!(acc > 0.9, "accuracy {acc}");
        // Informative features dominate the importances.
        assert!(model.importances[0] + model.importances[1] > 0.6, "{:?}", model.importances);
        // Same seed, same forest, whatever the thread count.
        let again = ForestParams { n_trees: 30, threads: 1, ..Default::default() }.fit(&train).unwrap();
        assert_eq!(again.predict_proba(test.records().view()), model.predict_proba(test.records().view()));
        // Probabilities are distributions.
        let proba = model.predict_proba(test.records().view());
        for r in proba.rows() {
            assert!((r.sum() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn decision_weights_name_the_feature_that_decided() {
        // Class 1 iff feature 3 > 0.5; the other five features are noise.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let x = Array2::from_shape_fn((2000, 6), |_| rng.random::<f64>());
        let y = x.column(3).mapv(|v| usize::from(v > 0.5));
        let model = ForestParams { n_trees: 20, ..Default::default() }.fit(&Dataset::new(x, y)).unwrap();
        let row = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7];
        let w = model.decision_weights(&row, 1);
        let top = argmax(w.iter().copied());
        assert_eq!(top, 3, "{w:?}");
        // Every vote for class 1 passed a test on feature 3.
        let vote = model.predict_proba(ndarray::aview2(&[row]))[[0, 1]];
        assert!((w[3] - vote).abs() < 1e-6 && vote > 0.9, "{w:?} {vote}");
        assert!(w.iter().enumerate().all(|(i, &v)| i == 3 || v < w[3]));
    }

    #[test]
    fn rejects_bad_params_and_data() {
        let d = toy(30, 3);
        assert!(ForestParams { n_trees: 0, ..Default::default() }.fit(&d).is_err());
        assert!(ForestParams { max_bins: 1, ..Default::default() }.fit(&d).is_err());
        let empty = Dataset::new(Array::zeros((0, 3)), Array1::<usize>::zeros(0));
        assert!(ForestParams::default().fit(&empty).is_err());
    }

    /// Found by fuzzing (`model_file`): a model file whose tree points back to a parent loaded
    /// fine and then looped for ever on the first window; other damage indexed out of bounds.
    #[test]
    fn damaged_forests_are_refused_when_loaded() {
        use crate::model::{Model, ModelError, ViewModel, CLASSES};
        let leaf = |n: usize| Node::Leaf { proba: vec![1.0 / n as f32; n] };
        let split = |feature, left, right| Node::Split { feature, threshold: 0.5, left, right };
        let forest = |nodes: Vec<Node>| RandomForest {
            n_features: 2,
            n_classes: CLASSES.len(),
            trees: vec![Tree { nodes: vec![split(0, 1, 2), leaf(9), leaf(9)] }, Tree { nodes }],
            importances: vec![0.5, 0.5],
        };
        let good = forest(vec![split(1, 1, 2), leaf(9), leaf(2)]);
        assert_eq!(good.check(), Ok(()));
        let cases = [
            (forest(vec![split(0, 0, 1), leaf(9)]), "tree 1 node 0 points to node 0 (of 2)"),
            (forest(vec![leaf(9), split(0, 2, 0), leaf(9)]), "tree 1 node 1 points to node 0 (of 3)"),
            (forest(vec![split(0, 1, 3), leaf(9), leaf(9)]), "tree 1 node 0 points to node 3 (of 3)"),
            (forest(vec![split(2, 1, 2), leaf(9), leaf(9)]), "tree 1 node 0 tests feature 2 of 2"),
            (forest(vec![leaf(10)]), "tree 1 leaf 0 has 10 classes of 9"),
            (forest(vec![]), "tree 1 has no nodes"),
            (RandomForest { trees: vec![], ..good.clone() }, "forest without trees"),
            (RandomForest { importances: vec![1.0], ..good.clone() }, "1 importances for 2 features"),
        ];
        for (bad, why) in cases {
            assert_eq!(bad.check(), Err(why.to_string()));
            let features = vec!["syn_rate_pps".to_string(), "packet_count".to_string()];
            assert!(ViewModel::new(features.clone(), bad.clone()).is_err(), "{why}");
            // As read from a file: the model is refused, never used.
            let vm = ViewModel { features, forest: bad };
            let mut m = Model::new(
                None,
                Some(ViewModel::new(vm.features.clone(), good.clone()).unwrap()),
                "h",
                0.into(),
                0.into(),
            )
            .unwrap();
            m.destination = Some(vm);
            let e = Model::from_bytes(&m.to_bytes().unwrap()).unwrap_err();
            assert!(matches!(&e, ModelError::Invalid(msg) if msg == why), "{why}: {e}");
        }
    }
}
