//! Template formatters: `${event.amount_due | money: event.currency}`, `| number`, `| date`,
//! `| datetime`, `| ago`, `| default: text`, chained left to right.
//!
//! A formatter turns a value into text; it never escapes (the template escapes whatever comes
//! out, as for any value) and never fails at render time: a value it cannot read passes on
//! unchanged, so the raw value is shown. Times are the exception to "text": in mrkdwn they
//! become Slack's date token (`<!date^1700000000^{date_short_pretty}|Nov 14, 2023>`), which
//! each reader sees in their own time zone, with the UTC text as the fallback; where Slack
//! shows no tokens (plain_text, a link's label or target) they are the UTC text.

use iso_currency::Currency;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::slack::block_kit::escape;

/// The formatters a template may name, for error messages.
const KNOWN: &str = "money, number, date, datetime, ago, default";

/// Unix times at or above this are milliseconds (1973 in ms; year 5138 in seconds).
const MILLIS_FROM: i64 = 100_000_000_000;

/// How a time is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeStyle {
    /// `Nov 14, 2023` (Slack: `{date_short_pretty}`, so "today" and "yesterday" too).
    Date,
    /// `Nov 14, 2023 22:13 UTC` (Slack: `{date_short_pretty} {time}`).
    DateTime,
    /// `3 hours ago` (Slack: `{ago}`); the UTC date and time where tokens do not render.
    Ago,
    /// `22:13 UTC` (Slack: `{time}`).
    Time,
}

/// One formatter of a `${ref | …}` chain. `R` is the template's reference type (the
/// currency of `money: event.currency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formatter<R> {
    /// Minor units (`4900`) as money (`$49.00`).
    Money(MoneyArg<R>),
    /// `12345.5` as `12,345.5`.
    Number,
    /// Unix seconds, unix milliseconds or RFC 3339 as a time.
    Time(TimeStyle),
    /// This text where the value is missing, null or empty.
    Default(String),
}

/// Which currency `money` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyArg<R> {
    /// Written in the template: `money: usd`.
    Code(Currency),
    /// Read from the event: `money: event.currency`.
    Ref(R),
}

/// A value on its way through a chain of formatters.
#[derive(Debug, Clone, PartialEq)]
pub enum Formatted {
    /// The reference names nothing.
    Missing,
    /// A value as the event holds it.
    Value(Value),
    /// Text a formatter made.
    Text(String),
    /// A point in time, and how to show it.
    Time(OffsetDateTime, TimeStyle),
}

/// What a formatted value finally is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Missing,
    /// Text to escape (or percent-encode) like any value.
    Plain(String),
    /// mrkdwn already safe to insert as is (a Slack date token).
    Markup(String),
}

/// Parses the formatters after a reference (`money: event.currency`, `number`, …), each
/// given without its `|`. `parse_ref` reads a reference argument (`event.currency`). The
/// error names the formatter and what is wrong with it.
pub fn parse_chain<R>(
    parts: &[&str],
    parse_ref: impl Fn(&str) -> Option<R>,
) -> Result<Vec<Formatter<R>>, String> {
    parts
        .iter()
        .map(|part| {
            let (name, arg) = match part.split_once(':') {
                Some((n, a)) => (n.trim(), Some(a.trim())),
                None => (part.trim(), None),
            };
            let no_arg = |f: Formatter<R>| match arg {
                None => Ok(f),
                Some(_) => Err(format!("formatter {name:?} takes no argument")),
            };
            match name {
                "" => Err("an empty formatter after `|`".to_owned()),
                "number" => no_arg(Formatter::Number),
                "date" => no_arg(Formatter::Time(TimeStyle::Date)),
                "datetime" => no_arg(Formatter::Time(TimeStyle::DateTime)),
                "ago" => no_arg(Formatter::Time(TimeStyle::Ago)),
                "money" => money_arg(arg, &parse_ref).map(Formatter::Money),
                "default" => match arg.map(unquote) {
                    Some(text) if !text.is_empty() => Ok(Formatter::Default(text.to_owned())),
                    _ => Err("formatter \"default\" needs a text: `default: none`".to_owned()),
                },
                other => Err(format!("unknown formatter {other:?} (known: {KNOWN})")),
            }
        })
        .collect()
}

