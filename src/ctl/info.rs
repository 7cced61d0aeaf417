//! Read-only verbs besides the member table: `history` (the timeline switches of
//! `GET /history`), `dsn` (a member's connection string) and `version` (this CLI's, and each
//! member's agent and PostgreSQL from `GET /patroni`).

use clap::Args;
use serde_json::Value;

use super::select::{self, Role, SelectError};
use super::session::Session;
use super::{Format, table};
use crate::api::ClusterDocument;
use crate::api::client::base_url;

#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct DsnArgs {
    /// Cluster name (defaults to the configuration's scope).
    pub cluster: Option<String>,
    /// A member with this role (the leader first when several match).
    #[arg(short = 'r', long, value_enum, conflicts_with = "member")]
    pub role: Option<Role>,
    /// The member with this name.
    #[arg(short = 'm', long, value_name = "NAME")]
    pub member: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// Also show the versions of this cluster's members.
    pub cluster: Option<String>,
    /// Only these members.
    pub members: Vec<String>,
}

const HISTORY_COLUMNS: [&str; 5] = ["TL", "LSN", "Reason", "Timestamp", "New Leader"];

/// The rows of `GET /history` as table text, in patronictl's layouts.
pub fn render_history(rows: &[Vec<Value>], format: Format) -> anyhow::Result<String> {
    let columns: Vec<String> = HISTORY_COLUMNS.iter().map(|c| c.to_string()).collect();
    // Older entries may have only three or four elements.
    let cells: Vec<Vec<Option<Value>>> = rows
        .iter()
        .map(|row| (0..columns.len()).map(|i| row.get(i).cloned()).collect())
        .collect();
    if format != Format::Pretty {
        return table::records(&columns, &cells, format);
    }
    let text = |v: &Option<Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let lines: Vec<Vec<Vec<String>>> = cells
        .iter()
        .map(|row| row.iter().map(|v| vec![text(v)]).collect())
        .collect();
    Ok(table::bordered(
        None,
        &columns,
        &[true, true, false, false, false],
        &lines,
    ))
}

pub async fn history(session: &mut Session, args: &HistoryArgs) -> anyhow::Result<()> {
    session.cluster(args.cluster.as_deref()).await?;
    let rows = session.client.history().await?;
    print!("{}", render_history(&rows, args.format)?);
    Ok(())
}

/// `host=H port=P` of the member named, else of one with the role (the leader first; by
/// default the leader, else any member with a database).
pub fn dsn_of(
    doc: &ClusterDocument,
    role: Option<Role>,
    member: Option<&str>,
) -> anyhow::Result<String> {
    let chosen = match member {
        Some(name) => select::member(doc, name).ok_or_else(|| {
            anyhow::anyhow!("Member {name} does not exist in cluster {}", doc.scope)
        })?,
        None => {
            let mut matching = select::by_names_and_role(doc, &[], role.unwrap_or(Role::Any))?;
            matching.retain(|m| m.host.is_some());
            matching.sort_by_key(|m| !select::is_leader(m));
            *matching.first().ok_or_else(|| SelectError::NoneWithRole {
                cluster: doc.scope.clone(),
                role: "a database".to_owned(),
            })?
        }
    };
    match (&chosen.host, chosen.port) {
        (Some(host), Some(port)) => Ok(format!("host={host} port={port}")),
        (Some(host), None) => Ok(format!("host={host}")),
        _ => anyhow::bail!("Member {} has no database address", chosen.name),
    }
}

pub async fn dsn(session: &mut Session, args: &DsnArgs) -> anyhow::Result<()> {
    let doc = session.cluster(args.cluster.as_deref()).await?;
    println!("{}", dsn_of(&doc, args.role, args.member.as_deref())?);
    Ok(())
}

/// `server_version_num` as PostgreSQL prints its version: 150018 -> 15.18, 90624 -> 9.6.24.
pub fn pg_version(number: u32) -> String {
    if number >= 100_000 {
        format!("{}.{}", number / 10_000, number % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            number / 10_000,
            number / 100 % 100,
            number % 100
        )
    }
}

/// How `version` names a member's agent: Tribune with its own version and the Patroni API it
/// implements, or Patroni as `patronictl version` prints it (a member answering without a
/// `tribune` field: Patroni, or a Tribune before that field).
pub fn agent_version(s: &crate::api::StatusDocument) -> String {
    match &s.tribune {
        Some(t) => format!("Tribune {} (Patroni API {})", t.version, s.patroni.version),
        None => format!("Patroni {}", s.patroni.version),
    }
}

