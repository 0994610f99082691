//! How the rules read `run` commands: shell text split into simple
//! commands, past variable assignments and wrappers.

use crate::ir::{Command, Run, Template};

/// The simple commands of a `run` step, each as its words: a shell
/// command (or an argv of `sh -c SCRIPT`) split on `&&`, `||`, `;`, `|`,
/// `&`, parentheses and newlines, with quotes removed and comments
/// dropped; an argv as it is.
pub(super) fn simple_commands(run: &Run<Template>) -> Vec<Vec<String>> {
    match &run.command {
        Command::Shell(script) => split_shell(script),
        Command::Exec(argv) => match argv.as_slice() {
            [shell, flag, script, ..]
                if flag == "-c" && matches!(basename(shell), "sh" | "bash" | "ash" | "dash") =>
            {
                split_shell(script)
            }
            _ => vec![argv.clone()],
        },
    }
}

/// Splits shell text into simple commands. Not a shell parser: enough to
/// find the programs a command runs and their arguments.
pub(super) fn split_shell(text: &str) -> Vec<Vec<String>> {
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
            },
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('\n') | None => {}
                            Some(next) => word.push(next),
                        },
                        _ => word.push(c),
                    }
                }
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                end_command(&mut commands, &mut words);
            }
            ';' | '&' | '|' | '\n' | '(' | ')' | '`' => {
                end_word(&mut words, &mut word, &mut in_word);
                end_command(&mut commands, &mut words);
            }
            c if c.is_whitespace() => end_word(&mut words, &mut word, &mut in_word),
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(&mut words, &mut word, &mut in_word);
    end_command(&mut commands, &mut words);
    commands
}

pub(super) fn end_word(words: &mut Vec<String>, word: &mut String, in_word: &mut bool) {
    if *in_word {
        words.push(std::mem::take(word));
        *in_word = false;
    }
}

pub(super) fn end_command(commands: &mut Vec<Vec<String>>, words: &mut Vec<String>) {
    if !words.is_empty() {
        commands.push(std::mem::take(words));
    }
}

/// The program a simple command runs (its file name) and its arguments,
/// past variable assignments, shell keywords and wrappers (`sudo`, `env`).
pub(super) fn program(words: &[String]) -> Option<(&str, &[String])> {
    const KEYWORDS: [&str; 11] = [
        "if", "then", "else", "elif", "do", "while", "until", "!", "{", "}", "time",
    ];
    const WRAPPERS: [&str; 6] = ["sudo", "env", "command", "exec", "nice", "nohup"];
    let mut i = 0;
    while let Some(word) = words.get(i) {
        if is_assignment(word) || KEYWORDS.contains(&word.as_str()) {
            i += 1;
        } else if WRAPPERS.contains(&basename(word)) {
            i += 1;
            while words.get(i).is_some_and(|w| w.starts_with('-')) {
                i += 1;
            }
        } else {
            return Some((basename(word), &words[i + 1..]));
        }
    }
    None
}

/// `NAME=value`, a variable assignment before a command.
pub(super) fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The file name of a program path: `apt-get` of `/usr/bin/apt-get`.
pub(super) fn basename(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The arguments that are not options, skipping the values of `valued`
/// options.
pub(super) fn operands<'a>(args: &'a [String], valued: &[&str]) -> Vec<&'a str> {
    let mut operands = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if valued.contains(&word.as_str()) {
            words.next();
        } else if !word.starts_with('-') {
            operands.push(word.as_str());
        }
    }
    operands
}

/// `text`, cut to a length that fits in a message.
pub(super) fn short(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX - 3).collect();
        format!("{cut}...")
    }
}
