//! Gradient boosting compiled for prediction.
//!
//! `perpetual` keeps each tree's nodes in a `HashMap` and walks one tree over every row before
//! the next, so a batch costs a hash lookup per node visited and a pass over the whole batch
//! per tree (45-52k rows/s for 200 trees on 50 features on this machine). A [`Forest`] is the
//! same model flattened once, when it is fitted or loaded: every tree's nodes in one array,
//! walked for a block of rows at a time (the block's feature values stay in cache while every
//! tree visits them), blocks spread over all cores.
//!
//! The arithmetic is perpetual's, in perpetual's order, so predictions are equal to the last
//! bit (the tests compare them): values are `base_score` plus each tree's leaf weight in tree
//! order, plus the linear regression head where there is one; a binary probability is the mean
//! of the sigmoid of five fold logits (each leaf keeps one weight per training fold); a
//! multiclass probability couples the one-vs-rest probabilities with the class priors, or is
//! a softmax of logits for natively multiclass boosters. The coupling constants are those of
//! perpetual 3.0.0-rc.2, which `Cargo.toml` pins for that reason.

use perpetual::objective::Objective;
use perpetual::tree::core::Tree;
use perpetual::{MultiOutputBooster, PerpetualBooster};
use rayon::prelude::*;

use crate::prepare::Matrix;

/// Rows walked together: their values, copied row-major (1,024 rows x 50 features x 8 bytes
/// = 400 KiB), stay in the core's second-level cache while every tree visits them, and a
/// tree's nodes stay in the first-level cache while it is walked for all of them.
pub(crate) const BLOCK: usize = 1024;

/// Not a categorical set / not a separate missing node.
const NONE: u32 = u32::MAX;

/// A node, 16 bytes. A split's left child is the next node (depth-first order); its right
/// child is `right`. A leaf has the `LEAF` flag, and its leaf number (its place in the tree's
/// table of leaf values) in `right`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Node {
    pub(crate) threshold: f64,
    pub(crate) right: u32,
    /// The feature split on, and the [`FLAGS`] bits.
    pub(crate) feature: u32,
}

/// `Node::feature`'s flag bits.
const NAN_LEFT: u32 = 1 << 30;
/// The top bit: a split is a non-negative `i32` (one instruction fewer per step).
const LEAF: u32 = 1 << 31;
/// A categorical split, or a separate node for missing values: see `Booster::special`.
const SPECIAL: u32 = 1 << 29;
const FLAGS: u32 = NAN_LEFT | LEAF | SPECIAL;
/// A split every row passes on to the next node (missing values too): what a shallow leaf is
/// pushed down by, its `right` set to the next node as well.
const PASS: Node = Node {
    threshold: f64::INFINITY,
    right: 0,
    feature: NAN_LEFT,
};
/// Leaves are pushed down to at most this depth.
const PAD_DEPTH_LIMIT: usize = 8;

/// The most features a split may name.
pub(crate) const MAX_FEATURES: usize = SPECIAL as usize;

impl Node {
    /// A split: rows whose `feature` is below `threshold` go left (to the next node), the
    /// others to `right`; missing values go left when `nan_left`.
    pub(crate) fn split(feature: usize, threshold: f64, right: u32, nan_left: bool) -> Self {
        assert!(feature < MAX_FEATURES, "feature index {feature} too large");
        Node {
            threshold,
            right,
            feature: feature as u32 | if nan_left { NAN_LEFT } else { 0 },
        }
    }

    /// A leaf, with its leaf number.
    pub(crate) fn leaf(number: u32) -> Self {
        Node {
            threshold: f64::NEG_INFINITY,
            right: number,
            feature: LEAF,
        }
    }

    const fn with_right(self, right: u32) -> Self {
        Node { right, ..self }
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.feature & LEAF != 0
    }

    pub(crate) fn feature(&self) -> usize {
        (self.feature & !FLAGS) as usize
    }

    /// Without a special flag (a categorical set, a separate missing node): what
    /// [`Nodes::walk`] reads alone.
    pub(crate) fn plain(&self) -> bool {
        self.feature & SPECIAL == 0
    }

    pub(crate) fn nan_left(&self) -> bool {
        self.feature & NAN_LEFT != 0
    }
}

