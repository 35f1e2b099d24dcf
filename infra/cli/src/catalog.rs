//! `ingestlayer pipelines new --from catalog/NAME`: a catalog entry's pipeline copied into
//! the pipelines folder with its channels set, checked by the pipeline function's own
//! parser before it is written.
//!
//! The file is copied as text, so its comments stay; only the channel values change, each
//! at the place the YAML parser found it (a destination's `channel`, a `route` step's `to`
//! and `default` lists). `--channel '#x'` replaces the main channel (the first
//! destination's); `--channel '#old=#new'` renames any other. A channel that is not renamed
//! keeps the catalog's default, and the command says so.

use std::io::Write;
use std::path::{Path, PathBuf};

use ingestlayer::ids::ChannelRef;
use ingestlayer::routing::pipelines::summary;
use marked_yaml::Node;

use crate::error::CliError;
use crate::pipeline_files::parse;

/// The file of a catalog entry that holds its pipeline.
pub const ENTRY_PIPELINE: &str = "pipeline.yaml";

/// A `--channel` argument: the main channel's replacement, or one channel renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelArg {
    /// `#x`: replaces the first destination's channel.
    Main(String),
    /// `#old=#new`: replaces `#old` wherever the pipeline names it.
    Rename { from: String, to: String },
}

impl ChannelArg {
    /// Parses `#x` or `#old=#new`; each channel is checked as a destination's would be.
    pub fn parse(s: &str) -> Result<Self, CliError> {
        let channel = |c: &str| {
            ChannelRef::parse(c.trim())
                .map(|c| c.to_string())
                .map_err(|e| CliError::Usage(format!("--channel {s:?}: {e}")))
        };
        match s.split_once('=') {
            Some((from, to)) => Ok(Self::Rename {
                from: channel(from)?,
                to: channel(to)?,
            }),
            None => Ok(Self::Main(channel(s)?)),
        }
    }
}

/// What `new` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub path: PathBuf,
    pub id: String,
    pub events: Vec<String>,
    /// The pipeline's channels, in the order its destinations list them.
    pub channels: Vec<String>,
    /// The channels kept from the catalog because no `--channel` renamed them.
    pub kept: Vec<String>,
}

/// Copies the entry at `from` (a folder holding `pipeline.yaml`) into `dir/<entry>.yaml`
/// with `channels` applied. An existing file is kept unless `force`; nothing is written
/// unless the result validates.
pub fn new_from(
    from: &Path,
    channels: &[ChannelArg],
    dir: &Path,
    force: bool,
) -> Result<Created, CliError> {
    let source = if from.is_dir() {
        from.join(ENTRY_PIPELINE)
    } else {
        from.to_owned()
    };
    let text = std::fs::read_to_string(&source).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::Usage(format!(
            "no catalog entry at {}: expected a folder holding {ENTRY_PIPELINE} (see catalog/README.md)",
            from.display()
        )),
        _ => CliError::Io {
            what: "reading",
            path: source.clone(),
            source: e,
        },
    })?;
    // The entry must be valid as it ships, so an error below is about the channels.
    parse(&source, &text).map_err(|e| CliError::Files(vec![e]))?;
    let name = entry_name(from, &source)?;
    let target = dir.join(format!("{name}.yaml"));
    if target.exists() && !force {
        return Err(CliError::Usage(format!(
            "{} exists: pass --force to replace it",
            target.display()
        )));
    }

    let (edited, kept) = set_channels(&text, channels)?;
    let file = parse(&target, &edited).map_err(|e| CliError::Files(vec![e]))?;
    let s = summary(&file.doc);
    let created = Created {
        path: target.clone(),
        id: file.id.clone(),
        events: s.events.iter().map(|e| (*e).to_owned()).collect(),
        channels: s.channels.iter().map(|c| (*c).to_owned()).collect(),
        kept,
    };
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        what: "creating the folder",
        path: dir.to_owned(),
        source,
    })?;
    std::fs::write(&target, edited).map_err(|source| CliError::Io {
        what: "writing",
        path: target,
        source,
    })?;
    Ok(created)
}

