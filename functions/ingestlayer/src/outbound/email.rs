//! The email destination: a card (or a burst of them, as one digest) sent through Amazon SES
//! v2 `SendEmail` as a simple message with an HTML part and a plain-text part, both UTF-8
//! (<https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html>).
//!
//! - **Rendering** ([`render`], [`render_digest`]) is pure: every string of the card is
//!   HTML-escaped in the HTML part, the operator's template text included (email has no
//!   markup of the template's own); the subject is the title on one line, at most
//!   [`SUBJECT_MAX`] characters.
//! - **An email handed to SES cannot be recalled.** A timeout or a connection lost after
//!   sending leaves it open whether SES took it (`Retry { maybe_sent: true }`), and SES offers
//!   no way to ask; retrying may send it twice, which for email is the lesser harm.
//! - **Answers** ([`classify`]): throttling waits a second; a spent daily quota, a suspended
//!   or paused account and an unverified sender pause the target with what to do; a message
//!   SES refuses for itself is parked.
//! - **Pacing**: SES allows an account `MaxSendRate` messages a second ([`Email::max_send_rate`],
//!   [`min_interval`]); the sandbox allows one.

use std::time::Duration;

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::card::{cut_to, Card, Span, Unit};
use super::Verdict;

/// The longest subject, in characters.
pub const SUBJECT_MAX: usize = 200;

/// The most recipients SES takes for one message.
pub const RECIPIENTS_MAX: usize = 50;

/// The send rate of an SES account in the sandbox, messages per second.
pub const SANDBOX_RATE: f64 = 1.0;

/// The subject of a card without a title.
const UNTITLED: &str = "ingestlayer event";

/// How much of a card's text and of each field's value an email shows.
#[derive(Debug, Clone, Copy)]
struct Limits {
    text: usize,
    value: usize,
}

/// One event's email: generous, since SES takes up to 40 MB.
const SINGLE: Limits = Limits {
    text: 100_000,
    value: 10_000,
};

/// Each event of a digest: a summary, the full event behind its link.
const DIGESTED: Limits = Limits {
    text: 5_000,
    value: 2_000,
};

/// An email ready to send: its subject (one line), HTML part and plain-text part.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The parts are the event's data: their sizes, not their text.
        f.debug_struct("Rendered")
            .field("subject", &self.subject)
            .field("html_bytes", &self.html.len())
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

/// The email for one card.
pub fn render(card: &Card) -> Rendered {
    let subject = subject(&card.title);
    let mut html = String::new();
    card_html(card, SINGLE, "h1", &mut html);
    Rendered {
        html: document(&subject, &html),
        text: card_text(card, SINGLE),
        subject,
    }
}

/// One email for a burst of cards, each event a section in order: the subject counts them
/// (`12 events: feature.used` when they share a title, `12 events` otherwise). Each section
/// is cut shorter than a single email's, with its link when cut.
pub fn render_digest(cards: &[Card]) -> Rendered {
    if let [one] = cards {
        return render(one);
    }
    let count = format!("{} events", cards.len());
    let shared = cards
        .first()
        .map(|c| c.title.trim())
        .filter(|t| !t.is_empty() && cards.iter().all(|c| c.title.trim() == *t));
    let subject = subject(&match shared {
        Some(title) => format!("{count}: {title}"),
        None => count.clone(),
    });
    let mut html = format!("<h1 style=\"{H1}\">{}</h1>\n", escape(&subject));
    let mut text = format!("{subject}\n");
    for (i, card) in cards.iter().enumerate() {
        html.push_str(&format!(
            "<div style=\"{SECTION}\">\n<p style=\"{MUTED}\">{} of {}</p>\n",
            i + 1,
            cards.len()
        ));
        card_html(card, DIGESTED, "h2", &mut html);
        html.push_str("</div>\n");
        text.push_str(&format!(
            "\n---------- {} of {} ----------\n\n",
            i + 1,
            cards.len()
        ));
        text.push_str(&card_text(card, DIGESTED));
    }
    Rendered {
        html: document(&subject, &html),
        text,
        subject,
    }
}

/// A title on one line (line breaks and other control characters become spaces, runs of
/// spaces one), at most [`SUBJECT_MAX`] characters.
fn subject(title: &str) -> String {
    let one_line: String = title
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.is_empty() {
        return UNTITLED.to_owned();
    }
    cut_to(&words, SUBJECT_MAX, Unit::Chars).0
}

