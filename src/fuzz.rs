//! The driver of the time-bounded fuzz harnesses (tests named `fuzz_*` beside the code they
//! attack: `config::fuzz_tests`, `api::fuzz_tests`, `raft::fuzz_tests`), and the input
//! strategies they share.
//!
//! Each harness generates inputs with proptest strategies for `TRIBUNE_FUZZ_SECONDS` (default
//! 1 s; `scripts/test.sh` gives each 12 s), runs its check on each, and prints how many inputs
//! it tried. A failing input (a check that returns an error, or panics) is shrunk with
//! proptest's value trees and reported with the seed that replays the run
//! (`TRIBUNE_FUZZ_SEED=<hex>`). cargo-fuzz would need a nightly compiler; this runs on stable,
//! inside `cargo test`.
//!
//! Inputs are mostly *mutations of valid documents* (a value replaced, a key dropped or added,
//! a number pushed to an extreme, a string made huge), which reach far deeper than random
//! bytes, plus random bytes and text.

use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

/// How long each harness runs: `TRIBUNE_FUZZ_SECONDS`, 1 s by default.
pub(crate) fn budget() -> Duration {
    std::env::var("TRIBUNE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    match std::env::var("TRIBUNE_FUZZ_SEED") {
        Ok(hex) => {
            for (i, byte) in seed.iter_mut().enumerate() {
                *byte = hex
                    .get(2 * i..2 * i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
                    .unwrap_or(0);
            }
        }
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed[..16].copy_from_slice(&nanos.to_le_bytes());
            seed[16..24].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        }
    }
    seed
}

/// Run `check` on inputs of `strategy` for [`budget`]; panic with the smallest failing input
/// found. Returns how many inputs were tried.
pub(crate) async fn run<S, F, Fut>(target: &str, strategy: S, mut check: F) -> u64
where
    S: Strategy,
    S::Value: Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let seed = seed();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    let deadline = Instant::now() + budget();
    let mut tried = 0u64;
    while Instant::now() < deadline {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree,
            Err(reason) => panic!("{target}: cannot generate inputs: {reason}"),
        };
        tried += 1;
        let started = Instant::now();
        let value = tree.current();
        if std::env::var_os("TRIBUNE_FUZZ_TRACE").is_some() {
            let shown = format!("{value:?}");
            let cut = (0..=shown.len().min(300))
                .rev()
                .find(|i| shown.is_char_boundary(*i));
            eprintln!(
                "input {tried} (seed {hex}): generated in {:?}: {}",
                started.elapsed(),
                &shown[..cut.unwrap_or(0)]
            );
        }
        let result = attempt(&mut check, value).await;
        if std::env::var_os("TRIBUNE_FUZZ_TRACE").is_some() {
            eprintln!(
                "input {tried}: checked in {:?}: {result:?}",
                started.elapsed()
            );
        }
        let Err(first) = result else {
            continue;
        };
        // Shrink as proptest does: simplify while the input fails, complicate when a
        // simplification passes; keep the last failing input.
        let mut failure = first;
        let mut minimal = format!("{:?}", tree.current());
        let mut steps = 0;
        if tree.simplify() {
            while steps < 1000 {
                steps += 1;
                let value = tree.current();
                let shown = format!("{value:?}");
                let next = match attempt(&mut check, value).await {
                    Err(e) => {
                        failure = e;
                        minimal = shown;
                        tree.simplify()
                    }
                    Ok(()) => tree.complicate(),
                };
                if !next {
                    break;
                }
            }
        }
        if minimal.len() > 4000 {
            let cut = (0..=4000)
                .rev()
                .find(|i| minimal.is_char_boundary(*i))
                .unwrap_or(0);
            minimal = format!("{}... ({} characters)", &minimal[..cut], minimal.len());
        }
        panic!(
            "fuzz target {target}: input {tried} failed: {failure}\nminimal input: {minimal}\n\
             replay with TRIBUNE_FUZZ_SEED={hex}"
        );
    }
    println!("fuzz target {target}: {tried} inputs, 0 failures");
    tried
}

/// The longest one input may take: more is a hang, reported as a failure.
const CHECK_LIMIT: Duration = Duration::from_secs(20);

async fn attempt<V, F, Fut>(check: &mut F, value: V) -> Result<(), String>
where
    F: FnMut(V) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let checked = tokio::time::timeout(CHECK_LIMIT, AssertUnwindSafe(check(value)).catch_unwind());
    match checked.await {
        Err(_) => Err(format!("did not finish within {CHECK_LIMIT:?}")),
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )),
    }
}

