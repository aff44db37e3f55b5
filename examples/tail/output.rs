//! Where events go: stdout, buffered as the contract allows.

use std::io::{self, BufWriter, IsTerminal as _, Stdout, Write as _};

use dynamodb_stream::ChangeEvent;

use crate::json::Line;

/// Standard output: a line at a time to a terminal, block-buffered to a pipe or a file.
///
/// The buffer only ever holds whole lines, and each flush writes it out entirely, so a reader
/// never sees half a line at a flush boundary.
pub(crate) struct Output {
    out: BufWriter<Stdout>,
    terminal: bool,
    /// The line being written, reused from line to line.
    line: Vec<u8>,
    /// `--line-checkpoints`: each line carries its event's checkpoint token.
    checkpoints: bool,
}

impl Output {
    pub(crate) fn stdout(checkpoints: bool) -> Self {
        let stdout = io::stdout();
        Output {
            terminal: stdout.is_terminal(),
            out: BufWriter::with_capacity(64 * 1024, stdout),
            line: Vec::with_capacity(4096),
            checkpoints,
        }
    }

    /// Prints `event` as one JSON line.
    pub(crate) fn print(&mut self, event: &ChangeEvent) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        serde_json::to_writer(&mut *line, &Line::new(event))?;
        if self.checkpoints {
            // The checkpoint goes last, written as it is: its text form never holds anything
            // JSON would escape (see `Checkpoint`), and it can be thousands of bytes.
            line.pop();
            write!(line, ",\"checkpoint\":\"{}\"}}", event.checkpoint())?;
        }
        line.push(b'\n');
        // Whole lines only: a line that does not fit flushes what is buffered before it.
        self.out.write_all(line)?;
        if self.terminal {
            self.out.flush()?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
