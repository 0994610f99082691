//! Where user-facing output goes. Logs go through `tracing` instead.

use std::io::{self, Write};

/// Writes results to stdout and messages to stderr, unless silenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printer {
    /// Results and messages.
    Default,
    /// Results only: no progress or hints on stderr.
    Quiet,
}

impl Printer {
    /// Writes a result (a plan, a schema) to stdout.
    pub fn result(self, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Writes a message for the user to stderr, unless quiet.
    pub fn message(self, text: &str) {
        if self == Printer::Default {
            let _ = writeln!(io::stderr().lock(), "{text}");
        }
    }
}
