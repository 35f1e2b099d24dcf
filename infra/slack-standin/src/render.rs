//! A posted message drawn as a box on a terminal, roughly as Slack would show it.

use serde_json::Value;

const BOT_LINE: &str = "ingestlayer APP";
const MIN_WIDTH: usize = 38;
const MAX_WIDTH: usize = 100;

enum Line {
    Text(String),
    /// A `label  value` pair; labels in a run of pairs are aligned.
    Pair(String, String),
    Rule,
}

/// Draws the message: header text, section text and fields (`*label*\nvalue` as
/// `label   value`), context texts, dividers; the top-level `text` when blocks give nothing.
pub(crate) fn message_box(
    channel_name: &str,
    text: Option<&str>,
    blocks: Option<&Value>,
) -> String {
    let mut lines = vec![Line::Text(BOT_LINE.to_owned())];
    let mut body = Vec::new();
    if let Some(Value::Array(blocks)) = blocks {
        for block in blocks {
            block_lines(block, &mut body);
        }
    }
    if body.is_empty() {
        if let Some(text) = text {
            body.extend(display(text).lines().map(|l| Line::Text(l.to_owned())));
        }
    }
    lines.extend(body);
    draw(&format!("#{channel_name}"), &lines)
}

fn block_lines(block: &Value, out: &mut Vec<Line>) {
    let text_of = |v: Option<&Value>| {
        v.and_then(|t| t.get("text"))
            .and_then(Value::as_str)
            .map(display)
    };
    match block.get("type").and_then(Value::as_str) {
        Some("header") => {
            if let Some(text) = text_of(block.get("text")) {
                out.push(Line::Text(text));
            }
        }
        Some("section") => {
            if let Some(text) = text_of(block.get("text")) {
                out.extend(text.lines().map(|l| Line::Text(l.to_owned())));
            }
            for field in block
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(text) = text_of(Some(field)) {
                    out.push(field_line(&text));
                }
            }
        }
        Some("context") => {
            let parts: Vec<String> = block
                .get("elements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    text_of(Some(e)).or_else(|| {
                        e.get("alt_text")
                            .and_then(Value::as_str)
                            .map(|alt| format!("[{alt}]"))
                    })
                })
                .collect();
            if !parts.is_empty() {
                out.push(Line::Text(parts.join("  ")));
            }
        }
        Some("divider") => out.push(Line::Rule),
        Some("actions") => {
            let buttons: Vec<String> = block
                .get("elements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| text_of(e.get("text")).map(|t| format!("[ {t} ]")))
                .collect();
            if !buttons.is_empty() {
                out.push(Line::Text(buttons.join(" ")));
            }
        }
        Some("image") => {
            let alt = block.get("alt_text").and_then(Value::as_str).unwrap_or("");
            out.push(Line::Text(format!("[image: {alt}]")));
        }
        Some("rich_text") => {
            let mut text = String::new();
            rich_text(block, &mut text);
            out.extend(display(&text).lines().map(|l| Line::Text(l.to_owned())));
        }
        _ => {}
    }
}

/// `*plan*\nfree` → ("plan", "free"); a field without a newline is plain text.
fn field_line(text: &str) -> Line {
    match text.split_once('\n') {
        Some((label, value)) => {
            let label = label.trim().trim_matches('*').trim().to_owned();
            Line::Pair(label, value.replace('\n', " "))
        }
        None => Line::Text(text.to_owned()),
    }
}

fn rich_text(value: &Value, out: &mut String) {
    match value {
        Value::Object(obj) => {
            if let Some(Value::String(text)) = obj.get("text") {
                out.push_str(text);
            }
            if let Some(elements) = obj.get("elements") {
                rich_text(elements, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| rich_text(item, out)),
        _ => {}
    }
}

/// mrkdwn to terminal text: `<url|label>` shows the label, `<url>` the URL; `&amp;`, `&lt;`,
/// `&gt;` unescaped.
fn display(mrkdwn: &str) -> String {
    let mut out = String::with_capacity(mrkdwn.len());
    let mut rest = mrkdwn;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                out.push_str(inner.rsplit_once('|').map_or(inner, |(_, label)| label));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn draw(title: &str, lines: &[Line]) -> String {
    let label_width = lines
        .iter()
        .filter_map(|l| match l {
            Line::Pair(label, _) => Some(width(label)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let rendered: Vec<Option<String>> = lines
        .iter()
        .map(|l| match l {
            Line::Text(t) => Some(t.clone()),
            Line::Pair(label, value) => Some(format!(
                "{label}{}{value}",
                " ".repeat(label_width - width(label) + 3)
            )),
            Line::Rule => None,
        })
        .collect();
    let inner = rendered
        .iter()
        .flatten()
        .map(|l| width(l))
        .max()
        .unwrap_or(0)
        .clamp(MIN_WIDTH, MAX_WIDTH)
        .max(width(title) + 1);

    let mut out = String::new();
    out.push_str("┌─ ");
    out.push_str(title);
    out.push(' ');
    out.push_str(&"─".repeat(inner + 2 - width(title) - 3));
    out.push_str("┐\n");
    for line in rendered {
        match line {
            Some(line) => {
                for piece in wrap(&line, inner) {
                    out.push_str("│ ");
                    out.push_str(&piece);
                    out.push_str(&" ".repeat(inner - width(&piece)));
                    out.push_str(" │\n");
                }
            }
            None => {
                out.push_str("│ ");
                out.push_str(&"─".repeat(inner));
                out.push_str(" │\n");
            }
        }
    }
    out.push('└');
    out.push_str(&"─".repeat(inner + 2));
    out.push_str("┘\n");
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Splits a line into pieces of at most `max` characters, at spaces where possible.
fn wrap(line: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest: Vec<char> = line.chars().filter(|c| !c.is_control()).collect();
    while rest.len() > max {
        let cut = rest[..=max]
            .iter()
            .rposition(|c| *c == ' ')
            .filter(|&i| i > 0)
            .unwrap_or(max);
        pieces.push(rest[..cut].iter().collect::<String>().trim_end().to_owned());
        let skip = usize::from(rest.get(cut) == Some(&' '));
        rest.drain(..cut + skip);
    }
    pieces.push(rest.into_iter().collect());
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn draws_the_documented_example() {
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "feature.used"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*feature*\ncsv.export"},
                {"type": "mrkdwn", "text": "*plan*\nfree"}
            ]}
        ]);
        let expected = "\
┌─ #alerts ──────────────────────────────┐
│ ingestlayer APP                        │
│ feature.used                           │
│ feature   csv.export                   │
│ plan      free                         │
└────────────────────────────────────────┘
";
        assert_eq!(
            message_box("alerts", Some("fallback"), Some(&blocks)),
            expected
        );
    }

    #[test]
    fn falls_back_to_text_and_unescapes_it() {
        let drawn = message_box(
            "alerts",
            Some("a &lt;b&gt; &amp; <https://x.io|link>"),
            None,
        );
        assert!(drawn.contains("│ a <b> & link "), "{drawn}");
    }

    #[test]
    fn long_lines_wrap_inside_the_box() {
        let drawn = message_box("alerts", Some(&"word ".repeat(60)), None);
        let widths: Vec<usize> = drawn.lines().map(width).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{drawn}");
        assert!(drawn.lines().count() > 4);
    }

    #[test]
    fn a_long_channel_name_widens_the_box() {
        let name = "x".repeat(60);
        let drawn = message_box(&name, Some("hi"), None);
        let widths: Vec<usize> = drawn.lines().map(width).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{drawn}");
    }
}