/// The entry's name: its folder's name (`catalog/failed-logins` → `failed-logins`).
fn entry_name(from: &Path, source: &Path) -> Result<String, CliError> {
    let folder = if source.file_name().is_some_and(|f| f == ENTRY_PIPELINE) {
        source.parent()
    } else {
        None
    };
    let name = folder
        .and_then(Path::file_name)
        .or_else(|| source.file_stem())
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != ".");
    name.map(str::to_owned).ok_or_else(|| {
        CliError::Usage(format!(
            "cannot name the new file after {}: give the entry's folder, e.g. catalog/failed-logins",
            from.display()
        ))
    })
}

/// Where a channel stands in the text: its line (1-based), its column (0-based, in
/// characters) and its value.
struct Place {
    line: usize,
    column: usize,
    value: String,
}

/// Every channel the pipeline names, in document order: `destinations[*].channel`, then
/// each `route` step's `routes[*].to[*]` and `default[*]`.
fn channel_places(text: &str) -> Result<(Vec<Place>, Vec<Place>), CliError> {
    let root = marked_yaml::parse_yaml(0, text)
        .map_err(|e| CliError::Usage(format!("the catalog entry is not YAML: {e}")))?;
    let place = |n: &Node| {
        let scalar = n.as_scalar()?;
        let start = scalar.span().start()?;
        Some(Place {
            line: start.line(),
            column: start.column().saturating_sub(1),
            value: scalar.as_str().to_owned(),
        })
    };
    let mut destinations = Vec::new();
    let mut routes = Vec::new();
    let Some(map) = root.as_mapping() else {
        return Ok((destinations, routes));
    };
    if let Some(list) = map.get_sequence("destinations") {
        for d in list.iter() {
            if let Some(p) = d
                .as_mapping()
                .and_then(|m| m.get_node("channel"))
                .and_then(place)
            {
                destinations.push(p);
            }
        }
    }
    if let Some(steps) = map.get_sequence("steps") {
        for step in steps.iter().filter_map(Node::as_mapping) {
            let mut lists: Vec<&marked_yaml::types::MarkedSequenceNode> = Vec::new();
            if let Some(rs) = step.get_sequence("routes") {
                lists.extend(
                    rs.iter()
                        .filter_map(Node::as_mapping)
                        .filter_map(|r| r.get_sequence("to")),
                );
            }
            lists.extend(step.get_sequence("default"));
            for list in lists {
                routes.extend(list.iter().filter_map(place));
            }
        }
    }
    Ok((destinations, routes))
}

/// The text with `channels` applied, and the channels left as they were.
fn set_channels(text: &str, channels: &[ChannelArg]) -> Result<(String, Vec<String>), CliError> {
    let (destinations, routes) = channel_places(text)?;
    let Some(main) = destinations.first().map(|p| p.value.clone()) else {
        return Err(CliError::Usage(
            "the catalog entry has no destination with a channel".into(),
        ));
    };
    let mut renames: Vec<(String, String)> = Vec::new();
    let mut mains = 0;
    for c in channels {
        let (from, to) = match c {
            ChannelArg::Main(to) => {
                mains += 1;
                (main.clone(), to.clone())
            }
            ChannelArg::Rename { from, to } => (from.clone(), to.clone()),
        };
        if !destinations.iter().any(|p| p.value == from) {
            let names: Vec<&str> = destinations.iter().map(|p| p.value.as_str()).collect();
            return Err(CliError::Usage(format!(
                "--channel {from}=…: the pipeline posts to {}, not {from}",
                names.join(", ")
            )));
        }
        if renames.iter().any(|(f, _)| *f == from) {
            return Err(CliError::Usage(format!(
                "--channel: {from} is renamed twice"
            )));
        }
        renames.push((from, to));
    }
    if mains > 1 {
        return Err(CliError::Usage(
            "--channel '#x' sets the main channel once; rename the others with --channel '#old=#new'"
                .into(),
        ));
    }
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    // Right to left within a line, so earlier columns stay valid.
    let mut places: Vec<&Place> = destinations.iter().chain(&routes).collect();
    places.sort_by_key(|p| (p.line, std::cmp::Reverse(p.column)));
    for p in places {
        let Some((_, to)) = renames.iter().find(|(from, _)| *from == p.value) else {
            continue;
        };
        let Some(line) = p.line.checked_sub(1).and_then(|i| lines.get_mut(i)) else {
            continue;
        };
        replace_scalar(line, p.column, &p.value, to).ok_or_else(|| {
            CliError::Usage(format!(
                "could not find the channel {} on line {} of the catalog entry",
                p.value, p.line
            ))
        })?;
    }
    let mut kept: Vec<String> = destinations
        .iter()
        .map(|p| p.value.clone())
        .filter(|v| !renames.iter().any(|(from, _)| from == v))
        .collect();
    kept.dedup();
    Ok((lines.join("\n"), kept))
}