/// Strings that tend to break parsers: empty, huge, control and non-ASCII characters,
/// numbers in text, YAML and JSON punctuation, and keys the configuration knows.
pub(crate) fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => proptest::sample::select(vec![
            "", " ", "\0", "\u{feff}", "é", "😀", "-1", "0", "1e400", "NaN", "null", "true",
            "yes", "off", "~", "*", "&a", "!!binary", "{", "[", "]", ":", "- ", "\"", "'",
            "\\", "%", "..", "/", "//", "127.0.0.1:0", "[::1]:70000", "999999999999999999999",
            "ttl", "loop_wait", "pause", "leader", "candidate", "scheduled_at", "password",
            "postgresql", "parameters", "synchronous_mode", "standby_cluster", "tags",
        ])
        .prop_map(str::to_owned),
        1 => (any::<char>(), 0usize..20_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// Any JSON value, a few levels deep.
pub(crate) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((nasty_string(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// One change to a JSON document: at the node picked by `at` (counted over every node),
/// `kind` says what happens, with `value` or `key` where it needs one.
#[derive(Clone, Debug)]
pub(crate) struct Mutation {
    at: usize,
    kind: u8,
    key: String,
    value: Value,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (any::<usize>(), 0u8..8, nasty_string(), any_json()).prop_map(|(at, kind, key, value)| {
        Mutation {
            at,
            kind,
            key,
            value,
        }
    })
}

/// `doc` changed by one to four [`Mutation`]s.
pub(crate) fn mutated(doc: Value) -> impl Strategy<Value = Value> {
    proptest::collection::vec(mutation(), 1..5).prop_map(move |mutations| {
        let mut doc = doc.clone();
        for m in &mutations {
            apply(&mut doc, m);
        }
        doc
    })
}

/// A mutation of one of `docs`.
pub(crate) fn mutated_any(docs: Vec<Value>) -> impl Strategy<Value = Value> {
    proptest::sample::select(docs).prop_flat_map(mutated)
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 0,
    }
}

/// Documents stop growing past this many nodes (a mutation that would grow one more empties
/// the node instead), so every input stays quick to build and to send.
const MAX_NODES: usize = 5_000;

fn apply(doc: &mut Value, m: &Mutation) {
    let size = count(doc);
    let m = &Mutation {
        kind: if size > MAX_NODES && matches!(m.kind, 3 | 6) {
            2
        } else {
            m.kind
        },
        ..m.clone()
    };
    let n = m.at % size;
    let mut seen = 0;
    if let Some(node) = nth(doc, n, &mut seen) {
        change(node, m);
    }
}

/// The `n`-th node of `v` in pre-order (`seen` counts the nodes passed).
fn nth<'a>(v: &'a mut Value, n: usize, seen: &mut usize) -> Option<&'a mut Value> {
    if *seen == n {
        return Some(v);
    }
    *seen += 1;
    match v {
        Value::Array(items) => items.iter_mut().find_map(|i| nth(i, n, seen)),
        Value::Object(map) => map.values_mut().find_map(|i| nth(i, n, seen)),
        _ => None,
    }
}

fn change(node: &mut Value, m: &Mutation) {
    match m.kind {
        // Replace with anything.
        0 | 1 => *node = m.value.clone(),
        // Drop a key, or an item.
        2 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(m.at % map.len()).cloned();
                if let Some(key) = key {
                    map.remove(&key);
                }
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(m.at % items.len());
            }
            other => *other = Value::Null,
        },
        // Add a key (or an item).
        3 => match node {
            Value::Object(map) => {
                map.insert(m.key.clone(), m.value.clone());
            }
            Value::Array(items) => items.push(m.value.clone()),
            other => *other = Value::Array(vec![other.clone(), m.value.clone()]),
        },
        // Numbers at their extremes.
        4 => {
            *node = match m.at % 6 {
                0 => Value::from(u64::MAX),
                1 => Value::from(i64::MIN),
                2 => Value::from(-1),
                3 => Value::from(0),
                4 => Value::from(1e300),
                _ => Value::from(0.5),
            }
        }
        // The same value as text, or text as a number.
        5 => {
            let changed = match &*node {
                Value::String(s) => s.parse::<f64>().map_or(Value::Null, Value::from),
                other => Value::String(other.to_string()),
            };
            *node = changed;
        }
        // A huge string or a long list.
        6 => {
            *node = if m.at.is_multiple_of(2) {
                Value::String("x".repeat(100_000))
            } else if count(node) < 20 {
                Value::Array(vec![node.clone(); 500])
            } else {
                Value::Array(vec![Value::Null; 2_000])
            }
        }
        // A string key replaced by an odd one.
        _ => *node = Value::String(m.key.clone()),
    }
}

/// Random bytes, or `docs` mutated and serialised with a few bytes flipped.
pub(crate) fn bytes_near(docs: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => mutated_any(docs.clone()).prop_map(|v| v.to_string().into_bytes()),
        1 => (
            proptest::sample::select(docs),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)
        )
            .prop_map(|(doc, flips)| {
                let mut bytes = doc.to_string().into_bytes();
                for (at, byte) in flips {
                    if !bytes.is_empty() {
                        let i = at % bytes.len();
                        bytes[i] = byte;
                    }
                }
                bytes
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mutations_reach_every_node() {
        let doc = json!({"a": [1, {"b": 2}], "c": "d"});
        assert_eq!(count(&doc), 6);
        for n in 0..6 {
            let mut d = doc.clone();
            apply(
                &mut d,
                &Mutation {
                    at: n,
                    kind: 0,
                    key: String::new(),
                    value: json!("X"),
                },
            );
            assert_ne!(d, doc, "node {n} was not reached");
        }
    }

    #[tokio::test]
    async fn the_driver_finds_and_shrinks_a_failure() {
        let result = AssertUnwindSafe(run("self-test", 0u32..1000, |n| async move {
            if n >= 500 {
                Err(format!("{n} is too big"))
            } else {
                Ok(())
            }
        }))
        .catch_unwind()
        .await;
        let panic = result.expect_err("the failure was not found");
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("minimal input: 500"), "{text}");
    }
}
