//! The rows of an entities file, parsed: CSV (a header row, one column the id) or JSON Lines
//! (one object per line), chosen by the file's extension.
//!
//! Each row becomes an entity (`pk = "<entity>#<id>"`, the other fields its attributes) or a
//! rejection with its line number and the reason; one bad row never stops the others. What
//! DynamoDB would refuse (a key above 2048 bytes, an item above 400 KB, a number outside its
//! range, nesting deeper than 32 levels) is rejected here, before any write.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::CliError;

/// DynamoDB's limit on a partition key value, in bytes (the library's lookups use the same).
pub const MAX_KEY_BYTES: usize = ingestlayer::routing::enrich::MAX_KEY_BYTES;
/// DynamoDB's limit on an item, in bytes.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on nested attributes.
pub const MAX_DEPTH: usize = 32;

/// An entity type, as `enrich.entity` steps name it (`user`): the part of the key before `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityName(String);

impl EntityName {
    pub fn parse(s: &str) -> Result<Self, CliError> {
        if s.is_empty() || s.contains('#') || s.chars().any(char::is_whitespace) {
            return Err(CliError::Usage(format!(
                "--entity {s:?}: give the entity name your pipelines' enrich.entity steps use \
                 (e.g. `user`), without `#` or spaces"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The table key of the entity `id`: `user#u_42`.
    pub fn key(&self, id: &str) -> String {
        format!("{}#{id}", self.0)
    }
}

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// By extension: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> Result<Self, CliError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
            _ => Err(CliError::Usage(format!(
                "{}: name the file .csv (a header row, one column per attribute) or .jsonl \
                 (one JSON object per line)",
                path.display()
            ))),
        }
    }
}

/// A row that becomes an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line of the file where the row starts.
    pub line: usize,
    pub id: String,
    /// Everything but the id; never holds `pk`.
    pub attributes: Map<String, Value>,
}

/// A row that does not, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

/// A parsed file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Data rows read (the header and blank lines not counted).
    pub read: usize,
    pub rows: Vec<Row>,
    pub rejected: Vec<Rejected>,
}

/// Parses `text` as `format`, `key` naming the id's column (CSV) or field (JSON Lines).
/// Fails as a whole only when the file cannot be read as rows at all (no `key` column in a
/// CSV header).
pub fn parse(
    format: Format,
    text: &[u8],
    entity: &EntityName,
    key: &str,
) -> Result<Parsed, CliError> {
    let mut parsed = match format {
        Format::Csv => parse_csv(text, key)?,
        Format::JsonLines => parse_jsonl(text, key),
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(parsed.rows.len());
    for row in std::mem::take(&mut parsed.rows) {
        let problem = match seen.get(&row.id) {
            Some(first) => Some(format!(
                "duplicate {key} {:?} (first on line {first}): only the first is imported",
                row.id
            )),
            None => storable(entity, &row).err(),
        };
        match problem {
            Some(reason) => parsed.rejected.push(Rejected {
                line: row.line,
                reason,
            }),
            None => {
                seen.insert(row.id.clone(), row.line);
                rows.push(row);
            }
        }
    }
    parsed.rows = rows;
    parsed.rejected.sort_by_key(|r| r.line);
    Ok(parsed)
}

fn parse_csv(text: &[u8], key: &str) -> Result<Parsed, CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| CliError::Usage(format!("the CSV header row cannot be read: {e}")))?
        .clone();
    let names: Vec<&str> = headers.iter().collect();
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        return Err(CliError::Usage(format!(
            "the CSV header's column {} has no name: name every column",
            i + 1
        )));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(CliError::Usage(format!(
                "the CSV header names column {n:?} twice: each attribute once"
            )));
        }
    }
    let Some(key_at) = names.iter().position(|n| *n == key) else {
        return Err(CliError::Usage(format!(
            "the CSV header has no column {key:?} (it has {}): give --key the column that \
             holds the id",
            names.join(", ")
        )));
    };
    let mut parsed = Parsed::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line() as usize);
                parsed.read += 1;
                let id = record.get(key_at).unwrap_or_default();
                if id.is_empty() {
                    parsed.rejected.push(Rejected {
                        line,
                        reason: format!("no {key}: the id cell is empty"),
                    });
                    continue;
                }
                let attributes = names
                    .iter()
                    .zip(record.iter())
                    .enumerate()
                    .filter(|(i, (_, cell))| *i != key_at && !cell.is_empty())
                    .map(|(_, (n, cell))| ((*n).to_owned(), Value::String(cell.to_owned())))
                    .collect();
                parsed.rows.push(Row {
                    line,
                    id: id.to_owned(),
                    attributes,
                });
            }
            Err(e) => {
                parsed.read += 1;
                let line = e.position().map_or(line, |p| p.line() as usize);
                let reason = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} cells where the header has {expected_len}"),
                    csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
                    _ => e.to_string(),
                };
                parsed.rejected.push(Rejected { line, reason });
            }
        }
    }
    Ok(parsed)
}

