//! Where an image lies in the page. The parse checks an image as it goes, but serde_json does
//! not say where a value ends; these find it in the text serde_json has just checked, so
//! they only need to tell strings from structure.

/// Where the object that follows the key ending at `key_end` (the offset of the key's closing
/// quote) opens: `"Key" : {`.
pub(super) fn value_start(text: &[u8], key_end: usize) -> Option<usize> {
    if text.get(key_end) != Some(&b'"') {
        return None;
    }
    let colon = skip_space(text, key_end + 1);
    if text.get(colon) != Some(&b':') {
        return None;
    }
    let start = skip_space(text, colon + 1);
    (text.get(start) == Some(&b'{')).then_some(start)
}

/// Where the object before the key starting at `key_start` (just after its opening quote)
/// ends: `} , "Key`.
pub(super) fn end_before_key(text: &[u8], key_start: usize) -> Option<usize> {
    let quote = key_start.checked_sub(1)?;
    if text.get(quote) != Some(&b'"') {
        return None;
    }
    let comma = skip_space_back(text, quote)?;
    if text.get(comma) != Some(&b',') {
        return None;
    }
    let close = skip_space_back(text, comma)?;
    (text.get(close) == Some(&b'}')).then_some(close + 1)
}

/// The last non-space offset before `at`.
fn skip_space_back(text: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at = at.checked_sub(1)?;
        if !matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            return Some(at);
        }
    }
}

/// JSON's whitespace.
fn skip_space(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The offset just past the object or array that opens at `start`.
pub(super) fn value_end(text: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    loop {
        match *text.get(at)? {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            b'"' => {
                at = string_end(text, at + 1)?;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
}

/// The offset just past the closing quote of the string whose text starts at `at`.
fn string_end(text: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += memchr::memchr2(b'"', b'\\', text.get(at..)?)?;
        if text.get(at) == Some(&b'"') {
            return Some(at + 1);
        }
        // A backslash: the next byte is escaped, whatever it is.
        at += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_found_between_their_key_and_the_next() {
        let text = br#"{"NewImage" :	{"a":{"S":"}\"{]"},"b":{"L":[{"M":{}},{"BOOL":true}]}} ,
            "x":1}"#;
        let image = br#"{"a":{"S":"}\"{]"},"b":{"L":[{"M":{}},{"BOOL":true}]}}"#;
        let start = value_start(text, 10).unwrap();
        let next_key = text.iter().position(|&b| b == b'x').unwrap();
        let by_scan = value_end(text, start).unwrap();
        let by_key = end_before_key(text, next_key).unwrap();
        assert_eq!((&text[start..by_scan], by_key), (&image[..], by_scan));
        assert_eq!(value_start(text, 3), None);
        assert_eq!(value_start(br#""K":1"#, 2), None);
        assert_eq!(value_end(br#"{"a":{"#, 0), None);
        assert_eq!(end_before_key(br#"{"a":1,"b""#, 8), None);
    }
}
