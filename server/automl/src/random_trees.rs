//! Random forests (Breiman) and extremely randomized trees (Geurts et al.), grown here.
//!
//! smartcore has both, but not as AutoML needs them (measured in `benches/forests.rs`): its
//! forest classifier only votes (no probabilities, so no AUC or log loss), it has extra trees
//! for regression only, it takes no missing values, grows its trees one after another on one
//! core, and cannot stop at a deadline. These trees:
//!
//! - split on binned values: each feature's values are cut into at most 255 bins at its
//!   quantiles (between distinct values when there are fewer), a missing value in a bin of its
//!   own; a node's best split is found from a histogram of its rows over a feature's bins;
//! - random forest: each tree on a bootstrap sample, each split the best over `mtry` features
//!   drawn at random (the square root of the features for classification, a third for
//!   regression); extra trees: each tree on all the rows, each feature tried at one random
//!   split point, the best of those kept;
//! - missing values go to whichever side of a split is better for the rows that have them
//!   (the larger side when none had any), as scikit-learn's trees do;
//! - gini impurity for classes (leaves hold the class frequencies, so the forest's output is
//!   the mean of its trees' probabilities), squared error for values;
//! - trees grow on all cores; past the deadline no new tree starts, and a forest keeps the
//!   trees done (at least [`MIN_TREES`]), so a candidate fits its time budget;
//! - leaves hold at least one row up to 5,000 sampled rows, more beyond (the model's size
//!   stays bounded on large data), and a sample is at most [`MAX_SAMPLE`] rows.
//!
//! Prediction walks the flattened nodes as gradient boosting's do ([`crate::forest::Nodes`]),
//! a block of rows at a time on all cores. Feature importance is exact tree SHAP (Lundberg et
//! al., Algorithm 2) in the forest's output units (the value, or class probabilities).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result};

use crate::forest::{Node, Nodes, by_blocks};
use crate::learners::Task;
use crate::metrics::Predictions;
use crate::prepare::Matrix;
use crate::problem::ProblemType;

/// Trees in a forest when time allows.
pub const TREES: usize = 100;
/// Trees grown whatever the deadline.
pub const MIN_TREES: usize = 8;
/// The most rows a tree is grown on (sampled from the training rows).
pub const MAX_SAMPLE: usize = 250_000;
/// The most tree nodes visited (over all rows) to estimate a forest's SHAP values: a
/// quarter of a second or so.
pub const SHAP_NODE_VISITS: usize = 5_000_000;
/// Bins of values per feature (a missing value's bin besides).
const BINS: usize = 255;
const MISSING_BIN: u8 = u8::MAX;
/// Trees stop at this depth.
const MAX_DEPTH: usize = 48;
/// Leaves hold at least a sample's rows divided by this (and at least one row).
const ROWS_PER_MIN_LEAF: usize = 5_000;

/// How the trees are randomized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Randomness {
    /// Bootstrap samples, the best split over a random subset of features.
    Forest,
    /// All rows, one random split point per feature tried.
    ExtraTrees,
}

impl Randomness {
    pub fn name(self) -> &'static str {
        match self {
            Self::Forest => "random-forest",
            Self::ExtraTrees => "extra-trees",
        }
    }
}

/// A fitted forest.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct RandomTrees {
    randomness: Randomness,
    problem: ProblemType,
    /// Classes (classification), or 0.
    classes: usize,
    /// Values per leaf: one per class, or one value.
    outputs: usize,
    roots: Vec<u32>,
    nodes: Nodes,
    /// Per leaf (a leaf node's `right`), `outputs` values.
    leaves: Vec<f64>,
    /// Per node: the sampled rows that reached it.
    cover: Vec<f32>,
}

impl std::fmt::Debug for RandomTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomTrees")
            .field("randomness", &self.randomness)
            .field("trees", &self.roots.len())
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// The stored form: the nodes as three arrays.
#[derive(Serialize, Deserialize)]
struct Stored {
    randomness: Randomness,
    problem: ProblemType,
    classes: usize,
    roots: Vec<u32>,
    thresholds: Vec<f64>,
    right: Vec<u32>,
    feature: Vec<u32>,
    leaves: Vec<f64>,
    cover: Vec<f32>,
}