/// Text for HTML: `& < > " '` as entities, so it is safe in content and in quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with its line breaks kept.
fn escape_lines(s: &str) -> String {
    escape(s).replace("\r\n", "\n").replace('\n', "<br>\n")
}

/// A link; anything but an http(s) URL is shown as text, never as an `href`.
fn anchor(url: &str, label: &str) -> String {
    let label = if label.trim().is_empty() { url } else { label };
    if url.starts_with("https://") || url.starts_with("http://") {
        format!(
            "<a href=\"{}\" style=\"{LINK}\">{}</a>",
            escape(url),
            escape_lines(label)
        )
    } else {
        escape_lines(label)
    }
}

const BODY: &str = "margin:0;padding:16px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,\
                    sans-serif;font-size:14px;line-height:1.5;color:#1d1c1d;background:#ffffff";
const H1: &str = "margin:0 0 12px;font-size:20px";
const H2: &str = "margin:0 0 8px;font-size:17px";
const P: &str = "margin:0 0 12px";
const NOTE: &str = "margin:0 0 4px;color:#616061;font-style:italic";
const TABLE: &str = "border-collapse:collapse;margin:0 0 12px";
const TH: &str = "text-align:left;vertical-align:top;padding:2px 16px 2px 0;color:#616061;\
                  font-weight:600;white-space:nowrap";
const TD: &str = "vertical-align:top;padding:2px 0";
const LINK: &str = "color:#1264a3";
const FOOTER: &str = "margin:12px 0 0;color:#868686;font-size:12px";
const SECTION: &str = "margin:0 0 16px;padding:12px 0 0;border-top:1px solid #dddddd";
const MUTED: &str = "margin:0 0 4px;color:#868686;font-size:12px";

fn document(subject: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n<title>{}</title>\n</head>\n\
         <body style=\"{BODY}\">\n<div style=\"max-width:640px\">\n{content}</div>\n</body>\n</html>\n",
        escape(subject)
    )
}

/// The card's text cut to `max` characters: its spans (each cut as a whole, in order) and
/// whether anything was left out.
fn cut_spans(card: &Card, max: usize) -> (Vec<Span>, bool) {
    let mut room = max;
    let mut out = Vec::new();
    for span in &card.text {
        let len = match span {
            Span::Text { text } | Span::Value { text } => text.chars().count(),
            Span::Link { label, .. } => label.chars().count(),
        };
        if len <= room {
            room -= len;
            out.push(span.clone());
            continue;
        }
        if let Span::Text { text } | Span::Value { text } = span {
            let (text, _) = cut_to(text, room, Unit::Chars);
            out.push(Span::Value { text });
        }
        return (out, true);
    }
    (out, false)
}

fn card_html(card: &Card, limits: Limits, heading: &str, out: &mut String) {
    let style = if heading == "h1" { H1 } else { H2 };
    let title = if card.title.trim().is_empty() {
        UNTITLED
    } else {
        &card.title
    };
    out.push_str(&format!(
        "<{heading} style=\"{style}\">{}</{heading}>\n",
        escape_lines(title)
    ));
    let (spans, mut cut) = cut_spans(card, limits.text);
    if !spans.is_empty() {
        let text: String = spans
            .iter()
            .map(|span| match span {
                // The template's own text is escaped too: email renders none of its markup.
                Span::Text { text } | Span::Value { text } => escape_lines(text),
                Span::Link { url, label } => anchor(url, label),
            })
            .collect();
        out.push_str(&format!("<p style=\"{P}\">{text}</p>\n"));
    }
    for note in &card.notes {
        out.push_str(&format!("<p style=\"{NOTE}\">{}</p>\n", escape_lines(note)));
    }
    if !card.fields.is_empty() {
        out.push_str(&format!(
            "<table role=\"presentation\" style=\"{TABLE}\">\n"
        ));
        for field in &card.fields {
            let (value, was_cut) = cut_to(&field.value, limits.value, Unit::Chars);
            cut |= was_cut;
            out.push_str(&format!(
                "<tr><th style=\"{TH}\">{}</th><td style=\"{TD}\">{}</td></tr>\n",
                escape_lines(&field.name),
                escape_lines(&value)
            ));
        }
        out.push_str("</table>\n");
    }
    if !card.buttons.is_empty() {
        let buttons: Vec<String> = card
            .buttons
            .iter()
            .map(|b| anchor(&b.url, &b.label))
            .collect();
        out.push_str(&format!("<p style=\"{P}\">{}</p>\n", buttons.join(" · ")));
    }
    if cut || card.truncated {
        match &card.link {
            Some(link) => out.push_str(&format!(
                "<p style=\"{P}\">{}</p>\n",
                anchor(link, "View the full event")
            )),
            None => out.push_str(&format!(
                "<p style=\"{NOTE}\">Part of this event was left out.</p>\n"
            )),
        }
    }
    if !card.footer.trim().is_empty() {
        out.push_str(&format!(
            "<p style=\"{FOOTER}\">{}</p>\n",
            escape_lines(&card.footer)
        ));
    }
}

