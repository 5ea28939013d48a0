//! Quoting what a caller sent in messages: errors, logs and audit records repeat at most a
//! short, printable prefix of any input, so a long or hostile value cannot overflow a
//! gRPC header, break a log line or fill a disk.

/// The most characters of an input a message repeats.
pub const QUOTE_CHARS: usize = 48;

/// The most characters of a whole error message sent to a caller.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// `'value'` with control characters escaped; a longer value is cut to its first
/// [`QUOTE_CHARS`] characters and its length named: `'abc…' (15000 characters)`.
pub fn quote(input: &str) -> String {
    let n = input.chars().count();
    let shown: String = input.chars().take(QUOTE_CHARS).flat_map(escape).collect();
    if n > QUOTE_CHARS {
        format!("'{shown}…' ({n} characters)")
    } else {
        format!("'{shown}'")
    }
}

/// Quotes bytes that should be text.
pub fn quote_bytes(input: &[u8]) -> String {
    quote(&String::from_utf8_lossy(&input[..input.len().min(QUOTE_CHARS * 4)]))
        + &if input.len() > QUOTE_CHARS * 4 { format!(" ({} bytes)", input.len()) } else { String::new() }
}

fn escape(c: char) -> Vec<char> {
    if c.is_control() || c == '\'' {
        c.escape_default().collect()
    } else {
        vec![c]
    }
}

/// Bounds a whole message (of errors built from text we do not control, such as a parser's).
pub fn bound(message: &str) -> String {
    let n = message.chars().count();
    if n <= MAX_MESSAGE_CHARS && !message.chars().any(char::is_control) {
        return message.to_string();
    }
    let mut out: String = message.chars().take(MAX_MESSAGE_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if n > MAX_MESSAGE_CHARS {
        out.push_str(&format!("… (message cut at {MAX_MESSAGE_CHARS} of {n} characters)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_short_prefixes_and_escapes_control_characters() {
        assert_eq!(quote("2024"), "'2024'");
        assert_eq!(quote("a\nb"), "'a\\nb'");
        let long = "x".repeat(15_000);
        let q = quote(&long);
        assert!(q.len() < 80 && q.ends_with("(15000 characters)"), "{q}");
        assert!(bound(&"y".repeat(5_000)).chars().count() < MAX_MESSAGE_CHARS + 60);
        assert!(!bound("line\nbreak").contains('\n'));
        assert!(quote_bytes(&[b'a'; 10_000]).ends_with("(10000 bytes)"));
    }
}
