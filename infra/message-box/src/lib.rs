//! `message-box`: a posted message drawn as a box on a terminal, roughly as Slack would show it.
//!
//! Links are numbered in the box (`view the full event [1]`) and their URLs printed whole
//! under it, unwrapped, so a terminal can open them and they can be copied (a signed link is
//! longer than the box is wide).

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
/// Under the box, the URL of each numbered link (mrkdwn `<url|label>`, link buttons).
pub fn message_box(channel_name: &str, text: Option<&str>, blocks: Option<&Value>) -> String {
    let mut lines = vec![Line::Text(BOT_LINE.to_owned())];
    let mut body = Vec::new();
    let mut links = Links::default();
    if let Some(Value::Array(blocks)) = blocks {
        for block in blocks {
            block_lines(block, &mut body, &mut links);
        }
    }
    if body.is_empty() {
        links = Links::default();
        if let Some(text) = text {
            body.extend(
                display(text, &mut links)
                    .lines()
                    .map(|l| Line::Text(l.to_owned())),
            );
        }
    }
    lines.extend(body);
    let mut out = draw(&format!("#{channel_name}"), &lines);
    for (i, url) in links.0.iter().enumerate() {
        out.push_str(&format!("  [{}] {url}\n", i + 1));
    }
    out
}

/// The URLs of a message's links, in the order they appear, each once.
#[derive(Default)]
struct Links(Vec<String>);

impl Links {
    /// The link's number, as shown in the box (from 1).
    fn number(&mut self, url: &str) -> usize {
        match self.0.iter().position(|u| u == url) {
            Some(i) => i + 1,
            None => {
                self.0.push(url.to_owned());
                self.0.len()
            }
        }
    }
}

/// The display text of a text object.
fn text_of(v: Option<&Value>, links: &mut Links) -> Option<String> {
    v.and_then(|t| t.get("text"))
        .and_then(Value::as_str)
        .map(|t| display(t, links))
}

fn block_lines(block: &Value, out: &mut Vec<Line>, links: &mut Links) {
    match block.get("type").and_then(Value::as_str) {
        Some("header") => {
            if let Some(text) = text_of(block.get("text"), links) {
                out.push(Line::Text(text));
            }
        }
        Some("section") => {
            if let Some(text) = text_of(block.get("text"), links) {
                out.extend(text.lines().map(|l| Line::Text(l.to_owned())));
            }
            for field in block
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(text) = text_of(Some(field), links) {
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
                    text_of(Some(e), links).or_else(|| {
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
                .filter_map(|e| {
                    let label = text_of(e.get("text"), links)?;
                    Some(match e.get("url").and_then(Value::as_str) {
                        Some(url) => format!("[ {label} ] [{}]", links.number(url)),
                        None => format!("[ {label} ]"),
                    })
                })
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
            out.extend(
                display(&text, links)
                    .lines()
                    .map(|l| Line::Text(l.to_owned())),
            );
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

/// mrkdwn to terminal text: `<url|label>` shows the label (numbered in `links` when the URL
/// is a web or mail link), `<url>` the URL; `&amp;`, `&lt;`, `&gt;` unescaped.
fn display(mrkdwn: &str, links: &mut Links) -> String {
    let mut out = String::with_capacity(mrkdwn.len());
    let mut rest = mrkdwn;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                match inner.split_once('|') {
                    Some((url, label)) if is_link(url) => {
                        let url = unescape(url);
                        out.push_str(&format!("{label} [{}]", links.number(&url)));
                    }
                    Some((_, label)) => out.push_str(label),
                    None => out.push_str(inner),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    unescape(&out)
}

fn unescape(mrkdwn: &str) -> String {
    mrkdwn
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn is_link(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| target.starts_with(scheme))
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
    fn a_truncated_message_shows_its_signed_link_whole_under_the_box() {
        let url = "http://127.0.0.1:3300/v1/events/01KBZ8Q4T3N6W2Y5R7P9M1C0XD?exp=1796000000&sig=\
                   3f9a0c1d2e4b5a6978877665544332211ffeeddccbbaa99887766554433221100";
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "feature.used"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text":
                format!("ingestlayer · `01KBZ8Q4T3N6W2Y5R7P9M1C0XD` · truncated: <{}|view the full event>",
                    url.replace('&', "&amp;"))}]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": url},
                {"type": "button", "text": {"type": "plain_text", "text": "Docs"},
                 "url": "https://docs.example/x"}
            ]}
        ]);
        let drawn = message_box("alerts", Some("fallback"), Some(&blocks));
        assert!(drawn.contains("view the full event [1]"), "{drawn}");
        assert!(drawn.contains("[ Open ] [1] [ Docs ] [2]"), "{drawn}");
        let under: Vec<&str> = drawn
            .lines()
            .skip_while(|l| !l.starts_with('└'))
            .skip(1)
            .collect();
        assert_eq!(
            under,
            [
                format!("  [1] {url}"),
                "  [2] https://docs.example/x".to_owned()
            ],
            "{drawn}"
        );
    }

    #[test]
    fn mentions_and_unlabelled_links_are_not_numbered() {
        let drawn = message_box(
            "alerts",
            Some("<@U123|maria> see <https://x.io> and <#C1|general>"),
            None,
        );
        assert!(
            drawn.contains("│ maria see https://x.io and general "),
            "{drawn}"
        );
        assert!(drawn.ends_with("┘\n"), "{drawn}");
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