fn money_arg<R>(
    arg: Option<&str>,
    parse_ref: &impl Fn(&str) -> Option<R>,
) -> Result<MoneyArg<R>, String> {
    let Some(arg) = arg.filter(|a| !a.is_empty()) else {
        return Err(
            "formatter \"money\" needs a currency: `money: usd` or `money: event.currency`"
                .to_owned(),
        );
    };
    if arg.len() == 3 && arg.chars().all(|c| c.is_ascii_alphabetic()) {
        return Currency::from_code(&arg.to_ascii_uppercase())
            .map(MoneyArg::Code)
            .ok_or_else(|| {
                format!("formatter \"money\": {arg:?} is not an ISO 4217 currency code")
            });
    }
    parse_ref(arg).map(MoneyArg::Ref).ok_or_else(|| {
        format!(
            "formatter \"money\": {arg:?} is neither a currency code (usd) nor a reference (event.currency)"
        )
    })
}

/// `"text"` or `'text'` without its quotes.
fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Applies one formatter. `resolve` reads a reference argument's value.
pub fn apply<R>(
    f: &Formatter<R>,
    v: Formatted,
    resolve: &dyn Fn(&R) -> Option<Value>,
) -> Formatted {
    match f {
        Formatter::Default(text) => {
            let empty = match &v {
                Formatted::Missing | Formatted::Value(Value::Null) => true,
                Formatted::Value(Value::String(s)) | Formatted::Text(s) => s.trim().is_empty(),
                _ => false,
            };
            if empty {
                Formatted::Text(text.clone())
            } else {
                v
            }
        }
        Formatter::Number => match &v {
            Formatted::Value(value) => number(value).map(Formatted::Text).unwrap_or(v),
            _ => v,
        },
        Formatter::Time(style) => match &v {
            Formatted::Value(value) => time_of(value)
                .map(|at| Formatted::Time(at, *style))
                .unwrap_or(v),
            Formatted::Time(at, _) => Formatted::Time(*at, *style),
            _ => v,
        },
        Formatter::Money(arg) => {
            let Formatted::Value(value) = &v else {
                return v;
            };
            let currency = match arg {
                MoneyArg::Code(c) => Some(*c),
                MoneyArg::Ref(r) => resolve(r).as_ref().and_then(currency_of),
            };
            match (minor_units(value), currency) {
                (Some(amount), Some(c)) => Formatted::Text(money(amount, c)),
                _ => v,
            }
        }
    }
}

/// The end of a chain: text, a Slack date token (`tokens`: where mrkdwn renders them), or
/// missing.
pub fn finish(v: Formatted, tokens: bool) -> Output {
    match v {
        Formatted::Missing => Output::Missing,
        Formatted::Value(value) => Output::Plain(display_value(&value)),
        Formatted::Text(t) => Output::Plain(t),
        Formatted::Time(at, style) if tokens => Output::Markup(time_token(at, style)),
        Formatted::Time(at, style) => Output::Plain(time_text(at, style)),
    }
}

/// A value as text: strings as they are, anything else as JSON.
pub fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number with `,` between thousands (`12,345.678`); `None` for anything but a number or
/// a string holding one.
pub fn number(v: &Value) -> Option<String> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return None,
    };
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s.as_str()),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return None;
    }
    let mut out = format!("{sign}{}", group(int));
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    Some(out)
}

/// `1234567` as `1,234,567`.
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount in minor units: an integer, or a string holding one.
fn minor_units(v: &Value) -> Option<i128> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 1e18)
                    .map(|f| f as i128)
            }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn currency_of(v: &Value) -> Option<Currency> {
    Currency::from_code(&v.as_str()?.trim().to_ascii_uppercase())
}

