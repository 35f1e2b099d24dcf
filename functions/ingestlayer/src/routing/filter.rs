//! `filter.match`: a Common Expression Language (CEL) expression over the event.
//!
//! Every top-level field of the event's data (and every entity attached by an earlier
//! `enrich.entity` step, under its name) is a variable; `event` holds them all as one map,
//! so `has(event.plan)` tests presence. The product's set shorthand
//! `feature in {export, api, webhook}` is rewritten before compiling to
//! `in_set(feature, ["export", "api", "webhook"])`, whose rule is: an element matches when
//! it equals the whole value or a run of whole dot-separated segments of it, so `export`
//! matches `csv.export` and `export`, but not `exports` or `profile.view`. Plain CEL list
//! membership (`feature in ["csv.export"]`) stays exact.
//!
//! `$source` is the source that sent the event (`webhook:stripe`, or an API key's source name
//! such as `web-app`), `$cloudevent` a CloudEvent's context attributes (`$cloudevent.subject`,
//! extensions; an empty map for other events) and `$webhook` the verified webhook's context (`$webhook.provider`,
//! `$webhook.source`, `$webhook.delivery_id`, …; an empty map for API-key events). Ingest sets
//! both from the credential, so the sender cannot: an event field named `source` is
//! `source` (or `event.source`), never `$source`.
//!
//! Expressions compile once, when the pipeline is loaded; evaluating one never parses.

use std::sync::{Arc, LazyLock};

use cel::{Context, Env, ExecutionError, Program, Value as CelValue};
use regex::Regex;
use serde_json::{Map, Value};

use crate::event::Origin;

/// What `$source` and `$webhook` become in the compiled expression. Bound after the
/// event's fields, so a field of the same name never shadows them.
const SOURCE_VAR: &str = "ingestlayer_source";
const WEBHOOK_VAR: &str = "ingestlayer_webhook";
const CLOUDEVENT_VAR: &str = "ingestlayer_cloudevent";

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

static SET_SHORTHAND: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
    Regex::new(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s+in\s+\{([^{}:]*)\}")
        .unwrap()
});

/// A compiled `filter.match` expression.
#[derive(Debug)]
pub struct Filter {
    source: String,
    program: Program,
}

/// Why an event could not be judged by a filter; the event does not match. An answer about
/// the event, returned by the pure [`Filter::matches`], not one of the library's failures.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("the expression did not give true or false but {0}")]
    NotBoolean(String),
    #[error("{0}")]
    Execution(#[from] ExecutionError),
}

impl Filter {
    /// Compiles `expr`, naming what is wrong when it does not compile.
    pub fn compile(expr: &str) -> crate::error::Result<Self> {
        if expr.trim().is_empty() {
            return Err(crate::error::Error::reason("the expression is empty"));
        }
        let rewritten = rewrite_set_shorthand(&rewrite_origin(expr)?)?;
        let program = ENV
            .compile(&rewritten)
            .map_err(|e| crate::error::Error::reason(format!("{expr:?} does not parse: {e}")))?;
        Ok(Self {
            source: expr.to_owned(),
            program,
        })
    }

    /// The expression as written in the pipeline.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the filter against an event context (an object of fields) sent by
    /// `origin`.
    ///
    /// A reference to a field the event lacks is an error, and the caller treats the event
    /// as not matching; `has(event.field)` tests presence without error.
    pub fn matches(&self, event: &Value, origin: &Origin<'_>) -> Result<bool, FilterError> {
        let mut ctx = Context::with_env(ENV.clone());
        // in_set is not a stdlib overload, so registering it cannot conflict.
        let _ = ctx.add_function("in_set", in_set);
        if let Value::Object(fields) = event {
            for (k, v) in fields {
                ctx.add_variable_from_value(k.as_str(), json_to_cel(v));
            }
        }
        ctx.add_variable_from_value("event", json_to_cel(event));
        ctx.add_variable_from_value(SOURCE_VAR, CelValue::from(origin.source.to_owned()));
        let empty = Map::new();
        let webhook = Value::Object(origin.webhook.unwrap_or(&empty).clone());
        ctx.add_variable_from_value(WEBHOOK_VAR, json_to_cel(&webhook));
        let cloudevent = Value::Object(origin.cloudevent.unwrap_or(&empty).clone());
        ctx.add_variable_from_value(CLOUDEVENT_VAR, json_to_cel(&cloudevent));
        match self.program.execute(&ctx)? {
            CelValue::Bool(b) => Ok(b),
            other => Err(FilterError::NotBoolean(format!("{other:?}"))),
        }
    }
}