impl From<RandomTrees> for Stored {
    fn from(t: RandomTrees) -> Self {
        let nodes = t.nodes.as_slice();
        Stored {
            randomness: t.randomness,
            problem: t.problem,
            classes: t.classes,
            roots: t.roots,
            // A leaf's (unread) threshold is -inf, which JSON cannot hold.
            thresholds: nodes
                .iter()
                .map(|n| if n.is_leaf() { 0.0 } else { n.threshold })
                .collect(),
            right: nodes.iter().map(|n| n.right).collect(),
            feature: nodes.iter().map(|n| n.feature).collect(),
            leaves: t.leaves,
            cover: t.cover,
        }
    }
}

impl TryFrom<Stored> for RandomTrees {
    type Error = String;

    fn try_from(s: Stored) -> std::result::Result<Self, String> {
        let count = s.thresholds.len();
        if s.right.len() != count || s.feature.len() != count || s.cover.len() != count {
            return Err("a forest's node arrays differ in length".into());
        }
        let outputs = outputs(s.problem, s.classes);
        if !s.leaves.len().is_multiple_of(outputs) {
            return Err("a forest's leaf values are not whole leaves".into());
        }
        let leaves = s.leaves.len() / outputs;
        let mut nodes = Vec::with_capacity(count);
        for i in 0..count {
            let node = Node {
                threshold: s.thresholds[i],
                right: s.right[i],
                feature: s.feature[i],
            };
            if !node.plain() {
                return Err(format!("forest node {i} has flags a forest does not set"));
            }
            if node.is_leaf() {
                if node.right as usize >= leaves {
                    return Err(format!("forest leaf {i} names a leaf value not stored"));
                }
                nodes.push(Node::leaf(node.right));
            } else {
                nodes.push(node);
            }
        }
        if s.roots.iter().any(|r| *r as usize >= count) {
            return Err("a forest's tree starts past its nodes".into());
        }
        Ok(RandomTrees {
            randomness: s.randomness,
            problem: s.problem,
            classes: s.classes,
            outputs,
            roots: s.roots,
            nodes: Nodes::new(nodes)?,
            leaves: s.leaves,
            cover: s.cover,
        })
    }
}

fn outputs(problem: ProblemType, classes: usize) -> usize {
    match problem {
        ProblemType::Regression => 1,
        _ => classes.max(1),
    }
}

// --- fitting --------------------------------------------------------------------------------

/// Each feature's values as bins.
struct Binned {
    /// Per feature, each row's bin (`MISSING_BIN` when missing).
    bins: Vec<Vec<u8>>,
    /// Per feature, its cut points: bin `b` holds the values in `[cuts[b-1], cuts[b])`.
    cuts: Vec<Vec<f64>>,
}

/// The cut points of a column: between its distinct values when it has at most [`BINS`],
/// else at its quantiles (of a sample of 100,000 values).
fn cuts(column: &[f64]) -> Vec<f64> {
    let step = column.len().div_ceil(100_000).max(1);
    let mut values: Vec<f64> = column
        .iter()
        .step_by(step)
        .copied()
        .filter(|v| !v.is_nan())
        .collect();
    values.sort_unstable_by(f64::total_cmp);
    let mut distinct = values.clone();
    distinct.dedup();
    let between = |a: f64, b: f64| {
        let mid = a + (b - a) / 2.0;
        // Adjacent floats: the midpoint rounds to one of them, and must part them.
        if mid > a && mid <= b { mid } else { b }
    };
    if distinct.len() <= BINS {
        return distinct.windows(2).map(|w| between(w[0], w[1])).collect();
    }
    let mut cuts: Vec<f64> = (1..BINS)
        .map(|q| values[q * values.len() / BINS])
        .filter(|c| *c > values[0])
        .collect();
    cuts.dedup();
    cuts
}

fn bin(x: &Matrix) -> Binned {
    let (bins, cuts) = x
        .columns
        .par_iter()
        .map(|column| {
            let cuts = cuts(column);
            let bins = column
                .iter()
                .map(|v| {
                    if v.is_nan() {
                        MISSING_BIN
                    } else {
                        cuts.partition_point(|c| c <= v) as u8
                    }
                })
                .collect();
            (bins, cuts)
        })
        .unzip();
    Binned { bins, cuts }
}