/// Minor units as money: `$49.00`, `-€12.50`, `¥500`, `KWD 1.500` → `1.500 KWD`. The symbol
/// stands before the amount where it is one sign that says which currency it is (`€`, `₹`,
/// `R$`); a `$`, `£` or `¥` shared with other currencies takes their country (`CA$`, `CN¥`);
/// anything else gets the code after the amount.
pub fn money(amount: i128, currency: Currency) -> String {
    let exponent = u32::from(currency.exponent().unwrap_or(0));
    let unit = 10u128.pow(exponent);
    let abs = amount.unsigned_abs();
    let mut number = group(&(abs / unit).to_string());
    if exponent > 0 {
        number.push_str(&format!(
            ".{:0width$}",
            abs % unit,
            width = exponent as usize
        ));
    }
    let sign = if amount < 0 { "-" } else { "" };
    match symbol(currency) {
        Some(s) => format!("{sign}{s}{number}"),
        None => format!("{sign}{number} {}", currency.code()),
    }
}

/// The symbol to write before an amount, when there is one that is not ambiguous.
fn symbol(currency: Currency) -> Option<String> {
    let symbol = currency.symbol().symbol;
    let code = currency.code();
    // The currency a shared one-sign symbol means on its own.
    let home = match symbol.as_str() {
        "$" => Some("USD"),
        "£" => Some("GBP"),
        "¥" => Some("JPY"),
        "₩" => Some("KRW"),
        _ => None,
    };
    match home {
        Some(h) if h == code => Some(symbol),
        Some(_) if matches!(symbol.as_str(), "$" | "£" | "¥") => {
            Some(format!("{}{symbol}", &code[..2]))
        }
        Some(_) => None,
        None if symbol.ends_with('$') && symbol.is_ascii() => Some(symbol),
        None => {
            let mut chars = symbol.chars();
            match (chars.next(), chars.next()) {
                // One sign, not a letter, not the "no symbol" sign, and not one that several
                // currencies share.
                (Some(c), None)
                    if !c.is_alphabetic() && !matches!(c, '¤' | '₣' | '₨' | '₱' | 'ƒ') =>
                {
                    Some(symbol)
                }
                _ => None,
            }
        }
    }
}

/// A time from unix seconds, unix milliseconds (from 1973 on), or an RFC 3339 string.
pub fn time_of(v: &Value) -> Option<OffsetDateTime> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9e18)
                .map(|f| f.trunc() as i64)
        })?,
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                return OffsetDateTime::parse(s.trim(), &Rfc3339)
                    .ok()
                    .map(|t| t.to_offset(time::UtcOffset::UTC))
            }
        },
        _ => return None,
    };
    let secs = if n.abs() >= MILLIS_FROM {
        n.div_euclid(1000)
    } else {
        n
    };
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// Slack's date token for `at`, with the UTC text as its fallback.
pub fn time_token(at: OffsetDateTime, style: TimeStyle) -> String {
    let format = match style {
        TimeStyle::Date => "{date_short_pretty}",
        TimeStyle::DateTime => "{date_short_pretty} {time}",
        TimeStyle::Ago => "{ago}",
        TimeStyle::Time => "{time}",
    };
    format!(
        "<!date^{}^{format}|{}>",
        at.unix_timestamp(),
        escape(&time_text(at, style))
    )
}