/// How a filter judged one event, in the words of its own expression (for `ingestlayer
/// pipelines test` and `explain`; routing itself only needs [`Filter::matches`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Judgement {
    pub passed: bool,
    /// The part of the expression that decided: in `a && b` the first false part, in
    /// `a || b` the first true one, followed down through parentheses; the whole expression
    /// when every part agreed.
    pub decided_by: String,
    /// Why the event could not be judged (a missing field, a type error): it does not match.
    pub error: Option<String>,
    /// What the deciding part read from the event: `feature = "search"`, `plan is absent`,
    /// `$source = "web-app"`, in name order.
    pub seen: Vec<String>,
}

impl Filter {
    /// Judges `event` and names the part of the expression that decided.
    pub fn explain(&self, event: &Value, origin: &Origin<'_>) -> Judgement {
        match self.matches(event, origin) {
            Ok(passed) => {
                let decided_by = deciding_part(&self.source, passed, event, origin);
                Judgement {
                    passed,
                    seen: self.seen(&decided_by, event, origin),
                    decided_by,
                    error: None,
                }
            }
            Err(e) => Judgement {
                passed: false,
                decided_by: self.source.clone(),
                error: Some(e.to_string()),
                seen: self.seen(&self.source, event, origin),
            },
        }
    }

    /// The values `part` (a part of this expression) reads: each event field it names, and
    /// `$source`. Long values are cut at 80 characters.
    fn seen(&self, part: &str, event: &Value, origin: &Origin<'_>) -> Vec<String> {
        let references = self.program.references();
        let mut names = references.variables();
        names.sort_unstable();
        let mut out = Vec::new();
        for name in names {
            if name == SOURCE_VAR {
                if part.contains("$source") {
                    out.push(format!("$source = {:?}", origin.source));
                }
                continue;
            }
            if name == WEBHOOK_VAR
                || name == CLOUDEVENT_VAR
                || name == "event"
                || !names_word(part, name)
            {
                continue;
            }
            match event.get(name) {
                Some(v) => {
                    let text = v.to_string();
                    let cut: String = text.chars().take(80).collect();
                    let more = if cut.len() < text.len() { "…" } else { "" };
                    out.push(format!("{name} = {cut}{more}"));
                }
                None => out.push(format!("{name} is absent")),
            }
        }
        out
    }
}

/// Whether `text` holds `word` as a whole identifier (not inside a longer one or a string).
fn names_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(|c| ident(c) || c == '"' || c == '\'')
            && !after.is_some_and(|c| ident(c) || c == '"' || c == '\'')
    })
}

/// The smallest part of `expr` that gives the whole its value `value`.
fn deciding_part(expr: &str, value: bool, event: &Value, origin: &Origin<'_>) -> String {
    let expr = strip_parens(expr.trim());
    // `||` binds looser than `&&`: split on it first.
    for (op, decisive) in [("||", true), ("&&", false)] {
        let parts = split_top(expr, op);
        if parts.len() < 2 {
            continue;
        }
        if value == decisive {
            // The first part with the decisive value decided it.
            for part in &parts {
                let judged = Filter::compile(part)
                    .ok()
                    .and_then(|f| f.matches(event, origin).ok());
                if judged == Some(decisive) {
                    return deciding_part(part, decisive, event, origin);
                }
            }
        }
        // Every part agreed (all false for `||`, all true for `&&`): the whole decided.
        return expr.to_owned();
    }
    expr.to_owned()
}

/// `expr` without parentheses that wrap all of it.
fn strip_parens(expr: &str) -> &str {
    let mut e = expr;
    while e.starts_with('(') && e.ends_with(')') && split_top(&e[1..e.len() - 1], "").len() == 1 {
        e = e[1..e.len() - 1].trim();
    }
    e
}