/// Fits a forest on `x` and `y` (values, or class indexes below `task.classes`); past
/// `timeout`, no new tree starts.
pub fn fit(
    x: &Matrix,
    y: &[f64],
    task: Task,
    randomness: Randomness,
    timeout: Option<Duration>,
) -> Result<RandomTrees> {
    let started = Instant::now();
    if x.rows == 0 || y.len() != x.rows {
        return Err(Error::validation("a forest needs rows, each with a target"));
    }
    if x.columns.len() >= crate::forest::MAX_FEATURES {
        return Err(Error::validation("too many features for a forest"));
    }
    let outputs = outputs(task.problem, task.classes);
    // Per row, its stats: [1, one-hot class] or [1, value].
    let stride = 1 + outputs;
    let classification = task.problem.is_classification();
    if classification && y.iter().any(|c| *c < 0.0 || *c as usize >= outputs) {
        return Err(Error::internal("a class index is out of range"));
    }
    let binned = bin(x);
    let features = x.columns.len();
    let mtry = match (randomness, classification) {
        (Randomness::Forest, true) => (features as f64).sqrt().floor() as usize,
        (Randomness::Forest, false) => features / 3,
        // Extra trees try one split point per feature: scikit-learn's defaults, every feature
        // for values, the square root for classes.
        (Randomness::ExtraTrees, true) => (features as f64).sqrt().floor() as usize,
        (Randomness::ExtraTrees, false) => features,
    }
    .clamp(1, features.max(1));
    let sample = x.rows.min(MAX_SAMPLE);
    let min_leaf = (sample / ROWS_PER_MIN_LEAF).max(1);
    let deadline = timeout.map(|t| started + t);
    let grown: Vec<Option<Tree>> = (0..TREES)
        .into_par_iter()
        .map(|t| {
            if t >= MIN_TREES && deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let mut rng = StdRng::seed_from_u64(
                task.seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(t as u64 * 2 + u64::from(randomness == Randomness::Forest)),
            );
            let mut rows: Vec<u32> = match randomness {
                Randomness::Forest => (0..sample)
                    .map(|_| rng.random_range(0..x.rows) as u32)
                    .collect(),
                Randomness::ExtraTrees if sample == x.rows => (0..x.rows as u32).collect(),
                Randomness::ExtraTrees => rand::seq::index::sample(&mut rng, x.rows, sample)
                    .into_iter()
                    .map(|r| r as u32)
                    .collect(),
            };
            let mut grower = Grower {
                binned: &binned,
                y,
                classification,
                stride,
                randomness,
                mtry,
                min_leaf,
                rng,
                hist: vec![0.0; (BINS + 1) * stride],
                order: (0..features).collect(),
                present: Vec::with_capacity(BINS),
                tree: Tree::default(),
            };
            let stats = grower.stats_of(&rows);
            grower.grow(&mut rows, stats, 0);
            Some(grower.tree)
        })
        .collect();
    let mut forest = RandomTrees {
        randomness,
        problem: task.problem,
        classes: task.classes,
        outputs,
        roots: Vec::new(),
        nodes: Nodes::default(),
        leaves: Vec::new(),
        cover: Vec::new(),
    };
    let mut nodes = Vec::new();
    for tree in grown.into_iter().flatten() {
        let base = nodes.len() as u32;
        let leaf_base = (forest.leaves.len() / outputs) as u32;
        forest.roots.push(base);
        nodes.extend(tree.nodes.into_iter().map(|mut n| {
            n.right += if n.is_leaf() { leaf_base } else { base };
            n
        }));
        forest.leaves.extend(tree.leaves);
        forest.cover.extend(tree.cover);
    }
    forest.nodes =
        Nodes::new(nodes).map_err(|e| Error::internal(format!("a forest's trees: {e}")))?;
    Ok(forest)
}

/// One tree as grown: `right` is a split's child or a leaf's number within the tree.
#[derive(Default)]
struct Tree {
    nodes: Vec<Node>,
    leaves: Vec<f64>,
    cover: Vec<f32>,
}

/// The best split found for a node.
struct Split {
    feature: usize,
    /// Rows in bins up to this one go left.
    bin: usize,
    nan_left: bool,
    gain: f64,
    left: Vec<f64>,
    right: Vec<f64>,
}

struct Grower<'a> {
    binned: &'a Binned,
    y: &'a [f64],
    classification: bool,
    /// Stats per row or node: [rows, then per class its rows | the sum of values].
    stride: usize,
    randomness: Randomness,
    mtry: usize,
    min_leaf: usize,
    rng: StdRng,
    /// Per bin (the missing bin last), stats; zero between uses.
    hist: Vec<f64>,
    /// The features, shuffled as they are drawn.
    order: Vec<usize>,
    /// The bins a node's rows are in, for the feature at hand.
    present: Vec<u8>,
    tree: Tree,
}