pub async fn version(session: Option<&mut Session>, args: &VersionArgs) -> anyhow::Result<()> {
    println!(
        "tribunectl version {} (Patroni API {})",
        crate::VERSION,
        crate::PATRONI_API_VERSION
    );
    let (Some(session), Some(cluster)) = (session, &args.cluster) else {
        return Ok(());
    };
    let doc = session.cluster(Some(cluster)).await?;
    println!();
    for m in doc
        .members
        .iter()
        .filter(|m| args.members.is_empty() || args.members.contains(&m.name))
    {
        match session.client.status_of(&base_url(&m.api_url)).await {
            Ok(s) => {
                let pg = match (&s.engine, s.server_version) {
                    (Some(engine), _) => format!(" {engine}"),
                    (None, Some(v)) => format!(" PostgreSQL {}", pg_version(v)),
                    (None, None) => String::new(),
                };
                println!("{}: {}{pg}", m.name, agent_version(&s));
            }
            Err(e) => println!("{}: failed to get version: {e}", m.name),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::select::tests::doc;

    #[test]
    fn versions_name_tribune_and_the_patroni_api() {
        let mut s = crate::api::StatusDocument::default();
        s.patroni.version = "4.1.5".into();
        assert_eq!(agent_version(&s), "Patroni 4.1.5");
        s.tribune = Some(crate::api::TribuneInfo {
            version: "0.1.0".into(),
        });
        assert_eq!(agent_version(&s), "Tribune 0.1.0 (Patroni API 4.1.5)");
    }

    #[test]
    fn history_matches_patronictl() {
        let rows: Vec<Vec<Value>> = serde_json::from_str(
            r#"[[1,67109640,"no recovery target specified","2026-11-24T18:39:54.223393+00:00","node1"],
                [2,67110096,"no recovery target specified","2026-11-24T18:40:34.071394+00:00","node2"]]"#,
        )
        .unwrap();
        let expected = "\
+----+----------+------------------------------+----------------------------------+------------+
| TL |      LSN | Reason                       | Timestamp                        | New Leader |
+----+----------+------------------------------+----------------------------------+------------+
|  1 | 67109640 | no recovery target specified | 2026-11-24T18:39:54.223393+00:00 | node1      |
|  2 | 67110096 | no recovery target specified | 2026-11-24T18:40:34.071394+00:00 | node2      |
+----+----------+------------------------------+----------------------------------+------------+
";
        assert_eq!(render_history(&rows, Format::Pretty).unwrap(), expected);
        let yaml = render_history(&rows[..1], Format::Yaml).unwrap();
        assert_eq!(
            yaml,
            "- LSN: 67109640\n  New Leader: node1\n  Reason: no recovery target specified\n  TL: 1\n  \
             Timestamp: \"2026-11-24T18:39:54.223393+00:00\"\n"
        );
        let tsv = render_history(
            &[serde_json::from_str("[3, 5, \"x\"]").unwrap()],
            Format::Tsv,
        )
        .unwrap();
        assert_eq!(tsv, "TL\tLSN\tReason\tTimestamp\tNew Leader\n3\t5\tx\t\t\n");
        assert_eq!(render_history(&[], Format::Json).unwrap(), "[]\n");
    }

    #[test]
    fn connection_strings() {
        let doc = doc();
        assert_eq!(
            dsn_of(&doc, None, None).unwrap(),
            "host=127.0.0.11 port=5432"
        );
        assert_eq!(
            dsn_of(&doc, Some(Role::Replica), None).unwrap(),
            "host=127.0.0.12 port=5432"
        );
        assert_eq!(
            dsn_of(&doc, None, Some("node2")).unwrap(),
            "host=127.0.0.13 port=5432"
        );
        assert_eq!(
            dsn_of(&doc, None, Some("nobody")).unwrap_err().to_string(),
            "Member nobody does not exist in cluster itest"
        );
        assert_eq!(
            dsn_of(&doc, None, Some("w")).unwrap_err().to_string(),
            "Member w has no database address"
        );
        assert!(dsn_of(&doc, Some(Role::StandbyLeader), None).is_err());
    }

    #[test]
    fn postgres_versions_print_as_postgres_does() {
        assert_eq!(pg_version(150_018), "15.18");
        assert_eq!(pg_version(90_624), "9.6.24");
        assert_eq!(pg_version(100_000), "10.0");
    }
}