/// Splits `expr` at `op` where it is outside brackets and quotes. With an empty `op`, gives
/// one part when the brackets balance and none otherwise (a check for [`strip_parens`]).
fn split_top<'e>(expr: &'e str, op: &str) -> Vec<&'e str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < expr.len() {
        let c = bytes[i] as char;
        match quote {
            Some(_) if c == '\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => {
                    depth -= 1;
                    if depth < 0 {
                        return Vec::new();
                    }
                }
                _ if depth == 0 && !op.is_empty() && expr[i..].starts_with(op) => {
                    parts.push(expr[start..i].trim());
                    i += op.len();
                    start = i;
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    if depth != 0 {
        return Vec::new();
    }
    parts.push(expr[start..].trim());
    parts
}

fn json_to_cel(v: &Value) -> CelValue {
    cel::to_value(CelJson(v)).unwrap_or(CelValue::Null)
}

/// JSON as CEL sees it: integers that fit are `int` (so `count + 1` and `count > 10`
/// work with CEL's int literals), other numbers `uint` or `double`.
struct CelJson<'a>(&'a Value);

impl serde::Serialize for CelJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => s.serialize_i64(i),
                (None, Some(u), _) => s.serialize_u64(u),
                (None, None, Some(f)) => s.serialize_f64(f),
                _ => s.serialize_unit(),
            },
            Value::String(t) => s.serialize_str(t),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&CelJson(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, &CelJson(v))?;
                }
                m.end()
            }
        }
    }
}