/// Σ s_k² / n: the gini (classes) or squared error (values) term a split maximizes.
fn score(stats: &[f64]) -> f64 {
    if stats[0] <= 0.0 {
        return 0.0;
    }
    stats[1..].iter().map(|s| s * s).sum::<f64>() / stats[0]
}

impl Grower<'_> {
    fn add_row(&self, stats: &mut [f64], row: usize) {
        stats[0] += 1.0;
        if self.classification {
            stats[1 + self.y[row] as usize] += 1.0;
        } else {
            stats[1] += self.y[row];
        }
    }

    fn stats_of(&self, rows: &[u32]) -> Vec<f64> {
        let mut stats = vec![0.0; self.stride];
        for r in rows {
            self.add_row(&mut stats, *r as usize);
        }
        stats
    }

    fn leaf(&mut self, stats: &[f64]) {
        let n = stats[0].max(1.0);
        let number = (self.tree.leaves.len() / (self.stride - 1)) as u32;
        self.tree.leaves.extend(stats[1..].iter().map(|s| s / n));
        self.tree.nodes.push(Node::leaf(number));
        self.tree.cover.push(stats[0] as f32);
    }

    fn grow(&mut self, rows: &mut [u32], stats: Vec<f64>, depth: usize) {
        let n = rows.len();
        let pure = self.classification && stats[1..].iter().any(|s| *s == stats[0]);
        if n < 2 * self.min_leaf || depth >= MAX_DEPTH || pure {
            return self.leaf(&stats);
        }
        let Some(split) = self.best_split(rows, &stats) else {
            return self.leaf(&stats);
        };
        let bins = &self.binned.bins[split.feature];
        let goes_left = |r: &u32| {
            let b = bins[*r as usize];
            if b == MISSING_BIN {
                split.nan_left
            } else {
                b as usize <= split.bin
            }
        };
        // Partition in place: the left rows first.
        let mut left = 0;
        for i in 0..n {
            if goes_left(&rows[i]) {
                rows.swap(i, left);
                left += 1;
            }
        }
        let at = self.tree.nodes.len();
        let threshold = self.binned.cuts[split.feature][split.bin];
        self.tree
            .nodes
            .push(Node::split(split.feature, threshold, 0, split.nan_left));
        self.tree.cover.push(stats[0] as f32);
        let (left_rows, right_rows) = rows.split_at_mut(left);
        self.grow(left_rows, split.left, depth + 1);
        self.tree.nodes[at].right = self.tree.nodes.len() as u32;
        self.grow(right_rows, split.right, depth + 1);
    }

    fn best_split(&mut self, rows: &[u32], stats: &[f64]) -> Option<Split> {
        let stride = self.stride;
        let parent = score(stats);
        let features = self.order.len();
        let mut best: Option<Split> = None;
        let mut tried = 0;
        // Reused: the left side's stats so far; a split's two sides; the missing rows'.
        let mut left = vec![0.0; stride];
        let (mut l, mut r) = (vec![0.0; stride], vec![0.0; stride]);
        let mut missing = vec![0.0; stride];
        for i in 0..features {
            if tried == self.mtry {
                break;
            }
            // Drawn without replacement, as they are needed.
            let j = self.rng.random_range(i..features);
            self.order.swap(i, j);
            let feature = self.order[i];
            let bins = &self.binned.bins[feature];
            // The bins the node's rows are in, found as the histogram is filled: small
            // nodes (most of a deep tree's) scan only those, not every bin.
            self.present.clear();
            for row in rows {
                let b = bins[*row as usize] as usize;
                let at = b * stride;
                if self.hist[at] == 0.0 && b != MISSING_BIN as usize {
                    self.present.push(b as u8);
                }
                self.hist[at] += 1.0;
                if self.classification {
                    self.hist[at + 1 + self.y[*row as usize] as usize] += 1.0;
                } else {
                    self.hist[at + 1] += self.y[*row as usize];
                }
            }
            self.present.sort_unstable();
            let missing_at = MISSING_BIN as usize * stride;
            if self.present.len() > 1 {
                // Not constant here: a split point is tried.
                tried += 1;
                missing.copy_from_slice(&self.hist[missing_at..missing_at + stride]);
                let has_missing = missing[0] > 0.0;
                let (lo, hi) = (
                    self.present[0] as usize,
                    self.present[self.present.len() - 1] as usize,
                );
                // Split points: after each bin but the last; or one, at random between.
                let chosen = match self.randomness {
                    Randomness::Forest => None,
                    Randomness::ExtraTrees => Some(self.rng.random_range(lo..hi)),
                };
                left.fill(0.0);
                for (i, b) in self.present.iter().enumerate() {
                    let b = *b as usize;
                    if i + 1 == self.present.len() || chosen.is_some_and(|t| b > t) {
                        break;
                    }
                    let h = &self.hist[b * stride..(b + 1) * stride];
                    left.iter_mut().zip(h).for_each(|(l, h)| *l += h);
                    let b = match chosen {
                        // The last bin at or below the point: the split is at the point.
                        Some(t) if self.present[i + 1] as usize <= t => continue,
                        Some(t) => t,
                        None => b,
                    };
                    for nan_left in [false, true] {
                        if nan_left && !has_missing {
                            continue;
                        }
                        for k in 0..stride {
                            let m = if has_missing { missing[k] } else { 0.0 };
                            let present_right = stats[k] - missing[k] - left[k];
                            l[k] = left[k] + if nan_left { m } else { 0.0 };
                            r[k] = present_right + if nan_left { 0.0 } else { m };
                        }
                        if l[0] < self.min_leaf as f64 || r[0] < self.min_leaf as f64 {
                            continue;
                        }
                        let gain = score(&l) + score(&r) - parent;
                        if best.as_ref().is_none_or(|s| gain > s.gain) {
                            best = Some(Split {
                                feature,
                                bin: b,
                                // Missing values with no rows of their own here go with
                                // the larger side.
                                nan_left: if has_missing { nan_left } else { l[0] >= r[0] },
                                gain,
                                left: l.clone(),
                                right: r.clone(),
                            });
                        }
                    }
                }
            }
            // Clear what was written.
            for b in &self.present {
                let at = *b as usize * stride;
                self.hist[at..at + stride].fill(0.0);
            }
            self.hist[missing_at..missing_at + stride].fill(0.0);
        }
        // A split must reduce impurity by more than rounding.
        best.filter(|s| s.gain > 1e-12 * parent.abs().max(1.0))
    }
}

