use super::*;
use crate::checkpoint::Positions;
use crate::checkpoint::testing::{ARN, seq};
use proptest::prelude::*;

fn sample() -> Checkpoint {
    let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
    p.set("shardId-a".into(), ShardPosition::Finished);
    p.set(
        "shardId-b".into(),
        ShardPosition::LatestSince(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
    );
    Checkpoint::new(
        p.snapshot(),
        "shardId-c".into(),
        ShardPosition::After(seq("1234567890123456789012")),
    )
}

#[test]
fn text_form_round_trips() {
    let cp = sample();
    let text = cp.to_string();
    assert!(text.starts_with("ddbs1;arn:aws:dynamodb"));
    let back: Checkpoint = text.parse().unwrap();
    assert_eq!(back, cp);
    assert_eq!(back.to_string(), text);
    assert_eq!(back.position("shardId-a"), Some(&ShardPosition::Finished));
    assert_eq!(back.position("shardId-z"), None);
}

#[test]
fn latest_starts_cover_unlisted_shards() {
    let since = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut p = Positions::new(
        ARN.into(),
        imbl::HashMap::new(),
        Some(ShardPosition::LatestSince(since)),
    );
    p.set("done".into(), ShardPosition::Finished);
    let cp = p.checkpoint();
    assert_eq!(cp.position("any"), Some(&ShardPosition::LatestSince(since)));
    assert_eq!(cp.position("done"), Some(&ShardPosition::Finished));
    let text = cp.to_string();
    assert!(text.contains(";*=t1800000000;"), "{text}");
    let back: Checkpoint = text.parse().unwrap();
    assert_eq!(back, cp);
    assert_ne!(
        back,
        Positions::new(ARN.into(), imbl::HashMap::new(), None).checkpoint()
    );
}

#[test]
fn serde_uses_the_text_form() {
    let cp = sample();
    let json = serde_json::to_string(&cp).unwrap();
    assert_eq!(json, format!("\"{cp}\""));
    let back: Checkpoint = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cp);
    let bad = serde_json::from_str::<Checkpoint>("\"ddbs1;junk\"");
    assert!(bad.is_err());
}

#[test]
fn rejects_empty_truncated_corrupt_and_foreign_text() {
    let text = sample().to_string();
    let mut cases = vec![
        String::new(),
        "\n".to_owned(),
        "hello".to_owned(),
        text[..text.len() / 2].to_owned(),
        text[..text.len() - 1].to_owned(),
    ];
    // Flip one digit of the sequence number: the checksum catches it.
    cases.push(text.replacen("s1234", "s1235", 1));
    for case in cases {
        let err = case.parse::<Checkpoint>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidCheckpoint, "{case:?}");
    }
}

#[test]
fn lease_epochs_round_trip_and_are_checked() {
    let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
    p.lease(
        "held".into(),
        7,
        Some(ShardPosition::After(seq("1234567890123456789012"))),
    );
    p.lease("fresh".into(), 3, None);
    let cp = Checkpoint::new(p.snapshot(), "fresh".into(), ShardPosition::Finished);
    let text = cp.to_string();
    assert!(text.contains(";held=s1234567890123456789012@7;"), "{text}");
    assert!(text.contains(";fresh=f@3;"), "{text}");
    let back: Checkpoint = text.parse().unwrap();
    assert_eq!(back, cp);
    assert_eq!(
        (back.epoch("held"), back.epoch("fresh")),
        (Some(7), Some(3))
    );
    assert_eq!(back.epoch("other"), None);
    // A bad epoch is refused, once the checksum is made to match.
    let body = text[..text.rfind(";c").unwrap()].replace("@7", "@x");
    let forged = format!("{body};c{:08x}", crc32fast::hash(body.as_bytes()));
    let err = forged.parse::<Checkpoint>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidCheckpoint);
}

#[test]
fn escapes_separators_in_names() {
    let mut p = Positions::new("arn;with=odd%chars".into(), imbl::HashMap::new(), None);
    p.set("id;=%*".into(), ShardPosition::Finished);
    let cp = p.checkpoint();
    let back: Checkpoint = cp.to_string().parse().unwrap();
    assert_eq!(back, cp);
    assert_eq!(back.stream_arn(), "arn;with=odd%chars");
}

/// The text form written the plain way: every position, sorted, then the checksum.
fn reference_text(cp: &Checkpoint) -> String {
    let mut text = String::from(VERSION_PREFIX);
    escape_into(&mut text, cp.stream_arn());
    for (id, pos) in cp.positions() {
        push_entry(&mut text, id, pos, cp.epoch(id));
    }
    let crc = crc32fast::hash(text.as_bytes());
    format!("{text};c{crc:08x}")
}

proptest! {
    #[test]
    fn the_head_is_written_in_its_place(ids in proptest::collection::btree_set("[a-f]{1,3}", 0..12), head in "[a-f]{1,3}", digits in "[0-9]{21,40}") {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        for id in &ids {
            p.set(Arc::from(id.as_str()), ShardPosition::Finished);
        }
        let cp = Checkpoint::new(p.snapshot(), Arc::from(head.as_str()), ShardPosition::After(seq(&digits)));
        prop_assert_eq!(cp.to_string(), reference_text(&cp));
        // Written twice from the same snapshot: the cached order is reused, unchanged.
        prop_assert_eq!(cp.to_string(), reference_text(&cp));
    }

    #[test]
    fn any_positions_round_trip(entries in proptest::collection::btree_map("[a-zA-Z0-9;=%_.\\-\"\\\\ \t\n\x00\x7fé]{1,20}", (0u8..3, "[0-9]{21,40}", 0u64..4_000_000_000), 0..40)) {
        let mut p = Positions::new(ARN.into(), imbl::HashMap::new(), None);
        for (id, (tag, digits, secs)) in &entries {
            let pos = match tag {
                0 => ShardPosition::After(seq(digits)),
                1 => ShardPosition::Finished,
                _ => ShardPosition::LatestSince(UNIX_EPOCH + Duration::from_secs(*secs)),
            };
            p.set(Arc::from(id.as_str()), pos);
        }
        let cp = p.checkpoint();
        let text = cp.to_string();
        // Nothing in the text needs quoting in JSON (or a shell).
        prop_assert_eq!(serde_json::to_string(&text).unwrap(), format!("\"{text}\""));
        prop_assert!(!text.contains(char::is_whitespace), "{}", text);
        let back: Checkpoint = text.parse().unwrap();
        prop_assert_eq!(back, cp);
    }
}
