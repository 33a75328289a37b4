//! Every step on typed data with nulls, against outputs worked out by hand (or computed here
//! independently of SQL); learned steps replayed on new data; bad recipes refused naming the
//! step and the field.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::json;

use quiver_prep::recipe::Recipe;
use quiver_prep::{FileSources, preview, run_to_file};

const PEOPLE: &str = r#"id,team,score,visits,city,seen,doc
1,red,10.0,3,Paris,2024-01-01T10:00:00,"{""a"":{""b"":1},""tags"":[""x"",""y""]}"
2,red,,5,paris ,2024-01-02T11:30:00,"{""a"":{""b"":2}}"
3,blue,30.0,,Lyon,2024-01-03T00:00:00,not json
4,blue,1000.0,7,,2024-01-04T23:59:59,
5,green,50.0,1,Nice,,"{""a"":{""b"":5}}"
"#;

const TEAMS: &str = "team,coach\nred,Ann\nblue,Bob\nyellow,Cy\n";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("people.csv"), PEOPLE).unwrap();
        std::fs::write(dir.path().join("teams.csv"), TEAMS).unwrap();
        // 10,000 rows for sampling and splits: id, a class (0 to 2, 0 twice as often), a time.
        let mut many = String::from("id,class,t\n");
        for i in 0..10_000 {
            many.push_str(&format!("{i},c{},{}\n", [0, 0, 1, 2][i % 4], i * 10));
        }
        std::fs::write(dir.path().join("many.csv"), many).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn recipe(&self, source: &str, steps: serde_json::Value) -> Recipe {
        let doc = json!({
            "name": "test",
            "source": {"file": {"uri": self.path(source)}},
            "steps": steps,
        });
        Recipe::from_json(&doc.to_string()).expect("a valid recipe")
    }

    /// Runs the recipe over the whole file and returns the fitted recipe, the header and the
    /// rows as text (nulls as "null").
    async fn run(&self, recipe: &Recipe) -> (Recipe, Table) {
        let out = self.dir.path().join(format!("out-{}.parquet", rand_name()));
        let (compiled, rows) = run_to_file(
            None,
            &FileSources,
            recipe,
            &out,
            quiver_prep::recipe::FileFormat::Parquet,
        )
        .await
        .expect("the recipe runs");
        let table = read_parquet(&out);
        assert_eq!(rows as usize, table.rows.len());
        (compiled.recipe, table)
    }

    async fn fails(&self, recipe: serde_json::Value) -> String {
        let doc = json!({
            "name": "test",
            "source": {"file": {"uri": self.path("people.csv")}},
            "steps": recipe,
        });
        let recipe = match Recipe::from_json(&doc.to_string()) {
            Ok(r) => r,
            Err(e) => return e.to_string(),
        };
        let out = self.dir.path().join("failed.parquet");
        match run_to_file(
            None,
            &FileSources,
            &recipe,
            &out,
            quiver_prep::recipe::FileFormat::Parquet,
        )
        .await
        {
            Ok(_) => panic!("the recipe ran"),
            Err(e) => e.to_string(),
        }
    }
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn from_batches(batches: &[RecordBatch]) -> Self {
        let options = FormatOptions::default().with_null("null");
        let mut header = Vec::new();
        let mut rows = Vec::new();
        for batch in batches {
            header = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let formatters: Vec<ArrayFormatter> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for i in 0..batch.num_rows() {
                rows.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
            }
        }
        Self { header, rows }
    }

    fn column(&self, name: &str) -> Vec<String> {
        let i = self
            .header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header));
        self.rows.iter().map(|r| r[i].clone()).collect()
    }

    /// The rows sorted by the first column (as a number).
    fn by_id(mut self) -> Self {
        self.rows
            .sort_by_key(|r| r[0].parse::<i64>().unwrap_or(i64::MAX));
        self
    }

    fn numbers(&self, name: &str) -> Vec<Option<f64>> {
        self.column(name).iter().map(|v| v.parse().ok()).collect()
    }
}

fn read_parquet(path: &Path) -> Table {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    Table::from_batches(&batches)
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9 * (1.0 + b.abs()))
}

/// The export's table and the run query's, computed in the context the recipe was compiled in.
async fn exported_and_run(
    ctx: &datafusion::prelude::SessionContext,
    compiled: &quiver_prep::Compiled,
) -> (Table, Table) {
    let mut tables = Vec::new();
    for sql in [&compiled.sql, &compiled.run_sql] {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        tables.push(Table::from_batches(&batches));
    }
    let ran = tables.pop().unwrap();
    (tables.pop().unwrap(), ran)
}

