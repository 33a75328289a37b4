//! Where offline files go, laid out as SageMaker lays them:
//! `<base>/<account>/sagemaker/<region>/offline-store/<group>-<creation epoch>/data/year=YYYY/month=MM/day=DD/hour=HH/<YYYYMMDDTHHMMSSZ>_<16 alphanumerics>.parquet`,
//! partitioned by the row's event time. The catalog files sit beside `data/`, in `catalog/`.

use quiver_types::model::FeatureGroup;
use quiver_types::time::{self, EpochMillis};

/// The Glue database tables go to unless a group names its own (as SageMaker).
pub const DEFAULT_DATABASE: &str = "sagemaker_featurestore";
pub const DEFAULT_CATALOG: &str = "AwsDataCatalog";

/// The base URI a group's files go under: its own S3Uri, or the server's default.
pub fn base_uri<'a>(group: &'a FeatureGroup, default_uri: &'a str) -> &'a str {
    group
        .offline
        .as_ref()
        .and_then(|o| o.s3_uri.as_deref())
        .unwrap_or(default_uri)
        .trim_end_matches('/')
}

/// `<account>/sagemaker/<region>/offline-store/<group>-<creation epoch>`, relative to the base.
pub fn group_dir(account_id: &str, region: &str, group: &FeatureGroup) -> String {
    format!(
        "{account_id}/sagemaker/{region}/offline-store/{}-{}",
        group.name,
        group.creation_time_ms.div_euclid(1000)
    )
}

/// The hour partition of an event time: `year=YYYY/month=MM/day=DD/hour=HH`.
pub fn partition(event_time_ms: EpochMillis) -> String {
    let (year, month, day, hour) = time::civil_hour(event_time_ms);
    format!("year={year:04}/month={month:02}/day={day:02}/hour={hour:02}")
}

/// `<YYYYMMDDTHHMMSSZ>_<16 hex digits>.parquet`: the flush's write time, then the first staged
/// sequence of the flush (12 digits) and the file's index within it (4 digits). The same flush
/// always produces the same names, so a flush redone after a crash overwrites its own files.
pub fn file_name(write_time_ms: EpochMillis, flush_start: u64, index: usize) -> String {
    let iso = time::format_iso8601(write_time_ms);
    // yyyy-MM-ddTHH:mm:ss.SSSZ -> yyyyMMddTHHmmssZ
    let compact: String = iso[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!(
        "{compact}Z_{:012x}{:04x}.parquet",
        flush_start & 0xffff_ffff_ffff,
        index & 0xffff
    )
}

/// The first staged sequence of the flush that wrote the file named `file_name` (the last
/// segment of its path), if the name is one [`file_name`] makes. The 48 bits the name keeps.
pub fn flush_start(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".parquet")?.rsplit_once('_')?.1;
    if digits.len() != 16 {
        return None;
    }
    u64::from_str_radix(&digits[..12], 16).ok()
}

/// The table a group's offline store is catalogued as: its DataCatalogConfig's, or
/// `<group>_<creation epoch>` lower-cased with `-` as `_` (Glue and Athena names).
pub fn table_name(group: &FeatureGroup) -> String {
    match group.offline.as_ref().and_then(|o| o.data_catalog.as_ref()) {
        Some(catalog) => catalog.table_name.clone(),
        None => format!(
            "{}_{}",
            group.name.to_ascii_lowercase().replace('-', "_"),
            group.creation_time_ms.div_euclid(1000)
        ),
    }
}

pub fn database_name(group: &FeatureGroup) -> String {
    group
        .offline
        .as_ref()
        .and_then(|o| o.data_catalog.as_ref())
        .map_or_else(|| DEFAULT_DATABASE.to_string(), |c| c.database.clone())
}

pub fn catalog_name(group: &FeatureGroup) -> String {
    group
        .offline
        .as_ref()
        .and_then(|o| o.data_catalog.as_ref())
        .map_or_else(|| DEFAULT_CATALOG.to_string(), |c| c.catalog.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_names_follow_sagemaker() {
        // 2024-03-05T07:08:09.123Z
        let t = 1_709_622_489_123;
        assert_eq!(partition(t), "year=2024/month=03/day=05/hour=07");
        assert_eq!(
            file_name(t, 0x2a, 3),
            "20240305T070809Z_00000000002a0003.parquet"
        );
        assert_eq!(
            file_name(t, 0x2a, 3).len(),
            "20240305T070809Z_".len() + 16 + 8
        );
        assert_eq!(flush_start(&file_name(t, 0x2a, 3)), Some(0x2a));
        assert_eq!(flush_start("part.parquet"), None);
        assert_eq!(flush_start("20240305T070809Z_00000000002a0003.csv"), None);
    }
}
