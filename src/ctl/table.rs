//! patronictl's `list` table (reference/patroni.md section 4.3): pretty (bordered, with the
//! cluster title in the top border), tsv, json and yaml.

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
    let any_tags = doc.members.iter().any(|m| !m.tags.is_empty());
    let mut columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    if extended || any_pending {
        columns.push("Pending restart".into());
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
                ("Role".to_owned(), s(Some(title_case_role(&m.role)))),
                ("State".to_owned(), s(Some(m.state.clone()))),
                ("TL".to_owned(), m.timeline.map(|t| serde_json::json!(t))),
                ("Receive LSN".to_owned(), s(m.receive_lsn.clone())),
                ("Receive Lag".to_owned(), lag_mb(&m.receive_lag)),
                ("Replay LSN".to_owned(), s(m.replay_lsn.clone())),
                ("Replay Lag".to_owned(), lag_mb(&m.replay_lag)),
            ];
            if columns.iter().any(|c| c == "Pending restart") {
                cells.push((
                    "Pending restart".to_owned(),
                    s(m.pending_restart.map(|_| "*".to_owned())),
                ));
            }
            let tags: Vec<(String, String)> = m
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), tag_value_text(v)))
                .collect();
            if columns.iter().any(|c| c == "Tags") {
                cells.push((
                    "Tags".to_owned(),
                    (!m.tags.is_empty())
                        .then(|| serde_json::Value::Object(m.tags.clone().into_iter().collect())),
                ));
            }
            Row { cells, tags }
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
    match format {
        Format::Pretty => Ok(pretty(doc, &columns, &rows)),
        Format::Tsv => {
            let mut out = columns.join("\t") + "\n";
            for row in &rows {
                let line: Vec<String> = row
                    .cells
                    .iter()
                    .map(|(c, v)| {
                        if c == "Tags" && !row.tags.is_empty() {
                            flow_tags(&row.tags)
                        } else {
                            cell_text(v)
                        }
                    })
                    .collect();
                out += &(line.join("\t") + "\n");
            }
            Ok(out)
        }
        Format::Json | Format::Yaml | Format::Yml => {
            let objects: Vec<serde_json::Map<String, serde_json::Value>> = rows
                .iter()
                .map(|row| {
                    row.cells
                        .iter()
                        .filter_map(|(c, v)| v.clone().map(|v| (c.clone(), v)))
                        .collect()
                })
                .collect();
            if format == Format::Json {
                Ok(serde_json::to_string(&objects)? + "\n")
            } else {
                Ok(serde_saphyr::to_string(&objects)?)
            }
        }
    }
}

fn flow_tags(tags: &[(String, String)]) -> String {
    let inner: Vec<String> = tags.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn pretty(doc: &ClusterDocument, columns: &[String], rows: &[Row]) -> String {
    // Pretty mode drops the Cluster column; both lag columns are titled "Lag".
    let shown: Vec<usize> = (1..columns.len()).collect();
    let header = |i: usize| match columns[i].as_str() {
        "Receive Lag" | "Replay Lag" => "Lag".to_owned(),
        other => other.to_owned(),
    };
    let lines: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|row| {
            shown
                .iter()
                .map(|&i| {
                    let (c, v) = &row.cells[i];
                    if c == "Tags" {
                        row.tags.iter().map(|(k, v)| format!("{k}: {v}")).collect()
                    } else {
                        vec![cell_text(v)]
                    }
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = shown
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            lines
                .iter()
                .flat_map(|r| r[j].iter().map(|l| l.chars().count()))
                .chain(std::iter::once(header(i).chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border: String = std::iter::once("+".to_owned())
        .chain(widths.iter().map(|w| "-".repeat(w + 2) + "+"))
        .collect();
    let multi_line = lines.iter().any(|r| r.iter().any(|c| c.len() > 1));
    let title = format!(
        "+ Cluster: {} ({}) ",
        doc.scope,
        doc.database_system_identifier
            .as_deref()
            .unwrap_or("uninitialized")
    );
    let top = if title.chars().count() < border.chars().count() {
        title.clone()
            + &border
                .chars()
                .skip(title.chars().count())
                .collect::<String>()
    } else {
        title.trim_end().to_owned() + " +"
    };
    let render = |cells: Vec<String>| -> String {
        let mut line = "|".to_owned();
        for (j, &i) in shown.iter().enumerate() {
            let w = widths[j];
            if right_aligned(&columns[i]) {
                line += &format!(" {:>w$} |", cells[j]);
            } else {
                line += &format!(" {:<w$} |", cells[j]);
            }
        }
        line + "\n"
    };
    let mut out = top + "\n";
    out += &render(shown.iter().map(|&i| header(i)).collect());
    out += &(border.clone() + "\n");
    for (n, row) in lines.iter().enumerate() {
        let height = row.iter().map(|c| c.len().max(1)).max().unwrap_or(1);
        for k in 0..height {
            out += &render(
                row.iter()
                    .map(|c| c.get(k).cloned().unwrap_or_default())
                    .collect(),
            );
        }
        if multi_line && n + 1 < lines.len() {
            out += &(border.clone() + "\n");
        }
    }
    out += &(border + "\n");
    if doc.pause == Some(true) {
        out += " Maintenance mode: on\n";
    }
    out
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