/// The same rows, numbers equal to rounding (a rolling window summed afresh or slid).
fn assert_same_rows(a: &Table, b: &Table) {
    assert_eq!(a.header, b.header);
    assert_eq!(a.rows.len(), b.rows.len());
    for (i, (x, y)) in a.rows.iter().zip(&b.rows).enumerate() {
        for (j, (u, v)) in x.iter().zip(y).enumerate() {
            let same = u == v
                || matches!((u.parse::<f64>(), v.parse::<f64>()), (Ok(p), Ok(q)) if close(Some(p), q));
            assert!(same, "row {i}, column {}: {u} against {v}", a.header[j]);
        }
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn columns_are_chosen_renamed_cast_and_reordered() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "select", "columns": ["id", "team", "score", "visits"]},
            {"step": "drop", "columns": ["score"]},
            {"step": "rename", "columns": {"team": "squad"}},
            {"step": "cast", "columns": {"visits": "string", "id": "double"}},
            {"step": "reorder", "columns": ["visits"]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(t.header, strings(&["visits", "id", "squad"]));
    let mut rows = t.rows.clone();
    rows.sort();
    assert_eq!(rows[0], strings(&["1", "5.0", "green"]));
    assert!(rows.contains(&strings(&["null", "3.0", "blue"])));
}

#[tokio::test]
async fn a_failed_cast_is_null_or_an_error_as_asked() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "cast", "columns": {"city": "integer"}}]),
    );
    let (_, t) = f.run(&recipe).await;
    assert!(t.column("city").iter().all(|v| v == "null"));
    let error = f
        .fails(json!([{"step": "cast", "columns": {"city": "integer"}, "on_error": "fail"}]))
        .await;
    assert!(error.contains("Paris") || error.contains("cast"), "{error}");
}

#[tokio::test]
async fn rows_are_filtered_sorted_and_deduplicated() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "filter", "expression": "score > 20 OR visits = 5"},
            {"step": "sort", "by": [{"column": "score", "descending": true}]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    // Nulls last, whichever the direction.
    assert_eq!(t.column("id"), strings(&["4", "5", "3", "2"]));

    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "deduplicate", "key": ["team"], "order_by": "id", "keep": "last"},
            {"step": "sort", "by": [{"column": "id"}]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(t.column("id"), strings(&["2", "4", "5"]));

    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "select", "columns": ["team"]},
            {"step": "deduplicate"},
            {"step": "sort", "by": [{"column": "team"}]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(t.column("team"), strings(&["blue", "green", "red"]));

    // A key of three columns: (a, b, c) repeats only in rows 1 and 2, and rows that share two
    // of its columns are kept.
    let rows = "id,a,b,c\n1,x,1,p\n2,x,1,p\n3,x,1,q\n4,x,2,p\n5,y,1,p\n";
    std::fs::write(f.dir.path().join("keys.csv"), rows).unwrap();
    let recipe = f.recipe(
        "keys.csv",
        json!([
            {"step": "deduplicate", "key": ["a", "b", "c"], "order_by": "id", "keep": "last"},
            {"step": "sort", "by": [{"column": "id"}]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(t.column("id"), strings(&["2", "3", "4", "5"]));
}

#[tokio::test]
async fn missing_values_are_dropped_filled_or_flagged() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "missing", "columns": ["score"], "action": "fill_mean"},
            {"step": "missing", "columns": ["visits"], "action": "fill_median"},
            {"step": "missing", "columns": ["city"], "action": "fill_mode"},
        ]),
    );
    let (fitted, t) = f.run(&recipe).await;
    let t = t.by_id();
    let mean = (10.0 + 30.0 + 1000.0 + 50.0) / 4.0;
    assert!(
        close(t.numbers("score")[1], mean),
        "{:?}",
        t.column("score")
    );
    // The median of 1, 3, 5, 7.
    assert!(close(t.numbers("visits")[2], 4.0));
    // Every city is as common: the first in order is the mode (as pandas' mode()[0]).
    assert_eq!(t.column("city")[3], "Lyon");
    let learned = serde_json::to_value(&fitted.steps[0]).unwrap();
    assert_eq!(learned["learned"]["score"], json!(mean));

    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "missing", "columns": ["score"], "action": "indicator"},
            {"step": "missing", "columns": ["visits"], "action": "fill_constant", "value": 0},
            {"step": "missing", "columns": ["score"], "action": "forward_fill", "key": ["team"], "time": "id"},
            {"step": "missing", "columns": ["city"], "action": "drop"},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    assert_eq!(t.column("id"), strings(&["1", "2", "3", "5"]));
    assert_eq!(
        t.column("score_missing"),
        strings(&["false", "true", "false", "false"])
    );
    assert_eq!(t.column("visits"), strings(&["3", "5", "0", "1"]));
    // Red's score carried forward from id 1 to id 2.
    assert_eq!(
        t.column("score"),
        strings(&["10.0", "10.0", "30.0", "50.0"])
    );

    let error = f
        .fails(json!([{"step": "missing", "columns": ["visits"], "action": "fill_constant", "value": 1.5}]))
        .await;
    assert!(
        error.contains("steps[0] (missing)") && error.contains("value"),
        "{error}"
    );
}