/// `at` in UTC as text: `Nov 14, 2023`, `Nov 14, 2023 22:13 UTC` or `22:13 UTC`.
pub fn time_text(at: OffsetDateTime, style: TimeStyle) -> String {
    let date = format_description!("[month repr:short] [day padding:none], [year]");
    let clock = format_description!("[hour]:[minute]");
    let d = at.format(&date).unwrap_or_default();
    let t = at.format(&clock).unwrap_or_default();
    match style {
        TimeStyle::Date => d,
        TimeStyle::DateTime | TimeStyle::Ago => format!("{d} {t} UTC"),
        TimeStyle::Time => format!("{t} UTC"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type F = Formatter<String>;

    fn chain(parts: &[&str]) -> Result<Vec<F>, String> {
        parse_chain(parts, |r| {
            r.strip_prefix("event.")
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
        })
    }

    /// Runs `value` through the chain; references resolve in `event`.
    fn run(parts: &[&str], value: Option<Value>, event: &Value, tokens: bool) -> Output {
        let fs = chain(parts).unwrap();
        let resolve = |r: &String| event.get(r.as_str()).cloned();
        let mut v = value.map(Formatted::Value).unwrap_or(Formatted::Missing);
        for f in &fs {
            v = apply(f, v, &resolve);
        }
        finish(v, tokens)
    }

    fn text(parts: &[&str], value: Value) -> String {
        match run(parts, Some(value), &json!({"currency": "eur"}), false) {
            Output::Plain(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn money_uses_the_currencys_own_decimals_and_symbol() {
        assert_eq!(text(&["money: usd"], json!(4900)), "$49.00");
        assert_eq!(text(&["money: USD"], json!(4905)), "$49.05");
        assert_eq!(text(&["money: event.currency"], json!(1250)), "€12.50");
        assert_eq!(text(&["money: jpy"], json!(500)), "¥500");
        assert_eq!(text(&["money: kwd"], json!(1500)), "1.500 KWD");
        assert_eq!(text(&["money: bhd"], json!(-12345)), "-12.345 BHD");
        assert_eq!(text(&["money: usd"], json!(123456789)), "$1,234,567.89");
        assert_eq!(text(&["money: usd"], json!(-4900)), "-$49.00");
        assert_eq!(text(&["money: usd"], json!(5)), "$0.05");
        assert_eq!(text(&["money: usd"], json!("4900")), "$49.00");
        assert_eq!(text(&["money: gbp"], json!(100)), "£1.00");
        assert_eq!(text(&["money: inr"], json!(100)), "₹1.00");
        assert_eq!(text(&["money: brl"], json!(100)), "R$1.00");
        assert_eq!(text(&["money: cad"], json!(100)), "CA$1.00");
        assert_eq!(text(&["money: cny"], json!(100)), "CN¥1.00");
        assert_eq!(text(&["money: sek"], json!(100)), "1.00 SEK");
        assert_eq!(text(&["money: chf"], json!(100)), "1.00 CHF");
        assert_eq!(text(&["money: clf"], json!(10000)), "1.0000 CLF");
    }

    #[test]
    fn money_of_something_it_cannot_read_is_the_raw_value() {
        assert_eq!(text(&["money: usd"], json!("abc")), "abc");
        assert_eq!(text(&["money: usd"], json!(49.5)), "49.5");
        assert_eq!(text(&["money: usd"], json!(true)), "true");
        // The event's currency is not one.
        let out = run(
            &["money: event.currency"],
            Some(json!(4900)),
            &json!({"currency": "zzz"}),
            false,
        );
        assert_eq!(out, Output::Plain("4900".into()));
        let out = run(
            &["money: event.currency"],
            Some(json!(4900)),
            &json!({}),
            false,
        );
        assert_eq!(out, Output::Plain("4900".into()));
    }

    #[test]
    fn number_groups_thousands_and_keeps_decimals() {
        assert_eq!(text(&["number"], json!(12345)), "12,345");
        assert_eq!(text(&["number"], json!(1234567.891)), "1,234,567.891");
        assert_eq!(text(&["number"], json!(-1000)), "-1,000");
        assert_eq!(text(&["number"], json!(999)), "999");
        assert_eq!(text(&["number"], json!(0)), "0");
        assert_eq!(text(&["number"], json!("1000000")), "1,000,000");
        assert_eq!(
            text(&["number"], json!(u64::MAX)),
            "18,446,744,073,709,551,615"
        );
        assert_eq!(text(&["number"], json!("12a")), "12a");
        assert_eq!(text(&["number"], json!("1.")), "1.");
        assert_eq!(text(&["number"], json!(1e300)), "1e300");
    }

    #[test]
    fn times_read_seconds_milliseconds_and_rfc3339() {
        let secs = json!(1_700_000_000);
        let millis = json!(1_700_000_000_123i64);
        let rfc = json!("2023-11-15T00:13:20+02:00");
        for v in [secs, millis, rfc, json!("1700000000")] {
            assert_eq!(text(&["date"], v.clone()), "Nov 14, 2023", "{v}");
            assert_eq!(text(&["datetime"], v.clone()), "Nov 14, 2023 22:13 UTC");
            assert_eq!(text(&["ago"], v.clone()), "Nov 14, 2023 22:13 UTC");
        }
        assert_eq!(text(&["date"], json!(0)), "Jan 1, 1970");
    }

    #[test]
    fn times_in_mrkdwn_are_slack_date_tokens_with_a_utc_fallback() {
        let at = json!(1_700_000_000_000i64);
        let token = |parts: &[&str]| run(parts, Some(at.clone()), &json!({}), true);
        assert_eq!(
            token(&["date"]),
            Output::Markup("<!date^1700000000^{date_short_pretty}|Nov 14, 2023>".into())
        );
        assert_eq!(
            token(&["datetime"]),
            Output::Markup(
                "<!date^1700000000^{date_short_pretty} {time}|Nov 14, 2023 22:13 UTC>".into()
            )
        );
        assert_eq!(
            token(&["ago"]),
            Output::Markup("<!date^1700000000^{ago}|Nov 14, 2023 22:13 UTC>".into())
        );
    }

    #[test]
    fn a_time_it_cannot_read_is_the_raw_value() {
        assert_eq!(
            run(&["ago"], Some(json!("yesterday")), &json!({}), true),
            Output::Plain("yesterday".into())
        );
        assert_eq!(text(&["date"], json!(i64::MAX)), i64::MAX.to_string());
        assert_eq!(text(&["date"], json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn default_fills_missing_null_and_empty_values_only() {
        let d = |v: Option<Value>| run(&["default: none"], v, &json!({}), false);
        assert_eq!(d(None), Output::Plain("none".into()));
        assert_eq!(d(Some(Value::Null)), Output::Plain("none".into()));
        assert_eq!(d(Some(json!(""))), Output::Plain("none".into()));
        assert_eq!(d(Some(json!(0))), Output::Plain("0".into()));
        assert_eq!(d(Some(json!("x"))), Output::Plain("x".into()));
        assert_eq!(
            run(&["default: \"n/a\""], None, &json!({}), false),
            Output::Plain("n/a".into())
        );
        assert_eq!(run(&["number"], None, &json!({}), false), Output::Missing);
    }

    #[test]
    fn formatters_chain_left_to_right() {
        let c = |v: Option<Value>| run(&["number", "default: 0"], v, &json!({}), false);
        assert_eq!(c(None), Output::Plain("0".into()));
        assert_eq!(c(Some(json!(12345))), Output::Plain("12,345".into()));
        assert_eq!(
            run(&["date", "default: never"], None, &json!({}), true),
            Output::Plain("never".into())
        );
        assert_eq!(
            run(&["date", "ago"], Some(json!(0)), &json!({}), false),
            Output::Plain("Jan 1, 1970 00:00 UTC".into())
        );
    }

    #[test]
    fn unknown_or_malformed_formatters_are_named() {
        let e = |parts: &[&str]| chain(parts).unwrap_err();
        assert!(
            e(&["money"]).contains("needs a currency"),
            "{}",
            e(&["money"])
        );
        assert!(e(&["money: xyz"]).contains("\"xyz\" is not an ISO 4217"));
        assert!(e(&["money: user.x"]).contains("neither a currency code"));
        assert!(e(&["number: 2"]).contains("\"number\" takes no argument"));
        assert!(e(&["default"]).contains("\"default\" needs a text"));
        assert!(e(&["default:  "]).contains("\"default\" needs a text"));
        assert!(e(&["upper"]).contains("unknown formatter \"upper\""));
        assert!(e(&[" "]).contains("empty formatter"));
        assert!(chain(&["money: eur", "default: –"]).is_ok());
    }
}
