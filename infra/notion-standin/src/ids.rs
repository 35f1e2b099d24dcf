//! Notion IDs are UUIDs. Requests may write them with or without dashes
//! (<https://developers.notion.com/reference/intro>: "You may omit dashes from the ID when
//! making requests"); responses always carry the dashed form, so the stand-in keeps that one.

use uuid::Uuid;

/// The dashed, lower-case form of an ID written either way; `None` when it is no UUID.
pub(crate) fn parse(value: &str) -> Option<String> {
    let value = value.trim();
    // Only the two forms Notion documents, not uuid's braced or URN forms.
    if value.len() != 32 && value.len() != 36 {
        return None;
    }
    Uuid::try_parse(value)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

/// A fresh random ID in the dashed form.
pub(crate) fn new() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

/// The ID without dashes, as it appears in `notion.so` URLs.
pub(crate) fn compact(id: &str) -> String {
    id.replace('-', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_accepted_with_or_without_dashes_and_kept_dashed() {
        let dashed = "27a5d30a-1728-4a1e-a788-71341f22fb97";
        assert_eq!(parse(dashed).as_deref(), Some(dashed));
        assert_eq!(
            parse("27A5D30A17284A1EA78871341F22FB97").as_deref(),
            Some(dashed)
        );
        assert_eq!(parse("not-an-id"), None);
        assert_eq!(parse("{27a5d30a-1728-4a1e-a788-71341f22fb97}"), None);
    }
}