/// The set-shorthand rule (see the module docs).
fn in_set(value: CelValue, set: Arc<Vec<CelValue>>) -> bool {
    let candidates: Vec<String> = match &value {
        CelValue::List(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    };
    set.iter()
        .filter_map(scalar_text)
        .any(|element| candidates.iter().any(|c| segment_match(c, &element)))
}

fn scalar_text(v: &CelValue) -> Option<String> {
    match v {
        CelValue::String(s) => Some(s.as_str().to_owned()),
        CelValue::Int(i) => Some(i.to_string()),
        CelValue::UInt(u) => Some(u.to_string()),
        CelValue::Float(f) => Some(f.to_string()),
        CelValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// True when `element` equals `value` or a run of whole dot-separated segments of it.
pub fn segment_match(value: &str, element: &str) -> bool {
    if element.is_empty() {
        return false;
    }
    value == element
        || value.starts_with(&format!("{element}."))
        || value.ends_with(&format!(".{element}"))
        || value.contains(&format!(".{element}."))
}

/// Rewrites `$source` and `$webhook` outside string literals into the variables that hold
/// them; any other `$name` is an error naming the two.
fn rewrite_origin(expr: &str) -> crate::error::Result<String> {
    let mut out = String::with_capacity(expr.len() + 32);
    let mut chars = expr.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                quote = Some(c);
                out.push(c);
            }
            '$' => {
                let rest = &expr[i + 1..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let var = match word.as_str() {
                    "source" => SOURCE_VAR,
                    "webhook" => WEBHOOK_VAR,
                    "cloudevent" => CLOUDEVENT_VAR,
                    _ => {
                        return Err(crate::error::Error::reason(format!(
                            "${word} in {expr:?} is not known: filters see $source, $webhook and $cloudevent"
                        )))
                    }
                };
                out.push_str(var);
                for _ in 0..word.len() {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Rewrites `field in {a, b, "c d"}` into `in_set(field, ["a", "b", "c d"])`.
fn rewrite_set_shorthand(expr: &str) -> crate::error::Result<String> {
    let mut out = String::with_capacity(expr.len() + 16);
    let mut last = 0;
    for caps in SET_SHORTHAND.captures_iter(expr) {
        let (Some(whole), Some(lhs), Some(items)) = (caps.get(0), caps.get(1), caps.get(2)) else {
            continue;
        };
        let mut elements = Vec::new();
        for raw in items.as_str().split(',') {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let unquoted = if item.len() >= 2
                && ((item.starts_with('"') && item.ends_with('"'))
                    || (item.starts_with('\'') && item.ends_with('\'')))
            {
                item[1..item.len() - 1].to_owned()
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
            {
                item.to_owned()
            } else {
                return Err(crate::error::Error::reason(format!(
                    "set element {item:?} in {:?} must be a word (letters, digits, _ . - /) or a quoted string",
                    whole.as_str()
                )));
            };
            elements.push(serde_json::Value::String(unquoted).to_string());
        }
        if elements.is_empty() {
            return Err(crate::error::Error::reason(format!(
                "the set in {:?} is empty",
                whole.as_str()
            )));
        }
        out.push_str(&expr[last..whole.start()]);
        out.push_str(&format!(
            "in_set({}, [{}])",
            lhs.as_str(),
            elements.join(", ")
        ));
        last = whole.end();
    }
    out.push_str(&expr[last..]);
    Ok(out)
}

#[cfg(test)]
mod explain_tests {
    use super::*;
    use serde_json::json;

    fn decided(expr: &str, event: Value) -> Judgement {
        let origin = Origin {
            source: "web-app",
            webhook: None,
            cloudevent: None,
        };
        Filter::compile(expr).unwrap().explain(&event, &origin)
    }

    #[test]
    fn the_first_false_part_of_an_and_decides_a_failure() {
        let j = decided(
            r#"plan == "free" && feature in {export, api}"#,
            json!({"plan": "pro", "feature": "csv.export"}),
        );
        assert!(!j.passed);
        assert_eq!(j.decided_by, r#"plan == "free""#);
        let j = decided(
            r#"plan == "free" && feature in {export, api}"#,
            json!({"plan": "free", "feature": "profile.view"}),
        );
        assert_eq!(j.decided_by, "feature in {export, api}");
        assert_eq!(j.seen, vec![r#"feature = "profile.view""#.to_owned()]);
    }

    #[test]
    fn what_the_deciding_part_read_is_named_with_its_value_or_as_absent() {
        let j = decided(
            r#"$source == "cli" && plan == "pro""#,
            json!({"plan": "pro"}),
        );
        assert_eq!(j.decided_by, r#"$source == "cli""#);
        assert_eq!(j.seen, vec![r#"$source = "web-app""#.to_owned()]);
        let j = decided(r#"plan == "pro""#, json!({"feature": "api"}));
        assert!(j.error.is_some());
        assert_eq!(j.seen, vec!["plan is absent".to_owned()]);
        let j = decided(
            r#"planned == "plan" || plan == "x""#,
            json!({"planned": "no", "plan": "y"}),
        );
        assert_eq!(
            j.seen,
            vec![r#"plan = "y""#.to_owned(), r#"planned = "no""#.to_owned()],
            "a name inside a longer one or a string is not a read"
        );
    }

    #[test]
    fn the_first_true_part_of_an_or_decides_a_pass_through_parentheses() {
        let j = decided(
            r#"(count > 100 || (plan == "free" && feature == "api")) && true"#,
            json!({"count": 3, "plan": "free", "feature": "api"}),
        );
        assert!(j.passed);
        assert_eq!(
            j.decided_by, r#"(count > 100 || (plan == "free" && feature == "api")) && true"#,
            "every part of the && agreed, so the whole decided"
        );
        let j = decided(
            r#"count > 100 || (plan == "free" && feature == "api")"#,
            json!({"count": 3, "plan": "free", "feature": "api"}),
        );
        assert_eq!(j.decided_by, r#"plan == "free" && feature == "api""#);
    }

    #[test]
    fn operators_inside_strings_and_brackets_are_not_split() {
        assert_eq!(
            split_top(r#"a == "x && y" && b"#, "&&"),
            [r#"a == "x && y""#, "b"]
        );
        assert_eq!(split_top("f(a && b) && c", "&&"), ["f(a && b)", "c"]);
        assert_eq!(strip_parens("(a) && (b)"), "(a) && (b)");
        assert_eq!(strip_parens("((a && b))"), "a && b");
    }

    #[test]
    fn an_event_that_cannot_be_judged_says_why() {
        let j = decided("missing > 3", json!({}));
        assert!(!j.passed);
        assert!(j.error.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const API_KEY: Origin<'static> = Origin {
        source: "web-app",
        webhook: None,
        cloudevent: None,
    };

    fn run(expr: &str, event: Value) -> bool {
        Filter::compile(expr)
            .unwrap()
            .matches(&event, &API_KEY)
            .unwrap_or(false)
    }

    #[test]
    fn source_and_webhook_come_from_the_origin_never_from_the_event() {
        let stripe_context = json!({"provider": "stripe", "source": "stripe", "livemode": true});
        let stripe = Origin {
            source: "webhook:stripe",
            webhook: stripe_context.as_object(),
            cloudevent: None,
        };
        let forged = json!({"source": "webhook:stripe", "ingestlayer_source": "webhook:stripe",
            "webhook": {"provider": "stripe"}, "ingestlayer_webhook": {"provider": "stripe"}});
        let f = Filter::compile("$source == 'webhook:stripe'").unwrap();
        assert!(f.matches(&json!({}), &stripe).unwrap());
        assert!(!f.matches(&forged, &API_KEY).unwrap());
        let f = Filter::compile(r#"$webhook.provider == "stripe" && $webhook.livemode"#).unwrap();
        assert!(f.matches(&json!({}), &stripe).unwrap());
        assert!(
            f.matches(&forged, &API_KEY).is_err(),
            "no webhook context: not a match"
        );
        let f = Filter::compile("has($webhook.provider)").unwrap();
        assert!(!f.matches(&forged, &API_KEY).unwrap());
        // The event's own `source` field is still there, under its own name.
        let f = Filter::compile("source == 'webhook:stripe' && $source == 'web-app'").unwrap();
        assert!(f.matches(&forged, &API_KEY).unwrap());
        // In a string literal `$source` is text; the set shorthand works on it.
        let f = Filter::compile(r#"note == '$source' && $source in {web-app, billing}"#).unwrap();
        assert!(f.matches(&json!({"note": "$source"}), &API_KEY).unwrap());
        let e = Filter::compile("$sender == 'x'").unwrap_err();
        assert!(
            e.to_string().contains("$source, $webhook and $cloudevent"),
            "{e}"
        );
    }

    #[test]
    fn the_products_example_passes_csv_export_and_drops_profile_view() {
        let f = Filter::compile("feature in {export, api, webhook}").unwrap();
        let m = |e: Value| f.matches(&e, &API_KEY).unwrap();
        assert!(m(json!({"feature": "csv.export"})));
        assert!(m(json!({"feature": "api"})));
        assert!(m(json!({"feature": "webhook.retry"})));
        assert!(!m(json!({"feature": "profile.view"})));
        assert!(!m(json!({"feature": "exports"})));
    }

    #[test]
    fn plain_cel_list_membership_is_exact() {
        assert!(run(
            r#"feature in ["csv.export"]"#,
            json!({"feature": "csv.export"})
        ));
        assert!(!run(
            r#"feature in ["export"]"#,
            json!({"feature": "csv.export"})
        ));
    }

    #[test]
    fn free_plan_using_a_paid_feature() {
        let expr = r#"plan == "free" && feature in {export, api}"#;
        assert!(run(expr, json!({"plan": "free", "feature": "csv.export"})));
        assert!(!run(expr, json!({"plan": "pro", "feature": "csv.export"})));
        assert!(!run(
            expr,
            json!({"plan": "free", "feature": "profile.view"})
        ));
    }

    #[test]
    fn and_or_not_comparisons_and_presence() {
        assert!(run(
            "count >= 10 || !(plan == 'pro')",
            json!({"count": 12, "plan": "pro"})
        ));
        assert!(!run(
            "count > 10 && plan != 'free'",
            json!({"count": 3, "plan": "pro"})
        ));
        assert!(run("has(event.owner)", json!({"owner": "maria"})));
        assert!(!run("has(event.owner)", json!({"plan": "pro"})));
        assert!(run("user.plan == 'pro'", json!({"user": {"plan": "pro"}})));
    }

    #[test]
    fn a_missing_field_is_an_error_not_a_match() {
        let f = Filter::compile("plan == 'free'").unwrap();
        assert!(f.matches(&json!({"feature": "api"}), &API_KEY).is_err());
    }

    #[test]
    fn non_boolean_results_are_errors() {
        let f = Filter::compile("count + 1").unwrap();
        assert!(matches!(
            f.matches(&json!({"count": 1}), &API_KEY),
            Err(FilterError::NotBoolean(_))
        ));
    }

    #[test]
    fn bad_expressions_are_rejected_at_compile_time() {
        assert!(Filter::compile("feature in {").is_err());
        assert!(Filter::compile("  ").is_err());
        assert!(Filter::compile("feature in {a b}").is_err());
        assert!(Filter::compile("plan ==").is_err());
    }

    #[test]
    fn quoted_set_elements_are_allowed() {
        assert!(run(
            r#"feature in {"bulk export", 'api'}"#,
            json!({"feature": "bulk export"})
        ));
    }
}
