//! The replication slots of a PostgreSQL server: the query that lists them (a column of the
//! status query too, so the member report carries the primary's slot positions), its parser,
//! and the SQL that carries out a slot plan (`instance::slots`). Pure; `mod.rs` runs it.
//!
//! Logical slots reach a standby by copy (PostgreSQL 15 cannot create one there): the primary's
//! `pg_replslot/<name>/state` is read with `pg_read_binary_file` and written into the standby's
//! data directory, and the standby restarts once to load it, as Patroni does.

use crate::instance::ReplicationSlot;
use crate::instance::conf::sql_literal;
use crate::types::Lsn;

/// Every slot as a JSON array (NULL for none): one column, of the status query and of the
/// slot synchronisation's query. A macro so that the status query stays one literal.
macro_rules! slots_json {
    () => {
        "(SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
            'name', slot_name, 'kind', slot_type, 'database', database, 'plugin', plugin,
            'active', active,
            'position', (CASE WHEN slot_type = 'logical' THEN confirmed_flush_lsn
                              ELSE restart_lsn END)::text) ORDER BY slot_name)
     FROM pg_catalog.pg_replication_slots)::text"
    };
}
pub(crate) use slots_json;

pub const SLOTS_JSON: &str = slots_json!();

#[derive(serde::Deserialize)]
struct Row {
    name: String,
    kind: crate::instance::SlotType,
    database: Option<String>,
    plugin: Option<String>,
    active: bool,
    position: Option<String>,
}

/// The slots of a [`SLOTS_JSON`] value.
pub fn parse(json: Option<&str>) -> Result<Vec<ReplicationSlot>, String> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<Row> =
        serde_json::from_str(json).map_err(|e| format!("unreadable replication slots: {e}"))?;
    Ok(rows
        .into_iter()
        .map(|r| ReplicationSlot {
            name: r.name,
            kind: r.kind,
            database: r.database,
            plugin: r.plugin,
            active: r.active,
            position: r.position.and_then(|p| p.parse::<Lsn>().ok()),
        })
        .collect())
}

pub fn create_physical(name: &str) -> String {
    format!(
        "SELECT pg_catalog.pg_create_physical_replication_slot({}, true)",
        sql_literal(name)
    )
}

/// Run in the slot's database.
pub fn create_logical(name: &str, plugin: &str) -> String {
    format!(
        "SELECT pg_catalog.pg_create_logical_replication_slot({}, {})",
        sql_literal(name),
        sql_literal(plugin)
    )
}

/// Run in the slot's database (logical) or any (physical). PostgreSQL clamps the target to
/// what the server has replayed.
pub fn advance(name: &str, to: Lsn) -> String {
    format!(
        "SELECT pg_catalog.pg_replication_slot_advance({}, {})",
        sql_literal(name),
        sql_literal(&to.to_string())
    )
}

/// Run on the primary: the slot's `restart_lsn`, a space, and its state file hex-encoded.
pub fn read_state(name: &str) -> String {
    format!(
        "SELECT restart_lsn::text || ' ' || \
         pg_catalog.encode(pg_catalog.pg_read_binary_file({}), 'hex') \
         FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
        sql_literal(&format!("pg_replslot/{name}/state")),
        sql_literal(name)
    )
}

/// Run on the standby: its oldest WAL segment file and the segment size in bytes.
pub const OLDEST_WAL_SQL: &str = "SELECT (SELECT pg_catalog.min(name) FROM pg_catalog.pg_ls_waldir() \
     WHERE name ~ '^[0-9A-F]{24}$') || ' ' || \
     (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size')";

/// Whether a standby whose oldest WAL file is `oldest` (`OLDEST_WAL_SQL`'s value) still has the
/// WAL at `lsn`: a copied slot decodes from its `restart_lsn`, and a copy whose WAL is gone can
/// never be advanced. A value that does not read is taken as "no".
pub fn has_wal_from(oldest: &str, lsn: Lsn) -> bool {
    let Some((file, size)) = oldest.trim().split_once(' ') else {
        return false;
    };
    let (Ok(size), true) = (size.parse::<u64>(), file.len() == 24) else {
        return false;
    };
    if size == 0 || !file.is_ascii() {
        return false;
    }
    let per_id = 0x1_0000_0000 / size;
    let (Ok(log), Ok(seg)) = (
        u64::from_str_radix(&file[8..16], 16),
        u64::from_str_radix(&file[16..24], 16),
    ) else {
        return false;
    };
    lsn.0 / size >= log * per_id + seg
}

/// The bytes of [`read_state`]'s hex text.
pub fn unhex(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .map_err(|_| format!("not hex at {i}: {:?}", &text[i..i + 2]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::SlotType;

    #[test]
    fn parses_both_kinds() {
        let json = r#"[{"name":"cdc","kind":"logical","database":"app","plugin":"test_decoding",
                        "active":true,"position":"0/3000148"},
                       {"name":"node_2","kind":"physical","database":null,"plugin":null,
                        "active":false,"position":null}]"#;
        let slots = parse(Some(json)).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].kind, SlotType::Logical);
        assert_eq!(slots[0].position, Some(Lsn(0x3000148)));
        assert_eq!(slots[0].database.as_deref(), Some("app"));
        assert!(slots[0].active);
        assert_eq!(slots[1].kind, SlotType::Physical);
        assert_eq!(slots[1].position, None);
        assert_eq!(parse(None).unwrap(), vec![]);
        assert!(parse(Some("{")).is_err());
    }

    #[test]
    fn sql_quotes_names_and_positions() {
        assert_eq!(
            advance("cdc", Lsn(0x3000148)),
            "SELECT pg_catalog.pg_replication_slot_advance('cdc', '0/3000148')"
        );
        assert!(read_state("cdc").contains("pg_read_binary_file('pg_replslot/cdc/state')"));
        assert!(read_state("cdc").ends_with("WHERE slot_name = 'cdc'"));
        assert_eq!(unhex("00ff10").unwrap(), vec![0, 255, 16]);
        assert!(unhex("0").is_err() && unhex("zz").is_err());
    }

    /// Regression: a logical slot created before a standby was cloned was copied with a
    /// `restart_lsn` in WAL the clone never had, and every advance failed ("requested WAL
    /// segment ... has already been removed").
    #[test]
    fn a_copy_waits_for_a_restart_position_the_standby_has() {
        let oldest = "000000010000000000000003 16777216";
        assert!(!has_wal_from(oldest, Lsn(0x0170_0000)));
        assert!(!has_wal_from(oldest, Lsn(0x02FF_FFFF)));
        assert!(has_wal_from(oldest, Lsn(0x0300_0000)));
        assert!(has_wal_from(oldest, Lsn(0x1_0000_0000)));
        // Past the first 4 GiB: log 1, segment 2.
        let far = "000000020000000100000002 16777216";
        assert!(!has_wal_from(far, Lsn(0x1_0100_0000)));
        assert!(has_wal_from(far, Lsn(0x1_0200_0000)));
        // 64 MiB segments.
        assert!(has_wal_from(
            "000000010000000000000001 67108864",
            Lsn(0x0400_0000)
        ));
        assert!(!has_wal_from(
            "000000010000000000000001 67108864",
            Lsn(0x03FF_FFFF)
        ));
        for bad in [
            "",
            "x 16777216",
            "000000010000000000000003",
            "000000010000000000000003 0",
        ] {
            assert!(!has_wal_from(bad, Lsn(u64::MAX)), "{bad}");
        }
    }
}