fn parse_jsonl(text: &[u8], key: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        parsed.read += 1;
        let reject = |reason: String| Rejected { line, reason };
        let mut object = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                parsed
                    .rejected
                    .push(reject("not a JSON object: one object per line".into()));
                continue;
            }
            Err(e) => {
                let what = e.to_string();
                let what = what.split(" at line ").next().unwrap_or_default();
                parsed
                    .rejected
                    .push(reject(format!("not JSON: {what} (column {})", e.column())));
                continue;
            }
        };
        let id = match object.remove(key) {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            None | Some(Value::Null) => {
                parsed.rejected.push(reject(format!("no {key:?} field")));
                continue;
            }
            Some(other) => {
                parsed.rejected.push(reject(format!(
                    "{key:?} is {other}: an id is a non-empty string or an integer"
                )));
                continue;
            }
        };
        parsed.rows.push(Row {
            line,
            id,
            attributes: object,
        });
    }
    parsed
}

/// Whether DynamoDB can hold the row as an entity item; the reason when it cannot. The
/// reason is a refusal of that row (it becomes [`Rejected::reason`] and the import goes on),
/// not a failure of the command.
fn storable(entity: &EntityName, row: &Row) -> Result<(), String> {
    let pk = entity.key(&row.id);
    if pk.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the key {}#… is {} bytes; DynamoDB keys hold at most {MAX_KEY_BYTES}",
            entity.as_str(),
            pk.len()
        ));
    }
    if row.attributes.contains_key("pk") {
        return Err("a field named `pk`, the table's key: rename it".into());
    }
    let mut size = "pk".len() + pk.len();
    for (name, value) in &row.attributes {
        if name.is_empty() {
            return Err("a field with an empty name".into());
        }
        size += name.len() + value_size(name, value, 1)?;
    }
    if size > MAX_ITEM_BYTES {
        return Err(format!(
            "the item is about {} KB; DynamoDB items hold at most 400 KB",
            size / 1024
        ));
    }
    Ok(())
}

