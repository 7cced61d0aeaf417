//! Each log line as Patroni's Python logging renders it: `log.format` is a `%`-format string
//! over log-record fields (`%(asctime)s %(levelname)s: %(message)s` by default), `asctime` in
//! `log.dateformat` (strftime, local time). With `type: json` the named fields become the keys
//! of one JSON object per line (renamed as configured), then `static_fields`, then the event's
//! structured fields, as python-json-logger writes them.
//!
//! A plain line keeps the event's structured fields too, after the message (`key=value`), so
//! nothing the agent logs is lost to a format that names only `%(message)s`.
//!
//! Pure rendering ([`render_text`], [`render_json`]) over a [`Record`]; [`PatroniFormat`] only
//! collects the record from a tracing event.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Local};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LineFormat, Log, LogFormat};

/// What one log line is made of.
#[derive(Clone, Debug)]
pub struct Record {
    pub time: DateTime<Local>,
    pub level: Level,
    /// The tracing target (module path): Python's logger `name`.
    pub target: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub message: String,
    /// The event's other fields, in order.
    pub fields: Vec<(String, String)>,
    pub thread: String,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

fn level_number(level: Level) -> i64 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// A field's value: text, or a number for the numeric ones.
enum FieldValue {
    Text(String),
    Int(i64),
    Float(f64),
}

impl FieldValue {
    fn json(self) -> Value {
        match self {
            FieldValue::Text(t) => Value::String(t),
            FieldValue::Int(n) => Value::from(n),
            FieldValue::Float(f) => Value::from(f),
        }
    }
}

fn asctime(record: &Record, dateformat: Option<&str>) -> String {
    match dateformat {
        Some(f) => {
            let mut out = String::new();
            // chrono reports an unknown specifier as a formatting error: show the format then.
            if write!(out, "{}", record.time.format(f)).is_err() {
                return f.to_owned();
            }
            out
        }
        None => format!(
            "{},{:03}",
            record.time.format("%Y-%m-%d %H:%M:%S"),
            record.time.timestamp_subsec_millis()
        ),
    }
}

/// The plain message with the structured fields after it.
fn full_message(record: &Record) -> String {
    let mut out = record.message.clone();
    for (k, v) in &record.fields {
        let _ = write!(out, " {k}={v}");
    }
    out
}

fn field(name: &str, record: &Record, dateformat: Option<&str>, json: bool) -> FieldValue {
    let seconds = record.time.timestamp() as f64
        + f64::from(record.time.timestamp_subsec_micros()) / 1_000_000.0;
    match name {
        "asctime" => FieldValue::Text(asctime(record, dateformat)),
        "created" => FieldValue::Float(seconds),
        "msecs" => FieldValue::Int(i64::from(record.time.timestamp_subsec_millis())),
        "levelname" => FieldValue::Text(level_name(record.level).to_owned()),
        "levelno" => FieldValue::Int(level_number(record.level)),
        "message" if json => FieldValue::Text(record.message.clone()),
        "message" => FieldValue::Text(full_message(record)),
        "name" => FieldValue::Text(record.target.clone()),
        "module" => FieldValue::Text(
            record
                .target
                .rsplit("::")
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        "pathname" => FieldValue::Text(record.file.clone().unwrap_or_default()),
        "filename" => FieldValue::Text(
            record
                .file
                .as_deref()
                .and_then(|f| f.rsplit('/').next())
                .unwrap_or_default()
                .to_owned(),
        ),
        "lineno" => FieldValue::Int(record.line.map_or(0, i64::from)),
        "process" => FieldValue::Int(i64::from(std::process::id())),
        "thread" | "threadName" => FieldValue::Text(record.thread.clone()),
        // funcName: tracing does not record the function.
        _ => FieldValue::Text(String::new()),
    }
}

/// One `%(...)` conversion: flags, width, precision and type, as Python's `%` operator reads
/// them (`%(levelname)-8s`, `%(msecs)03d`, `%(created).3f`).
struct Spec {
    left: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    kind: char,
}

fn apply(spec: &Spec, value: FieldValue) -> String {
    let body = match (spec.kind, value) {
        ('d' | 'i', FieldValue::Int(n)) => n.to_string(),
        ('d' | 'i', FieldValue::Float(f)) => (f as i64).to_string(),
        ('f' | 'F', FieldValue::Float(f)) => format!("{f:.*}", spec.precision.unwrap_or(6)),
        ('f' | 'F', FieldValue::Int(n)) => format!("{:.*}", spec.precision.unwrap_or(6), n as f64),
        (_, FieldValue::Text(t)) => match spec.precision {
            Some(p) => t.chars().take(p).collect(),
            None => t,
        },
        (_, FieldValue::Int(n)) => n.to_string(),
        (_, FieldValue::Float(f)) => f.to_string(),
    };
    let len = body.chars().count();
    if len >= spec.width {
        return body;
    }
    let pad = spec.width - len;
    if spec.left {
        format!("{body}{}", " ".repeat(pad))
    } else if spec.zero && matches!(spec.kind, 'd' | 'i' | 'f' | 'F') {
        match body.strip_prefix('-') {
            Some(digits) => format!("-{}{digits}", "0".repeat(pad)),
            None => format!("{}{body}", "0".repeat(pad)),
        }
    } else {
        format!("{}{body}", " ".repeat(pad))
    }
}

/// Reads the conversion after `%(name)`: returns it and the rest of the format.
fn spec(rest: &str) -> (Spec, &str) {
    let mut s = Spec {
        left: false,
        zero: false,
        width: 0,
        precision: None,
        kind: 's',
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((_, c)) = chars.peek().copied() {
        match c {
            '-' => s.left = true,
            '0' => s.zero = true,
            ' ' | '+' | '#' => {}
            _ => break,
        }
        chars.next();
    }
    let mut digits = String::new();
    while let Some((_, c)) = chars.peek().copied().filter(|(_, c)| c.is_ascii_digit()) {
        digits.push(c);
        chars.next();
    }
    s.width = digits.parse().unwrap_or(0);
    if let Some((_, '.')) = chars.peek().copied() {
        chars.next();
        let mut p = String::new();
        while let Some((_, c)) = chars.peek().copied().filter(|(_, c)| c.is_ascii_digit()) {
            p.push(c);
            chars.next();
        }
        s.precision = Some(p.parse().unwrap_or(0));
    }
    match chars.next() {
        Some((i, c)) => {
            s.kind = c;
            (s, &rest[i + c.len_utf8()..])
        }
        None => (s, ""),
    }
}

/// A plain line: `format` with each `%(field)` conversion filled in (`%%` is a `%`).
pub fn render_text(format: &str, record: &Record, dateformat: Option<&str>) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('%') {
            out.push('%');
            rest = r;
        } else if let Some(named) = after.strip_prefix('(')
            && let Some(close) = named.find(')')
        {
            let (spec, r) = spec(&named[close + 1..]);
            out.push_str(&apply(
                &spec,
                field(&named[..close], record, dateformat, false),
            ));
            rest = r;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A json line: the fields in order (under their configured names), then `static_fields`,
/// then the event's own fields.
pub fn render_json(
    fields: &[(String, String)],
    static_fields: &BTreeMap<String, Value>,
    record: &Record,
    dateformat: Option<&str>,
) -> String {
    let mut map = Map::new();
    for (name, key) in fields {
        map.insert(key.clone(), field(name, record, dateformat, true).json());
    }
    for (k, v) in static_fields {
        map.insert(k.clone(), v.clone());
    }
    for (k, v) in &record.fields {
        map.entry(k.clone())
            .or_insert_with(|| Value::String(v.clone()));
    }
    Value::Object(map).to_string()
}

/// The json fields a format string names, each under its own name.
fn fields_of(text: &str) -> Vec<(String, String)> {
    crate::config::log_format_fields(text)
        .into_iter()
        .map(|f| (f.clone(), f))
        .collect()
}

/// The agent's event formatter, from the `log` section.
pub struct PatroniFormat {
    json: Option<Vec<(String, String)>>,
    text: String,
    dateformat: Option<String>,
    static_fields: BTreeMap<String, Value>,
}

impl PatroniFormat {
    pub fn new(log: &Log) -> Self {
        let text = match &log.line_format {
            LineFormat::Text(t) => t.clone(),
            LineFormat::Fields(_) => crate::config::DEFAULT_LOG_FORMAT.to_owned(),
        };
        let json = (log.format == LogFormat::Json).then(|| match &log.line_format {
            LineFormat::Text(t) => fields_of(t),
            LineFormat::Fields(f) => f.clone(),
        });
        Self {
            json,
            text,
            dateformat: log.dateformat.clone(),
            static_fields: log.static_fields.clone(),
        }
    }

    pub fn render(&self, record: &Record) -> String {
        match &self.json {
            Some(fields) => render_json(
                fields,
                &self.static_fields,
                record,
                self.dateformat.as_deref(),
            ),
            None => render_text(&self.text, record, self.dateformat.as_deref()),
        }
    }
}

#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields
                .push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

impl<S, N> FormatEvent<S, N> for PatroniFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut collect = Collect::default();
        event.record(&mut collect);
        let meta = event.metadata();
        let thread = std::thread::current();
        let record = Record {
            time: Local::now(),
            level: *meta.level(),
            target: meta.target().to_owned(),
            file: meta.file().map(str::to_owned),
            line: meta.line(),
            message: collect.message,
            fields: collect.fields,
            thread: thread.name().unwrap_or_default().to_owned(),
        };
        writeln!(writer, "{}", self.render(&record))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn record() -> Record {
        Record {
            time: Local.with_ymd_and_hms(2026, 11, 24, 18, 45, 48).unwrap()
                + chrono::Duration::milliseconds(490),
            level: Level::WARN,
            target: "tribune::node::ha_loop".into(),
            file: Some("src/node/ha_loop.rs".into()),
            line: Some(42),
            message: "action failed".into(),
            fields: vec![("error".into(), "boom".into())],
            thread: "tokio-runtime-worker".into(),
        }
    }

    #[test]
    fn plain_lines_follow_pythons_percent_format() {
        let r = record();
        assert_eq!(
            render_text(crate::config::DEFAULT_LOG_FORMAT, &r, None),
            "2026-11-24 18:45:48,490 WARNING: action failed error=boom"
        );
        assert_eq!(
            render_text(
                "[%(levelname)-8s] %(module)s:%(lineno)d %(msecs)03d 100%% %(name)s",
                &r,
                Some("%H:%M")
            ),
            "[WARNING ] ha_loop:42 490 100% tribune::node::ha_loop"
        );
        assert_eq!(
            render_text(
                "%(asctime)s|%(levelno)5d|%(message).6s",
                &r,
                Some("%Y/%m/%d")
            ),
            "2026/11/24|   30|action"
        );
    }

    #[test]
    fn json_lines_carry_the_named_fields_static_fields_and_the_events_fields() {
        let r = record();
        let mut statics = BTreeMap::new();
        statics.insert("app".to_owned(), Value::from("tribune"));
        let line = render_json(
            &[
                ("asctime".into(), "@timestamp".into()),
                ("levelname".into(), "level".into()),
                ("message".into(), "message".into()),
            ],
            &statics,
            &r,
            Some("%Y-%m-%dT%H:%M:%S"),
        );
        assert_eq!(
            line,
            r#"{"@timestamp":"2026-11-24T18:45:48","level":"WARNING","message":"action failed","app":"tribune","error":"boom"}"#
        );
    }
}