fn card_text(card: &Card, limits: Limits) -> String {
    let mut out = String::new();
    let title = if card.title.trim().is_empty() {
        UNTITLED
    } else {
        &card.title
    };
    out.push_str(title);
    out.push_str("\n\n");
    let (spans, mut cut) = cut_spans(card, limits.text);
    let text = Card {
        text: spans,
        ..Card::default()
    }
    .plain_text();
    if !text.trim().is_empty() {
        out.push_str(&text);
        out.push_str("\n\n");
    }
    for note in &card.notes {
        out.push_str(note);
        out.push('\n');
    }
    if !card.notes.is_empty() {
        out.push('\n');
    }
    for field in &card.fields {
        let (value, was_cut) = cut_to(&field.value, limits.value, Unit::Chars);
        cut |= was_cut;
        out.push_str(&format!("{}: {value}\n", field.name));
    }
    if !card.fields.is_empty() {
        out.push('\n');
    }
    for button in &card.buttons {
        out.push_str(&format!("{}: {}\n", button.label, button.url));
    }
    if !card.buttons.is_empty() {
        out.push('\n');
    }
    if cut || card.truncated {
        match &card.link {
            Some(link) => out.push_str(&format!("View the full event: {link}\n\n")),
            None => out.push_str("Part of this event was left out.\n\n"),
        }
    }
    if !card.footer.trim().is_empty() {
        out.push_str(&format!("-- \n{}\n", card.footer));
    }
    out
}

/// Sends email through SES v2.
#[derive(Debug, Clone)]
pub struct Email {
    ses: aws_sdk_sesv2::Client,
}

impl Email {
    /// Sends with `ses`'s configuration, its retries turned off: delivery decides when to try
    /// again, and a retry inside the SDK after a lost answer would send a second email.
    pub fn new(ses: aws_sdk_sesv2::Client) -> Self {
        let config = ses
            .config()
            .to_builder()
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .build();
        Self {
            ses: aws_sdk_sesv2::Client::from_conf(config),
        }
    }

    /// Sends `m` from `from` (an address SES has verified, or one at a verified domain) to
    /// `to` (1 to [`RECIPIENTS_MAX`]) and says what the answer means; `Delivered`'s receipt
    /// is SES's message ID. An email SES has taken cannot be recalled: after a timeout or a
    /// connection lost mid-request the verdict is `Retry { maybe_sent: true }`, and SES gives
    /// no way to look the message up, so a retry may deliver it twice.
    #[tracing::instrument(skip_all, fields(recipients = to.len()))]
    pub async fn send(&self, from: &str, to: &[String], m: &Rendered) -> Verdict {
        if to.is_empty() || to.len() > RECIPIENTS_MAX {
            return Verdict::PauseTarget {
                reason: format!(
                    "the email destination has {} recipients; SES takes 1 to {RECIPIENTS_MAX} \
                     a message",
                    to.len()
                ),
                hint: format!(
                    "give the pipeline's email destination 1 to {RECIPIENTS_MAX} addresses (a \
                     mailing list for more), then `ingestlayer dlq redrive`"
                ),
            };
        }
        let content = |data: &str| Content::builder().data(data).charset("UTF-8").build();
        let (Ok(subject), Ok(html), Ok(text)) =
            (content(&m.subject), content(&m.html), content(&m.text))
        else {
            return Verdict::Retry {
                reason: "the SES request could not be built".into(),
                maybe_sent: false,
            };
        };
        let message = Message::builder()
            .subject(subject)
            .body(Body::builder().html(html).text(text).build())
            .build();
        let sent = self
            .ses
            .send_email()
            .from_email_address(from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(to.to_vec()))
                    .build(),
            )
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match sent {
            Ok(out) => Verdict::Delivered {
                receipt: out.message_id().unwrap_or("sent").to_owned(),
                hold: None,
            },
            Err(e) => classify(&e, from, to),
        }
    }

    /// The account's `MaxSendRate` (GetAccount's `SendQuota`), messages per second; `None`
    /// when SES does not say (moto, the local emulator, does not serve GetAccount).
    #[tracing::instrument(skip_all)]
    pub async fn max_send_rate(&self) -> Option<f64> {
        let account = self.ses.get_account().send().await.ok()?;
        account
            .send_quota()
            .map(|q| q.max_send_rate())
            .filter(|rate| rate.is_finite() && *rate > 0.0)
    }
}

