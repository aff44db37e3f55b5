//! The file store against real files: round trips, every kind of bad file, unwritable
//! locations, save ordering, and SIGKILLs of a writing process at random moments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dynamodb_stream::store::FileStore;
use dynamodb_stream::{Checkpoint, CheckpointStore, ErrorKind, ShardPosition};

const ARN: &str =
    "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2026-11-21T00:00:00.000";
const OTHER_ARN: &str =
    "arn:aws:dynamodb:us-east-1:000000000000:table/users/stream/2026-11-21T00:00:00.000";

/// Selects the child process modes of this test binary.
const CRASH_WRITER: &str = "DDBS_TEST_FILE_STORE_CRASH_WRITER";
const UNWRITABLE_SAVER: &str = "DDBS_TEST_FILE_STORE_UNWRITABLE_SAVER";

/// A checkpoint of `arn` at position `n` over `shards` shards (every shard moves with `n`, so
/// the whole file changes with every save), built through the documented text form.
fn checkpoint(arn: &str, n: u64, shards: u64) -> Checkpoint {
    let mut body = format!("ddbs1;{arn}");
    for i in 0..shards {
        body.push_str(&format!(";shardId-{i:05}=s{:021}", n * 1000 + i));
    }
    let crc = crc32fast::hash(body.as_bytes());
    format!("{body};c{crc:08x}")
        .parse()
        .expect("a valid checkpoint")
}

/// The `n` of [`checkpoint`].
fn position(cp: &Checkpoint) -> u64 {
    match cp.position("shardId-00000") {
        Some(ShardPosition::After(seq)) => seq.as_str().parse::<u64>().expect("digits") / 1000,
        other => panic!("unexpected position {other:?}"),
    }
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[tokio::test]
async fn saves_replace_the_file_and_load_returns_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    let store = FileStore::new(&path);
    assert_eq!(store.path(), path);

    assert_eq!(
        store.load(ARN).await.unwrap(),
        None,
        "no file: nothing saved"
    );
    assert!(!path.exists(), "load creates nothing");

    for n in 1..=5 {
        store.save(&checkpoint(ARN, n, 3)).await.unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("{}\n", checkpoint(ARN, 5, 3)),
        "plain text and a newline"
    );
    assert!(
        temp_files(dir.path()).is_empty(),
        "no temporary file stays behind"
    );

    // A new store on the same file, as after a restart.
    let reopened = FileStore::new(&path);
    assert_eq!(
        reopened.load(ARN).await.unwrap(),
        Some(checkpoint(ARN, 5, 3))
    );
    reopened.save(&checkpoint(ARN, 6, 3)).await.unwrap();
    assert_eq!(store.load(ARN).await.unwrap(), Some(checkpoint(ARN, 6, 3)));
}

#[tokio::test]
async fn empty_truncated_and_corrupt_files_are_refused_and_left_untouched() {
    let good = format!("{}\n", checkpoint(ARN, 42, 5));
    let mut flipped = good.clone().into_bytes();
    let at = flipped.len() / 2;
    flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("only a newline", b"\n".to_vec()),
        (
            "truncated to half",
            good.as_bytes()[..good.len() / 2].to_vec(),
        ),
        (
            "last checksum digit missing",
            good.trim_end().as_bytes()[..good.len() - 2].to_vec(),
        ),
        ("one byte flipped", flipped),
        ("not text", vec![0xff, 0xfe, 0x00, 0x9c]),
        ("someone else's file", b"{\"position\": 17}\n".to_vec()),
        (
            "zeroes, as after a crash on some file systems",
            vec![0; 4096],
        ),
    ];
    for (what, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        std::fs::write(&path, &bytes).unwrap();
        let store = FileStore::new(&path);

        let err = store.load(ARN).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidCheckpoint,
            "load, {what}: {err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "load changed the file, {what}"
        );

        let err = store.save(&checkpoint(ARN, 43, 5)).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidCheckpoint,
            "save, {what}: {err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "save overwrote the file, {what}"
        );

        // Resuming from it is the same error: never a silent start from scratch.
        let sim = dynamodb_stream::sim::Simulator::new();
        let builder = dynamodb_stream::ChangeStream::builder(sim.client(), ARN);
        let err = builder.resume_from_store(&store).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidCheckpoint, "resume, {what}");
        assert!(temp_files(dir.path()).is_empty());
    }
}

