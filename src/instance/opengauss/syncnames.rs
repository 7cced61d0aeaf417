//! `synchronous_standby_names` as openGauss takes it. The HA layer writes PostgreSQL's forms:
//! empty, `*`, `ANY 1 (*)`, `FIRST n ("a","b")`, `ANY k ("a","b","c")`. openGauss's grammar
//! has the same forms (and quoted names, `*`, and a list of several `ANY` groups), so a value
//! passes through unchanged; what differs is what openGauss then refuses, where PostgreSQL
//! accepts: a count above the number of names, `*` beside other names, a name twice (compared
//! without case), `FIRST` in a list of groups, more groups than it supports.
//!
//! [`check`] applies those rules before the value is written, because a value the server
//! refuses on reload is only logged by it, and the old value would stay in force unnoticed.
//! Pure.

/// openGauss's limit on groups (`SYNC_REP_MAX_GROUPS`).
const MAX_GROUPS: usize = 256;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("openGauss would refuse synchronous_standby_names {value:?}: {why}")]
pub struct Refused {
    pub value: String,
    pub why: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Any,
    First,
    Num(usize),
    Name(String),
    Star,
    Comma,
    Open,
    Close,
}

fn tokens(value: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => out.push(Token::Comma),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '*' => out.push(Token::Star),
            '"' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            name.push('"');
                        }
                        Some('"') => break,
                        Some(c) => name.push(c),
                        None => return Err("an unterminated quoted name".into()),
                    }
                }
                out.push(Token::Name(name));
            }
            c if c.is_ascii_digit() => {
                let mut digits = c.to_string();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse().map_err(|_| format!("the number {digits}"))?;
                out.push(Token::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut word = c.to_string();
                while let Some(d) = chars
                    .peek()
                    .filter(|d| d.is_alphanumeric() || "_-./$".contains(**d))
                {
                    word.push(*d);
                    chars.next();
                }
                // The scanner knows the keywords in upper case only.
                out.push(match word.as_str() {
                    "ANY" => Token::Any,
                    "FIRST" => Token::First,
                    _ => Token::Name(word),
                });
            }
            other => return Err(format!("the character {other:?}")),
        }
    }
    Ok(out)
}

/// How a group waits: `ANY k` (quorum), `FIRST n`, or a count or list without a keyword
/// (priority, as `FIRST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Any,
    First,
    Unnamed,
}

/// One `[ANY|FIRST] [n] (names)` group, or a bare list.
struct Group {
    method: Method,
    count: usize,
    names: Vec<Option<String>>,
}

fn groups(tokens: &[Token]) -> Result<Vec<Group>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    let names_until = |i: &mut usize, close: bool| -> Result<Vec<Option<String>>, String> {
        let mut names = Vec::new();
        loop {
            match tokens.get(*i) {
                Some(Token::Name(n)) => names.push(Some(n.clone())),
                Some(Token::Num(n)) => names.push(Some(n.to_string())),
                Some(Token::Star) => names.push(None),
                _ => return Err("a missing standby name".into()),
            }
            *i += 1;
            match tokens.get(*i) {
                Some(Token::Comma) if close => *i += 1,
                Some(Token::Close) if close => {
                    *i += 1;
                    return Ok(names);
                }
                Some(Token::Comma) => *i += 1,
                None if !close => return Ok(names),
                _ => return Err("a list that does not end where it should".into()),
            }
        }
    };
    if !matches!(tokens.first(), Some(Token::Any | Token::First))
        && !matches!(tokens.get(1), Some(Token::Open))
    {
        // PostgreSQL's oldest form: a bare list, priority, one synchronous standby.
        let names = names_until(&mut i, false)?;
        return Ok(vec![Group {
            method: Method::Unnamed,
            count: 1,
            names,
        }]);
    }
    while i < tokens.len() {
        let method = match tokens.get(i) {
            Some(Token::Any) => Method::Any,
            Some(Token::First) => Method::First,
            _ => Method::Unnamed,
        };
        if method != Method::Unnamed {
            i += 1;
        }
        let Some(Token::Num(count)) = tokens.get(i) else {
            return Err("a group without its number".into());
        };
        let count = *count;
        i += 1;
        if tokens.get(i) != Some(&Token::Open) {
            return Err("a group without its parenthesis".into());
        }
        i += 1;
        let names = names_until(&mut i, true)?;
        out.push(Group {
            method,
            count,
            names,
        });
        match tokens.get(i) {
            None => {}
            Some(Token::Comma) => i += 1,
            _ => return Err("text after a group".into()),
        }
    }
    Ok(out)
}