/// The least time between two messages at `rate` messages per second: one second when the
/// rate is unknown (the sandbox's [`SANDBOX_RATE`]), at most a minute.
pub fn min_interval(rate: Option<f64>) -> Duration {
    const MAX: Duration = Duration::from_secs(60);
    let rate = rate
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(SANDBOX_RATE);
    Duration::try_from_secs_f64(1.0 / rate)
        .unwrap_or(MAX)
        .min(MAX)
}

/// What a failed `SendEmail` means. Error names are those of
/// <https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html#API_SendEmail_Errors>;
/// quota errors carry "Daily message quota exceeded" or "Maximum sending rate exceeded"
/// (<https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html>).
pub fn classify(e: &SdkError<SendEmailError, HttpResponse>, from: &str, to: &[String]) -> Verdict {
    match e {
        SdkError::ServiceError(service) => {
            refused(service.err(), service.raw().status().as_u16(), from, to)
        }
        SdkError::ConstructionFailure(_) => Verdict::Retry {
            reason: "the SES request could not be built".into(),
            maybe_sent: false,
        },
        SdkError::DispatchFailure(failure)
            if failure.as_connector_error().is_some_and(never_sent) =>
        {
            Verdict::Retry {
                reason: "could not connect to SES".into(),
                maybe_sent: false,
            }
        }
        SdkError::TimeoutError(_) => Verdict::Retry {
            reason: "SES did not answer in time; the email may have been sent".into(),
            maybe_sent: true,
        },
        _ => Verdict::Retry {
            reason: "no answer from SES; the email may have been sent".into(),
            maybe_sent: true,
        },
    }
}

/// Whether a dispatch failure happened before the request left: the request could not be
/// made, the name did not resolve, or the connection was refused.
fn never_sent(failure: &aws_sdk_sesv2::error::ConnectorError) -> bool {
    use aws_smithy_runtime_api::client::dns::ResolveDnsError;
    if failure.is_user() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(failure);
    while let Some(err) = source {
        if err.is::<ResolveDnsError>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            ) {
                return true;
            }
        }
        source = err.source();
    }
    false
}

/// The address in `Name <address>`, or the whole.
fn address(mailbox: &str) -> &str {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(start), Some(end)) if start < end => mailbox[start + 1..end].trim(),
        _ => mailbox.trim(),
    }
}

