//! The `Notion-Version` header, required on every request
//! (<https://developers.notion.com/reference/versioning>).
//!
//! Versions up to 2022-06-28 see databases as they were before data sources: a database has
//! properties, is queried at `/v1/databases/{id}/query` and parents pages by `database_id`.
//! That keeps working for databases with a single data source; one with several answers the
//! `multiple_data_sources_for_database` validation error
//! (<https://developers.notion.com/docs/upgrade-guide-2025-09-03>). From 2025-09-03 on, the
//! schema, queries and page parents belong to data sources; 2026-03-11 changed only block
//! positioning, `archived` → `in_trash` and a block type
//! (<https://developers.notion.com/docs/upgrade-guide-2026-03-11>), none of which the stand-in
//! serves, so it treats it as 2025-09-03.

use axum::http::HeaderMap;

use crate::reply::NotionError;

/// The API generation a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    /// 2022-06-28 and older: databases without data sources.
    Legacy,
    /// 2025-09-03 and newer: databases contain data sources.
    DataSources,
}

/// Versions before data sources, from the changelog
/// (<https://developers.notion.com/reference/changes-by-version>).
const LEGACY: [&str; 5] = [
    "2021-05-11",
    "2021-05-13",
    "2021-08-16",
    "2022-02-22",
    "2022-06-28",
];
const DATA_SOURCES: [&str; 2] = ["2025-09-03", "2026-03-11"];

pub(crate) fn parse(headers: &HeaderMap) -> Result<ApiVersion, NotionError> {
    let Some(value) = headers.get("notion-version") else {
        return Err(NotionError::missing_version());
    };
    let value = value.to_str().unwrap_or("").trim();
    if LEGACY.contains(&value) {
        Ok(ApiVersion::Legacy)
    } else if DATA_SOURCES.contains(&value) {
        Ok(ApiVersion::DataSources)
    } else {
        // The docs do not show the answer to an unknown version; Notion rejects it with a 400
        // naming the header, which is what this does.
        Err(NotionError::validation(format!(
            "Notion-Version header failed validation: `{value}` is not a supported API version. Supported versions include 2022-06-28 and 2025-09-03."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = value.parse() {
            headers.insert("notion-version", v);
        }
        headers
    }

    #[test]
    fn versions_map_to_their_generation() {
        assert_eq!(parse(&with("2022-06-28")), Ok(ApiVersion::Legacy));
        assert_eq!(parse(&with("2025-09-03")), Ok(ApiVersion::DataSources));
        assert_eq!(parse(&with("2026-03-11")), Ok(ApiVersion::DataSources));
        assert_eq!(
            parse(&HeaderMap::new()).map_err(|e| e.code),
            Err("missing_version")
        );
        assert_eq!(
            parse(&with("2024-01-01")).map_err(|e| e.code),
            Err("validation_error")
        );
    }
}
