//! Data-preparation recipes (`server/prep`): any document is read or refused naming the field,
//! and a recipe that reads compiles over a small table (its steps' SQL built, planned and, for
//! steps that learn, run), answering a compiled plan or an error, never a panic. Step
//! parameters become SQL: a recipe must never break out of the expression it fills.

#![no_main]
use std::sync::{Arc, OnceLock};

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;
use quiver_fuzz::runtime;
use quiver_prep::Recipe;

fn source() -> &'static RecordBatch {
    static BATCH: OnceLock<RecordBatch> = OnceLock::new();
    BATCH.get_or_init(|| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
            Field::new("city", DataType::Utf8, true),
            Field::new("label", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e", "f"])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(-3.0),
                    Some(1e9),
                    Some(0.0),
                    Some(2.25),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    Some(2),
                    None,
                    Some(4),
                    Some(-5),
                    Some(6),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("Oslo"),
                    Some("Lima"),
                    None,
                    Some("Oslo"),
                    Some("it's"),
                    Some("Lima"),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("yes"),
                    Some("no"),
                    Some("yes"),
                    None,
                    Some("no"),
                    Some("yes"),
                ])),
            ],
        )
        .expect("the source batch")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // recipes arrive as JSON text (the server refuses other bytes before this)
    };
    let recipe = match Recipe::from_json(text) {
        Ok(recipe) => recipe,
        Err(e) => {
            assert!(!e.message().is_empty());
            return;
        }
    };
    // What it writes, it reads back as the same recipe.
    let again = Recipe::from_json(&recipe.to_json()).expect("a recipe's own JSON reads");
    assert_eq!(again, recipe);
    runtime().block_on(async {
        let ctx = quiver_prep::compile::context(None);
        ctx.register_batch(quiver_prep::compile::SOURCE_TABLE, source().clone())
            .expect("the source table");
        let _ = quiver_prep::compile(&ctx, &recipe, None).await;
    });
});