fn refused(err: &SendEmailError, status: u16, from: &str, to: &[String]) -> Verdict {
    let code = err.code().unwrap_or("an error");
    let message = err.message().unwrap_or("");
    let said = if message.is_empty() {
        format!("SES answered {code}")
    } else {
        format!(
            "SES answered {code}: {}",
            cut_to(message, 300, Unit::Chars).0
        )
    };
    let lower = message.to_lowercase();
    let quota = || Verdict::PauseTarget {
        reason: said.clone(),
        hint: "the SES account's 24-hour sending quota is spent: sending can resume as the \
               window frees up; ask for a higher quota (SES console → Account dashboard) if it \
               recurs, then `ingestlayer dlq redrive`"
            .into(),
    };
    let verify_sender = || Verdict::PauseTarget {
        reason: said.clone(),
        hint: format!(
            "verify {} in SES (SES console → Identities → Create identity, or its domain), \
             then `ingestlayer dlq redrive`",
            address(from)
        ),
    };
    match err {
        SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_)
            if lower.contains("daily") =>
        {
            quota()
        }
        SendEmailError::LimitExceededException(_) => quota(),
        SendEmailError::TooManyRequestsException(_) => Verdict::RetryAfter {
            wait: Duration::from_secs(1),
            reason: said,
        },
        other if matches!(other.code(), Some("ThrottlingException" | "Throttling")) => {
            if lower.contains("daily") {
                quota()
            } else {
                Verdict::RetryAfter {
                    wait: Duration::from_secs(1),
                    reason: said,
                }
            }
        }
        SendEmailError::AccountSuspendedException(_) => Verdict::PauseTarget {
            reason: said,
            hint: "SES has stopped this account's sending; see the SES console's Reputation \
                   metrics and contact AWS Support"
                .into(),
        },
        SendEmailError::SendingPausedException(_) => Verdict::PauseTarget {
            reason: said,
            hint: "sending is paused for the SES account or its configuration set: resume it \
                   (aws sesv2 put-account-sending-attributes --sending-enabled), then \
                   `ingestlayer dlq redrive`"
                .into(),
        },
        SendEmailError::MessageRejected(_) if lower.contains("not verified") => {
            let sender = address(from).to_lowercase();
            let sender_named = lower.contains(&sender)
                || sender
                    .rsplit_once('@')
                    .is_some_and(|(_, domain)| lower.contains(&format!(" {domain}")));
            let recipients: Vec<&str> = to
                .iter()
                .map(|r| address(r))
                .filter(|r| lower.contains(&r.to_lowercase()))
                .collect();
            if sender_named || recipients.is_empty() {
                verify_sender()
            } else {
                Verdict::PauseTarget {
                    reason: said.clone(),
                    hint: format!(
                        "the SES account is in the sandbox, where recipients must be verified \
                         too: verify {} in SES, or request production access (SES console → \
                         Account dashboard), then `ingestlayer dlq redrive`",
                        recipients.join(", ")
                    ),
                }
            }
        }
        SendEmailError::MailFromDomainNotVerifiedException(_) => Verdict::PauseTarget {
            reason: said.clone(),
            hint: format!(
                "verify the MAIL FROM domain of {} in SES (SES console → Identities → the \
                 identity → Custom MAIL FROM domain), then `ingestlayer dlq redrive`",
                address(from)
            ),
        },
        SendEmailError::NotFoundException(_) => verify_sender(),
        SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_) => {
            Verdict::Park { reason: said }
        }
        other if matches!(other.code(), Some("AccessDeniedException" | "AccessDenied")) => {
            Verdict::PauseTarget {
                reason: said,
                hint: format!(
                    "allow ses:SendEmail on {} for the destination-delivery function's role",
                    address(from)
                ),
            }
        }
        _ if status >= 500 => Verdict::Retry {
            reason: said,
            maybe_sent: true,
        },
        _ => Verdict::Park { reason: said },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::card::{Field, Link};
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_sdk_sesv2::types::error as ses;
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};

    fn card() -> Card {
        Card {
            title: "feature.used".into(),
            text: vec![
                Span::Text {
                    text: "<b>Usage</b> by ".into(),
                },
                Span::Value {
                    text: "<script>alert(1)</script>".into(),
                },
                Span::Text { text: ": ".into() },
                Span::Link {
                    url: "https://app.example/a?x=1&y=\"2\"".into(),
                    label: "open <it>".into(),
                },
            ],
            notes: vec!["5 events within 10m".into()],
            fields: vec![
                Field {
                    name: "Plan".into(),
                    value: "pro & <more>".into(),
                },
                Field {
                    name: "Note".into(),
                    value: "line 1\nline 2".into(),
                },
            ],
            buttons: vec![
                Link {
                    label: "Stripe".into(),
                    url: "https://dashboard.stripe.example/x".into(),
                },
                Link {
                    label: "bad".into(),
                    url: "javascript:alert(1)".into(),
                },
            ],
            footer: "ingestlayer · from web-app · api:e1".into(),
            link: Some("https://x.example/v1/events/e1?sig=a&b".into()),
            truncated: false,
        }
    }

    #[test]
    fn every_value_and_the_templates_text_are_escaped_in_html() {
        let m = render(&card());
        assert!(!m.html.contains("<script>"), "{}", m.html);
        assert!(m.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(m.html.contains("&lt;b&gt;Usage&lt;/b&gt; by "));
        assert!(m.html.contains(
            "<a href=\"https://app.example/a?x=1&amp;y=&quot;2&quot;\" style=\"color:#1264a3\">open &lt;it&gt;</a>"
        ));
        assert!(m.html.contains("pro &amp; &lt;more&gt;"));
        assert!(m.html.contains("line 1<br>\nline 2"));
        assert!(m.html.contains(">Plan</th>"));
        assert!(m
            .html
            .contains("href=\"https://dashboard.stripe.example/x\""));
        // Only http(s) links become links.
        assert!(!m.html.contains("javascript:"));
        assert!(m.html.contains("ingestlayer · from web-app · api:e1"));
        assert!(m.html.contains("<title>feature.used</title>"));
        // Nothing was cut: no link to the full event.
        assert!(!m.html.contains("View the full event"));
    }

    #[test]
    fn the_text_part_says_the_same_in_plain_text() {
        let m = render(&card());
        assert_eq!(
            m.text,
            "feature.used\n\n\
             <b>Usage</b> by <script>alert(1)</script>: open <it> (https://app.example/a?x=1&y=\"2\")\n\n\
             5 events within 10m\n\n\
             Plan: pro & <more>\n\
             Note: line 1\nline 2\n\n\
             Stripe: https://dashboard.stripe.example/x\n\
             bad: javascript:alert(1)\n\n\
             -- \ningestlayer · from web-app · api:e1\n"
        );
    }

    #[test]
    fn the_subject_is_the_title_on_one_line_and_cut() {
        let mut c = card();
        c.title = "Payment failed:\r\n  a@b.example\tBcc: x@y.example\u{2028}!".into();
        assert_eq!(
            render(&c).subject,
            "Payment failed: a@b.example Bcc: x@y.example !"
        );
        c.title = "x".repeat(500);
        let s = render(&c).subject;
        assert_eq!(s.chars().count(), SUBJECT_MAX);
        assert!(s.ends_with('…'));
        c.title = " \n ".into();
        assert_eq!(render(&c).subject, "ingestlayer event");
    }

    #[test]
    fn a_cut_card_links_to_the_full_event() {
        let mut c = card();
        c.text = vec![Span::Value {
            text: "v".repeat(SINGLE.text + 10),
        }];
        let m = render(&c);
        assert!(m.html.contains(
            "<a href=\"https://x.example/v1/events/e1?sig=a&amp;b\" style=\"color:#1264a3\">View the full event</a>"
        ));
        assert!(m
            .text
            .contains("View the full event: https://x.example/v1/events/e1?sig=a&b"));
        assert!(m
            .text
            .contains(&format!("{}…", "v".repeat(SINGLE.text - 1))));

        let mut c = card();
        c.truncated = true;
        c.link = None;
        assert!(render(&c).text.contains("Part of this event was left out."));
    }

    #[test]
    fn a_digest_counts_its_events_and_shows_each_in_order() {
        let cards: Vec<Card> = (0..12)
            .map(|i| Card {
                title: "feature.used".into(),
                text: vec![Span::Value {
                    text: format!("event {i}"),
                }],
                ..Card::default()
            })
            .collect();
        let m = render_digest(&cards);
        assert_eq!(m.subject, "12 events: feature.used");
        let first = m.html.find("event 0").unwrap();
        let last = m.html.find("event 11").unwrap();
        assert!(first < last);
        assert!(m.html.contains("12 of 12"));
        assert!(m.text.contains("---------- 12 of 12 ----------"));
        let mut mixed = cards.clone();
        mixed[3].title = "api.called".into();
        assert_eq!(render_digest(&mixed).subject, "12 events");
        assert_eq!(render_digest(&cards[..1]), render(&cards[0]));
    }

    #[test]
    fn min_interval_follows_the_rate_and_is_a_second_when_unknown() {
        assert_eq!(min_interval(None), Duration::from_secs(1));
        assert_eq!(
            min_interval(Some(14.0)),
            Duration::from_secs_f64(1.0 / 14.0)
        );
        assert_eq!(min_interval(Some(0.0)), Duration::from_secs(1));
        assert_eq!(min_interval(Some(f64::NAN)), Duration::from_secs(1));
        assert_eq!(min_interval(Some(1e-300)), Duration::from_secs(60));
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    /// An [`Email`] over a mocked SES (the crate has no `test-util` feature for
    /// `mock_client!`, so the client is built as that macro builds it).
    fn mocked(rules: &[&Rule]) -> Email {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = aws_sdk_sesv2::Config::builder()
            .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
            .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        Email::new(aws_sdk_sesv2::Client::from_conf(config))
    }

    async fn answer(error: SendEmailError) -> Verdict {
        let rule = mock!(aws_sdk_sesv2::Client::send_email).then_error(move || {
            // SendEmailError is not Clone; rebuild it from its metadata.
            let meta = meta(error.code().unwrap_or(""), error.message().unwrap_or(""));
            rebuild(&error, meta)
        });
        mocked(&[&rule])
            .send(
                "Alerts <alerts@acme.example>",
                &["ops@acme.example".to_owned()],
                &render(&card()),
            )
            .await
    }

    fn rebuild(error: &SendEmailError, meta: ErrorMetadata) -> SendEmailError {
        let message = meta.message().map(str::to_owned);
        match error {
            SendEmailError::TooManyRequestsException(_) => {
                SendEmailError::TooManyRequestsException(
                    ses::TooManyRequestsException::builder()
                        .set_message(message)
                        .meta(meta)
                        .build(),
                )
            }
            SendEmailError::LimitExceededException(_) => SendEmailError::LimitExceededException(
                ses::LimitExceededException::builder()
                    .set_message(message)
                    .meta(meta)
                    .build(),
            ),
            SendEmailError::AccountSuspendedException(_) => {
                SendEmailError::AccountSuspendedException(
                    ses::AccountSuspendedException::builder()
                        .set_message(message)
                        .meta(meta)
                        .build(),
                )
            }
            SendEmailError::SendingPausedException(_) => SendEmailError::SendingPausedException(
                ses::SendingPausedException::builder()
                    .set_message(message)
                    .meta(meta)
                    .build(),
            ),
            SendEmailError::MessageRejected(_) => SendEmailError::MessageRejected(
                ses::MessageRejected::builder()
                    .set_message(message)
                    .meta(meta)
                    .build(),
            ),
            SendEmailError::MailFromDomainNotVerifiedException(_) => {
                SendEmailError::MailFromDomainNotVerifiedException(
                    ses::MailFromDomainNotVerifiedException::builder()
                        .set_message(message)
                        .meta(meta)
                        .build(),
                )
            }
            SendEmailError::NotFoundException(_) => SendEmailError::NotFoundException(
                ses::NotFoundException::builder()
                    .set_message(message)
                    .meta(meta)
                    .build(),
            ),
            SendEmailError::BadRequestException(_) => SendEmailError::BadRequestException(
                ses::BadRequestException::builder()
                    .set_message(message)
                    .meta(meta)
                    .build(),
            ),
            _ => SendEmailError::generic(meta),
        }
    }

    fn error(variant: &str, message: &str) -> SendEmailError {
        let m = meta(variant, message);
        let shell = match variant {
            "TooManyRequestsException" => SendEmailError::TooManyRequestsException(
                ses::TooManyRequestsException::builder().build(),
            ),
            "LimitExceededException" => SendEmailError::LimitExceededException(
                ses::LimitExceededException::builder().build(),
            ),
            "AccountSuspendedException" => SendEmailError::AccountSuspendedException(
                ses::AccountSuspendedException::builder().build(),
            ),
            "SendingPausedException" => SendEmailError::SendingPausedException(
                ses::SendingPausedException::builder().build(),
            ),
            "MessageRejected" => {
                SendEmailError::MessageRejected(ses::MessageRejected::builder().build())
            }
            "MailFromDomainNotVerifiedException" => {
                SendEmailError::MailFromDomainNotVerifiedException(
                    ses::MailFromDomainNotVerifiedException::builder().build(),
                )
            }
            "NotFoundException" => {
                SendEmailError::NotFoundException(ses::NotFoundException::builder().build())
            }
            "BadRequestException" => {
                SendEmailError::BadRequestException(ses::BadRequestException::builder().build())
            }
            _ => SendEmailError::generic(m.clone()),
        };
        rebuild(&shell, m)
    }

    fn hint(v: &Verdict) -> &str {
        match v {
            Verdict::PauseTarget { hint, .. } => hint,
            other => panic!("not a pause: {other:?}"),
        }
    }

    #[tokio::test]
    async fn ses_answers_are_classified_as_the_module_says() {
        let v = answer(error(
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
        ))
        .await;
        assert_eq!(
            v,
            Verdict::RetryAfter {
                wait: Duration::from_secs(1),
                reason: "SES answered TooManyRequestsException: Maximum sending rate exceeded."
                    .into()
            }
        );
        let v = answer(error(
            "ThrottlingException",
            "Maximum sending rate exceeded.",
        ))
        .await;
        assert!(matches!(v, Verdict::RetryAfter { .. }), "{v:?}");
        for daily in [
            error("TooManyRequestsException", "Daily message quota exceeded."),
            error("ThrottlingException", "Daily message quota exceeded."),
            error("LimitExceededException", "Daily message quota exceeded."),
        ] {
            let v = answer(daily).await;
            assert!(hint(&v).contains("24-hour sending quota"), "{v:?}");
        }
        let v = answer(error("AccountSuspendedException", "suspended")).await;
        assert!(hint(&v).contains("AWS Support"));
        let v = answer(error("SendingPausedException", "paused")).await;
        assert!(hint(&v).contains("--sending-enabled"));
        let v = answer(error("MailFromDomainNotVerifiedException", "no")).await;
        assert!(hint(&v).contains("MAIL FROM domain of alerts@acme.example"));
        let v = answer(error("NotFoundException", "identity")).await;
        assert!(hint(&v).starts_with("verify alerts@acme.example in SES"));
        let v = answer(error("MessageRejected", "Message contains a virus.")).await;
        assert_eq!(
            v,
            Verdict::Park {
                reason: "SES answered MessageRejected: Message contains a virus.".into()
            }
        );
        let v = answer(error("BadRequestException", "bad")).await;
        assert!(matches!(v, Verdict::Park { .. }));
        let v = answer(error("AccessDeniedException", "not authorized")).await;
        assert!(hint(&v).contains("ses:SendEmail"));
    }

    #[tokio::test]
    async fn an_unverified_sender_or_sandbox_recipient_pauses_with_what_to_verify() {
        let sender = answer(error(
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in \
             region US-EAST-1: alerts@acme.example",
        ))
        .await;
        assert!(
            hint(&sender).starts_with("verify alerts@acme.example in SES"),
            "{sender:?}"
        );
        // moto's wording.
        let moto = answer(error(
            "MessageRejected",
            "Email address not verified Alerts <alerts@acme.example>",
        ))
        .await;
        assert!(hint(&moto).starts_with("verify alerts@acme.example in SES"));
        let recipient = answer(error(
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in \
             region US-EAST-1: ops@acme.example",
        ))
        .await;
        assert!(hint(&recipient).contains("sandbox"), "{recipient:?}");
        assert!(hint(&recipient).contains("verify ops@acme.example"));
    }

    #[tokio::test]
    async fn the_request_has_both_parts_in_utf8_and_the_receipt_is_the_message_id() {
        use aws_sdk_sesv2::operation::send_email::SendEmailOutput;
        let m = render(&card());
        let (html, text) = (m.html.clone(), m.text.clone());
        let rule = mock!(aws_sdk_sesv2::Client::send_email)
            .match_requests(move |r| {
                let Some(simple) = r.content().and_then(|c| c.simple()) else {
                    return false;
                };
                let part = |c: Option<&Content>| {
                    c.map(|c| (c.data().to_owned(), c.charset().map(str::to_owned)))
                };
                let utf8 = |data: &str| Some((data.to_owned(), Some("UTF-8".to_owned())));
                let body = simple.body();
                r.from_email_address() == Some("alerts@acme.example")
                    && r.destination().map(|d| d.to_addresses())
                        == Some(&["ops@acme.example".to_owned()][..])
                    && part(simple.subject()) == utf8("feature.used")
                    && part(body.and_then(|b| b.html())) == utf8(&html)
                    && part(body.and_then(|b| b.text())) == utf8(&text)
            })
            .then_output(|| SendEmailOutput::builder().message_id("m-1").build());
        let v = mocked(&[&rule])
            .send("alerts@acme.example", &["ops@acme.example".into()], &m)
            .await;
        assert_eq!(
            v,
            Verdict::Delivered {
                receipt: "m-1".into(),
                hold: None
            }
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn no_recipients_or_too_many_pause_without_calling_ses() {
        let email = mocked(&[]);
        let m = render(&card());
        assert!(matches!(
            email.send("a@acme.example", &[], &m).await,
            Verdict::PauseTarget { .. }
        ));
        let many: Vec<String> = (0..51).map(|i| format!("u{i}@acme.example")).collect();
        assert!(matches!(
            email.send("a@acme.example", &many, &m).await,
            Verdict::PauseTarget { .. }
        ));
    }

    #[test]
    fn failures_without_an_answer_say_whether_ses_may_have_sent() {
        use aws_sdk_sesv2::error::ConnectorError;
        let to = ["ops@acme.example".to_owned()];
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        assert!(matches!(
            classify(&e, "a@acme.example", &to),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let e = SdkError::dispatch_failure(ConnectorError::io(Box::new(reset)));
        assert!(matches!(
            classify(&e, "a@acme.example", &to),
            Verdict::Retry {
                maybe_sent: true,
                ..
            }
        ));
        let e = SdkError::timeout_error("slow");
        assert!(matches!(
            classify(&e, "a@acme.example", &to),
            Verdict::Retry {
                maybe_sent: true,
                ..
            }
        ));
        let e = SdkError::construction_failure("no region");
        assert!(matches!(
            classify(&e, "a@acme.example", &to),
            Verdict::Retry {
                maybe_sent: false,
                ..
            }
        ));
    }

    #[test]
    fn the_rendered_debug_shows_sizes_not_content() {
        let shown = format!("{:?}", render(&card()));
        assert!(!shown.contains("script"), "{shown}");
        assert!(shown.contains("html_bytes"));
    }
}
