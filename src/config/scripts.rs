//! The user scripts of the configuration: `postgresql.callbacks`, `postgresql.pre_promote`,
//! `postgresql.before_stop` and `bootstrap.post_bootstrap` (alias `post_init`). Each is a command
//! line split as Patroni splits it (Python's `shlex.split`, POSIX rules); a line that cannot be
//! split (an unclosed quote) is an error naming the key, not a script that fails at run time.

use super::error::ConfigError;
use super::value::Section;

/// One configured command: as written, and split into the program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptCommand {
    pub text: String,
    pub argv: Vec<String>,
}

impl ScriptCommand {
    pub(crate) fn parse(s: &Section<'_>, key: &str) -> Result<Option<ScriptCommand>, ConfigError> {
        let Some(text) = s.string(key)? else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        let argv = shlex::split(&text).ok_or_else(|| {
            ConfigError::at(
                s.key(key),
                format!("cannot split {text:?} into a command line: a quote is not closed"),
            )
        })?;
        Ok(Some(ScriptCommand { text, argv }))
    }
}

/// `postgresql.callbacks`: run in the background after the event, with the arguments
/// `ACTION ROLE SCOPE` appended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Callbacks {
    pub on_start: Option<ScriptCommand>,
    pub on_stop: Option<ScriptCommand>,
    pub on_restart: Option<ScriptCommand>,
    pub on_reload: Option<ScriptCommand>,
    pub on_role_change: Option<ScriptCommand>,
}

impl Callbacks {
    pub(crate) fn parse(s: &Section<'_>) -> Result<Callbacks, ConfigError> {
        Ok(Callbacks {
            on_start: ScriptCommand::parse(s, "on_start")?,
            on_stop: ScriptCommand::parse(s, "on_stop")?,
            on_restart: ScriptCommand::parse(s, "on_restart")?,
            on_reload: ScriptCommand::parse(s, "on_reload")?,
            on_role_change: ScriptCommand::parse(s, "on_role_change")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn commands_are_split_as_python_shlex_does() {
        let doc = json!({
            "on_start": "/usr/local/bin/vip.sh --dev 'eth 0'",
            "on_stop": "  ",
            "on_reload": "echo \"a b\" c\\ d",
            "on_role_change": "broken 'quote"
        });
        let s = Section::new("postgresql.callbacks", Some(&doc)).unwrap();
        let start = ScriptCommand::parse(&s, "on_start").unwrap().unwrap();
        assert_eq!(start.argv, ["/usr/local/bin/vip.sh", "--dev", "eth 0"]);
        assert_eq!(ScriptCommand::parse(&s, "on_stop").unwrap(), None);
        assert_eq!(ScriptCommand::parse(&s, "on_restart").unwrap(), None);
        let reload = ScriptCommand::parse(&s, "on_reload").unwrap().unwrap();
        assert_eq!(reload.argv, ["echo", "a b", "c d"]);
        let err = Callbacks::parse(&s).unwrap_err();
        assert_eq!(
            err.key.as_deref(),
            Some("postgresql.callbacks.on_role_change")
        );
    }
}
