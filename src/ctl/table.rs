//! patronictl's tables (reference/patroni.md section 4.3): the member table of `list` and
//! `topology` (pretty, bordered with the cluster title in the top border; tsv, json, yaml), and
//! the bordered and record forms other verbs (`history`) print their rows in.

use crate::api::{ClusterDocument, ClusterMember};

use super::Format;

/// Columns by their internal names, in patronictl's order. `Cluster` is dropped in pretty mode.
const COLUMNS: [&str; 10] = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
];

/// Right-aligned in pretty mode.
fn right_aligned(column: &str) -> bool {
    matches!(
        column,
        "TL" | "Receive LSN" | "Receive Lag" | "Replay LSN" | "Replay Lag"
    )
}

fn title_case_role(role: &str) -> String {
    role.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A lag in bytes as patronictl shows it: whole MB.
fn lag_mb(lag: &Option<serde_json::Value>) -> Option<serde_json::Value> {
    match lag {
        Some(serde_json::Value::Number(n)) => {
            let bytes = n.as_f64().unwrap_or(0.0);
            Some(serde_json::json!((bytes / 1_048_576.0).round() as u64))
        }
        Some(serde_json::Value::String(s)) => Some(serde_json::json!(s)),
        _ => None,
    }
}

fn tag_value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One row as (column, value) pairs; `None` values are empty cells.
struct Row {
    cells: Vec<(String, Option<serde_json::Value>)>,
    tags: Vec<(String, String)>,
    /// `Pending restart reason`, a line per setting: `name: old->new`.
    reasons: Vec<String>,
}

/// In pretty mode a `Pending restart reason` line longer than this shows as
/// `name: [hidden - too long]`, so one long value does not widen the whole table.
const REASON_SHOWN_CHARS: usize = 50;

/// `Pending restart reason` as (setting, `setting: old->new`) pairs.
fn reasons(m: &ClusterMember) -> Vec<(&str, String)> {
    m.pending_restart_reason
        .iter()
        .map(|(name, c)| {
            (
                name.as_str(),
                format!("{name}: {}->{}", c.old_value, c.new_value),
            )
        })
        .collect()
}

/// The cell's lines of `Pending restart reason` in pretty mode.
fn shown_reasons(m: &ClusterMember) -> Vec<String> {
    reasons(m)
        .into_iter()
        .map(|(name, line)| {
            if line.chars().count() > REASON_SHOWN_CHARS {
                format!("{name}: [hidden - too long]")
            } else {
                line
            }
        })
        .collect()
}

/// `Scheduled restart`: the time, and the version condition if there is one.
fn scheduled_restart_text(m: &ClusterMember) -> Option<String> {
    let doc = m.scheduled_restart.as_ref()?;
    let at = doc.get("schedule")?.as_str()?;
    Some(match doc.get("postgres_version").and_then(|v| v.as_str()) {
        Some(version) => format!("{at} if version < {version}"),
        None => at.to_owned(),
    })
}

fn rows(doc: &ClusterDocument, extended: bool) -> (Vec<String>, Vec<Row>) {
    let show_port = doc
        .members
        .iter()
        .any(|m| m.port.is_some_and(|p| p != 5432))
        || {
            let mut hosts: Vec<_> = doc
                .members
                .iter()
                .filter_map(|m| m.host.as_deref())
                .collect();
            let n = hosts.len();
            hosts.sort();
            hosts.dedup();
            hosts.len() != n
        };
    let any_pending = doc.members.iter().any(|m| m.pending_restart == Some(true));
    let any_reason = doc
        .members
        .iter()
        .any(|m| !m.pending_restart_reason.is_empty());
    let any_scheduled = doc.members.iter().any(|m| m.scheduled_restart.is_some());
    let any_tags = doc.members.iter().any(|m| !m.tags.is_empty());
    let any_site = doc.members.iter().any(|m| m.tags.site().is_some());
    let mut columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    if any_site {
        // A multi-site cluster: the site beside the host, where an operator looks for it.
        let at = columns
            .iter()
            .position(|c| c == "Host")
            .map_or(0, |i| i + 1);
        columns.insert(at, "Site".into());
    }
    if extended || any_pending {
        columns.push("Pending restart".into());
    }
    if extended || any_reason {
        columns.push("Pending restart reason".into());
    }
    if extended || any_scheduled {
        columns.push("Scheduled restart".into());
    }
    // Tribune addition: patronictl has no column for it; shown by `-e` when a member has one.
    let any_proxy = doc.members.iter().any(|m| m.proxy_url.is_some());
    if extended && any_proxy {
        columns.push("Proxy".into());
    }
    if extended || any_tags {
        columns.push("Tags".into());
    }
    let rows = doc
        .members
        .iter()
        .map(|m: &ClusterMember| {
            let host = match (&m.host, m.port) {
                (Some(h), Some(p)) if show_port => Some(format!("{h}:{p}")),
                (Some(h), _) => Some(h.clone()),
                _ => None,
            };
            let s = |v: Option<String>| v.map(serde_json::Value::String);
            let mut cells = vec![
                ("Cluster".to_owned(), s(Some(doc.scope.clone()))),
                ("Member".to_owned(), s(Some(m.name.clone()))),
                ("Host".to_owned(), s(host)),
            ];
            if any_site {
                cells.push(("Site".to_owned(), s(m.tags.site().map(str::to_owned))));
            }
            cells.extend([
                ("Role".to_owned(), s(Some(title_case_role(&m.role)))),
                ("State".to_owned(), s(Some(m.state.clone()))),
                ("TL".to_owned(), m.timeline.map(|t| serde_json::json!(t))),
                ("Receive LSN".to_owned(), s(m.receive_lsn.clone())),
                ("Receive Lag".to_owned(), lag_mb(&m.receive_lag)),
                ("Replay LSN".to_owned(), s(m.replay_lsn.clone())),
                ("Replay Lag".to_owned(), lag_mb(&m.replay_lag)),
            ]);
            if columns.iter().any(|c| c == "Pending restart") {
                cells.push((
                    "Pending restart".to_owned(),
                    s(m.pending_restart.map(|_| "*".to_owned())),
                ));
            }
            let full_reasons: Vec<String> = reasons(m).into_iter().map(|(_, l)| l).collect();
            if columns.iter().any(|c| c == "Pending restart reason") {
                cells.push((
                    "Pending restart reason".to_owned(),
                    s((!full_reasons.is_empty()).then(|| full_reasons.join("\n"))),
                ));
            }
            if columns.iter().any(|c| c == "Scheduled restart") {
                cells.push(("Scheduled restart".to_owned(), s(scheduled_restart_text(m))));
            }
            if columns.iter().any(|c| c == "Proxy") {
                cells.push(("Proxy".to_owned(), s(m.proxy_url.clone())));
            }
            let tags: Vec<(String, String)> = m
                .tags
                .written()
                .iter()
                .map(|(k, v)| (k.clone(), tag_value_text(v)))
                .collect();
            if columns.iter().any(|c| c == "Tags") {
                cells.push((
                    "Tags".to_owned(),
                    (!m.tags.is_empty()).then(|| {
                        serde_json::Value::Object(m.tags.written().clone().into_iter().collect())
                    }),
                ));
            }
            Row {
                cells,
                tags,
                reasons: shown_reasons(m),
            }
        })
        .collect();
    (columns, rows)
}

fn cell_text(v: &Option<serde_json::Value>) -> String {
    match v {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

pub fn render_list(
    doc: &ClusterDocument,
    format: Format,
    extended: bool,
) -> anyhow::Result<String> {
    let (columns, rows) = rows(doc, extended);
    if format == Format::Pretty {
        return Ok(pretty(doc, &columns, &rows, TagStyle::Block));
    }
    // tsv shows tags in flow style; json and yaml keep them as a mapping.
    let cells: Vec<Vec<Option<serde_json::Value>>> = rows
        .iter()
        .map(|row| {
            row.cells
                .iter()
                .map(|(c, v)| {
                    if format == Format::Tsv && c == "Tags" && !row.tags.is_empty() {
                        Some(serde_json::Value::String(flow_tags(&row.tags)))
                    } else if format == Format::Tsv && c == "Pending restart reason" {
                        // One line per member: the settings separated by commas.
                        v.as_ref()
                            .and_then(|v| v.as_str())
                            .map(|text| serde_json::Value::String(text.replace('\n', ", ")))
                    } else {
                        v.clone()
                    }
                })
                .collect()
        })
        .collect();
    records(&columns, &cells, format)
}

/// Rows as tsv (a header of the column names, tab separated), or as a list of objects in json
/// or yaml with the empty cells left out.
pub fn records(
    columns: &[String],
    rows: &[Vec<Option<serde_json::Value>>],
    format: Format,
) -> anyhow::Result<String> {
    match format {
        Format::Tsv => {
            let mut out = columns.join("\t") + "\n";
            for row in rows {
                let line: Vec<String> = row.iter().map(cell_text).collect();
                out += &(line.join("\t") + "\n");
            }
            Ok(out)
        }
        Format::Pretty => anyhow::bail!("records are printed as tsv, json or yaml"),
        Format::Json | Format::Yaml | Format::Yml => {
            let objects: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    serde_json::Value::Object(
                        columns
                            .iter()
                            .zip(row)
                            .filter_map(|(c, v)| v.clone().map(|v| (c.clone(), v)))
                            .collect(),
                    )
                })
                .collect();
            if format == Format::Json {
                Ok(serde_json::to_string(&objects)? + "\n")
            } else {
                super::yaml::dump(&serde_json::Value::Array(objects))
            }
        }
    }
}

fn flow_tags(tags: &[(String, String)]) -> String {
    let inner: Vec<String> = tags.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The member table of `topology`: `doc`'s members in replication-tree order, names indented,
/// tags on one line.
pub fn render_topology(doc: &ClusterDocument) -> String {
    let tree = super::topology::as_tree(doc);
    let (columns, rows) = rows(&tree, false);
    pretty(&tree, &columns, &rows, TagStyle::Flow)
}

/// How the pretty table shows a member's tags: one `key: value` line each, or `{k: v}`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TagStyle {
    Block,
    Flow,
}

fn pretty(doc: &ClusterDocument, columns: &[String], rows: &[Row], tags: TagStyle) -> String {
    // Pretty mode drops the Cluster column; both lag columns are titled "Lag".
    let shown: Vec<usize> = (1..columns.len()).collect();
    let headers: Vec<String> = shown
        .iter()
        .map(|&i| match columns[i].as_str() {
            "Receive Lag" | "Replay Lag" => "Lag".to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let right: Vec<bool> = shown.iter().map(|&i| right_aligned(&columns[i])).collect();
    let lines: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| {
            shown
                .iter()
                .map(|&i| {
                    let (c, v) = &row.cells[i];
                    if c == "Tags" && tags == TagStyle::Flow {
                        vec![if row.tags.is_empty() {
                            String::new()
                        } else {
                            flow_tags(&row.tags)
                        }]
                    } else if c == "Tags" {
                        row.tags.iter().map(|(k, v)| format!("{k}: {v}")).collect()
                    } else if c == "Pending restart reason" {
                        if row.reasons.is_empty() {
                            vec![String::new()]
                        } else {
                            row.reasons.clone()
                        }
                    } else {
                        vec![cell_text(v)]
                    }
                })
                .collect()
        })
        .collect();
    let title = format!(
        "Cluster: {} ({})",
        doc.scope,
        doc.database_system_identifier
            .as_deref()
            .unwrap_or("uninitialized")
    );
    let mut out = bordered(Some(&title), &headers, &right, &lines);
    if doc.pause == Some(true) {
        out += " Maintenance mode: on\n";
    }
    if let Some(upgrade) = &doc.upgrade {
        out += &format!(" {}\n", super::upgrade::progress_line(upgrade));
    }
    if doc.site_guarantee == Some(false) {
        out += " Site survival: degraded (acknowledged commits are not known to be outside the \
                primary's site)\n";
    }
    for line in &doc.placement {
        out += &format!(" Placement: {line}\n");
    }
    out
}

/// A bordered table as patronictl draws it: `title` set into the top border when given, cells
/// of several lines, and then a separator between every two rows.
pub fn bordered(
    title: Option<&str>,
    headers: &[String],
    right: &[bool],
    rows: &[Vec<Vec<String>>],
) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(j, header)| {
            rows.iter()
                .flat_map(|r| r[j].iter().map(|l| l.chars().count()))
                .chain(std::iter::once(header.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border: String = std::iter::once("+".to_owned())
        .chain(widths.iter().map(|w| "-".repeat(w + 2) + "+"))
        .collect();
    let multi_line = rows.iter().any(|r| r.iter().any(|c| c.len() > 1));
    let top = match title {
        None => border.clone(),
        Some(title) => {
            let title = format!("+ {title} ");
            let (title_len, border_len) = (title.chars().count(), border.chars().count());
            if title_len < border_len {
                title + &border.chars().skip(title_len).collect::<String>()
            } else {
                title.trim_end().to_owned() + " +"
            }
        }
    };
    let render = |cells: &[String]| -> String {
        let mut line = "|".to_owned();
        for (j, cell) in cells.iter().enumerate() {
            let w = widths[j];
            if right.get(j).copied().unwrap_or(false) {
                line += &format!(" {cell:>w$} |");
            } else {
                line += &format!(" {cell:<w$} |");
            }
        }
        line + "\n"
    };
    let mut out = top + "\n";
    out += &render(headers);
    out += &(border.clone() + "\n");
    for (n, row) in rows.iter().enumerate() {
        let height = row.iter().map(|c| c.len().max(1)).max().unwrap_or(1);
        for k in 0..height {
            let cells: Vec<String> = row
                .iter()
                .map(|c| c.get(k).cloned().unwrap_or_default())
                .collect();
            out += &render(&cells);
        }
        if multi_line && n + 1 < rows.len() {
            out += &(border.clone() + "\n");
        }
    }
    out + &border + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_doc() -> ClusterDocument {
        serde_json::from_value(serde_json::json!({
            "members": [
                {"name": "node0", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.1:8008/patroni",
                 "host": "127.0.0.1", "port": 5432, "timeline": 8, "tags": {"clonefrom": true},
                 "receive_lag": 0, "receive_lsn": "0/A000148", "replay_lag": 0, "replay_lsn": "0/A000148", "lag": 0, "lsn": "0/A000148"},
                {"name": "node1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8009/patroni",
                 "host": "127.0.0.1", "port": 5433, "timeline": 8, "tags": {"dc": "east"}},
                {"name": "node2", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.1:8010/patroni",
                 "host": "127.0.0.1", "port": 5434, "timeline": 8, "tags": {"dc": "west", "noloadbalance": true},
                 "receive_lag": 0, "receive_lsn": "0/A000148", "replay_lag": 0, "replay_lsn": "0/A000148", "lag": 0, "lsn": "0/A000148"}
            ],
            "scope": "labcluster",
            "database_system_identifier": "7711808967998175761"
        }))
        .unwrap()
    }

    /// Pending restart (with its reasons) and a scheduled restart add their columns; a long
    /// reason is hidden in pretty mode and shown whole in the other formats.
    #[test]
    fn restart_columns_appear_when_a_member_has_one() {
        let long = "x".repeat(60);
        let doc: ClusterDocument = serde_json::from_value(serde_json::json!({
            "members": [
                {"name": "node1", "role": "leader", "state": "running", "host": "127.0.0.1", "port": 5433,
                 "api_url": "http://127.0.0.1:8009/patroni", "timeline": 2, "pending_restart": true,
                 "pending_restart_reason": {
                     "max_connections": {"old_value": "100", "new_value": "110"},
                     "shared_preload_libraries": {"old_value": "", "new_value": long}},
                 "scheduled_restart": {"schedule": "2026-11-25T10:00:00+00:00", "postgres_version": "15.14"}},
                {"name": "node2", "role": "replica", "state": "streaming", "host": "127.0.0.1", "port": 5434,
                 "api_url": "http://127.0.0.1:8010/patroni", "timeline": 2, "receive_lsn": "0/3000060", "receive_lag": 0, "replay_lsn": "0/3000060", "replay_lag": 0}
            ],
            "scope": "demo",
            "database_system_identifier": "7711808967998175761"
        }))
        .unwrap();
        let pretty = render_list(&doc, Format::Pretty, false).unwrap();
        assert!(
            pretty.contains("| Pending restart | Pending restart reason"),
            "{pretty}"
        );
        assert!(pretty.contains("| max_connections: 100->110 "), "{pretty}");
        assert!(
            pretty.contains("| shared_preload_libraries: [hidden - too long] |"),
            "{pretty}"
        );
        assert!(
            pretty.contains("| 2026-11-25T10:00:00+00:00 if version < 15.14 |"),
            "{pretty}"
        );
        let tsv = render_list(&doc, Format::Tsv, false).unwrap();
        let node1 = tsv.lines().nth(1).unwrap();
        assert!(
            node1.contains(&format!(
                "\t*\tmax_connections: 100->110, shared_preload_libraries: ->{long}\t2026-11-25T10:00:00+00:00 if version < 15.14"
            )),
            "{tsv}"
        );
        let without = render_list(&lab_doc(), Format::Tsv, false).unwrap();
        assert!(!without.contains("Pending restart"), "{without}");
    }

    /// A member with a `site` tag adds a Site column beside Host (empty for untagged members);
    /// without one the table is Patroni's.
    #[test]
    fn a_site_column_appears_when_a_member_has_a_site() {
        let mut doc = lab_doc();
        doc.members[0].tags = serde_json::from_value(serde_json::json!({"site": "east"})).unwrap();
        doc.members[2].tags = serde_json::from_value(serde_json::json!({"site": "west"})).unwrap();
        let pretty = render_list(&doc, Format::Pretty, false).unwrap();
        let lines: Vec<&str> = pretty.lines().collect();
        assert!(
            lines[1].starts_with("| Member | Host           | Site | Role "),
            "{pretty}"
        );
        assert!(
            lines[3].starts_with("| node0  | 127.0.0.1:5432 | east | Replica "),
            "{pretty}"
        );
        assert!(
            pretty.contains("| node1  | 127.0.0.1:5433 |      | Leader "),
            "{pretty}"
        );
        let tsv = render_list(&doc, Format::Tsv, false).unwrap();
        assert!(
            tsv.starts_with("Cluster\tMember\tHost\tSite\tRole"),
            "{tsv}"
        );
        assert!(
            !render_list(&lab_doc(), Format::Tsv, false)
                .unwrap()
                .contains("Site")
        );
    }

    /// The lab output of patronictl list, reference section 4.3, byte for byte.
    #[test]
    fn pretty_matches_patronictl() {
        let expected = "\
+ Cluster: labcluster (7711808967998175761) ----+----+-------------+-----+------------+-----+---------------------+
| Member | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags                |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+---------------------+
| node0  | 127.0.0.1:5432 | Replica | streaming |  8 |   0/A000148 |   0 |  0/A000148 |   0 | clonefrom: true     |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+---------------------+
| node1  | 127.0.0.1:5433 | Leader  | running   |  8 |             |     |            |     | dc: east            |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+---------------------+
| node2  | 127.0.0.1:5434 | Replica | streaming |  8 |   0/A000148 |   0 |  0/A000148 |   0 | dc: west            |
|        |                |         |           |    |             |     |            |     | noloadbalance: true |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+---------------------+
";
        assert_eq!(
            render_list(&lab_doc(), Format::Pretty, false).unwrap(),
            expected
        );
    }

    /// The lab sample as `topology`: the leader first, replicas one level down, tags on one line.
    #[test]
    fn topology_is_the_tree_with_flow_tags() {
        let expected = "\
+ Cluster: labcluster (7711808967998175761) -----+----+-------------+-----+------------+-----+---------------------------------+
| Member  | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags                            |
+---------+----------------+---------+-----------+----+-------------+-----+------------+-----+---------------------------------+
| node1   | 127.0.0.1:5433 | Leader  | running   |  8 |             |     |            |     | {dc: east}                      |
| + node0 | 127.0.0.1:5432 | Replica | streaming |  8 |   0/A000148 |   0 |  0/A000148 |   0 | {clonefrom: true}               |
| + node2 | 127.0.0.1:5434 | Replica | streaming |  8 |   0/A000148 |   0 |  0/A000148 |   0 | {dc: west, noloadbalance: true} |
+---------+----------------+---------+-----------+----+-------------+-----+------------+-----+---------------------------------+
";
        assert_eq!(render_topology(&lab_doc()), expected);
    }

    /// `postgresql.proxy_address` shows in `list -e` only (patronictl has no column for it).
    #[test]
    fn the_proxy_column_is_extended_output_only() {
        let mut doc = lab_doc();
        doc.members[1].proxy_url = Some("postgres://10.0.0.9:6432/postgres".into());
        let plain = render_list(&doc, Format::Pretty, false).unwrap();
        assert!(!plain.contains("Proxy"), "{plain}");
        let extended = render_list(&doc, Format::Tsv, true).unwrap();
        let header = extended.lines().next().unwrap();
        assert!(header.contains("Proxy"), "{header}");
        assert!(
            extended.contains("postgres://10.0.0.9:6432/postgres"),
            "{extended}"
        );
        let none = render_list(&lab_doc(), Format::Tsv, true).unwrap();
        assert!(!none.lines().next().unwrap().contains("Proxy"));
    }

    #[test]
    fn records_and_the_maintenance_footer() {
        let mut doc = lab_doc();
        doc.pause = Some(true);
        let pretty = render_list(&doc, Format::Pretty, false).unwrap();
        assert!(pretty.ends_with("-+\n Maintenance mode: on\n"), "{pretty}");
        let yaml = render_list(&doc, Format::Yaml, false).unwrap();
        assert!(
            yaml.starts_with("- Cluster: labcluster\n  Host: 127.0.0.1:5432\n  Member: node0\n"),
            "{yaml}"
        );
        assert!(records(&["a".into()], &[], Format::Pretty).is_err());
    }

    /// A degraded site guarantee and the placement advice close the pretty table.
    #[test]
    fn site_footers() {
        let mut doc = lab_doc();
        doc.site_guarantee = Some(true);
        assert!(
            !render_list(&doc, Format::Pretty, false)
                .unwrap()
                .contains("Site survival")
        );
        doc.site_guarantee = Some(false);
        doc.placement = vec!["losing site a stops failover: it holds 3 of 5 voters".into()];
        let pretty = render_list(&doc, Format::Pretty, false).unwrap();
        assert!(
            pretty.ends_with(
                "-+\n Site survival: degraded (acknowledged commits are not known to be outside \
                 the primary's site)\n Placement: losing site a stops failover: it holds 3 of 5 \
                 voters\n"
            ),
            "{pretty}"
        );
    }

    #[test]
    fn tsv_has_every_internal_column() {
        let out = render_list(&lab_doc(), Format::Tsv, false).unwrap();
        let mut lines = out.lines();
        assert_eq!(
            lines.next().unwrap(),
            "Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag\tTags"
        );
        assert_eq!(
            lines.nth(1).unwrap(),
            "labcluster\tnode1\t127.0.0.1:5433\tLeader\trunning\t8\t\t\t\t\t{dc: east}"
        );
    }

    #[test]
    fn json_omits_empty_values() {
        let out = render_list(&lab_doc(), Format::Json, false).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[1]["Role"], "Leader");
        assert!(v[1].get("Receive LSN").is_none());
        assert_eq!(v[0]["Receive Lag"], 0);
    }

    #[test]
    fn a_standby_leader_is_listed_as_standby_leader() {
        let mut doc = lab_doc();
        doc.members[1].role = "standby_leader".into();
        doc.members[1].state = "streaming".into();
        let out = render_list(&doc, Format::Json, false).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[1]["Role"], "Standby Leader");
        assert_eq!(v[1]["State"], "streaming");
        let pretty = render_list(&doc, Format::Pretty, false).unwrap();
        assert!(
            pretty.contains("| node1  | 127.0.0.1:5433 | Standby Leader | streaming |"),
            "{pretty}"
        );
    }

    #[test]
    fn lag_is_shown_in_whole_megabytes() {
        assert_eq!(
            lag_mb(&Some(serde_json::json!(5_335_720))),
            Some(serde_json::json!(5))
        );
        assert_eq!(
            lag_mb(&Some(serde_json::json!("unknown"))),
            Some(serde_json::json!("unknown"))
        );
    }
}