// --- prediction and SHAP --------------------------------------------------------------------

impl RandomTrees {
    pub fn randomness(&self) -> Randomness {
        self.randomness
    }

    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// The mean of the trees' leaves, `outputs` per row.
    fn predict_raw(&self, x: &Matrix) -> Vec<f64> {
        let outputs = self.outputs;
        let trees = self.roots.len().max(1) as f64;
        by_blocks(x, outputs, |block| {
            let count = block.out.len() / outputs;
            let mut reached = vec![0u32; count];
            let mut walking = Vec::with_capacity(count);
            for root in &self.roots {
                let node = self.nodes.get(*root as usize);
                if node.is_leaf() {
                    let leaf = &self.leaves[node.right as usize * outputs..][..outputs];
                    for out in block.out.chunks_mut(outputs) {
                        out.iter_mut().zip(leaf).for_each(|(o, v)| *o += v);
                    }
                    continue;
                }
                self.nodes.walk(
                    block.missing,
                    *root,
                    block.rows,
                    block.width,
                    &mut reached,
                    &mut walking,
                );
                for (out, leaf) in block.out.chunks_mut(outputs).zip(&reached) {
                    let values = &self.leaves[*leaf as usize * outputs..][..outputs];
                    out.iter_mut().zip(values).for_each(|(o, v)| *o += v);
                }
            }
            block.out.iter_mut().for_each(|v| *v /= trees);
        })
    }

    pub fn predict(&self, x: &Matrix) -> Predictions {
        let out = self.predict_raw(x);
        match self.problem {
            ProblemType::Regression => Predictions::Values(out),
            _ => Predictions::Probabilities {
                classes: self.outputs,
                p: out,
            },
        }
    }

