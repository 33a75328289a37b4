//! Rows becoming records, both ways they come in:
//! - the streaming ingest's configuration file (TOML, `ingest/src/config.rs`) and its mapping of
//!   JSON payloads onto a group's features (`ingest/src/mapping.rs`): any file parses or is
//!   refused naming the field; any payload becomes a record or a rejection (dead-lettered),
//!   never a panic, and a record it makes names only the group's features;
//! - the CLI's reading of user files and records (`client/src/cli/rows.rs`, `values.rs`): a CSV
//!   file for `quiver ingest`, or a JSON object for `quiver put` (each payload above is also
//!   given as one), becomes typed feature values or a rejection naming the row and the feature.
//!
//! Input: `ingest TOML` NUL `payload` NUL `payload` ..., or, when it starts with a `#csv` line,
//! a CSV file (header row first) after that line.
//! The client's `cli` module is binary-only, so its files are compiled in here as they are.

#![no_main]
// At the crate's root, so `values.rs`'s `super::rows` finds `rows.rs` as in the client, and
// `crate::cli::output` is where `rows.rs` looks for it.
mod cli;
#[allow(dead_code)]
#[path = "../../../client/src/cli/rows.rs"]
mod rows;
#[allow(dead_code)]
#[path = "../../../client/src/cli/values.rs"]
mod values;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quiver_fuzz::{parts, text};
use quiver_ingest::config::IngestConfig;
use quiver_ingest::mapping::{EventTimeFormat, Mapping, MappingConfig, UnknownFields};
use quiver_proto::v1 as pb;

/// The group payloads are mapped onto: every type, scalar and list.
fn described() -> pb::DescribeFeatureGroupResponse {
    let def = |name: &str, t: pb::FeatureType, c: pb::CollectionType| pb::FeatureDefinition {
        feature_name: name.into(),
        feature_type: t as i32,
        collection_type: c as i32,
        vector_dimension: 0,
    };
    use pb::{CollectionType as C, FeatureType as T};
    pb::DescribeFeatureGroupResponse {
        feature_group_name: "g".into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        feature_definitions: vec![
            def("id", T::String, C::None),
            def("ts", T::Fractional, C::None),
            def("n", T::Integral, C::None),
            def("amount", T::Fractional, C::None),
            def("tags", T::String, C::List),
            def("scores", T::Fractional, C::List),
            def("counts", T::Integral, C::Set),
            pb::FeatureDefinition {
                vector_dimension: 2,
                ..def("emb", T::Fractional, C::Vector)
            },
        ],
        ..Default::default()
    }
}

/// A CSV file for `quiver ingest`: every row a record or a rejection.
fn cli_csv(described: &pb::DescribeFeatureGroupResponse, file: &[u8]) {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| quiver_fuzz::scratch_dir("ingest-csv").join("input.csv"));
    std::fs::write(path, file).expect("the scratch file");
    let Ok(table) = rows::read_table(path) else {
        return;
    };
    for cells in table.rows.into_iter().flatten() {
        assert_eq!(cells.len(), table.columns.len());
        if let Ok(values) = values::record(&described.feature_definitions, &table.columns, &cells) {
            assert!(values.len() <= cells.len());
        }
    }
}

/// A JSON object for `quiver put`.
fn cli_json(described: &pb::DescribeFeatureGroupResponse, payload: &[u8]) {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(payload) else {
        return;
    };
    let columns: Vec<String> = object.keys().cloned().collect();
    let Ok(cells) = object
        .values()
        .map(values::json_cell)
        .collect::<Result<Vec<rows::Cell>, _>>()
    else {
        return;
    };
    let _ = values::record(&described.feature_definitions, &columns, &cells);
}

fuzz_target!(|data: &[u8]| {
    let described = described();
    if let Some(file) = data.strip_prefix(b"#csv\n") {
        cli_csv(&described, file);
        return;
    }
    let p = parts(data, 8);
    let config = match IngestConfig::parse(&text(p.first())) {
        Ok(config) => config.sources.first().map(|s| s.mapping()),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            None
        }
    };
    // Whatever the file said, the payloads also go through each event-time format.
    let formats = [
        EventTimeFormat::Auto,
        EventTimeFormat::UnixSeconds,
        EventTimeFormat::UnixMillis,
        EventTimeFormat::Iso8601,
    ];
    let mut mappings: Vec<MappingConfig> = config.into_iter().collect();
    let selector = p.first().and_then(|f| f.first()).copied().unwrap_or(0) as usize;
    mappings.push(MappingConfig {
        event_time_format: formats[selector % formats.len()],
        unknown_fields: if selector & 4 == 0 {
            UnknownFields::Reject
        } else {
            UnknownFields::Ignore
        },
        ..Default::default()
    });
    for payload in p.iter().skip(1) {
        cli_json(&described, payload);
    }
    for config in &mappings {
        let Ok(mapping) = Mapping::new(config, &described) else {
            continue;
        };
        for payload in p.iter().skip(1) {
            if let Ok(record) = mapping.record(payload) {
                assert_eq!(record.feature_group_name, "g");
                for value in &record.record {
                    assert!(
                        described
                            .feature_definitions
                            .iter()
                            .any(|d| d.feature_name == value.feature_name),
                        "a record names {:?}, no feature of the group",
                        value.feature_name
                    );
                }
            }
            let _ = mapping.values(payload);
        }
    }
});