/// Trees' nodes in one array, as [`Nodes::walk`] reads them. [`Nodes::new`] checks what the
/// walk relies on: a split's left child is the next node and its right child a later one, so
/// every walk stays inside the array and ends at a leaf; and it notes how many features the
/// splits read, which the walk checks each row has.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nodes {
    nodes: Vec<Node>,
    /// 1 + the largest feature a split reads (0 without splits).
    reads: usize,
    /// Per node: the levels below it, itself included, with no leaf (0 at a leaf).
    solid: Vec<u8>,
}

impl Nodes {
    pub(crate) fn new(nodes: Vec<Node>) -> Result<Self, String> {
        let mut reads = 0;
        for (at, node) in nodes.iter().enumerate() {
            if node.is_leaf() {
                continue;
            }
            let right = node.right as usize;
            // (A split that passes every row on has both children next: `PASS`.)
            if at + 1 >= nodes.len() || right <= at || right >= nodes.len() {
                return Err(format!(
                    "node {at}: its children ({}, {right}) are not later nodes of the {} there are",
                    at + 1,
                    nodes.len()
                ));
            }
            reads = reads.max(node.feature() + 1);
        }
        // Children come after their parent.
        let mut solid = vec![0u8; nodes.len()];
        for at in (0..nodes.len()).rev() {
            let node = nodes[at];
            if !node.is_leaf() {
                let below = solid[at + 1].min(solid[node.right as usize]);
                solid[at] = below.saturating_add(1);
            }
        }
        Ok(Nodes {
            nodes,
            reads,
            solid,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn get(&self, at: usize) -> Node {
        self.nodes[at]
    }

    pub(crate) fn as_slice(&self) -> &[Node] {
        &self.nodes
    }

    /// The leaf number each of the block's `reached.len()` rows (row-major in `rows`, `width`
    /// values each) reaches in the tree at `root`, into `reached[row]`; a tree
    /// without special nodes (a categorical set, a separate node for missing values).
    ///
    /// Level by level: one pass moves every row still walking one step down, and keeps only
    /// those not yet at a leaf (`walking`, compacted in place). A step does not depend on
    /// the one before it in the pass, so the core overlaps the loads of many rows, and it has
    /// no branch to mispredict. Above the tree's first leaf (3 levels of 8.6 on average in
    /// the benchmark's model) no row can stop, and a pass only moves them (1.1x the batch
    /// speed). `missing`: whether the rows may hold missing values (NaN), which go where each
    /// node sends them; without, a step is shorter.
    ///
    /// (Measured and not kept: walking a fixed group of rows in lockstep until all are at
    /// leaves, as fast at 12 rows, its best, with 40% of the steps idle; two levels a pass,
    /// 0.75x, a row's two steps depending on each other; the block's values column by
    /// column, no faster.)
    pub(crate) fn walk(
        &self,
        missing: bool,
        root: u32,
        rows: &[f64],
        width: usize,
        reached: &mut [u32],
        walking: &mut Vec<(u32, u32)>,
    ) {
        assert!(
            (root as usize) < self.nodes.len()
                && width >= self.reads
                && rows.len() >= reached.len() * width
                && reached.len() <= u32::MAX as usize,
            "a walk from node {root} of {} over {} rows of {width} values (the trees read {})",
            self.nodes.len(),
            reached.len(),
            self.reads
        );
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi2")
        {
            #[allow(unsafe_code)]
            // SAFETY: the CPU has the features `walk_x86_64_v3` is compiled for.
            unsafe {
                self.walk_x86_64_v3(missing, root, rows, width, reached, walking)
            };
            return;
        }
        if missing {
            self.walk_rows::<true>(root, rows, width, reached, walking);
        } else {
            self.walk_rows::<false>(root, rows, width, reached, walking);
        }
    }

    /// The walk compiled for x86-64-v3 CPUs (AVX2, BMI2: three-operand instructions, so fewer
    /// register copies per step), chosen at run time; the build targets plain x86-64.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx,avx2,bmi1,bmi2,fma,lzcnt,movbe,popcnt")]
    fn walk_x86_64_v3(
        &self,
        missing: bool,
        root: u32,
        rows: &[f64],
        width: usize,
        reached: &mut [u32],
        walking: &mut Vec<(u32, u32)>,
    ) {
        if missing {
            self.walk_rows::<true>(root, rows, width, reached, walking);
        } else {
            self.walk_rows::<false>(root, rows, width, reached, walking);
        }
    }

    /// The child of split `node` (at `at`) that `row` goes to; at a leaf, its `right`.
    #[inline(always)]
    fn child<const MISSING: bool>(
        node: Node,
        at: u32,
        row: u32,
        rows: &[f64],
        width: usize,
    ) -> u32 {
        let feature = (node.feature & !FLAGS) as usize;
        let index = row as usize * width + feature;
        debug_assert!(feature < width && index < rows.len());
        #[allow(unsafe_code)]
        // SAFETY: the walk's `rows` holds its rows of `width` values, `row` is one of them,
        // and every split's feature is below `width` (`walk` checked both); a leaf's value
        // is read too, at feature 0, so the caller walks only when `width` is positive.
        let value = unsafe { *rows.get_unchecked(index) };
        let left =
            (value < node.threshold) | (MISSING && value.is_nan() & (node.feature & NAN_LEFT != 0));
        // Written as `if`, LLVM turns this select into a branch, which is mispredicted about
        // every other step (3x slower, measured).
        std::hint::select_unpredictable(left, at + 1, node.right)
    }

    #[inline(always)]
    fn walk_rows<const MISSING: bool>(
        &self,
        root: u32,
        rows: &[f64],
        width: usize,
        reached: &mut [u32],
        walking: &mut Vec<(u32, u32)>,
    ) {
        walking.clear();
        let root_node = self.nodes[root as usize];
        let mut solid = self.solid[root as usize];
        if root_node.is_leaf() {
            walking.extend((0..reached.len() as u32).map(|row| (row, root)));
        } else {
            // Every row takes the root's step, with its node read once.
            walking.extend((0..reached.len() as u32).map(|row| {
                (
                    row,
                    Self::child::<MISSING>(root_node, root, row, rows, width),
                )
            }));
            solid -= 1;
        }
        // The levels above the tree's first leaf: every row moves down each of them, so a
        // step there is shorter (no leaf to check for, no row to drop, no leaf to note).
        for _ in 0..solid {
            for entry in walking.iter_mut() {
                let (row, at) = *entry;
                debug_assert!((at as usize) < self.nodes.len());
                #[allow(unsafe_code)]
                // SAFETY: `at` is a split (above the first leaf), whose children
                // `Nodes::new` checked are nodes.
                let node = unsafe { *self.nodes.get_unchecked(at as usize) };
                entry.1 = Self::child::<MISSING>(node, at, row, rows, width);
            }
        }
        let mut n = walking.len();
        while n > 0 {
            let mut kept = 0;
            for i in 0..n {
                // The indexing below is unchecked: checks cost a tenth of the walk (measured).
                #[allow(unsafe_code)]
                // SAFETY: `n` is at most `walking.len()`.
                let (row, at) = unsafe { *walking.get_unchecked(i) };
                debug_assert!((at as usize) < self.nodes.len());
                #[allow(unsafe_code)]
                // SAFETY: `at` starts at a node (`walk` checked) and moves to a split's
                // `at + 1` or `right`, which `Nodes::new` checked are nodes.
                let node = unsafe { *self.nodes.get_unchecked(at as usize) };
                debug_assert!((row as usize) < reached.len());
                #[allow(unsafe_code)]
                // SAFETY: `walking` holds row numbers below `reached.len()`.
                // (Written at every step, without a branch: the last, at a leaf, stays.)
                unsafe {
                    *reached.get_unchecked_mut(row as usize) = node.right
                };
                let next = Self::child::<MISSING>(node, at, row, rows, width);
                #[allow(unsafe_code)]
                // SAFETY: `kept` is at most `i`.
                unsafe {
                    *walking.get_unchecked_mut(kept) = (row, next)
                };
                kept += usize::from(node.feature as i32 >= 0);
            }
            n = kept;
        }
    }
}

/// How a booster's trees become its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// `base_score` + leaf weights (+ the regression head): a value, or a logit.
    Raw,
    /// The mean over five folds of sigmoid(`base_score` + the fold's leaf weights).
    FoldProbability,
}

/// A tree's place in `Booster::nodes`.
#[derive(Debug, Clone, Copy)]
struct Root {
    node: u32,
    /// Without special nodes: walked in lockstep.
    plain: bool,
}

/// One `PerpetualBooster`, flattened.
#[derive(Clone)]
struct Booster {
    base_score: f64,
    output: Output,
    roots: Vec<Root>,
    nodes: Nodes,
    /// Per node: (the missing-value child, the index in `categories`), each `NONE` when the
    /// node has none; read for `SPECIAL` nodes only.
    special: Vec<(u32, u32)>,
    /// Per leaf: its weight (Raw) or its five fold weights (FoldProbability), as f64 sums
    /// them (the `f32 as f64` of perpetual).
    leaves: Vec<[f64; 5]>,
    categories: Vec<Box<[u8]>>,
    head: Option<perpetual::booster::core::RegressionLinearHead>,
}

impl Booster {
    fn compile(booster: &PerpetualBooster, output: Output) -> Self {
        let mut compiled = Booster {
            base_score: booster.base_score,
            output,
            roots: Vec::new(),
            nodes: Nodes::default(),
            special: Vec::new(),
            leaves: Vec::new(),
            categories: Vec::new(),
            head: match output {
                Output::Raw => booster.regression_head.clone(),
                // perpetual's probabilities are from the fold logits alone.
                Output::FoldProbability => None,
            },
        };
        let mut nodes = Vec::new();
        for tree in booster.get_prediction_trees() {
            compiled.add_tree(&mut nodes, tree, output);
        }
        compiled.nodes =
            Nodes::new(nodes).expect("perpetual's trees flatten into well-formed nodes");
        compiled
    }

    /// Appends a tree's nodes in depth-first order, a split's left child next to it.
    fn add_tree(&mut self, nodes: &mut Vec<Node>, tree: &Tree, output: Output) {
        let base = nodes.len();
        // perpetual's node numbers in the order they are placed.
        let mut order = Vec::with_capacity(tree.nodes.len());
        let mut stack = vec![(0usize, 0usize)];
        let mut depth = std::collections::HashMap::with_capacity(tree.nodes.len());
        while let Some((num, level)) = stack.pop() {
            let Some(node) = tree.nodes.get(&num) else {
                continue;
            };
            if depth.contains_key(&num) {
                continue;
            }
            depth.insert(num, level);
            order.push(num);
            if !node.is_leaf {
                // The missing branch, when it is its own node, is placed after both.
                if node.missing_node != node.left_child && node.missing_node != node.right_child {
                    stack.push((node.missing_node, level + 1));
                }
                stack.push((node.right_child, level + 1));
                stack.push((node.left_child, level + 1));
            }
        }
        // Leaves above the depth of the shallowest twentieth of them are pushed down to it
        // by splits that send every row on (`PASS`): the levels above a tree's first leaf
        // are walked faster (see `Nodes::walk`), and the few rows reaching those leaves take
        // an extra fast step or two.
        let mut leaf_depths: Vec<usize> = order
            .iter()
            .filter(|num| tree.nodes[*num].is_leaf)
            .map(|num| depth[num])
            .collect();
        leaf_depths.sort_unstable();
        let floor = leaf_depths
            .get(leaf_depths.len() / 20)
            .copied()
            .unwrap_or(0)
            .min(PAD_DEPTH_LIMIT);
        let pad = |num: usize| {
            if tree.nodes[&num].is_leaf {
                floor.saturating_sub(depth[&num])
            } else {
                0
            }
        };
        // A node's place: after those before it in `order` and their padding (a padded
        // leaf's place is its first passing split's).
        let mut position = std::collections::HashMap::with_capacity(order.len());
        let mut next = base;
        for num in &order {
            position.insert(*num, next);
            next += 1 + pad(*num);
        }
        let at = |num: usize| position[&num] as u32;
        let mut plain = true;
        for num in order {
            let node = &tree.nodes[&num];
            for _ in 0..pad(num) {
                let here = nodes.len() as u32;
                nodes.push(PASS.with_right(here + 1));
                self.special.push((NONE, NONE));
            }
            let here = nodes.len() as u32;
            if node.is_leaf {
                let weights = match output {
                    Output::Raw => [f64::from(node.weight_value); 5],
                    Output::FoldProbability => node
                        .leaf_weights
                        .unwrap_or_else(|| {
                            node.stats
                                .as_ref()
                                .map_or([node.weight_value; 5], |s| s.weights)
                        })
                        .map(f64::from),
                };
                nodes.push(Node::leaf(self.leaves.len() as u32));
                self.special.push((NONE, NONE));
                self.leaves.push(weights);
            } else {
                assert_eq!(
                    at(node.left_child),
                    here + 1,
                    "a split's left child follows it"
                );
                let feature = node.split_feature as u32;
                assert_eq!(feature & FLAGS, 0, "feature index {feature} too large");
                let mut flags = 0;
                let mut special = (NONE, NONE);
                if node.missing_node == node.left_child {
                    flags |= NAN_LEFT;
                } else if node.missing_node != node.right_child {
                    special.0 = at(node.missing_node);
                    flags |= SPECIAL;
                }
                if let Some(set) = &node.left_cats {
                    self.categories.push(set.clone());
                    special.1 = (self.categories.len() - 1) as u32;
                    flags |= SPECIAL;
                }
                plain &= flags & SPECIAL == 0;
                nodes.push(Node {
                    threshold: node.split_value,
                    right: at(node.right_child),
                    feature: feature | flags,
                });
                self.special.push(special);
            }
        }
        if std::env::var("FOREST_STATS").is_ok() {
            let mut depths = vec![0usize; nodes.len() - base];
            let mut leaf_depths = Vec::new();
            for i in 0..depths.len() {
                let n = nodes[base + i];
                if n.feature & LEAF != 0 {
                    leaf_depths.push(depths[i]);
                    continue;
                }
                depths[i + 1] = depths[i] + 1;
                depths[n.right as usize - base] = depths[i] + 1;
            }
            let max = leaf_depths.iter().max().unwrap();
            let mean = leaf_depths.iter().sum::<usize>() as f64 / leaf_depths.len() as f64;
            eprintln!(
                "tree: {} leaves, depth mean {mean:.1} max {max}",
                leaf_depths.len()
            );
        }
        self.roots.push(Root {
            node: base as u32,
            plain,
        });
    }

    /// The leaf one row reaches, as perpetual's `get_child_idx` chooses: missing values
    /// first, then a categorical set, then `value < threshold`.
    fn leaf_of_row(&self, root: u32, row: &[f64]) -> u32 {
        let mut at = root as usize;
        loop {
            let node = self.nodes.get(at);
            if node.feature & LEAF != 0 {
                return node.right;
            }
            let value = row[(node.feature & !FLAGS) as usize];
            let (missing, categories) = if node.feature & SPECIAL != 0 {
                self.special[at]
            } else {
                (NONE, NONE)
            };
            at = if value.is_nan() {
                if missing != NONE {
                    missing as usize
                } else if node.feature & NAN_LEFT != 0 {
                    at + 1
                } else {
                    node.right as usize
                }
            } else if categories != NONE {
                let code = value as usize;
                let goes_left = self.categories[categories as usize]
                    .get(code >> 3)
                    .is_some_and(|byte| (byte >> (code & 7)) & 1 == 1);
                if goes_left {
                    at + 1
                } else {
                    node.right as usize
                }
            } else if value < node.threshold {
                at + 1
            } else {
                node.right as usize
            };
        }
    }

    /// Calls `add(leaves)` for every tree, in perpetual's order, with the leaf each row of
    /// the block (row-major, `width` values each) reaches in it.
    #[inline(always)]
    fn for_each_tree(
        &self,
        rows: &[f64],
        width: usize,
        count: usize,
        missing: bool,
        mut add: impl FnMut(&[u32]),
    ) {
        let mut reached = vec![NONE; count];
        let mut walking = Vec::with_capacity(count);
        for root in &self.roots {
            // With no features (a model of one leaf), `walk` would read a value that is not
            // there; `leaf_of_row` reads none at a leaf.
            if root.plain && width > 0 {
                self.nodes
                    .walk(missing, root.node, rows, width, &mut reached, &mut walking);
            } else {
                for (row, leaf) in reached.iter_mut().enumerate() {
                    let values = &rows[row * width..(row + 1) * width];
                    *leaf = self.leaf_of_row(root.node, values);
                }
            }
            add(&reached);
        }
    }

    /// This booster's output for the block's rows (row-major, `width` values each).
    #[inline(always)]
    fn predict_block(&self, rows: &[f64], width: usize, missing: bool, out: &mut [f64]) {
        match self.output {
            Output::Raw => {
                out.fill(self.base_score);
                self.for_each_tree(rows, width, out.len(), missing, |leaves| {
                    for (out, leaf) in out.iter_mut().zip(leaves) {
                        *out += self.leaves[*leaf as usize][0];
                    }
                });
                if let Some(head) = &self.head {
                    for (prediction, row) in out.iter_mut().zip(rows.chunks(width)) {
                        let mut residual = head.intercept;
                        for (c, value) in row.iter().enumerate() {
                            let standardized = if value.is_finite() {
                                (value - head.feature_means[c]) / head.feature_scales[c]
                            } else {
                                0.0
                            };
                            residual += head.coefficients[c] * standardized;
                        }
                        *prediction += head.blend_weight * residual;
                    }
                }
            }
            Output::FoldProbability => {
                let mut logits = vec![[self.base_score; 5]; out.len()];
                self.for_each_tree(rows, width, out.len(), missing, |leaves| {
                    for (logits, leaf) in logits.iter_mut().zip(leaves) {
                        let weights = &self.leaves[*leaf as usize];
                        for fold in 0..5 {
                            logits[fold] += weights[fold];
                        }
                    }
                });
                for (p, fold_logits) in out.iter_mut().zip(&logits) {
                    *p = fold_logits.iter().map(|l| sigmoid(*l)).sum::<f64>() / 5.0;
                }
            }
        }
    }
}

fn sigmoid(v: f64) -> f64 {
    1. / (1. + (-v).exp())
}

/// What a forest predicts.
#[derive(Debug, Clone)]
enum Kind {
    /// One booster's raw output: a regression value.
    Value,
    /// One booster's fold probability: the positive class's probability.
    Binary,
    /// One booster per class, one-vs-rest probabilities coupled with the class priors.
    OneVsRest { priors: Vec<f64>, alpha: f64 },
    /// One booster per class, softmax of their logits.
    Softmax { temperature: f64 },
}

/// A gradient boosting model flattened for prediction; see the module's documentation.
#[derive(Clone)]
pub struct Forest {
    boosters: Vec<Booster>,
    kind: Kind,
}

impl std::fmt::Debug for Forest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forest")
            .field("kind", &self.kind)
            .field("trees", &self.trees())
            .field(
                "nodes",
                &self.boosters.iter().map(|b| b.nodes.len()).sum::<usize>(),
            )
            .finish()
    }
}