#[tokio::test]
async fn a_checkpoint_of_another_stream_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    FileStore::new(&path)
        .save(&checkpoint(ARN, 7, 2))
        .await
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    let store = FileStore::new(&path);
    let err = store.load(OTHER_ARN).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch, "{err}");
    let err = store.save(&checkpoint(OTHER_ARN, 8, 2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Even after this store has loaded and saved its own stream.
    assert_eq!(store.load(ARN).await.unwrap(), Some(checkpoint(ARN, 7, 2)));
    store.save(&checkpoint(ARN, 9, 2)).await.unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = store.save(&checkpoint(OTHER_ARN, 10, 2)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch, "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    let sim = dynamodb_stream::sim::Simulator::new();
    let builder = dynamodb_stream::ChangeStream::builder(sim.client(), OTHER_ARN);
    let err = builder.resume_from_store(&store).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CheckpointMismatch);
}

#[tokio::test]
async fn a_missing_or_impossible_parent_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = FileStore::new(dir.path().join("no-such-dir").join("checkpoint"));
    let err = missing.save(&checkpoint(ARN, 1, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert_eq!(missing.load(ARN).await.unwrap(), None);

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = FileStore::new(file.join("checkpoint"));
    let err = under_file.save(&checkpoint(ARN, 1, 1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    let err = under_file.load(ARN).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");

    // The checkpoint path is a directory: unreadable, and not replaced.
    let as_dir = dir.path().join("is-a-dir");
    std::fs::create_dir(&as_dir).unwrap();
    let store = FileStore::new(&as_dir);
    assert_eq!(store.load(ARN).await.unwrap_err().kind(), ErrorKind::Store);
    assert_eq!(
        store.save(&checkpoint(ARN, 1, 1)).await.unwrap_err().kind(),
        ErrorKind::Store
    );
    assert!(as_dir.is_dir());
    assert!(temp_files(dir.path()).is_empty(), "failed saves clean up");
}

/// Child mode: save into the given read-only directory and print the error kind.
#[test]
fn unwritable_saver_child() {
    let Some(path) = std::env::var_os(UNWRITABLE_SAVER) else {
        return;
    };
    let result = runtime().block_on(FileStore::new(path).save(&checkpoint(ARN, 2, 4)));
    match result {
        Ok(()) => println!("result ok"),
        Err(e) => println!("result {:?}", e.kind()),
    }
}

#[test]
fn an_unwritable_directory_is_a_store_error_and_the_old_file_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("ro");
    std::fs::create_dir(&store_dir).unwrap();
    let path = store_dir.join("checkpoint");
    runtime()
        .block_on(FileStore::new(&path).save(&checkpoint(ARN, 1, 4)))
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o555)).unwrap();

    let root = std::fs::metadata(&path).unwrap().uid() == 0;
    let kind = if root {
        // Root writes anywhere: save as `nobody`, in a child process running a copy of this
        // test binary (the original may sit where `nobody` cannot reach it).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("store_file-as-nobody");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new(&exe)
            .args([
                "--exact",
                "unwritable_saver_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(UNWRITABLE_SAVER, &path)
            .current_dir(dir.path())
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run this test binary as nobody");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            // The harness prints "test <name> ... " on the same line first.
            .find_map(|l| l.split_once("result ").map(|(_, kind)| kind))
            .unwrap_or_else(|| {
                panic!(
                    "no result from the child: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_owned()
    } else {
        let result = runtime().block_on(FileStore::new(&path).save(&checkpoint(ARN, 2, 4)));
        match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("{:?}", e.kind()),
        }
    };
    std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(kind, format!("{:?}", ErrorKind::Store));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the old checkpoint is intact"
    );
    assert!(temp_files(&store_dir).is_empty());
    let loaded = runtime().block_on(FileStore::new(&path).load(ARN)).unwrap();
    assert_eq!(loaded, Some(checkpoint(ARN, 1, 4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saves_land_in_call_order_even_when_awaited_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    let store = FileStore::new(&path);
    let checkpoints: Vec<_> = (1..=20).map(|n| checkpoint(ARN, n, 2)).collect();
    let saves: Vec<_> = checkpoints.iter().map(|cp| store.save(cp)).collect();
    // The newest first: every older save that finishes later must not replace it.
    for save in saves.into_iter().rev() {
        save.await.unwrap();
    }
    assert_eq!(store.load(ARN).await.unwrap(), Some(checkpoint(ARN, 20, 2)));

    // Clones share the order; concurrent saves end with the last one called.
    let (a, b) = (store.clone(), store.clone());
    let (cp21, cp22) = (checkpoint(ARN, 21, 2), checkpoint(ARN, 22, 2));
    let first = a.save(&cp21);
    let second = b.save(&cp22);
    let (second, first) = tokio::join!(second, first);
    first.unwrap();
    second.unwrap();
    assert_eq!(store.load(ARN).await.unwrap(), Some(checkpoint(ARN, 22, 2)));
}

/// Child mode: resume from the file and save ever higher positions, printing each one after
/// its save returned, until killed.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(CRASH_WRITER) else {
        return;
    };
    runtime().block_on(async {
        let store = FileStore::new(path);
        let start = store.load(ARN).await.unwrap().map_or(0, |cp| position(&cp));
        for n in start + 1.. {
            // 300 shards: about 12 KB, written in more than one piece.
            store.save(&checkpoint(ARN, n, 300)).await.unwrap();
            println!("saved {n}");
        }
    });
}

#[test]
fn sigkill_at_any_moment_leaves_the_old_or_the_new_checkpoint() {
    const KILLS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint");
    let exe = std::env::current_exe().unwrap();
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reported = 0u64; // the highest position a writer said it had saved
    let mut kills_after_a_save = 0;
    let mut kills = 0;
    while kills < KILLS {
        assert!(
            Instant::now() < deadline,
            "only {kills} kills in two minutes"
        );
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_WRITER, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
                // The first line starts with the harness's "test <name> ... ".
                .filter_map(|l| {
                    l.split_once("saved ")
                        .and_then(|(_, n)| n.parse::<u64>().ok())
                })
                .max()
        });
        // Anywhere from before the first save to dozens of saves in.
        std::thread::sleep(Duration::from_micros(fastrand::u64(0..60_000)));
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the writer stopped by itself ({status}):\n{err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let last = reader.join().unwrap();
        if let Some(last) = last {
            assert!(last > reported, "a restarted writer went backwards");
            reported = last;
            kills_after_a_save += 1;
        }

        let loaded = rt.block_on(FileStore::new(&path).load(ARN));
        let loaded = loaded.unwrap_or_else(|e| panic!("torn checkpoint after kill {kills}: {e}"));
        match loaded {
            Some(cp) => {
                let at = position(&cp);
                assert!(
                    at >= reported,
                    "kill {kills}: file at {at}, but {reported} was saved"
                );
                // The newest save may have landed without being reported: at most one more.
                assert!(
                    at <= reported + 1,
                    "kill {kills}: file at {at}, reported {reported}"
                );
                assert_eq!(cp, checkpoint(ARN, at, 300));
                reported = at;
            }
            None => assert_eq!(reported, 0, "kill {kills}: the file vanished"),
        }
        assert!(
            temp_files(dir.path()).len() <= 1,
            "temporary files pile up: {:?}",
            temp_files(dir.path())
        );
    }
    assert!(
        kills_after_a_save >= KILLS / 4,
        "only {kills_after_a_save} of {KILLS} kills came after a save: the test is not testing"
    );
}