fn sample_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[tokio::test]
async fn outliers_are_clipped_or_removed() {
    let f = Fixture::new();
    let scores = [10.0, 30.0, 1000.0, 50.0];
    let (mean, std) = sample_std(&scores);
    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "outliers", "columns": ["score"], "method": "std_dev", "threshold": 1.0, "action": "clip"}]),
    );
    let (fitted, t) = f.run(&recipe).await;
    let t = t.by_id();
    assert!(close(t.numbers("score")[3], mean + std));
    assert_eq!(t.column("score")[1], "null");
    let bounds = serde_json::to_value(&fitted.steps[0]).unwrap()["learned"]["score"].clone();
    assert!(close(bounds[0].as_f64(), mean - std));

    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "outliers", "columns": ["score"], "method": "std_dev", "threshold": 1.0, "action": "remove"}]),
    );
    let (_, t) = f.run(&recipe).await;
    // 1000 is removed; the row without a score stays.
    assert_eq!(t.by_id().column("id"), strings(&["1", "2", "3", "5"]));

    // Quantiles interpolate linearly (pandas' default): the 25th percentile of 10, 30, 50, 1000 is 25.
    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "outliers", "columns": ["score"], "method": "quantile", "lower": 0.25, "upper": 0.75, "action": "clip"}]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    assert_eq!(t.numbers("score")[0], Some(25.0));
    assert_eq!(t.numbers("score")[3], Some(287.5));

    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "outliers", "columns": ["score"], "method": "robust", "action": "remove"}]),
    );
    let (fitted, _) = f.run(&recipe).await;
    let bounds = serde_json::to_value(&fitted.steps[0]).unwrap()["learned"]["score"].clone();
    // median 40; values clipped to [p5, p95] = [13, 857.5]: 13, 30, 50, 857.5.
    // DataFusion's percentile_cont quantizes its interpolation weight to 1e-6.
    let (_, rstd) = sample_std(&[13.0, 30.0, 857.5, 50.0]);
    let high = bounds[1].as_f64().unwrap();
    assert!((high - (40.0 + 5.0 * rstd)).abs() < 0.01, "{bounds}");
}

#[tokio::test]
async fn categories_are_encoded() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "select", "columns": ["id", "team", "visits"]},
            {"step": "encode", "columns": ["team"], "method": "ordinal", "keep_original": true},
            {"step": "encode", "columns": ["team"], "method": "frequency", "keep_original": true},
            {"step": "encode", "columns": ["team"], "method": "one_hot", "max_levels": 2},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    // Levels by count, then name: blue (2), red (2), green (1).
    assert_eq!(
        t.column("team_ordinal"),
        strings(&["1", "1", "0", "0", "2"])
    );
    assert_eq!(
        t.column("team_frequency"),
        strings(&["0.4", "0.4", "0.4", "0.4", "0.2"])
    );
    assert_eq!(t.column("team_blue"), strings(&["0", "0", "1", "1", "0"]));
    assert_eq!(t.column("team_red"), strings(&["1", "1", "0", "0", "0"]));
    assert_eq!(t.column("team_other"), strings(&["0", "0", "0", "0", "1"]));
    assert!(!t.header.contains(&"team".to_string()));

    // Target means: fitted out of fold in the fitting run, the full means on replay.
    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "encode", "columns": ["team"], "method": "target_mean", "target": "visits", "smoothing": 0.0, "folds": 2}]),
    );
    let (fitted, first) = f.run(&recipe).await;
    let e = serde_json::to_value(&fitted.steps[0]).unwrap()["learned"]["team"].clone();
    assert_eq!(e["levels"], json!(["blue", "red", "green"]));
    assert_eq!(e["values"], json!([7.0, 4.0, 1.0]));
    let (_, replay) = f.run(&fitted).await;
    let replay = replay.by_id();
    assert_eq!(
        replay.column("team"),
        strings(&["4.0", "4.0", "7.0", "7.0", "1.0"])
    );
    // Out of fold, no row sees its own target: green's only row gets the overall mean.
    let first = first.by_id();
    assert_eq!(first.numbers("team")[4], Some(4.0));
}