impl Forest {
    /// Flattens a regression (squared loss) or binary (log loss) booster.
    pub fn single(booster: &PerpetualBooster) -> Self {
        if matches!(booster.cfg.objective, Objective::LogLoss) {
            Forest {
                boosters: vec![Booster::compile(booster, Output::FoldProbability)],
                kind: Kind::Binary,
            }
        } else {
            Forest {
                boosters: vec![Booster::compile(booster, Output::Raw)],
                kind: Kind::Value,
            }
        }
    }

    /// Flattens a multiclass booster (one output per class).
    pub fn multi(booster: &MultiOutputBooster) -> Self {
        let n = booster.n_boosters;
        if booster.native_multiclass {
            Forest {
                boosters: booster
                    .boosters
                    .iter()
                    .map(|b| Booster::compile(b, Output::Raw))
                    .collect(),
                // perpetual's `native_multiclass_temperature`.
                kind: Kind::Softmax {
                    temperature: match n {
                        0..=4 => 1.0,
                        5 => 1.5,
                        6..=8 => 2.0,
                        _ => 1.75,
                    },
                },
            }
        } else {
            Forest {
                boosters: booster
                    .boosters
                    .iter()
                    .map(|b| {
                        let output = if matches!(b.cfg.objective, Objective::LogLoss) {
                            Output::FoldProbability
                        } else {
                            Output::Raw
                        };
                        Booster::compile(b, output)
                    })
                    .collect(),
                kind: Kind::OneVsRest {
                    priors: booster.class_priors.clone(),
                    // perpetual's `multiclass_probability_alpha`.
                    alpha: match n {
                        3 => 0.25,
                        4 | 5 => 0.5,
                        _ => 0.0,
                    },
                },
            }
        }
    }

