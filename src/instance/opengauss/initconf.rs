//! The `postgresql.conf` a new copy of a member starts with, written without `gs_initdb`.
//!
//! `gs_ctl build -b full` fills a data directory from the primary but keeps the target's own
//! `postgresql.conf` (it reads its `replconninfoN` channels to find the primary). Making that
//! file with `gs_initdb` costs 10 to 25 seconds of catalog bootstrap whose result the build
//! throws away at once; it was most of a new cluster's minute on openGauss. The file is what
//! `gs_initdb` would have written: openGauss's sample (`share/postgresql/postgresql.conf.sample`
//! of the installation) with the member's node name and the settings `gs_initdb` chooses at
//! initialisation (locale, time zone, text search, memory), which are taken from the source, so
//! that every member of the cluster runs with the values of the one that was initialised.
//!
//! Pure functions; `mod.rs` reads the sample and asks the source.

use std::collections::BTreeMap;

use crate::instance::conf::guc_line;

/// The settings `gs_initdb` writes into `postgresql.conf` from what it finds at
/// initialisation, beside `pgxc_node_name` (the member's own). A copy takes the source's.
pub const INITDB_CHOSEN: &[&str] = &[
    "max_connections",
    "shared_buffers",
    "log_timezone",
    "timezone",
    "datestyle",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "default_text_search_config",
];

/// The source's values of [`INITDB_CHOSEN`] that came from its configuration file, one
/// `name=value` per line (values hold no newline: the server refuses one in these settings).
pub fn initdb_chosen_sql() -> String {
    let names = INITDB_CHOSEN
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT pg_catalog.string_agg(name || '=' || pg_catalog.current_setting(name), \
         pg_catalog.chr(10) ORDER BY name) FROM pg_catalog.pg_settings \
         WHERE source = 'configuration file' AND name IN ({names})"
    )
}

/// Reads [`initdb_chosen_sql`]'s answer; names outside [`INITDB_CHOSEN`] are dropped.
pub fn parse_initdb_chosen(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| INITDB_CHOSEN.contains(name))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The setting a sample line sets or shows commented out (`#shared_buffers = 32MB`).
fn sample_name(line: &str) -> Option<&str> {
    let t = line.trim_start().trim_start_matches('#').trim_start();
    let end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let (name, rest) = t.split_at(end);
    (!name.is_empty() && rest.trim_start().starts_with('=')).then_some(name)
}

/// `sample` with each of `settings` set where the sample lists it (its commented line replaced,
/// as `gs_initdb` does), or appended when the sample does not list it.
pub fn render(sample: &str, settings: &BTreeMap<String, String>) -> String {
    let mut pending = settings.clone();
    let mut out = String::with_capacity(sample.len() + 512);
    for line in sample.lines() {
        match sample_name(line).and_then(|name| pending.remove_entry(name)) {
            Some((name, value)) => out.push_str(&guc_line(&name, &value)),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (name, value) in pending {
        out.push_str(&guc_line(&name, &value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of openGauss 6.0.2's `postgresql.conf.sample` (7.0.0-RC2's are the same).
    const SAMPLE: &str = "\
max_connections = 200\t\t\t# (change requires restart)\n\
#shared_buffers = 32MB\t\t\t# min 128kB\n\
#log_timezone = 'GMT'\n\
#datestyle = 'iso, mdy'\n\
#timezone = 'GMT'\n\
#timezone_abbreviations = 'Default'     # Select the set of available time zone\n\
#lc_messages = 'C'\t\t\t# locale for system error message\n\
#default_text_search_config = 'pg_catalog.simple'\n\
#pgxc_node_name = ''\t\t\t# Coordinator or Datanode name\n\
# - Memory -\n";

    #[test]
    fn the_copy_gets_the_sample_with_its_name_and_the_sources_choices() {
        let mut settings = parse_initdb_chosen(
            "datestyle=ISO, MDY\nshared_buffers=1GB\ntimezone=UCT\n\
             default_text_search_config=pg_catalog.english\nwork_mem=64MB\n",
        );
        settings.insert("pgxc_node_name".into(), "node1".into());
        let text = render(SAMPLE, &settings);
        assert_eq!(
            text,
            "max_connections = 200\t\t\t# (change requires restart)\n\
             shared_buffers = '1GB'\n\
             #log_timezone = 'GMT'\n\
             datestyle = 'ISO, MDY'\n\
             timezone = 'UCT'\n\
             #timezone_abbreviations = 'Default'     # Select the set of available time zone\n\
             #lc_messages = 'C'\t\t\t# locale for system error message\n\
             default_text_search_config = 'pg_catalog.english'\n\
             pgxc_node_name = 'node1'\n\
             # - Memory -\n",
            "work_mem is not a setting gs_initdb chooses: not taken from the source"
        );
    }

    #[test]
    fn a_setting_the_sample_lacks_is_appended() {
        let settings = BTreeMap::from([("lc_time".to_owned(), "C".to_owned())]);
        assert_eq!(
            render("# - Memory -\n", &settings),
            "# - Memory -\nlc_time = 'C'\n"
        );
    }

    #[test]
    fn the_query_asks_for_exactly_the_chosen_settings_from_the_file() {
        let sql = initdb_chosen_sql();
        for name in INITDB_CHOSEN {
            assert!(sql.contains(&format!("'{name}'")), "{name}: {sql}");
        }
        assert!(sql.contains("source = 'configuration file'"), "{sql}");
        assert!(
            !sql.contains("pgxc_node_name"),
            "the node name is the copy's own"
        );
    }
}