#[tokio::test]
async fn numbers_are_scaled_and_binned() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "scale", "columns": ["visits"], "method": "standard"},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    // Mean 4, population standard deviation sqrt(5) (scikit-learn's StandardScaler).
    assert!(close(t.numbers("visits")[0], -1.0 / 5f64.sqrt()));
    assert_eq!(t.column("visits")[2], "null");

    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "scale", "columns": ["visits"], "method": "min_max"},
            {"step": "bin", "columns": ["score"], "method": "equal_width", "bins": 2},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    assert_eq!(
        t.numbers("visits"),
        vec![Some(2.0 / 6.0), Some(4.0 / 6.0), None, Some(1.0), Some(0.0)]
    );
    assert_eq!(
        t.column("score_bin"),
        strings(&["0", "null", "0", "1", "0"])
    );

    // Robust: (x - median) / IQR; visits 1, 3, 5, 7: median 4, quartiles 2.5 and 5.5.
    let recipe = f.recipe(
        "people.csv",
        json!([{"step": "scale", "columns": ["visits"], "method": "robust"}]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(
        t.by_id().numbers("visits"),
        vec![
            Some(-1.0 / 3.0),
            Some(1.0 / 3.0),
            None,
            Some(1.0),
            Some(-1.0)
        ]
    );

    let recipe = f.recipe(
        "many.csv",
        json!([{"step": "bin", "columns": ["id"], "method": "quantile", "bins": 4}]),
    );
    let (_, t) = f.run(&recipe).await;
    let mut counts = [0; 4];
    for b in t.column("id_bin") {
        counts[b.parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(counts, [2500; 4]);
}

#[tokio::test]
async fn dates_text_regex_and_json_become_features() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "datetime", "column": "seen", "parts": ["year", "month", "day_of_week", "hour"], "cyclic": ["hour"]},
            {"step": "text_stats", "columns": ["city"], "stats": ["length", "words"]},
            {"step": "regex_extract", "column": "doc", "pattern": "\"b\":(\\d+)", "output": "b"},
            {"step": "parse_json", "column": "doc", "fields": {"ab": "a.b", "tag": "tags.1"}},
            {"step": "text", "columns": ["city"], "operation": "trim"},
            {"step": "text", "columns": ["city"], "operation": "lower"},
            {"step": "regex_replace", "column": "team", "pattern": "[aeiou]", "replacement": "_"},
            {"step": "regex_replace", "column": "city", "pattern": "^(.)(.*)$", "replacement": "\\2\\1"},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    assert_eq!(
        t.column("seen_year"),
        strings(&["2024", "2024", "2024", "2024", "null"])
    );
    // 2024-01-01 was a Monday (0).
    assert_eq!(
        t.column("seen_day_of_week"),
        strings(&["0", "1", "2", "3", "null"])
    );
    assert_eq!(
        t.column("seen_hour"),
        strings(&["10", "11", "0", "23", "null"])
    );
    let sin = t.numbers("seen_hour_sin")[0];
    assert!(close(sin, (2.0 * std::f64::consts::PI * 10.0 / 24.0).sin()));
    assert_eq!(
        t.column("city_length"),
        strings(&["5", "6", "4", "null", "4"])
    );
    assert_eq!(
        t.column("city_words"),
        strings(&["1", "1", "1", "null", "1"])
    );
    assert_eq!(
        t.column("city"),
        // Trimmed, lower-cased, then the first letter moved last by a back-reference.
        strings(&["arisp", "arisp", "yonl", "null", "icen"])
    );
    assert_eq!(t.column("b"), strings(&["1", "2", "null", "null", "5"]));
    assert_eq!(t.column("ab"), strings(&["1", "2", "null", "null", "5"]));
    assert_eq!(
        t.column("tag"),
        strings(&["y", "null", "null", "null", "null"])
    );
    assert_eq!(
        t.column("team"),
        strings(&["r_d", "r_d", "bl__", "bl__", "gr__n"])
    );
}

#[tokio::test]
async fn lists_explode_and_series_get_lags_and_windows() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "sql", "query": "SELECT id, make_array(id, id * 10) AS l FROM input WHERE id <= 2"},
            {"step": "explode", "column": "l"},
            {"step": "sort", "by": [{"column": "l"}]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(t.column("l"), strings(&["1", "2", "10", "20"]));

    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "lag", "columns": ["visits"], "key": ["team"], "time": "id", "lags": [1]},
            {"step": "rolling", "columns": ["score"], "key": ["team"], "time": "id", "window": 2, "functions": ["mean", "count"]},
            {"step": "group_by", "key": ["team"], "aggregates": [{"column": "visits", "function": "sum", "as": "team_visits"}], "append": true},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    let t = t.by_id();
    assert_eq!(
        t.column("visits_lag_1"),
        strings(&["null", "3", "null", "null", "null"])
    );
    assert_eq!(
        t.numbers("score_rolling_mean_2"),
        vec![Some(10.0), Some(10.0), Some(30.0), Some(515.0), Some(50.0)]
    );
    assert_eq!(
        t.column("score_rolling_count_2"),
        strings(&["1", "1", "1", "2", "1"])
    );
    assert_eq!(t.column("team_visits"), strings(&["8", "8", "7", "7", "1"]));

    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "group_by", "key": ["team"], "aggregates": [
                {"column": "id", "function": "count"},
                {"column": "score", "function": "mean"},
                {"column": "city", "function": "count_distinct"}]},
            {"step": "sort", "by": [{"column": "team"}]},
        ]),
    );
    let (_, t) = f.run(&recipe).await;
    assert_eq!(
        t.header,
        strings(&["team", "id_count", "score_mean", "city_count_distinct"])
    );
    assert_eq!(t.rows[0], strings(&["blue", "2", "515.0", "1"]));
    assert_eq!(t.rows[2], strings(&["red", "2", "10.0", "2"]));
}

