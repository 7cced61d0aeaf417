//! The unified diff `edit-config` shows before asking `Apply these changes?`: `--- ` and `+++ `
//! headers without file names, `@@ -a,b +c,d @@` hunks with three lines of context, as
//! patronictl prints it on a non-terminal.
//!
//! The alignment is a longest common subsequence of lines (configurations are a few hundred
//! lines at most, so the quadratic table is small); within a changed block the removed lines
//! come before the added ones.

/// One step of the edit script: how line `a[i]` / `b[j]` is carried over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Keep,
    Remove,
    Add,
}

/// The edit script from `a` to `b`.
fn steps(a: &[&str], b: &[&str]) -> Vec<Step> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n + m);
    // Removals and additions between two kept lines, removals first.
    let (mut removed, mut added) = (0, 0);
    let flush = |out: &mut Vec<Step>, removed: &mut usize, added: &mut usize| {
        out.extend(std::iter::repeat_n(Step::Remove, *removed));
        out.extend(std::iter::repeat_n(Step::Add, *added));
        (*removed, *added) = (0, 0);
    };
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            flush(&mut out, &mut removed, &mut added);
            out.push(Step::Keep);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            removed += 1;
            i += 1;
        } else {
            added += 1;
            j += 1;
        }
    }
    flush(&mut out, &mut removed, &mut added);
    out
}

/// A line range in a hunk header: `start,length` (1-based), `start` alone for one line, and the
/// line before for an empty range.
fn range(start: usize, len: usize) -> String {
    match len {
        1 => format!("{}", start + 1),
        0 => format!("{start},0"),
        _ => format!("{},{len}", start + 1),
    }
}

/// The unified diff of two texts with `context` lines around each change; empty when they are
/// equal.
pub fn unified(before: &str, after: &str, context: usize) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let script = steps(&a, &b);
    // (index in script, line in a, line in b) of each step.
    let mut at = Vec::with_capacity(script.len());
    let (mut i, mut j) = (0, 0);
    for step in &script {
        at.push((i, j));
        match step {
            Step::Keep => (i, j) = (i + 1, j + 1),
            Step::Remove => i += 1,
            Step::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..script.len())
        .filter(|&k| script[k] != Step::Keep)
        .collect();
    if changed.is_empty() {
        return String::new();
    }
    // Hunks: runs of changes whose gaps of kept lines are at most 2 * context long.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &k in &changed {
        match hunks.last_mut() {
            Some((_, end)) if k - *end <= 2 * context + 1 => *end = k,
            _ => hunks.push((k, k)),
        }
    }
    let mut out = String::from("--- \n+++ \n");
    for (first, last) in hunks {
        let start = first.saturating_sub(context);
        let end = (last + context + 1).min(script.len());
        let (a0, b0) = at[start];
        let (a1, b1) = if end < script.len() {
            at[end]
        } else {
            (a.len(), b.len())
        };
        out += &format!("@@ -{} +{} @@\n", range(a0, a1 - a0), range(b0, b1 - b0));
        for k in start..end {
            let (i, j) = at[k];
            match script[k] {
                Step::Keep => out += &format!(" {}\n", a[i]),
                Step::Remove => out += &format!("-{}\n", a[i]),
                Step::Add => out += &format!("+{}\n", b[j]),
            }
        }
    }
    out
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
