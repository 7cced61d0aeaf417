//! Fuzz harness of the configuration: Patroni YAML files mutated (and random text) must load
//! or be refused with one error naming what is wrong; never a panic. A loaded configuration's
//! debug form never shows a password. See `crate::fuzz`.

use proptest::prelude::*;
use serde_json::Value;

use super::Config;
use super::tests::PATRONI_RAFT_YML;
use crate::fuzz;

fn seeds() -> Vec<Value> {
    let mut docs = Vec::new();
    for yaml in [PATRONI_RAFT_YML, super::tests::MINIMAL] {
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
        docs.push(serde_saphyr::from_str_with_options::<Value>(yaml, options).unwrap());
    }
    docs
}

fn check(text: &str) -> Result<(), String> {
    match Config::from_yaml_str(text, &|_| None) {
        Ok(config) => {
            for secret in ["s3cret-fuzz"] {
                if format!("{config:?}").contains(secret) {
                    return Err("the debug form shows a password".into());
                }
            }
            Ok(())
        }
        Err(err) => {
            let message = err.to_string();
            if message.trim().is_empty() {
                Err("an empty error message".into())
            } else {
                Ok(())
            }
        }
    }
}

#[tokio::test]
async fn fuzz_configuration_yaml() {
    let documents = fuzz::mutated_any(seeds()).prop_map(|mut doc| {
        // A password the debug form must hide wherever the mutations left the sections.
        if let Some(raft) = doc.get_mut("raft").and_then(Value::as_object_mut) {
            raft.insert("password".into(), Value::from("s3cret-fuzz"));
        }
        // JSON is YAML; also as YAML's own block style for the parser's other paths.
        doc.to_string()
    });
    let text = prop_oneof![
        4 => documents,
        1 => fuzz::nasty_string(),
        1 => proptest::collection::vec(
            proptest::sample::select(vec![
                "scope: x\n", "name: n\n", "raft:\n", "  self_addr: 1:2\n", "- a\n", "? k\n",
                ": v\n", "&a [*a, *a]\n", "<<: *a\n", "!!map {}\n", "\t\n", "---\n", "...\n",
                "key: |\n  text\n", "%YAML 1.1\n", "'\n", "\"\\u0000\"\n",
            ]),
            0..30,
        )
        .prop_map(|lines| lines.concat()),
    ];
    fuzz::run(
        "configuration YAML",
        text,
        |text| async move { check(&text) },
    )
    .await;
}
