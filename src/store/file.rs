//! [`FileStore`]: one checkpoint in one file, replaced atomically.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{CheckpointStore, mismatch, parse};
use crate::checkpoint::Checkpoint;
use crate::error::{Error, ErrorKind, Result};

/// One stream's checkpoint in one file, replaced atomically and synced to disk.
///
/// A save writes the checkpoint's text form to a temporary file beside the target
/// (`<file>.tmp-<pid>-<n>`), syncs it, renames it over the target and syncs the directory.
/// A crash (or `SIGKILL`, or power loss on a file system that honours `fsync`) at any instant
/// leaves the file holding either the previous checkpoint or the new one, never a mixture;
/// when [`save`](CheckpointStore::save) returns `Ok`, the new one is on disk. A temporary
/// file left behind by a crash is removed by the next process's first save.
///
/// The file is plain text (the checkpoint's [`Display`](fmt::Display) form and a newline), so
/// it can be inspected, copied or edited by hand; its checksum catches damage.
///
/// # Refusals
/// Nothing is ever overwritten by mistake:
/// - [`load`](CheckpointStore::load) of an empty, truncated or corrupt file is
///   [`ErrorKind::InvalidCheckpoint`], of another stream's checkpoint
///   [`ErrorKind::CheckpointMismatch`]; the file is left as it is.
/// - [`save`](CheckpointStore::save) over such a file refuses with the same errors: delete
///   the file (or fix it) to start over.
/// - A save that cannot write (read-only directory, missing parent, full disk) is
///   [`ErrorKind::Store`], and the previous checkpoint is intact.
///
/// Saves and loads run on tokio's blocking pool. Saves from one `FileStore` (and its clones)
/// land in the order they were called: an older save that finishes late (for example one
/// whose future was dropped) never replaces a newer checkpoint. The file has one writer: two
/// processes must not save to the same file (use `DynamoDbStore`, feature `dynamodb-store`,
/// to guard against that).
///
/// # Recipe
/// ```no_run
/// use std::time::Duration;
/// use dynamodb_stream::{ChangeStream, Committer, StartPosition};
/// use dynamodb_stream::store::FileStore;
/// use futures::StreamExt;
///
/// # async fn run(client: aws_sdk_dynamodbstreams::Client, arn: &str) -> dynamodb_stream::Result<()> {
/// let store = FileStore::new("/var/lib/orders-consumer/checkpoint");
/// let stream = ChangeStream::builder(client, arn)
///     .start(StartPosition::TrimHorizon) // first run only: later runs resume from the file
///     .resume_from_store(&store)
///     .await?
///     .build()?;
/// let mut events = Committer::new(stream, store)
///     .every(500)
///     .interval(Duration::from_secs(5));
/// while let Some(event) = events.next().await {
///     let event = event?;
///     // ... process the event ...
///     events.ack(&event); // processed: may be saved now
/// }
/// events.close().await?; // saves the last acknowledged position
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Numbers saves in the order they were called.
    tickets: AtomicU64,
    /// Held while a save touches the disk: saves are written one at a time.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The highest ticket written: an older save arriving later is dropped.
    written: u64,
    /// The stream whose checkpoint the file is known to hold (or may hold, being absent):
    /// a save of that stream needs no look at the file first.
    stream: Option<String>,
    /// Whether temporary files of earlier processes have been removed.
    swept: bool,
}

impl FileStore {
    /// A store keeping its checkpoint in the file `path`. Nothing is touched until the first
    /// load or save; the parent directory must exist by then.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                tickets: AtomicU64::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl CheckpointStore for FileStore {
    async fn load(&self, stream_arn: &str) -> Result<Option<Checkpoint>> {
        let inner = self.inner.clone();
        let arn = stream_arn.to_owned();
        blocking(move || {
            let found = inner.read()?;
            if let Some(cp) = &found
                && cp.stream_arn() != arn
            {
                return Err(mismatch(&inner.location(), cp.stream_arn(), &arn));
            }
            inner.lock().stream = Some(arn);
            Ok(found)
        })
        .await
    }

    fn save(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<()>> + Send {
        // The ticket is taken when `save` is called, not when the future is first polled.
        let ticket = self.inner.tickets.fetch_add(1, Ordering::Relaxed) + 1;
        let inner = self.inner.clone();
        let checkpoint = checkpoint.clone();
        blocking(move || inner.save(ticket, &checkpoint))
    }
}

/// Runs file I/O on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::new(ErrorKind::Store, "the checkpoint file task failed").with_source(e)
    })?
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state only caches facts about the file; after a panic they are still facts.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn location(&self) -> String {
        format!("checkpoint file {}", self.path.display())
    }

    fn io_error(&self, what: &str, e: io::Error) -> Error {
        Error::new(
            ErrorKind::Store,
            format!("{}: cannot {what}: {e}", self.location()),
        )
        .with_source(e)
    }

    /// The checkpoint in the file, `None` if there is no file.
    fn read(&self) -> Result<Option<Checkpoint>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error("read it", e)),
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::new(
                ErrorKind::InvalidCheckpoint,
                format!("{}: the file is not text", self.location()),
            )
        })?;
        parse(&self.location(), &text).map(Some)
    }

    fn save(&self, ticket: u64, checkpoint: &Checkpoint) -> Result<()> {
        let mut state = self.lock();
        if ticket < state.written {
            // A newer save already landed.
            return Ok(());
        }
        let arn = checkpoint.stream_arn();
        if state.stream.as_deref() != Some(arn) {
            // Never replace a file we cannot read or that belongs to another stream.
            if let Some(found) = self.read()?
                && found.stream_arn() != arn
            {
                return Err(mismatch(&self.location(), found.stream_arn(), arn));
            }
            state.stream = Some(arn.to_owned());
        }
        let (dir, name) = self.split()?;
        if !state.swept {
            sweep(&dir, &name);
            state.swept = true;
        }
        let tmp = dir.join(format!("{name}.tmp-{}-{ticket}", std::process::id()));
        let text = format!("{checkpoint}\n");
        if let Err(e) = write_synced(&tmp, text.as_bytes()) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io_error("write a temporary file beside it", e));
        }
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io_error("replace it", e));
        }
        state.written = ticket;
        sync_dir(&dir).map_err(|e| self.io_error("sync its directory after replacing it", e))
    }

    /// The directory and file name of the target.
    fn split(&self) -> Result<(PathBuf, String)> {
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Store,
                    format!("{}: the path names no file", self.location()),
                )
            })?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok((dir, name.to_owned()))
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the rename is as durable as the platform
/// makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Removes temporary files that crashed processes left beside `name` (best effort: a file
/// that cannot be removed is harmless).
fn sweep(dir: &Path, name: &str) {
    let prefix = format!("{name}.tmp-");
    let own = format!("{prefix}{}-", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with(&prefix) && !file_name.starts_with(&own) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_lives_in_the_working_directory() {
        let store = FileStore::new("checkpoint");
        let (dir, name) = store.inner.split().unwrap();
        assert_eq!((dir, name.as_str()), (PathBuf::from("."), "checkpoint"));
        let (dir, name) = FileStore::new("/a/b/cp").inner.split().unwrap();
        assert_eq!((dir, name.as_str()), (PathBuf::from("/a/b"), "cp"));
        let err = FileStore::new("/").inner.split().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Store);
    }
}