    /// Trees, over every output.
    pub fn trees(&self) -> usize {
        self.boosters.iter().map(|b| b.roots.len()).sum()
    }

    /// Outputs per row: 1 (a value or a probability) or one per class.
    pub fn outputs(&self) -> usize {
        match self.kind {
            Kind::Value | Kind::Binary => 1,
            _ => self.boosters.len(),
        }
    }

    /// Row-major predictions: a value, the positive class's probability, or one probability
    /// per class.
    pub fn predict(&self, x: &Matrix) -> Vec<f64> {
        #[cfg(target_arch = "x86_64")]
        let v3 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi2");
        #[cfg(not(target_arch = "x86_64"))]
        let v3 = false;
        by_blocks(x, self.outputs(), |block| {
            #[cfg(target_arch = "x86_64")]
            if v3 {
                #[allow(unsafe_code)]
                // SAFETY: the CPU has the features `predict_block_x86_64_v3` is compiled for.
                unsafe {
                    self.predict_block_x86_64_v3(block.rows, block.width, block.missing, block.out)
                };
                return;
            }
            self.predict_block(block.rows, block.width, block.missing, block.out)
        })
    }

    /// A block's prediction compiled for x86-64-v3 CPUs (the leaf sums in 4-wide AVX2
    /// adds, the walk as `Nodes::walk_x86_64_v3`), chosen at run time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx,avx2,bmi1,bmi2,fma,lzcnt,movbe,popcnt")]
    fn predict_block_x86_64_v3(&self, rows: &[f64], width: usize, missing: bool, out: &mut [f64]) {
        self.predict_block(rows, width, missing, out)
    }

