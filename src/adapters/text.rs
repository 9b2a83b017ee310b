//! Text cut for platforms that limit a message's length: the same breaking rule whatever
//! the platform counts (Telegram UTF-16 code units, Viber characters).

/// Splits text into pieces of at most `max` units, a character weighing `width(c)` units,
/// preferring to break after a newline, then after a space. Empty text is one empty piece.
pub fn split_text(text: &str, max: usize, width: fn(char) -> usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while rest.chars().map(width).sum::<usize>() > max {
        // The byte index where `max` units end.
        let mut units = 0;
        let mut end = 0;
        for (i, c) in rest.char_indices() {
            if units + width(c) > max {
                break;
            }
            units += width(c);
            end = i + c.len_utf8();
        }
        let head = &rest[..end];
        let cut = head
            .rfind('\n')
            .or_else(|| head.rfind(' '))
            .map(|i| i + 1)
            .filter(|&i| i > 0)
            .unwrap_or(end);
        chunks.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest.to_owned());
    }
    chunks
}
