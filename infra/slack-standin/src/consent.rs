//! The pages a person sees at `/oauth/v2/authorize`: the consent page (Allow / Cancel) and the
//! error page. Plain HTML forms, no script, so a headless browser can click through. Every value
//! that came from a request is HTML-escaped.

use std::fmt::Write;

use crate::oauth::{AuthorizeError, AuthorizeRequest, APP_NAME};

/// Where the consent forms post, relative to the stand-in's root.
pub(crate) const FORM_ACTION: &str = "/oauth/v2/authorize";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;\
padding:0 1rem;color:#1d1c1d}h1{font-size:1.4rem}li code{background:#f4f4f4;padding:0 .2rem}\
form{display:inline-block;margin-right:.5rem}button{font-size:1rem;padding:.5rem 1.5rem}\
.allow{background:#007a5a;color:#fff;border:0;border-radius:4px}";

/// The consent page: who asks, which scopes, and two forms that post the request back with
/// `decision=allow` or `decision=cancel`.
pub(crate) fn page(request: &AuthorizeRequest, team_name: &str) -> String {
    let title = format!("Install {APP_NAME} to {team_name} workspace");
    let mut html = head(&title);
    let _ = write!(
        html,
        "<h1>{}</h1>\n<p><strong>{}</strong> is requesting permission to access the \
         <strong>{}</strong> Slack workspace.</p>\n",
        escape(&title),
        escape(APP_NAME),
        escape(team_name),
    );
    scope_list(
        &mut html,
        "What it will be able to do as a bot",
        &request.bot_scopes,
    );
    scope_list(
        &mut html,
        "What it will be able to do on your behalf",
        &request.user_scopes,
    );
    let _ = writeln!(
        html,
        "<p>You will be sent back to <code>{}</code>.</p>",
        escape(request.redirect_uri.as_str())
    );
    decision_form(&mut html, request, "allow", "Allow", " class=\"allow\"");
    decision_form(&mut html, request, "cancel", "Cancel", "");
    html.push_str("</body>\n</html>\n");
    html
}

/// The page shown instead of consent when the request cannot be honoured.
pub(crate) fn error_page(error: AuthorizeError) -> String {
    let mut html = head("Something went wrong");
    let _ = write!(
        html,
        "<h1>Something went wrong when authorizing this app.</h1>\n\
         <p>Error: <code id=\"error\">{}</code></p>\n<p>{}</p>\n</body>\n</html>\n",
        escape(error.code()),
        escape(error.explanation()),
    );
    html
}

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

fn scope_list(html: &mut String, heading: &str, scopes: &[String]) {
    if scopes.is_empty() {
        return;
    }
    let _ = writeln!(html, "<h2>{}</h2>\n<ul>", escape(heading));
    for scope in scopes {
        let _ = writeln!(html, "<li><code>{}</code></li>", escape(scope));
    }
    html.push_str("</ul>\n");
}

fn decision_form(
    html: &mut String,
    request: &AuthorizeRequest,
    decision: &str,
    label: &str,
    button_attributes: &str,
) {
    let _ = writeln!(html, "<form method=\"post\" action=\"{FORM_ACTION}\">");
    hidden(html, "client_id", &request.client_id);
    hidden(html, "scope", &request.bot_scopes.join(","));
    hidden(html, "user_scope", &request.user_scopes.join(","));
    hidden(html, "redirect_uri", request.redirect_uri.as_str());
    if let Some(state) = &request.state {
        hidden(html, "state", state);
    }
    hidden(html, "decision", decision);
    let _ = writeln!(
        html,
        "<button type=\"submit\"{button_attributes}>{}</button>\n</form>",
        escape(label)
    );
}

fn hidden(html: &mut String, name: &str, value: &str) {
    let _ = writeln!(
        html,
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    );
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failing test may panic
mod tests {
    use super::*;

    fn request(query: &str) -> AuthorizeRequest {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        AuthorizeRequest::parse(&pairs, &[("cid".to_owned(), "s".to_owned())]).unwrap()
    }

    #[test]
    fn escape_covers_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn nothing_from_the_request_reaches_the_page_unescaped() {
        let page = page(
            &request(
                "client_id=cid&scope=chat:write&state=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E\
                 &redirect_uri=https%3A%2F%2Fa.example%2Fcb%3Fq%3D%22%3E%3Cimg%3E",
            ),
            "<Team>",
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img>"), "{page}");
        assert!(!page.contains("<Team>"), "{page}");
        assert!(page.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("Install ingestlayer to &lt;Team&gt; workspace"));
    }

    #[test]
    fn the_page_has_an_allow_and_a_cancel_form_listing_the_scopes() {
        let page = page(
            &request("client_id=cid&scope=chat:write,channels:read&redirect_uri=https://a.example/&state=s"),
            "Stand-in",
        );
        assert!(page.contains("<title>Install ingestlayer to Stand-in workspace</title>"));
        assert!(page.contains("<li><code>chat:write</code></li>"));
        assert!(page.contains("<li><code>channels:read</code></li>"));
        assert!(page.contains(">Allow</button>"));
        assert!(page.contains(">Cancel</button>"));
        assert_eq!(page.matches("<form method=\"post\"").count(), 2);
        assert!(page.contains("name=\"decision\" value=\"allow\""));
        assert!(page.contains("name=\"decision\" value=\"cancel\""));
        assert!(!page.contains("<script"));
    }
}
