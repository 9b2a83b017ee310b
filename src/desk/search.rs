//! What a conversation search (`q=`) matches, the same on every store: each word typed
//! must appear, the last one as the start of a word. Stores turn this into their own
//! full-text query syntax.

/// Whether the last word typed matches the start of longer words. A single character
/// does not: as a prefix it matches nearly every message, and with accents folded
/// (SQLite's `é` is `e`) it matches words that do not even start with it.
pub fn searched_as_prefix(last_word: &str) -> bool {
    last_word.chars().nth(1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_last_word_longer_than_one_character_is_a_prefix() {
        for (word, prefix) in [
            ("e", false),
            ("é", false),
            ("7", false),
            ("ab", true),
            ("été", true),
        ] {
            assert_eq!(searched_as_prefix(word), prefix, "{word:?}");
        }
    }
}