#[tokio::test]
async fn samples_and_splits_are_reproducible() {
    let f = Fixture::new();
    let random = f.recipe(
        "many.csv",
        json!([{"step": "sample", "method": "random", "fraction": 0.3, "seed": 7}]),
    );
    let (_, a) = f.run(&random).await;
    let (_, b) = f.run(&random).await;
    assert!((2700..3300).contains(&a.rows.len()), "{}", a.rows.len());
    assert_eq!(a.by_id().rows, b.by_id().rows);

    let first = f.recipe(
        "many.csv",
        json!([{"step": "sample", "method": "first", "rows": 10}]),
    );
    assert_eq!(f.run(&first).await.1.rows.len(), 10);

    // Stratified: the same share of every class, exactly (rounded up).
    let stratified = f.recipe(
        "many.csv",
        json!([
            {"step": "sample", "method": "stratified", "fraction": 0.1, "column": "class"},
            {"step": "group_by", "key": ["class"], "aggregates": [{"column": "id", "function": "count", "as": "n"}]},
            {"step": "sort", "by": [{"column": "class"}]},
        ]),
    );
    let (_, t) = f.run(&stratified).await;
    assert_eq!(t.column("n"), strings(&["500", "250", "250"]));

    let split = f.recipe(
        "many.csv",
        json!([
            {"step": "split", "method": "key", "column": "class", "splits": [["train", 0.5], ["test", 0.5]]},
            {"step": "group_by", "key": ["class"], "aggregates": [{"column": "split", "function": "count_distinct", "as": "splits"}]},
        ]),
    );
    let (_, t) = f.run(&split).await;
    assert!(
        t.column("splits").iter().all(|n| n == "1"),
        "a class in two splits"
    );

    let random = f.recipe(
        "many.csv",
        json!([{"step": "split", "method": "random", "splits": [["train", 0.7], ["test", 0.3]], "seed": 3}]),
    );
    let (_, t) = f.run(&random).await;
    let train = t.column("split").iter().filter(|s| *s == "train").count();
    assert!((6700..7300).contains(&train), "{train} of 10,000 in train");

    let by_time = f.recipe(
        "many.csv",
        json!([{"step": "split", "method": "time", "column": "t", "splits": [["train", 0.8], ["test", 0.2]]}]),
    );
    let (fitted, t) = f.run(&by_time).await;
    let train = t.column("split").iter().filter(|s| *s == "train").count();
    assert_eq!(train, 8000);
    let cut = serde_json::to_value(&fitted.steps[0]).unwrap()["learned"].clone();
    assert_eq!(cut, json!(["80000"]));
}

#[tokio::test]
async fn sources_are_joined_and_concatenated() {
    let f = Fixture::new();
    let teams = f.path("teams.csv");
    let join = |how: &str| {
        f.recipe(
            "people.csv",
            json!([
                {"step": "select", "columns": ["id", "team"]},
                {"step": "join", "with": {"file": {"uri": teams}}, "how": how, "on": ["team"]},
            ]),
        )
    };
    let (_, t) = f.run(&join("left")).await;
    let t = t.by_id();
    assert_eq!(
        t.column("coach"),
        strings(&["Ann", "Ann", "Bob", "Bob", "null"])
    );
    let (_, t) = f.run(&join("inner")).await;
    assert_eq!(t.rows.len(), 4);
    let (_, t) = f.run(&join("right")).await;
    // Every team of the other side: the keys are its own, yellow has no people.
    let mut right = t.column("team");
    right.sort();
    assert_eq!(right, strings(&["blue", "blue", "red", "red", "yellow"]));
    let (_, t) = f.run(&join("full")).await;
    assert_eq!(t.rows.len(), 6);
    assert!(t.column("team").contains(&"yellow".to_string()));
    let (_, t) = f.run(&join("semi")).await;
    assert_eq!(t.header, strings(&["id", "team"]));
    assert_eq!(t.rows.len(), 4);
    let (_, t) = f.run(&join("anti")).await;
    assert_eq!(t.column("team"), strings(&["green"]));

    let concat = f.recipe(
        "people.csv",
        json!([
            {"step": "select", "columns": ["team", "id"]},
            {"step": "concat", "with": {"file": {"uri": teams}}},
        ]),
    );
    let (_, t) = f.run(&concat).await;
    assert_eq!(t.header, strings(&["team", "id", "coach"]));
    assert_eq!(t.rows.len(), 8);
}

#[tokio::test]
async fn learned_steps_replay_on_new_data() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "people.csv",
        json!([
            {"step": "missing", "columns": ["score"], "action": "fill_mean"},
            {"step": "scale", "columns": ["visits"], "method": "min_max"},
            {"step": "encode", "columns": ["team"], "method": "ordinal"},
        ]),
    );
    let (fitted, _) = f.run(&recipe).await;
    // New data, other values: the fitted recipe applies what it learned from the first.
    std::fs::write(
        f.dir.path().join("people.csv"),
        "id,team,score,visits,city,seen,doc\n9,purple,,13,X,,\n10,red,1.0,1,Y,,\n",
    )
    .unwrap();
    let (refitted, t) = f.run(&fitted).await;
    assert_eq!(refitted, fitted, "a replay learns nothing new");
    let t = t.by_id();
    assert_eq!(t.numbers("score")[0], Some(272.5));
    assert_eq!(t.numbers("visits"), vec![Some(2.0), Some(0.0)]);
    // An unseen level is -1.
    assert_eq!(t.column("team"), strings(&["-1", "1"]));
}

