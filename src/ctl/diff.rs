//! The unified diff `edit-config` shows before asking `Apply these changes?`: `--- ` and `+++ `
//! headers without file names, `@@ -a,b +c,d @@` hunks with three lines of context, as
//! patronictl (Python's `difflib.unified_diff`) prints it on a non-terminal.
//!
//! The diff is `similar`'s; this module only fixes the form: empty file names, no "No newline
//! at end of file" marker, nothing at all for equal texts.

use similar::TextDiff;

/// The unified diff of two texts with `context` lines around each change; empty when they are
/// equal.
pub fn unified(before: &str, after: &str, context: usize) -> String {
    if before == after {
        return String::new();
    }
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(context)
        .missing_newline_hint(false)
        .header("", "")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", 3), "");
        assert_eq!(unified("", "", 3), "");
    }

    /// patronictl's documented example: two settings changed, far enough apart for two hunks.
    #[test]
    fn two_hunks_with_context() {
        let before = "loop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n  pg_hba:\n  \
                      - host replication replicator 127.0.0.1/32 md5\n  - host all all 0.0.0.0/0 md5\n  \
                      use_pg_rewind: true\nretry_timeout: 10\nttl: 30\n";
        let after = before
            .replace("loop_wait: 10", "loop_wait: 15")
            .replace("ttl: 30", "ttl: 45");
        assert_eq!(
            unified(before, &after, 3),
            "--- \n+++ \n@@ -1,4 +1,4 @@\n-loop_wait: 10\n+loop_wait: 15\n maximum_lag_on_failover: 1048576\n \
             postgresql:\n   pg_hba:\n@@ -6,4 +6,4 @@\n   - host all all 0.0.0.0/0 md5\n   use_pg_rewind: true\n \
             retry_timeout: 10\n-ttl: 30\n+ttl: 45\n"
        );
    }

    #[test]
    fn additions_and_removals_at_the_edges() {
        assert_eq!(unified("", "a\n", 3), "--- \n+++ \n@@ -0,0 +1 @@\n+a\n");
        assert_eq!(
            unified("a\nb\n", "b\n", 3),
            "--- \n+++ \n@@ -1,2 +1 @@\n-a\n b\n"
        );
        assert_eq!(
            unified("x\na\nb\nc\n", "x\na\nB\nc\n", 1),
            "--- \n+++ \n@@ -2,3 +2,3 @@\n a\n-b\n+B\n c\n"
        );
    }

    #[test]
    fn a_replaced_block_shows_removals_before_additions() {
        assert_eq!(
            unified("k\n1\n2\nz\n", "k\nA\nB\nz\n", 3),
            "--- \n+++ \n@@ -1,4 +1,4 @@\n k\n-1\n-2\n+A\n+B\n z\n"
        );
    }

    #[test]
    fn changes_close_together_share_a_hunk() {
        let before: String = (1..=10).map(|n| format!("{n}\n")).collect();
        let after = before.replace("2\n", "two\n").replace("9\n", "nine\n");
        // Six kept lines between the changes: one hunk with context 3.
        let diff = unified(&before, &after, 3);
        assert_eq!(diff.matches("@@ -").count(), 1, "{diff}");
        assert!(
            diff.starts_with("--- \n+++ \n@@ -1,10 +1,10 @@\n"),
            "{diff}"
        );
        // Seven: two hunks.
        let after = before.replace("1\n", "one\n").replace("9\n", "nine\n");
        assert_eq!(unified(&before, &after, 3).matches("@@ -").count(), 2);
    }
}