/// The bytes DynamoDB counts for a value (names and strings as UTF-8, numbers about one byte
/// per two digits, one byte per nested element), or why it cannot hold it.
fn value_size(field: &str, v: &Value, depth: usize) -> Result<usize, String> {
    match v {
        Value::Null | Value::Bool(_) => Ok(1),
        Value::String(s) => Ok(s.len()),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                let a = f.abs();
                if a != 0.0 && !(1e-130..1e126).contains(&a) {
                    return Err(format!(
                        "{field}: {n} is outside DynamoDB's number range (1e-130 to 1e126)"
                    ));
                }
            }
            Ok(n.to_string().len() / 2 + 1)
        }
        Value::Array(_) | Value::Object(_) if depth > MAX_DEPTH => Err(format!(
            "{field}: nested deeper than DynamoDB's {MAX_DEPTH} levels"
        )),
        Value::Array(a) => a
            .iter()
            .try_fold(3, |acc, e| Ok(acc + 1 + value_size(field, e, depth + 1)?)),
        Value::Object(o) => o.iter().try_fold(3, |acc, (k, e)| {
            if k.is_empty() {
                return Err(format!("{field}: a nested field with an empty name"));
            }
            Ok(acc + 1 + k.len() + value_size(field, e, depth + 1)?)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> EntityName {
        EntityName::parse("user").unwrap()
    }

    fn lines(p: &Parsed) -> Vec<usize> {
        p.rejected.iter().map(|r| r.line).collect()
    }

    #[test]
    fn a_csv_row_becomes_an_entity_with_its_cells_as_attributes_and_empty_cells_left_out() {
        let text = "id,account,plan,owner\nu_42,acme,pro,maria@yourco.com\nu_7,globex,,\n";
        let p = parse(Format::Csv, text.as_bytes(), &user(), "id").unwrap();
        assert_eq!(p.read, 2);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.rows[0].line, 2);
        assert_eq!(p.rows[0].id, "u_42");
        assert_eq!(
            Value::Object(p.rows[0].attributes.clone()),
            json!({"account": "acme", "plan": "pro", "owner": "maria@yourco.com"})
        );
        assert_eq!(
            Value::Object(p.rows[1].attributes.clone()),
            json!({"account": "globex"})
        );
    }

    #[test]
    fn csv_rejections_name_their_lines_and_the_good_rows_stay() {
        let text =
            "id,plan\nu_1,pro\n,free\nu_2,team,extra\nu_1,free\n\"u_3\",\"multi\nline\"\nu_4,pro\n";
        let p = parse(Format::Csv, text.as_bytes(), &user(), "id").unwrap();
        let ids: Vec<&str> = p.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["u_1", "u_3", "u_4"]);
        assert_eq!(p.rows[1].line, 6);
        assert_eq!(p.rows[2].line, 8, "a quoted newline moves the lines on");
        assert_eq!(lines(&p), [3, 4, 5]);
        assert!(p.rejected[0].reason.contains("empty"), "{:?}", p.rejected);
        assert!(p.rejected[1]
            .reason
            .contains("3 cells where the header has 2"));
        assert!(p.rejected[2].reason.contains("first on line 2"));
        assert_eq!(p.read, 6);
    }

    #[test]
    fn a_csv_without_the_key_column_names_the_columns_it_has() {
        let e = parse(Format::Csv, b"user_id,plan\nu_1,pro\n", &user(), "id").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("no column \"id\"") && m.contains("user_id, plan") && m.contains("--key")
        );
    }

    #[test]
    fn json_lines_keep_their_types_and_reject_bad_lines_by_number() {
        let text = concat!(
            "{\"id\": \"u_1\", \"plan\": \"pro\", \"seats\": 12, \"tags\": [\"a\"], \"beta\": true}\n",
            "\n",
            "{\"id\": \"u_2\", \"plan\": \n",
            "[1, 2]\n",
            "{\"plan\": \"free\"}\n",
            "{\"id\": 42, \"plan\": \"team\"}\r\n",
            "{\"id\": \"u_1\", \"plan\": \"free\"}\n",
            "{\"id\": {\"nested\": 1}}\n",
            "{\"id\": \"u_3\", \"pk\": \"user#other\"}\n",
            "{\"id\": \"u_4\", \"big\": 1e200}\n",
        );
        let p = parse(Format::JsonLines, text.as_bytes(), &user(), "id").unwrap();
        let ids: Vec<&str> = p.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["u_1", "42"]);
        assert_eq!(
            Value::Object(p.rows[0].attributes.clone()),
            json!({"plan": "pro", "seats": 12, "tags": ["a"], "beta": true})
        );
        assert_eq!(p.rows[1].line, 6);
        assert_eq!(lines(&p), [3, 4, 5, 7, 8, 9, 10]);
        let reasons: Vec<&str> = p.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons[0],
            "not JSON: EOF while parsing a value (column 22)"
        );
        assert!(reasons[1].contains("not a JSON object"));
        assert!(reasons[2].contains("no \"id\""));
        assert!(reasons[3].contains("duplicate id \"u_1\" (first on line 1)"));
        assert!(reasons[4].contains("non-empty string or an integer"));
        assert!(reasons[5].contains("`pk`"));
        assert!(reasons[6].contains("big: 1e+200 is outside"), "{reasons:?}");
        assert_eq!(p.read, 9);
    }

    #[test]
    fn what_dynamodb_cannot_hold_is_rejected_before_any_write() {
        let long_id = "x".repeat(MAX_KEY_BYTES);
        let huge = "y".repeat(MAX_ITEM_BYTES);
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            json!({"id": long_id}),
            json!({"id": "u_1", "notes": huge}),
            json!({"id": "u_2", "deep": deep}),
            json!({"id": "u_3", "ok": "fine"}),
        );
        let p = parse(Format::JsonLines, text.as_bytes(), &user(), "id").unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(lines(&p), [1, 2, 3]);
        assert!(p.rejected[0].reason.contains("at most 2048"));
        assert!(p.rejected[1].reason.contains("400 KB"));
        assert!(p.rejected[2].reason.contains("32 levels"));
    }

    #[test]
    fn the_format_comes_from_the_extension_and_the_entity_name_is_checked() {
        assert_eq!(Format::from_path(Path::new("a.CSV")).unwrap(), Format::Csv);
        assert_eq!(
            Format::from_path(Path::new("a.jsonl")).unwrap(),
            Format::JsonLines
        );
        assert!(Format::from_path(Path::new("a.json"))
            .unwrap_err()
            .to_string()
            .contains(".jsonl"));
        assert!(EntityName::parse("us#er").is_err());
        assert_eq!(user().key("u_42"), "user#u_42");
    }
}