#[tokio::test]
async fn previews_show_the_first_rows_after_a_step() {
    let f = Fixture::new();
    let recipe = f.recipe(
        "many.csv",
        json!([
            {"step": "filter", "expression": "id % 2 = 0"},
            {"step": "missing", "columns": ["t"], "action": "fill_mean"},
        ]),
    );
    let p = preview(None, &FileSources, &recipe, Some(1), 5, 100)
        .await
        .unwrap();
    let t = Table::from_batches(&p.batches);
    assert_eq!(t.rows.len(), 5);
    assert_eq!(t.header, strings(&["id", "class", "t"]));
    assert_eq!(p.compiled.steps, 1);
    // The whole recipe on a 100-row sample: the mean is the sample's.
    let p = preview(None, &FileSources, &recipe, None, 5, 100)
        .await
        .unwrap();
    let learned =
        serde_json::to_value(&p.compiled.recipe.steps[1]).unwrap()["learned"]["t"].clone();
    assert_eq!(learned, json!(490.0));
}

#[tokio::test]
async fn bad_recipes_are_refused_naming_the_step_and_field() {
    let f = Fixture::new();
    let cases = [
        (
            json!([{"step": "drop", "columns": ["nope"]}]),
            "steps[0] (drop): columns: no column 'nope'",
        ),
        (
            json!([{"step": "select", "columns": ["id"]}, {"step": "scale", "columns": ["id", "city"], "method": "standard"}]),
            "steps[1] (scale): columns: no column 'city'",
        ),
        (
            json!([{"step": "scale", "columns": ["city"], "method": "standard"}]),
            "steps[0] (scale): columns: column 'city' is text, not a number",
        ),
        (
            json!([{"step": "filter", "expression": "score >"}]),
            "steps[0] (filter): expression",
        ),
        (
            json!([{"step": "filter", "expression": "nope > 1"}]),
            "steps[0] (filter): expression",
        ),
        (
            json!([{"step": "filter", "expression": "score > 1) OR (1 = 1"}]),
            "steps[0] (filter): expression",
        ),
        (
            json!([{"step": "sql", "query": "DROP TABLE input"}]),
            "steps[0] (sql): query",
        ),
        (
            json!([{"step": "sql", "query": "SELECT 1; SELECT 2"}]),
            "steps[0] (sql): query",
        ),
        (
            json!([{"step": "regex_replace", "column": "city", "pattern": "(", "replacement": ""}]),
            "steps[0] (regex_replace): pattern",
        ),
        (
            json!([{"step": "datetime", "column": "city", "parts": ["year"]}]),
            "steps[0] (datetime): column: 'city' is text",
        ),
        (
            json!([{"step": "missing", "columns": ["score"], "action": "guess"}]),
            "steps[0].action: unknown variant `guess`",
        ),
        (json!([{"step": "frobnicate"}]), "steps[0]"),
        (
            json!([{"step": "rename", "columns": {"id": "team"}}]),
            "steps[0] (rename): columns.id: 'team' is another column's name",
        ),
        (
            json!([{"step": "join", "with": {"file": {"uri": "/nope.csv"}}, "how": "left", "on": ["team"]}]),
            "steps[0].with: uri '/nope.csv'",
        ),
        (
            json!([{"step": "split", "method": "random", "splits": [["a", 0.5], ["b", 0.4]]}]),
            "steps[0] (split): splits: the shares sum to",
        ),
        (
            json!([{"step": "encode", "columns": ["team"], "method": "target_mean", "target": "city"}]),
            "steps[0] (encode): target: 'city' is text",
        ),
    ];
    for (steps, expected) in cases {
        let error = f.fails(steps.clone()).await;
        assert!(error.contains(expected), "{steps}: {error}");
    }
}

#[tokio::test]
async fn the_quality_report_counts_what_is_wrong() {
    let f = Fixture::new();
    let mut csv = String::from("id,kind,amount,constant,label\n");
    for i in 0..200 {
        // Row 199 repeats row 198; amount 10,000 is an outlier; kind is blank in 3 rows.
        let j = if i == 199 { 198 } else { i };
        let kind = if j % 70 == 0 { " " } else { ["a", "b"][j % 2] };
        let amount = if j == 5 {
            "10000".to_string()
        } else {
            format!("{}", j % 10)
        };
        csv.push_str(&format!(
            "{j},{kind},{amount},1,{}\n",
            if j % 10 < 5 { "no" } else { "yes" }
        ));
    }
    std::fs::write(f.dir.path().join("quality.csv"), csv).unwrap();
    let recipe = f.recipe("quality.csv", json!([]));
    let report = quiver_prep::report::report(None, &FileSources, &recipe, Some("label"), 1000)
        .await
        .unwrap();
    assert_eq!(report.rows, 200);
    assert_eq!(report.duplicate_rows, 1);
    let column = |name: &str| report.columns.iter().find(|c| c.name == name).unwrap();
    assert_eq!(column("kind").invalid, 3);
    assert_eq!(column("amount").outliers, 1);
    let kinds: Vec<&str> = report.warnings.iter().map(|w| w.kind.as_str()).collect();
    assert!(
        kinds.contains(&"Constant") && kinds.contains(&"DuplicateRows"),
        "{kinds:?}"
    );
    // amount % 10 decides the label: it predicts it alone, perfectly (a leak).
    assert!(
        report
            .data
            .warnings
            .iter()
            .any(|w| w.kind == "PossibleLeakage"),
        "{:?}",
        report.data.warnings
    );
    let quick = report.quick_model.as_ref().expect("a quick model");
    assert_eq!(quick.problem, "BinaryClassification");
    assert!(quick.metrics["Accuracy"] > 0.9, "{quick:?}");
    let page = quiver_prep::report::html("quality <1>", &report);
    assert!(
        page.contains("<svg") && page.contains("quality &lt;1&gt;") && !page.contains("<script")
    );
}