    /// Each column's mean absolute SHAP value over the rows of `x`, in the forest's output:
    /// the value, the positive class's probability (binary), or summed over the classes'
    /// probabilities (multiclass).
    ///
    /// Tree SHAP visits every node of a tree for every row, so the forest's first trees
    /// stand for it, as many as [`SHAP_NODE_VISITS`] allow over the rows of `x` (at least
    /// one): the trees are alike by construction, and their mean SHAP values estimate the
    /// forest's.
    pub fn mean_abs_shap(&self, x: &Matrix) -> Vec<f64> {
        let width = x.columns.len();
        let outputs = self.outputs;
        let explained: Vec<usize> = match self.problem {
            ProblemType::BinaryClassification if outputs == 2 => vec![1],
            _ => (0..outputs).collect(),
        };
        let mut used = 0;
        let mut visits = 0;
        for (t, root) in self.roots.iter().enumerate() {
            let end = self
                .roots
                .get(t + 1)
                .map_or(self.nodes.len(), |r| *r as usize);
            visits += (end - *root as usize) * x.rows;
            if used > 0 && visits > SHAP_NODE_VISITS {
                break;
            }
            used += 1;
        }
        let roots = &self.roots[..used];
        let trees = used.max(1) as f64;
        let sums = (0..x.rows)
            .into_par_iter()
            .fold(
                || vec![0.0; width],
                |mut sums, r| {
                    let row: Vec<f64> = x.columns.iter().map(|c| c[r]).collect();
                    let mut phi = vec![0.0; width * outputs];
                    let mut paths = Vec::new();
                    for root in roots {
                        self.tree_shap(*root as usize, &row, &mut phi, &mut paths);
                    }
                    for (f, sum) in sums.iter_mut().enumerate() {
                        *sum += explained
                            .iter()
                            .map(|k| (phi[f * outputs + k] / trees).abs())
                            .sum::<f64>();
                    }
                    sums
                },
            )
            .reduce(
                || vec![0.0; width],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                    a
                },
            );
        sums.iter().map(|s| s / x.rows.max(1) as f64).collect()
    }

    /// Adds one tree's SHAP values for `row` to `phi` (`outputs` per feature); `paths`
    /// holds one path per depth, reused.
    fn tree_shap(
        &self,
        root: usize,
        row: &[f64],
        phi: &mut [f64],
        paths: &mut Vec<Vec<PathElement>>,
    ) {
        if paths.len() < MAX_DEPTH + 2 {
            paths.resize_with(MAX_DEPTH + 2, || Vec::with_capacity(MAX_DEPTH + 2));
        }
        self.shap_node(root, row, phi, paths, 0, 1.0, 1.0, None);
    }

    /// Lundberg et al.'s recursion: the path at `depth` is its parent's (the features split
    /// on above, each once, with the share of rows and of this row's paths that pass),
    /// extended by the split that led to this node.
    #[allow(clippy::too_many_arguments)]
    fn shap_node(
        &self,
        at: usize,
        row: &[f64],
        phi: &mut [f64],
        paths: &mut [Vec<PathElement>],
        depth: usize,
        zero: f64,
        one: f64,
        feature: Option<usize>,
    ) {
        let (above, here) = paths.split_at_mut(depth);
        let path = &mut here[0];
        path.clear();
        if let Some(parent) = above.last() {
            path.extend_from_slice(parent);
        }
        extend(path, zero, one, feature);
        let node = self.nodes.get(at);
        if node.is_leaf() {
            let values = &self.leaves[node.right as usize * self.outputs..][..self.outputs];
            for i in 1..path.len() {
                let w = unwound_sum(path, i);
                let e = &path[i];
                let f = e.feature.expect("elements past the first name a feature");
                for (k, v) in values.iter().enumerate() {
                    phi[f * self.outputs + k] += w * (e.one - e.zero) * v;
                }
            }
            return;
        }
        let split_feature = node.feature();
        let value = row[split_feature];
        let goes_left = if value.is_nan() {
            node.nan_left()
        } else {
            value < node.threshold
        };
        let (left, right) = (at + 1, node.right as usize);
        let (hot, cold) = if goes_left {
            (left, right)
        } else {
            (right, left)
        };
        let cover = f64::from(self.cover[at]).max(f64::MIN_POSITIVE);
        let hot_zero = f64::from(self.cover[hot]) / cover;
        let cold_zero = f64::from(self.cover[cold]) / cover;
        let (mut incoming_zero, mut incoming_one) = (1.0, 1.0);
        // A feature split on above: its earlier element is taken out, and its fractions
        // carried into this split's.
        if let Some(i) = path.iter().position(|e| e.feature == Some(split_feature)) {
            incoming_zero = path[i].zero;
            incoming_one = path[i].one;
            unwind(path, i);
        }
        let feature = Some(split_feature);
        let (zero, one) = (hot_zero * incoming_zero, incoming_one);
        self.shap_node(hot, row, phi, paths, depth + 1, zero, one, feature);
        let zero = cold_zero * incoming_zero;
        self.shap_node(cold, row, phi, paths, depth + 1, zero, 0.0, feature);
    }
}