/// Checks `value` against openGauss's rules; empty means asynchronous replication and passes.
pub fn check(value: &str) -> Result<(), Refused> {
    let refuse = |why: String| Refused {
        value: value.to_owned(),
        why,
    };
    if value.trim().is_empty() {
        return Ok(());
    }
    let tokens = tokens(value).map_err(|w| refuse(format!("it holds {w}")))?;
    let groups = groups(&tokens).map_err(|w| refuse(format!("it has {w}")))?;
    if groups.len() > MAX_GROUPS {
        return Err(refuse(format!("more than {MAX_GROUPS} groups")));
    }
    if groups.len() > 1 && groups.iter().any(|g| g.method != Method::Any) {
        return Err(refuse("only ANY groups can be combined".into()));
    }
    let mut seen: Vec<String> = Vec::new();
    for group in &groups {
        let star = group.names.iter().any(Option::is_none);
        if star && (groups.len() > 1 || group.names.len() > 1) {
            return Err(refuse("'*' must stand alone".into()));
        }
        if group.count == 0 {
            return Err(refuse("a group waits for no standby".into()));
        }
        if !star && group.count > group.names.len() {
            return Err(refuse(format!(
                "it waits for {} standbys of {} names",
                group.count,
                group.names.len()
            )));
        }
        for name in group.names.iter().flatten() {
            let lower = name.to_lowercase();
            if seen.contains(&lower) {
                return Err(refuse(format!("{name:?} is named twice")));
            }
            seen.push(lower);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_the_ha_layer_writes_passes_unchanged() {
        for value in [
            "",
            "*",
            "ANY 1 (*)",
            "FIRST 1 (\"b\")",
            "FIRST 2 (\"b\",\"c\")",
            "ANY 1 (\"b\",\"c\")",
            "ANY 2 (\"node-b\",\"node.c\",\"d\")",
            "\"tribune fenced: no standby has this name\"",
        ] {
            assert_eq!(check(value), Ok(()), "{value}");
        }
    }

    #[test]
    fn opengauss_forms_pass_too() {
        for value in [
            "dn_6002",
            "dn_6002, dn_6003",
            "2 (dn_6002, dn_6003)",
            "ANY 1(dn_6002,dn_6003), ANY 1(dn_6004)",
            "\"say \"\"hi\"\"\"",
        ] {
            assert_eq!(check(value), Ok(()), "{value}");
        }
    }

    #[test]
    fn what_opengauss_refuses_where_postgresql_accepts() {
        let why = |value: &str| check(value).unwrap_err().why;
        assert!(why("FIRST 2 (\"b\")").contains("2 standbys of 1 names"));
        assert!(why("ANY 1 (*, \"b\")").contains("stand alone"));
        assert!(why("ANY 1 (\"b\"), ANY 1 (*)").contains("stand alone"));
        assert!(why("ANY 1 (\"b\", \"B\")").contains("twice"));
        assert!(why("FIRST 1 (\"b\"), ANY 1 (\"c\")").contains("only ANY"));
        assert!(why("ANY 0 (\"b\")").contains("no standby"));
        assert!(why("any 1 (b)").contains("text after") || why("any 1 (b)").contains("list"));
        assert!(why("ANY 1 (\"b\"").contains("list"));
        assert!(why("ANY 1 (\"b").contains("unterminated"));
        assert!(why("ANY 1 ('b')").contains("character"));
    }
}
