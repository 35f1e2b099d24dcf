//! Digests: the waiting messages of one channel coalesced into one post, in order, within
//! Block Kit's limits.

use serde_json::json;

use crate::slack::block_kit::{cut, escape, limits, mrkdwn, RenderedMessage};

/// Most messages one digest carries: a header and one section each makes 49 blocks, one
/// under Block Kit's 50.
pub const DIGEST_MAX: usize = 48;

/// One message waiting in a digest: its rendered single message, event id and link.
pub struct DigestItem<'a> {
    pub event_name: &'a str,
    pub event_id: &'a str,
    pub message: &'a RenderedMessage,
    pub link: Option<&'a str>,
}

/// Coalesces waiting messages of one channel into one message, in order: a header, then
/// for each event one section with its summary and, on a second line, its id and link.
pub fn digest(items: &[DigestItem<'_>]) -> RenderedMessage {
    digest_with_owners(items, &[])
}

/// [`digest`], with each event's owner line (`owners[i]`: `<@U…>` or escaped text) at the
/// end of its id line.
pub fn digest_with_owners(items: &[DigestItem<'_>], owners: &[Option<&str>]) -> RenderedMessage {
    let items = &items[..items.len().min(DIGEST_MAX)];
    let mut truncated = false;
    let same_name = items.windows(2).all(|w| w[0].event_name == w[1].event_name);
    let header = match (items.first(), same_name) {
        (Some(first), true) => format!("{} × {}", items.len(), escape(first.event_name)),
        _ => format!("{} events", items.len()),
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&header, limits::HEADER_TEXT, &mut truncated), "emoji": true}}),
    ];
    for (n, item) in items.iter().enumerate() {
        let mut line = format!("`{}`", escape(item.event_id));
        if let Some(link) = item.link {
            line.push_str(&format!(" · <{link}|full event>"));
        }
        if let Some(owner) = owners.get(n).copied().flatten() {
            line.push_str(&format!(
                " · {}",
                crate::delivery::mention::owner_line(owner)
            ));
        }
        let line = cut(&line, limits::SECTION_TEXT / 2, &mut truncated);
        // The id line always shows whole: the summary gives way to it.
        let room = limits::SECTION_TEXT - line.chars().count() - 1;
        let text = cut(&item.message.text, room, &mut truncated);
        blocks.push(json!({"type": "section", "text": mrkdwn(format!("{text}\n{line}"))}));
    }
    let lines: Vec<&str> = items.iter().map(|i| i.message.text.as_str()).collect();
    let mut ignored = false;
    RenderedMessage {
        text: cut(
            &format!("{header}: {}", lines.join(" | ")),
            limits::FALLBACK_TEXT,
            &mut ignored,
        ),
        blocks,
        truncated: truncated || items.iter().any(|i| i.message.truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_keeps_every_event_readable_in_order_within_limits() {
        let messages: Vec<RenderedMessage> = (0..30)
            .map(|i| RenderedMessage {
                text: format!("feature.used: n {i}, big {}", "z".repeat(4000)),
                blocks: Vec::new(),
                truncated: false,
            })
            .collect();
        let ids: Vec<String> = (0..30).map(|i| format!("e{i}")).collect();
        let items: Vec<DigestItem<'_>> = messages
            .iter()
            .zip(&ids)
            .map(|(m, id)| DigestItem {
                event_name: "feature.used",
                event_id: id,
                message: m,
                link: Some("https://x/l"),
            })
            .collect();
        let owners: Vec<Option<&str>> = (0..10)
            .map(|i| (i % 2 == 1).then_some("<@U0ADA>"))
            .collect();
        let d = digest_with_owners(&items[..10], &owners);
        assert_eq!(d.blocks[0]["text"]["text"], "10 × feature.used");
        assert_eq!(d.blocks.len(), 11, "a header and one section per event");
        let text = |b: &serde_json::Value| b["text"]["text"].as_str().unwrap().to_owned();
        assert!(text(&d.blocks[1]).starts_with("feature.used: n 0"));
        assert!(text(&d.blocks[9]).ends_with("\n`e8` · <https://x/l|full event>"));
        assert!(text(&d.blocks[2]).ends_with("· Owner: <@U0ADA>"));
        assert!(!text(&d.blocks[1]).contains("Owner"));
        // Every event of a full digest keeps its id line whole, within the limits.
        let many: Vec<RenderedMessage> = (0..60).map(|i| messages[i % 30].clone()).collect();
        let many_ids: Vec<String> = (0..60).map(|i| format!("e{i}")).collect();
        let all_items: Vec<DigestItem<'_>> = many
            .iter()
            .zip(&many_ids)
            .map(|(m, id)| DigestItem {
                event_name: "feature.used",
                event_id: id,
                message: m,
                link: Some("https://x/l"),
            })
            .collect();
        let all = digest(&all_items);
        assert_eq!(all.blocks.len(), 1 + DIGEST_MAX);
        assert!(all.blocks.len() < limits::BLOCKS);
        for (n, b) in all.blocks[1..].iter().enumerate() {
            let t = text(b);
            assert!(t.chars().count() <= limits::SECTION_TEXT, "{n}");
            assert!(
                t.ends_with(&format!("`e{n}` · <https://x/l|full event>")),
                "{n}"
            );
        }
        assert!(all.truncated);
        assert!(all.text.chars().count() <= limits::FALLBACK_TEXT);
    }
}