/// An element of a tree SHAP path.
#[derive(Debug, Clone, Copy)]
struct PathElement {
    feature: Option<usize>,
    /// The share of rows passing (the feature unknown).
    zero: f64,
    /// Whether this row passes (the feature known): 1 or 0.
    one: f64,
    /// The weight of paths of each size.
    weight: f64,
}

fn extend(path: &mut Vec<PathElement>, zero: f64, one: f64, feature: Option<usize>) {
    let depth = path.len();
    path.push(PathElement {
        feature,
        zero,
        one,
        weight: if depth == 0 { 1.0 } else { 0.0 },
    });
    let d = (depth + 1) as f64;
    for i in (0..depth).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / d;
        path[i].weight = zero * path[i].weight * (depth - i) as f64 / d;
    }
}

fn unwind(path: &mut Vec<PathElement>, index: usize) {
    let depth = path.len() - 1;
    let (one, zero) = (path[index].one, path[index].zero);
    let d = (depth + 1) as f64;
    let mut next_one = path[depth].weight;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = path[i].weight;
            path[i].weight = next_one * d / ((i + 1) as f64 * one);
            next_one = tmp - path[i].weight * zero * (depth - i) as f64 / d;
        } else {
            path[i].weight = path[i].weight * d / (zero * (depth - i) as f64);
        }
    }
    for i in index..depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero = path[i + 1].zero;
        path[i].one = path[i + 1].one;
    }
    path.pop();
}