#[tokio::test]
async fn a_fitted_recipe_runs_in_its_run_order_with_the_output_of_its_own_order() {
    // The run order moves the steps that add columns row by row (one-hot, date parts, text
    // statistics) after the filter, windows and deduplication; the export keeps the recipe's
    // order. Both must give the same table, column order included.
    let f = Fixture::new();
    let mut events = String::from("user,ts,amount,category,note\n");
    for i in 0..2_000u64 {
        // Every 50th row repeats the one before it whole; otherwise (user, ts) is unique.
        let j = if i % 50 == 49 { i - 1 } else { i };
        let amount = if j % 17 == 0 {
            String::new()
        } else {
            format!("{}.5", (j * 7919) % 300)
        };
        let category = ["a", "b", "c", "", "d"][(j % 5) as usize];
        let day = j / 24;
        events.push_str(&format!(
            "{},2024-{:02}-{:02}T{:02}:00:00,{amount},{category},word {}\n",
            j % 37,
            1 + day / 28,
            1 + day % 28,
            j % 24,
            "x ".repeat((j % 4) as usize)
        ));
    }
    std::fs::write(f.dir.path().join("events.csv"), events).unwrap();
    let recipe = f.recipe(
        "events.csv",
        json!([
            {"step": "filter", "expression": "category IS NULL OR category <> 'd'"},
            {"step": "missing", "columns": ["amount"], "action": "fill_mean"},
            {"step": "encode", "columns": ["category"], "method": "one_hot", "max_levels": 3},
            {"step": "text_stats", "columns": ["note"], "stats": ["length", "words"]},
            {"step": "scale", "columns": ["amount"], "method": "standard"},
            {"step": "datetime", "column": "ts", "parts": ["hour", "month"], "cyclic": ["hour"]},
            {"step": "lag", "columns": ["amount"], "key": ["user"], "time": "ts", "lags": [1, 2]},
            {"step": "rolling", "columns": ["amount"], "key": ["user"], "time": "ts", "window": 3, "functions": ["mean", "max"]},
            {"step": "group_by", "key": ["user"], "aggregates": [{"column": "amount", "function": "mean", "as": "user_mean"}], "append": true},
            {"step": "deduplicate", "key": ["user", "ts"], "order_by": "amount", "keep": "first"},
            {"step": "sort", "by": [{"column": "user"}, {"column": "ts"}, {"column": "amount"}]},
        ]),
    );
    let ctx = quiver_prep::run::prepare(None, &FileSources, &recipe, None)
        .await
        .unwrap();
    let compiled = quiver_prep::compile(&ctx, &recipe, None).await.unwrap();
    assert_ne!(compiled.sql, compiled.run_sql, "nothing was reordered");
    let (exported, ran) = exported_and_run(&ctx, &compiled).await;
    assert!(
        compiled.run_sql.contains("__quiver_series_"),
        "{}",
        compiled.run_sql
    );
    assert_eq!(exported.header, ran.header);
    assert!(exported.header.contains(&"category_a".to_string()));
    // Category 'd' filtered out, the repeated rows removed.
    let kept: std::collections::BTreeSet<u64> = (0..2_000u64)
        .map(|i| if i % 50 == 49 { i - 1 } else { i })
        .filter(|j| j % 5 != 4)
        .collect();
    assert_eq!(exported.rows.len(), kept.len());
    assert_same_rows(&exported, &ran);
    // The replay (nothing to fit, nothing cached) gives it too.
    let (_, replayed) = f.run(&compiled.recipe).await;
    assert_same_rows(&replayed, &ran);
}

/// `series.csv`: 3,000 rows of 120 keys (user and region, text) with times that repeat and
/// are sometimes null, and values sometimes null.
fn write_series_csv(f: &Fixture) {
    let mut rows = String::from("user,region,ts,x,n\n");
    for i in 0..3_000u64 {
        let key = i % 120;
        let step = if i % 25 == 0 && i >= 120 {
            i / 120 - 1
        } else {
            i / 120
        };
        let ts = if step == 5 && key % 7 == 0 {
            String::new()
        } else {
            format!("2024-01-{:02}T{:02}:00:00", 1 + step / 24, step % 24)
        };
        let x = if i % 13 == 0 {
            String::new()
        } else {
            format!("{}", ((i * 7919) % 1000) as f64 / 10.0)
        };
        rows.push_str(&format!(
            "u{},{},{ts},{x},{}\n",
            key % 40,
            ["north", "south", "east"][(key % 3) as usize],
            i % 9
        ));
    }
    std::fs::write(f.dir.path().join("series.csv"), rows).unwrap();
}