    #[inline(always)]
    fn predict_block(&self, rows: &[f64], width: usize, missing: bool, out: &mut [f64]) {
        match &self.kind {
            Kind::Value | Kind::Binary => self.boosters[0].predict_block(rows, width, missing, out),
            kind => {
                let classes = self.boosters.len();
                let count = out.len() / classes;
                let mut per_class = vec![0.0; count];
                for (k, booster) in self.boosters.iter().enumerate() {
                    booster.predict_block(rows, width, missing, &mut per_class);
                    for (r, v) in per_class.iter().enumerate() {
                        out[r * classes + k] = *v;
                    }
                }
                for row in out.chunks_mut(classes) {
                    match kind {
                        Kind::Softmax { temperature } => softmax(row, *temperature),
                        Kind::OneVsRest { priors, alpha } => couple(row, priors, *alpha),
                        _ => unreachable!("single-output kinds are handled above"),
                    }
                }
            }
        }
    }
}

/// A block of rows to predict: `rows` row-major, `width` values each, and `out` for their
/// predictions, `outputs` per row.
pub(crate) struct Block<'a> {
    pub(crate) rows: &'a [f64],
    pub(crate) width: usize,
    /// Whether any value is missing (NaN).
    pub(crate) missing: bool,
    pub(crate) out: &'a mut [f64],
}