/// The total weight of the path with element `index` taken out.
fn unwound_sum(path: &[PathElement], index: usize) -> f64 {
    let depth = path.len() - 1;
    let (one, zero) = (path[index].one, path[index].zero);
    let d = (depth + 1) as f64;
    let mut next_one = path[depth].weight;
    let mut total = 0.0;
    for i in (0..depth).rev() {
        if one != 0.0 {
            let tmp = next_one * d / ((i + 1) as f64 * one);
            total += tmp;
            next_one = path[i].weight - tmp * zero * (depth - i) as f64 / d;
        } else {
            total += path[i].weight / zero / ((depth - i) as f64 / d);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;

    /// Four numbers; `a` missing in a tenth of the rows, where the value jumps; `y` a value
    /// with an interaction.
    fn data(rows: usize, seed: u64) -> (Matrix, Vec<f64>) {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64) / (1u64 << 31) as f64
        };
        let mut columns = vec![Vec::new(); 4];
        let mut y = Vec::new();
        for _ in 0..rows {
            let (a, b, c, d) = (next() * 4.0 - 2.0, next() * 4.0 - 2.0, next(), next());
            let missing = next() < 0.1;
            y.push(if missing { 6.0 } else { 2.0 * a } + if b * c > 0.5 { 3.0 } else { 0.0 } + d);
            columns[0].push(if missing { f64::NAN } else { a });
            columns[1].push(b);
            columns[2].push(c);
            columns[3].push((d * 10.0).floor());
        }
        (
            Matrix {
                rows,
                columns,
                categorical: vec![false; 4],
            },
            y,
        )
    }

    fn task(problem: ProblemType, classes: usize) -> Task {
        Task {
            problem,
            classes,
            seed: 5,
        }
    }

    #[test]
    fn forests_learn_values_and_classes_with_missing_values() {
        let (x, y) = data(3_000, 1);
        let (probe, probe_y) = data(2_000, 2);
        let classes: Vec<f64> = probe_y.iter().map(|v| f64::from(*v > 3.0)).collect();
        let train_classes: Vec<f64> = y.iter().map(|v| f64::from(*v > 3.0)).collect();
        for randomness in [Randomness::Forest, Randomness::ExtraTrees] {
            let model = fit(&x, &y, task(ProblemType::Regression, 0), randomness, None).unwrap();
            assert_eq!(model.trees(), TREES);
            let r2 = Metric::R2.score(&probe_y, &model.predict(&probe));
            assert!(r2 > 0.9, "{randomness:?}: R2 {r2}");
            // Rows with `a` missing are told apart by their missing value alone.
            let missing: Vec<usize> = (0..probe.rows)
                .filter(|r| probe.columns[0][*r].is_nan())
                .collect();
            let Predictions::Values(values) = model.predict(&probe.take(&missing)) else {
                panic!("values")
            };
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            assert!(mean > 6.0, "{randomness:?}: rows with `a` missing: {mean}");

            let binary = task(ProblemType::BinaryClassification, 2);
            let model = fit(&x, &train_classes, binary, randomness, None).unwrap();
            let predicted = model.predict(&probe);
            let auc = Metric::Auc.score(&classes, &predicted);
            assert!(auc > 0.95, "{randomness:?}: AUC {auc}");
            for r in 0..probe.rows {
                let p = predicted.row(r);
                assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
            }
            // Stored and loaded, it predicts the same; grown again, it is the same forest.
            let json = serde_json::to_vec(&model).unwrap();
            let back: RandomTrees = serde_json::from_slice(&json).unwrap();
            assert_eq!(back.predict(&probe), predicted);
            let again = fit(&x, &train_classes, binary, randomness, None).unwrap();
            assert_eq!(again.predict(&probe), predicted);
        }
    }

    #[test]
    fn a_deadline_keeps_the_trees_grown_and_a_damaged_model_is_refused() {
        let (x, y) = data(500, 3);
        let quick = fit(
            &x,
            &y,
            task(ProblemType::Regression, 0),
            Randomness::Forest,
            Some(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(quick.trees(), MIN_TREES);

        let mut stored: serde_json::Value = serde_json::to_value(&quick).unwrap();
        let right = stored["right"].as_array_mut().unwrap();
        // The root's right child pointing before it.
        right[0] = serde_json::json!(0);
        let err = serde_json::from_value::<RandomTrees>(stored)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("node 0"), "{err}");
    }

    /// The path-dependent expectation of a tree's leaves given the features in `known`.
    fn expectation(t: &RandomTrees, at: usize, row: &[f64], known: &[bool], k: usize) -> f64 {
        let node = t.nodes.get(at);
        if node.is_leaf() {
            return t.leaves[node.right as usize * t.outputs + k];
        }
        let (left, right) = (at + 1, node.right as usize);
        let f = node.feature();
        if known[f] {
            let v = row[f];
            let goes_left = if v.is_nan() {
                node.nan_left()
            } else {
                v < node.threshold
            };
            expectation(t, if goes_left { left } else { right }, row, known, k)
        } else {
            let (cl, cr) = (f64::from(t.cover[left]), f64::from(t.cover[right]));
            (cl * expectation(t, left, row, known, k) + cr * expectation(t, right, row, known, k))
                / (cl + cr)
        }
    }

    #[test]
    fn tree_shap_equals_shapley_values_by_enumeration() {
        let (x, y) = data(300, 4);
        let classes: Vec<f64> = y
            .iter()
            .map(|v| {
                if *v < 1.0 {
                    0.0
                } else if *v < 4.0 {
                    1.0
                } else {
                    2.0
                }
            })
            .collect();
        let cases = [
            (task(ProblemType::Regression, 0), y.clone()),
            (task(ProblemType::MulticlassClassification, 3), classes),
        ];
        for (task, target) in cases {
            let forest = fit(&x, &target, task, Randomness::Forest, Some(Duration::ZERO)).unwrap();
            let m = x.columns.len();
            let factorial = |n: usize| (1..=n).product::<usize>() as f64;
            for r in [0, 7, 42] {
                let row: Vec<f64> = x.columns.iter().map(|c| c[r]).collect();
                for root in &forest.roots {
                    let mut phi = vec![0.0; m * forest.outputs];
                    forest.tree_shap(*root as usize, &row, &mut phi, &mut Vec::new());
                    for k in 0..forest.outputs {
                        let v = |set: usize| {
                            let known: Vec<bool> = (0..m).map(|f| set >> f & 1 == 1).collect();
                            expectation(&forest, *root as usize, &row, &known, k)
                        };
                        for f in 0..m {
                            let mut shapley = 0.0;
                            for set in 0..(1usize << m) {
                                if set >> f & 1 == 1 {
                                    continue;
                                }
                                let s = set.count_ones() as usize;
                                let weight = factorial(s) * factorial(m - s - 1) / factorial(m);
                                shapley += weight * (v(set | 1 << f) - v(set));
                            }
                            let ours = phi[f * forest.outputs + k];
                            assert!(
                                (ours - shapley).abs() < 1e-9,
                                "row {r} feature {f} output {k}: {ours} != {shapley}"
                            );
                        }
                    }
                }
            }
            assert!(forest.mean_abs_shap(&x).iter().all(|v| v.is_finite()));
        }
    }
}