/// Replaces the scalar `value` that starts at or after character `column` of `line` (quoted
/// or plain) with `to`, double-quoted. `None` when it is not there.
fn replace_scalar(line: &mut String, column: usize, value: &str, to: &str) -> Option<()> {
    let start = line
        .char_indices()
        .nth(column)
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    let rest = &line[start..];
    let quoted = serde_json::to_string(to).ok()?;
    for form in [
        format!("\"{value}\""),
        format!("'{value}'"),
        value.to_owned(),
    ] {
        if let Some(at) = rest.find(&form) {
            let at = start + at;
            line.replace_range(at..at + form.len(), &quoted);
            return Some(());
        }
    }
    None
}

/// Prints what `new` wrote and the command that applies it.
pub fn print_created(c: &Created, dir: &Path, out: &mut dyn Write, as_json: bool) {
    let next = format!("ingestlayer pipelines apply {}", dir_arg(dir));
    if as_json {
        let doc = serde_json::json!({
            "path": c.path,
            "id": c.id,
            "events": c.events,
            "channels": c.channels,
            "kept": c.kept,
            "next": next,
        });
        writeln!(out, "{doc}").ok();
        return;
    }
    writeln!(
        out,
        "wrote {}  ({}: {} → {})",
        c.path.display(),
        c.id,
        c.events.join(", "),
        c.channels.join(", ")
    )
    .ok();
    for k in &c.kept {
        writeln!(
            out,
            "  {k} is the catalog's default; rename it with --channel '{k}=#your-channel'"
        )
        .ok();
    }
    writeln!(out, "next: {next}").ok();
}

/// The folder as the user would type it: `pipelines/`.
fn dir_arg(dir: &Path) -> String {
    let s = dir.display().to_string();
    if s.ends_with('/') {
        s
    } else {
        format!("{s}/")
    }
}