#[tokio::test]
async fn a_series_block_too_large_for_the_memory_pool_runs_as_sql() {
    let f = Fixture::new();
    write_series_csv(&f);
    let recipe = f.recipe(
        "series.csv",
        json!([
            {"step": "deduplicate", "key": ["user", "region", "ts"], "order_by": "x", "keep": "last"},
            {"step": "lag", "columns": ["x"], "key": ["user", "region"], "time": "ts", "lags": [1]},
            {"step": "rolling", "columns": ["x"], "key": ["user", "region"], "time": "ts", "window": 3, "functions": ["mean"]},
            {"step": "sort", "by": [{"column": "user"}, {"column": "region"}, {"column": "ts"}, {"column": "x"}]},
        ]),
    );
    // 200 KB, one partition, small batches: the block's rows (three times over) do not fit,
    // and the SQL's sorts spill (between about 150 and 300 KB both hold here).
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(200 * 1024, 1.0)
        .build_arc()
        .unwrap();
    let base = datafusion::prelude::SessionContext::new_with_config_rt(
        datafusion::prelude::SessionConfig::new()
            .with_sort_spill_reservation_bytes(16 * 1024)
            .with_batch_size(256)
            .with_target_partitions(1),
        runtime,
    );
    let ctx = quiver_prep::run::prepare(Some(&base), &FileSources, &recipe, None)
        .await
        .unwrap();
    let compiled = quiver_prep::compile(&ctx, &recipe, None).await.unwrap();
    assert!(
        compiled.run_sql.contains("__quiver_series_0"),
        "{}",
        compiled.run_sql
    );
    let (exported, ran) = exported_and_run(&ctx, &compiled).await;
    assert!(ran.rows.len() > 2_800, "{}", ran.rows.len());
    assert_same_rows(&exported, &ran);
    let explained = ctx
        .sql(&format!("EXPLAIN ANALYZE {}", compiled.run_sql))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let explained = arrow::util::pretty::pretty_format_batches(&explained)
        .unwrap()
        .to_string();
    assert_eq!(
        explained.matches("sql_fallbacks=1").count(),
        2,
        "{explained}"
    );
}

#[tokio::test]
async fn series_steps_computed_natively_give_what_their_sql_gives() {
    // Keys of two text columns, times with nulls and repeats, values with nulls: a
    // deduplication on key and time, then lags, every rolling aggregate and group aggregates
    // appended, run natively ([`quiver_prep::series`]) and as the export's SQL.
    let f = Fixture::new();
    write_series_csv(&f);
    let all = ["count", "sum", "mean", "std_dev", "min", "max"];
    let recipe = |extra: serde_json::Value| {
        let mut steps = json!([
            {"step": "deduplicate", "key": ["user", "region", "ts"], "order_by": "x", "keep": "last"},
            {"step": "lag", "columns": ["x"], "key": ["region", "user"], "time": "ts", "lags": [1, 3]},
            {"step": "rolling", "columns": ["x", "x_lag_1"], "key": ["user", "region"], "time": "ts", "window": 4, "functions": all},
            {"step": "group_by", "key": ["user", "region"], "aggregates": [
                {"column": "x", "function": "mean", "as": "x_mean"},
                {"column": "x", "function": "std_dev", "as": "x_std"},
                {"column": "x", "function": "count", "as": "x_count"},
                {"column": "x", "function": "max", "as": "x_max"}
            ], "append": true},
        ]);
        steps
            .as_array_mut()
            .unwrap()
            .extend(extra.as_array().unwrap().clone());
        steps
            .as_array_mut()
            .unwrap()
            .push(json!({"step": "sort", "by": [{"column": "user"}, {"column": "region"}, {"column": "ts"}]}));
        f.recipe("series.csv", steps)
    };
    // An integer sum (Int64, which this pass does not make) keeps its block SQL.
    for (extra, native) in [
        (json!([]), true),
        (
            json!([{"step": "rolling", "columns": ["n"], "key": ["user", "region"], "time": "ts", "window": 2, "functions": ["sum"]}]),
            false,
        ),
    ] {
        let recipe = recipe(extra);
        let ctx = quiver_prep::run::prepare(None, &FileSources, &recipe, None)
            .await
            .unwrap();
        let compiled = quiver_prep::compile(&ctx, &recipe, None).await.unwrap();
        let blocks = compiled.run_sql.matches("__quiver_series_").count();
        assert_eq!(blocks, if native { 2 } else { 1 }, "{}", compiled.run_sql);
        let (exported, ran) = exported_and_run(&ctx, &compiled).await;
        // 3,000 rows less the 96 repeats of a key's time (and one more: a null time twice).
        assert!(
            ran.rows.len() < 3_000 && ran.rows.len() > 2_800,
            "{}",
            ran.rows.len()
        );
        assert!(ran.header.contains(&"x_rolling_std_dev_4".to_string()));
        assert_same_rows(&exported, &ran);
        // The rolling mean of the lag is the mean of the 4 values before, within the key.
        let means = ran.numbers("x_lag_1_rolling_mean_4");
        assert!(means.iter().filter(|m| m.is_some()).count() > 2_000);
    }
}