/// Runs `predict` on blocks of [`BLOCK`] rows of `x`, copied row-major, over all cores, and
/// returns the predictions, `outputs` per row.
pub(crate) fn by_blocks(
    x: &Matrix,
    outputs: usize,
    predict: impl Fn(Block<'_>) + Sync,
) -> Vec<f64> {
    let width = x.columns.len();
    let mut out = vec![0.0; x.rows * outputs];
    if outputs == 0 {
        return out;
    }
    // Each worker copies its blocks into one buffer of its own: allocated per block, the
    // buffer (400 KiB) was mapped and zeroed by the kernel each time, a seventh of the cost.
    out.par_chunks_mut(BLOCK * outputs)
        .enumerate()
        .for_each_init(Vec::new, |rows: &mut Vec<f64>, (block, out)| {
            let start = block * BLOCK;
            let count = out.len() / outputs;
            rows.resize(count * width, 0.0);
            let mut missing = false;
            for (c, column) in x.columns.iter().enumerate() {
                for (r, value) in column[start..start + count].iter().enumerate() {
                    rows[r * width + c] = *value;
                    missing |= value.is_nan();
                }
            }
            predict(Block {
                rows,
                width,
                missing,
                out,
            });
        });
    out
}

/// perpetual's `softmax_probabilities_with_temperature`, in place.
fn softmax(logits: &mut [f64], temperature: f64) {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let scale = temperature.max(f64::EPSILON);
    for v in logits.iter_mut() {
        *v = ((*v - max) / scale).exp();
    }
    let normalizer = logits.iter().sum::<f64>().max(f64::EPSILON);
    for v in logits.iter_mut() {
        *v /= normalizer;
    }
}

/// perpetual's `normalize_multiclass_probabilities` (beta 0.25), in place.
fn couple(probabilities: &mut [f64], priors: &[f64], alpha: f64) {
    const BETA: f64 = 0.25;
    for (idx, value) in probabilities.iter_mut().enumerate() {
        let clipped = value.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
        let prior = priors
            .get(idx)
            .copied()
            .unwrap_or(1.0)
            .clamp(f64::EPSILON, 1.0);
        *value = clipped / (1.0 - clipped).powf(alpha) / prior.powf(BETA);
    }
    let sum = probabilities.iter().sum::<f64>();
    if sum <= f64::EPSILON {
        let uniform = 1.0 / probabilities.len().max(1) as f64;
        probabilities.iter_mut().for_each(|v| *v = uniform);
        return;
    }
    probabilities.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use perpetual::{ColumnarMatrix, Matrix as PerpetualMatrix};
    use std::collections::HashSet;

    /// Three numbers (one with missing values) and a category of 5 levels; `y` a value.
    fn data(rows: usize, seed: u64) -> (Matrix, Vec<f64>) {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64) / (1u64 << 31) as f64
        };
        let mut columns = vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        let mut y = Vec::new();
        for _ in 0..rows {
            let a = next() * 4.0 - 2.0;
            let b = next() * 4.0 - 2.0;
            let c = (next() * 5.0).floor();
            let d = next();
            y.push(3.0 * a - 2.0 * b + if c == 2.0 { 3.0 } else { 0.0 } + d);
            columns[0].push(if next() < 0.1 { f64::NAN } else { a });
            columns[1].push(b);
            columns[2].push(c);
            columns[3].push(d);
        }
        (
            Matrix {
                rows,
                columns,
                categorical: vec![false, false, true, false],
            },
            y,
        )
    }

    fn columnar(x: &Matrix) -> ColumnarMatrix<'_, f64> {
        ColumnarMatrix::new(x.columns.iter().map(Vec::as_slice).collect(), None, x.rows)
    }

    fn assert_same_bits(ours: &[f64], theirs: &[f64]) {
        assert_eq!(ours.len(), theirs.len());
        for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "prediction {i}: {a} != {b}");
        }
    }

    #[test]
    fn forests_predict_exactly_what_perpetual_predicts() {
        // Enough rows for several blocks and a partial last one.
        let (x, value) = data(2_000, 3);
        let (probe, _) = data(BLOCK * 3 + 17, 11);
        let categories: HashSet<usize> = [2].into();
        for native_categories in [false, true] {
            let categorical = native_categories.then(|| categories.clone());

            let mut regression = PerpetualBooster::default()
                .set_objective(Objective::SquaredLoss)
                .set_budget(0.5)
                .set_categorical_features(categorical.clone())
                .set_log_iterations(0);
            regression
                .fit_columnar(&columnar(&x), &value, None, None)
                .unwrap();
            let forest = Forest::single(&regression);
            assert!(forest.trees() > 10, "{forest:?}");
            assert_eq!(
                !forest.boosters[0].categories.is_empty(),
                native_categories,
                "categorical splits are made (and only) when asked for"
            );
            assert_same_bits(
                &forest.predict(&probe),
                &regression.predict_columnar(&columnar(&probe), true),
            );

            let class: Vec<f64> = value
                .iter()
                .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
                .collect();
            let mut binary = PerpetualBooster::default()
                .set_objective(Objective::LogLoss)
                .set_budget(0.5)
                .set_categorical_features(categorical.clone())
                .set_log_iterations(0);
            binary
                .fit_columnar(&columnar(&x), &class, None, None)
                .unwrap();
            assert_same_bits(
                &Forest::single(&binary).predict(&probe),
                &binary.predict_proba_columnar(&columnar(&probe), true, false),
            );

            // Three classes, one-vs-rest (what fit_columnar trains).
            let multi = |classes: usize, native: bool| {
                let labels: Vec<usize> = value
                    .iter()
                    .map(|v| (((v + 8.0) / 16.0 * classes as f64) as usize).min(classes - 1))
                    .collect();
                let mut one_hot = vec![0.0; x.rows * classes];
                for (r, c) in labels.iter().enumerate() {
                    one_hot[c * x.rows + r] = 1.0;
                }
                let targets = PerpetualMatrix::new(&one_hot, x.rows, classes);
                let mut booster = MultiOutputBooster::default()
                    .set_n_boosters(classes)
                    .set_objective(Objective::LogLoss)
                    .set_budget(0.5)
                    .set_categorical_features(categorical.clone())
                    .set_log_iterations(0);
                if native {
                    // perpetual's row-major fit takes the native path for six classes
                    // on few columns.
                    let row_major: Vec<f64> = x.columns.concat();
                    let data = PerpetualMatrix::new(&row_major, x.rows, x.columns.len());
                    booster.fit(&data, &targets, None, None).unwrap();
                } else {
                    booster
                        .fit_columnar(&columnar(&x), &targets, None, None)
                        .unwrap();
                }
                assert_eq!(booster.native_multiclass, native);
                booster
            };
            for (classes, native) in [(3, false), (4, false), (6, true)] {
                let booster = multi(classes, native);
                let forest = Forest::multi(&booster);
                assert_eq!(forest.outputs(), classes);
                assert_same_bits(
                    &forest.predict(&probe),
                    &booster.predict_proba_columnar(&columnar(&probe), true),
                );
            }
        }
    }
}