/// The entries of a catalog folder: each subfolder holding a `pipeline.yaml`, by name.
pub fn entries(catalog: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(catalog)
        .map_err(|source| CliError::Io {
            what: "reading the catalog",
            path: catalog.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(ENTRY_PIPELINE).is_file())
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "\
# Feature usage: free plans on paid features to #upsell.
id: feature-usage
events: [feature.used]
steps:
  - type: filter.match
    expr: \"feature in {export, api}\"
destinations:
  - type: slack
    channel: \"#alerts\"   # the main channel
  - type: slack
    channel: '#upsell'
";

    fn entry(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let e = dir.path().join("catalog/feature-usage");
        std::fs::create_dir_all(&e).unwrap();
        std::fs::write(e.join(ENTRY_PIPELINE), text).unwrap();
        (dir, e)
    }

    #[test]
    fn the_main_channel_is_replaced_and_the_others_are_kept_and_named() {
        let (dir, e) = entry(TWO);
        let out = dir.path().join("pipelines");
        let c = new_from(&e, &[ChannelArg::parse("#product").unwrap()], &out, false).unwrap();
        assert_eq!(c.path, out.join("feature-usage.yaml"));
        assert_eq!(c.channels, ["#product", "#upsell"]);
        assert_eq!(c.kept, ["#upsell"]);
        let text = std::fs::read_to_string(&c.path).unwrap();
        assert!(
            text.contains("channel: \"#product\"   # the main channel"),
            "{text}"
        );
        assert!(text.starts_with("# Feature usage: free plans on paid features to #upsell."));
    }

    #[test]
    fn a_rename_changes_one_channel_and_bare_names_get_their_hash() {
        let (dir, e) = entry(TWO);
        let out = dir.path().join("p");
        let args = [
            ChannelArg::parse("#upsell=sales").unwrap(),
            ChannelArg::parse("product").unwrap(),
        ];
        let c = new_from(&e, &args, &out, false).unwrap();
        assert_eq!(c.channels, ["#product", "#sales"]);
        assert!(c.kept.is_empty());
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let (dir, e) = entry(TWO);
        let out = dir.path().join("p");
        new_from(&e, &[], &out, false).unwrap();
        let err = new_from(&e, &[], &out, false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        new_from(&e, &[ChannelArg::parse("#x").unwrap()], &out, true).unwrap();
        let text = std::fs::read_to_string(out.join("feature-usage.yaml")).unwrap();
        assert!(text.contains("\"#x\""), "{text}");
    }

    #[test]
    fn bad_channels_and_unknown_renames_are_refused_before_writing() {
        let (dir, e) = entry(TWO);
        let out = dir.path().join("p");
        let err = ChannelArg::parse("#Has Spaces").unwrap_err();
        assert!(err.to_string().contains("--channel"), "{err}");
        let err = new_from(&e, &[ChannelArg::parse("#nope=#x").unwrap()], &out, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("#alerts, #upsell"), "{err}");
        let twice = [
            ChannelArg::parse("#a").unwrap(),
            ChannelArg::parse("#b").unwrap(),
        ];
        assert!(new_from(&e, &twice, &out, false).is_err());
        assert!(!out.exists());
    }

    #[test]
    fn a_missing_entry_says_what_an_entry_is() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_from(&dir.path().join("catalog/nope"), &[], dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipeline.yaml"), "{err}");
    }

    #[test]
    fn an_invalid_entry_is_refused_with_its_line() {
        let (dir, e) = entry(&TWO.replace("{export, api}", "(("));
        let err = new_from(&e, &[], dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pipeline.yaml:6: steps[0].expr"), "{err}");
    }

    #[test]
    fn route_lists_follow_their_channel() {
        let text = "\
id: r
events: [feature.used]
steps:
  - type: route
    routes:
      - when: \"plan == 'free'\"
        to: [\"#upsell\"]
    default: [\"#alerts\"]
destinations:
  - type: slack
    channel: \"#alerts\"
  - type: slack
    channel: \"#upsell\"
";
        let args = [
            ChannelArg::parse("#product").unwrap(),
            ChannelArg::parse("#upsell=#sales").unwrap(),
        ];
        let (edited, kept) = set_channels(text, &args).unwrap();
        assert!(kept.is_empty());
        assert!(edited.contains("to: [\"#sales\"]"), "{edited}");
        assert!(edited.contains("default: [\"#product\"]"), "{edited}");
        assert!(edited.contains("channel: \"#product\""), "{edited}");
        assert!(!edited.contains("#alerts") && !edited.contains("#upsell"));
    }

    #[test]
    fn the_repositorys_catalog_entries_all_validate() {
        let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog");
        let all = entries(&catalog).unwrap();
        assert!(all.len() >= 18, "{all:?}");
        let mut problems = Vec::new();
        for e in &all {
            let path = e.join(ENTRY_PIPELINE);
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(err) = parse(&path, &text) {
                problems.push(err.to_string());
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
