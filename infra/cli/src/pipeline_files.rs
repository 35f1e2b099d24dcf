//! Pipelines as files: one YAML document per pipeline, in the DynamoDB item's own shape (the
//! README's "Pipeline items"), checked by the very parser the pipeline function runs
//! ([`ingestlayer::routing::pipelines::Pipeline::from_json`]). A problem names the file, the
//! line and the field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use ingestlayer::routing::pipelines::{Pipeline, MANAGED_FIELDS};

use crate::error::{CliError, FileError};

/// A pipeline file that validated.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    pub path: PathBuf,
    pub id: String,
    /// The document as it is stored (with `enabled` written out).
    pub doc: Value,
}

/// The pipeline files among `paths`: each file itself, each folder's `*.yaml`/`*.yml` (not
/// recursively), in name order.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|source| CliError::Io {
                    what: "reading the folder",
                    path: p.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(CliError::Usage(format!(
            "no pipeline files (*.yaml) in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(files)
}

/// Loads and validates every pipeline file among `paths`. All problems are reported at once;
/// two files with one id are a problem too.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<PipelineFile>, CliError> {
    let mut ok: Vec<PipelineFile> = Vec::new();
    let mut errors = Vec::new();
    for path in expand(paths)? {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(source) => {
                return Err(CliError::Io {
                    what: "reading",
                    path,
                    source,
                })
            }
        };
        match parse(&path, &text) {
            Ok(file) => {
                if let Some(first) = ok.iter().find(|f| f.id == file.id) {
                    errors.push(FileError {
                        line: locate(&text, "id"),
                        path: file.path.clone(),
                        field: "id".into(),
                        message: format!(
                            "{:?} is also the id in {}: each pipeline needs its own",
                            file.id,
                            first.path.display()
                        ),
                    });
                } else {
                    ok.push(file);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(CliError::Files(errors))
    }
}

/// Parses one pipeline file's text.
pub fn parse(path: &Path, text: &str) -> Result<PipelineFile, FileError> {
    let fail = |field: &str, message: String| FileError {
        path: path.to_owned(),
        line: locate(text, field),
        field: field.to_owned(),
        message,
    };
    let mut doc: Value = serde_norway::from_str(text).map_err(|e| FileError {
        path: path.to_owned(),
        line: e.location().map(|l| l.line()),
        field: "<file>".into(),
        message: format!("not a YAML document: {e}"),
    })?;
    let Some(map) = doc.as_object_mut() else {
        return Err(fail(
            "<file>",
            "must be one pipeline: a mapping with id, events, steps and destinations".into(),
        ));
    };
    for managed in MANAGED_FIELDS {
        if map.contains_key(*managed) {
            return Err(fail(
                managed,
                "is written by `ingestlayer pipelines apply`: remove it from the file".into(),
            ));
        }
    }
    map.entry("enabled").or_insert(Value::Bool(true));
    if let Err(e) = Pipeline::from_json(&doc) {
        let field = if e.field == "<item>" {
            "<file>".to_owned()
        } else {
            e.field.clone()
        };
        let mut err = fail(&field, e.message.clone());
        // serde names the mapping an unknown or missing field belongs to; point at the key.
        if let Some(name) = quoted_field(&e.message) {
            let inner = if field == "<file>" {
                name.to_owned()
            } else {
                format!("{field}.{name}")
            };
            err.line = locate(text, &inner).or(err.line);
        }
        return Err(err);
    }
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(PipelineFile {
        path: path.to_owned(),
        id,
        doc,
    })
}

/// The field serde's "unknown field `x`" names.
fn quoted_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The 1-based line of a field path such as `steps[1].expr` in a YAML text: the line of its
/// key (or of the sequence item), `None` when the path is not in the text.
pub fn locate(text: &str, field: &str) -> Option<usize> {
    let root = marked_yaml::parse_yaml(0, text).ok()?;
    if field == "<file>" || field.is_empty() {
        return Some(1);
    }
    let mut node = &root;
    let mut line = None;
    for segment in field.split('.') {
        let (name, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            let map = node.as_mapping()?;
            let (key, value) = map.iter().find(|(k, _)| k.as_str() == name)?;
            line = key.span().start().map(|m| m.line());
            node = value;
        }
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let i: usize = index.parse().ok()?;
            node = node.as_sequence()?.get(i)?;
            line = node.span().start().map(|m| m.line()).or(line);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
id: a
events: [feature.used]
steps:
  - type: filter.match
    expr: \"feature in {export}\"
destinations:
  - type: slack
    channel: \"#alerts\"
";

    fn parse_err(text: &str) -> FileError {
        parse(Path::new("p.yaml"), text).unwrap_err()
    }

    #[test]
    fn a_good_file_becomes_the_stored_document_with_enabled_written_out() {
        let f = parse(Path::new("p.yaml"), GOOD).unwrap();
        assert_eq!(f.id, "a");
        assert_eq!(f.doc["enabled"], Value::Bool(true));
        assert_eq!(f.doc["steps"][0]["expr"], "feature in {export}");
    }

    #[test]
    fn a_bad_expression_names_its_line_and_field() {
        let e = parse_err(&GOOD.replace("feature in {export}", "feature in (("));
        assert_eq!(e.field, "steps[0].expr");
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn an_unknown_key_points_at_the_key() {
        let e = parse_err(&GOOD.replace("    channel:", "    chanel:"));
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.message.contains("chanel"), "{e}");
    }

    #[test]
    fn a_bad_channel_names_the_destination() {
        let e = parse_err(&GOOD.replace("\"#alerts\"", "\"alerts channel\""));
        assert_eq!(e.field, "destinations[0].channel");
        assert_eq!(e.line, Some(8));
    }

    #[test]
    fn broken_yaml_names_its_line() {
        let e = parse_err("id: a\nevents: [feature.used\nsteps: []\n");
        assert_eq!(e.field, "<file>");
        assert!(e.line.is_some_and(|l| l >= 2), "{e}");
    }

    #[test]
    fn fields_apply_writes_are_refused_in_a_file() {
        let e = parse_err(&format!("version: 3\n{GOOD}"));
        assert_eq!(e.field, "version");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn the_repositorys_pipelines_all_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let files = load_all(&[dir]).unwrap();
        assert!(files.len() >= 4);
        assert!(files.iter().any(|f| f.id == "feature-usage-to-alerts"));
    }

    #[test]
    fn two_files_with_one_id_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.yaml"), GOOD).unwrap();
        let Err(CliError::Files(errors)) = load_all(&[dir.path().to_owned()]) else {
            panic!("expected a file error")
        };
        assert_eq!(errors.len(), 1);
        assert!(errors[0].path.ends_with("b.yaml"));
        assert_eq!(errors[0].line, Some(1));
    }
}
