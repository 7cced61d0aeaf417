//! Interactive questions, worded and answered as patronictl's (click's): `Text [default]: `
//! for a value, `Text [y/N]: ` for a confirmation.
//!
//! Owns: asking on one output and reading one line of an input, both injected so the rules
//! are tested without a terminal. The caller decides whether to ask at all (`--force` skips
//! every question).
//!
//! Hazards: answers are read from stdin whether or not it is a terminal, so they can be piped
//! in. When the input ends before an answer (a closed or empty stdin, as under cron), the
//! question is refused with [`PromptError::Closed`] instead of waiting or guessing, as
//! patronictl aborts on end of input.

use std::io::{BufRead, Write};

/// Where answers come from, one line at a time.
pub trait ReadLine {
    /// Appends one line (with its line end) to `line`; 0 at the end of the input.
    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize>;
}

/// The process's stdin, locked for each line only: a verb that reads stdin whole (`edit-config
/// --apply -`) must be able to take it.
impl ReadLine for std::io::Stdin {
    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        std::io::Stdin::read_line(self, line)
    }
}

impl ReadLine for &[u8] {
    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        BufRead::read_line(self, line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("Aborted: stdin ended before an answer to \"{0}\" (answer on stdin, or give --force)")]
    Closed(String),
    #[error("cannot ask \"{question}\": {source}")]
    Io {
        question: String,
        source: std::io::Error,
    },
}

/// Asks questions on `output` and reads the answers from `input`.
pub struct Prompter<R, W> {
    input: R,
    output: W,
    /// Write each answer after its question: when the input is not a terminal nothing echoes
    /// it, and the transcript would read as unanswered questions.
    echo: bool,
}

/// The process's own stdin and stdout.
pub type Terminal = Prompter<std::io::Stdin, std::io::Stdout>;

impl Terminal {
    pub fn stdio() -> Terminal {
        use std::io::IsTerminal;
        let stdin = std::io::stdin();
        let echo = !stdin.is_terminal();
        Prompter::new(stdin, std::io::stdout(), echo)
    }
}

/// What a line typed at `[y/N]` means: `None` for anything but yes, no or nothing.
pub fn parse_confirmation(answer: &str) -> Option<bool> {
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "n" | "no" | "" => Some(false),
        _ => None,
    }
}

impl<R: ReadLine, W: Write> Prompter<R, W> {
    pub fn new(input: R, output: W, echo: bool) -> Self {
        Self {
            input,
            output,
            echo,
        }
    }

    /// One line from the input, without its line end.
    fn read_answer(&mut self, question: &str) -> Result<String, PromptError> {
        let io = |source| PromptError::Io {
            question: question.to_owned(),
            source,
        };
        self.output.flush().map_err(io)?;
        let mut line = String::new();
        if self.input.read_line(&mut line).map_err(io)? == 0 {
            // The question stays on its line; end it before the error is printed.
            writeln!(self.output).map_err(io)?;
            return Err(PromptError::Closed(question.to_owned()));
        }
        let answer = line.trim_end_matches(['\n', '\r']).to_owned();
        if self.echo {
            writeln!(self.output, "{answer}").map_err(io)?;
        }
        Ok(answer)
    }

    /// `text [default]: `; an empty answer is `default` (an empty default shows as `[]`).
    pub fn ask(&mut self, text: &str, default: &str) -> Result<String, PromptError> {
        let question = format!("{text} [{default}]");
        write!(self.output, "{question}: ").map_err(|source| PromptError::Io {
            question: question.clone(),
            source,
        })?;
        let answer = self.read_answer(&question)?;
        let answer = answer.trim();
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer.to_owned()
        })
    }

    /// `text [y/N]: ` until the answer is yes, no or empty (no).
    pub fn confirm(&mut self, text: &str) -> Result<bool, PromptError> {
        let question = format!("{text} [y/N]");
        loop {
            write!(self.output, "{question}: ").map_err(|source| PromptError::Io {
                question: question.clone(),
                source,
            })?;
            let answer = self.read_answer(&question)?;
            match parse_confirmation(&answer) {
                Some(yes) => return Ok(yes),
                None => {
                    writeln!(self.output, "Error: invalid input").map_err(|source| {
                        PromptError::Io {
                            question: question.clone(),
                            source,
                        }
                    })?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompter(input: &str) -> Prompter<&[u8], Vec<u8>> {
        Prompter::new(input.as_bytes(), Vec::new(), false)
    }

    fn shown(p: Prompter<&[u8], Vec<u8>>) -> String {
        String::from_utf8(p.output).unwrap()
    }

    #[test]
    fn confirmation_answers() {
        for (answer, meaning) in [
            ("y", Some(true)),
            ("Yes", Some(true)),
            (" YES ", Some(true)),
            ("n", Some(false)),
            ("no", Some(false)),
            ("", Some(false)),
            ("sure", None),
            ("yy", None),
        ] {
            assert_eq!(parse_confirmation(answer), meaning, "{answer:?}");
        }
    }

    #[test]
    fn a_value_question_shows_its_default_and_takes_it_on_an_empty_answer() {
        let mut p = prompter("\nnode2\n");
        assert_eq!(p.ask("Primary", "node0").unwrap(), "node0");
        assert_eq!(p.ask("Candidate ['node1', 'node2']", "").unwrap(), "node2");
        assert_eq!(
            shown(p),
            "Primary [node0]: Candidate ['node1', 'node2'] []: "
        );
    }

    #[test]
    fn a_confirmation_asks_again_after_a_wrong_answer() {
        let mut p = prompter("maybe\ny\n");
        assert!(p.confirm("Apply these changes?").unwrap());
        assert_eq!(
            shown(p),
            "Apply these changes? [y/N]: Error: invalid input\nApply these changes? [y/N]: "
        );
        let mut p = prompter("\n");
        assert!(!p.confirm("Apply these changes?").unwrap());
    }

    #[test]
    fn the_end_of_input_refuses_instead_of_answering() {
        let mut p = prompter("");
        match p.confirm("Are you sure you want to pause?") {
            Err(PromptError::Closed(q)) => {
                assert_eq!(q, "Are you sure you want to pause? [y/N]")
            }
            other => panic!("{other:?}"),
        }
        let mut p = prompter("half an answer");
        assert_eq!(p.ask("Primary", "node0").unwrap(), "half an answer");
        assert!(matches!(
            p.ask("Candidate", ""),
            Err(PromptError::Closed(_))
        ));
    }

    #[test]
    fn answers_are_echoed_when_the_input_is_not_a_terminal() {
        let mut p = Prompter::new("node1\n".as_bytes(), Vec::new(), true);
        p.ask("Candidate ['node1']", "").unwrap();
        assert_eq!(
            String::from_utf8(p.output).unwrap(),
            "Candidate ['node1'] []: node1\n"
        );
    }
}
