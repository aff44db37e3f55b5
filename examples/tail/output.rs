//! Where events go: stdout, buffered as the contract allows, and the `--checkpoint` file,
//! replaced atomically.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal as _, Stdout, Write as _};
use std::path::{Path, PathBuf};

use dynamodb_stream::{ChangeEvent, Checkpoint};

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
}

impl Output {
    pub(crate) fn stdout() -> Self {
        let stdout = io::stdout();
        Output {
            terminal: stdout.is_terminal(),
            out: BufWriter::with_capacity(64 * 1024, stdout),
            line: Vec::with_capacity(4096),
        }
    }

    /// Prints `event` as one JSON line.
    pub(crate) fn print(&mut self, event: &ChangeEvent) -> io::Result<()> {
        let line = &mut self.line;
        line.clear();
        serde_json::to_writer(&mut *line, &Line::new(event))?;
        // The checkpoint goes last, written as it is: its text form never holds anything JSON
        // would escape (see `Checkpoint`), and it can be thousands of bytes.
        line.pop();
        writeln!(line, ",\"checkpoint\":\"{}\"}}", event.checkpoint())?;
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

/// The `--checkpoint` file.
pub(crate) struct CheckpointFile {
    path: PathBuf,
    saved: Option<String>,
}

impl CheckpointFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        CheckpointFile { path, saved: None }
    }

    /// The saved checkpoint, or `None` if the file does not exist yet.
    pub(crate) fn load(&mut self) -> Result<Option<Checkpoint>, String> {
        let failed = |e: &dyn std::fmt::Display| {
            format!(
                "cannot read the checkpoint file {}: {e}",
                self.path.display()
            )
        };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(&e)),
        };
        let checkpoint = text.parse().map_err(|e| failed(&e))?;
        self.saved = Some(text);
        Ok(Some(checkpoint))
    }

    /// Replaces the file with `checkpoint`, unless it already holds it.
    pub(crate) fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), String> {
        let text = format!("{checkpoint}\n");
        if self.saved.as_ref() == Some(&text) {
            return Ok(());
        }
        replace_atomically(&self.path, text.as_bytes()).map_err(|e| {
            format!(
                "cannot save the checkpoint file {}: {e}",
                self.path.display()
            )
        })?;
        self.saved = Some(text);
        Ok(())
    }
}

/// Writes a temporary file beside `path`, syncs it, renames it over `path` and syncs the
/// directory: whenever the process dies, `path` holds either the old or the new contents.
fn replace_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".tail-checkpoint.")
        .tempfile_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    // The rename lives in the directory: sync it too, or a power cut may undo it.
    File::open(dir)?.sync_all()
}
