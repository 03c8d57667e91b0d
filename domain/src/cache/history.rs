use async_trait::async_trait;

use crate::ConversationId;
use crate::conversations::{HistoryPage, Message};

/// The newest messages of each conversation, the page nearly every client reads first.
///
/// A cache may lag (a write-through lost to an outage, an entry evicted) but it holds only
/// committed messages, so the service can validate a cached page against the
/// conversation's `last_seq` and fall back to the database when it is not provably the
/// newest: see [`latest_page`].
#[async_trait]
pub trait HistoryCache: Send + Sync {
    /// How many of the newest messages are kept per conversation. Reads with a larger
    /// limit always go to the database.
    fn capacity(&self) -> u32;

    /// The newest `limit` messages of the conversation if the cache can prove they are the
    /// newest as of `last_seq` (checked with [`latest_page`]); `None` otherwise or on a
    /// backend failure.
    async fn latest(&self, id: ConversationId, limit: u32, last_seq: i64) -> Option<HistoryPage>;

    /// Adds committed messages (a write-through after a send, or a page read from the
    /// database). Order-insensitive: adding older messages never removes newer ones, so
    /// concurrent writers may finish in any order. Keeps the newest [`Self::capacity`].
    async fn remember(&self, id: ConversationId, messages: &[Message]);
}

/// The newest `limit` of `cached` (ascending by seq) as a page, if they provably are the
/// conversation's newest messages as of `last_seq`:
///
/// - their seqs are contiguous, so no message between them is missing;
/// - the newest is at least `last_seq`, so nothing committed before the caller read the
///   conversation is missing at the top (newer ones are fine: they are committed too);
/// - there are `limit` of them, or the first is seq 1, so nothing is missing at the bottom.
pub fn latest_page(cached: &[Message], limit: u32, last_seq: i64) -> Option<HistoryPage> {
    let limit = limit as usize;
    let newest = cached.len().saturating_sub(limit);
    let items = &cached[newest..];
    let first = items.first()?.seq;
    let last = items.last()?.seq;
    let contiguous = items.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1);
    let complete = items.len() == limit || first == 1;
    if !contiguous || last < last_seq || !complete || first < 1 {
        return None;
    }
    Some(HistoryPage {
        items: items.to_vec(),
        has_more: first > 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MessageId, UserId};

    fn messages(seqs: impl IntoIterator<Item = i64>) -> Vec<Message> {
        let (conversation, sender) = (ConversationId(uuid::Uuid::nil()), UserId::generate());
        seqs.into_iter()
            .map(|seq| Message {
                id: MessageId::generate(),
                conversation_id: conversation,
                seq,
                sender_id: sender,
                client_msg_id: format!("c{seq}"),
                body: format!("m{seq}"),
                created_at: crate::clock::now(),
            })
            .collect()
    }

    fn seqs(page: &HistoryPage) -> Vec<i64> {
        page.items.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn a_contiguous_page_reaching_last_seq_is_used() {
        let page = latest_page(&messages(3..=10), 5, 10).expect("valid");
        assert_eq!(seqs(&page), vec![6, 7, 8, 9, 10]);
        assert!(page.has_more);
    }

    #[test]
    fn a_page_behind_last_seq_is_refused() {
        assert!(latest_page(&messages(1..=10), 5, 11).is_none());
    }

    #[test]
    fn a_page_newer_than_last_seq_is_used() {
        let page = latest_page(&messages(1..=12), 5, 10).expect("valid");
        assert_eq!(seqs(&page), vec![8, 9, 10, 11, 12]);
    }

    #[test]
    fn a_gap_or_duplicate_inside_the_page_is_refused() {
        assert!(latest_page(&messages([1, 2, 4, 5]), 4, 5).is_none());
        assert!(latest_page(&messages([1, 2, 3, 3]), 4, 3).is_none());
        // The gap lies below the page asked for: the page itself is whole.
        assert!(latest_page(&messages([1, 3, 4, 5]), 3, 5).is_some());
    }

    #[test]
    fn a_short_page_is_used_only_when_it_starts_at_the_first_message() {
        let page = latest_page(&messages(1..=3), 50, 3).expect("whole conversation");
        assert_eq!(seqs(&page), vec![1, 2, 3]);
        assert!(!page.has_more);
        assert!(latest_page(&messages(2..=3), 50, 3).is_none());
    }

    #[test]
    fn an_empty_cache_is_a_miss() {
        assert!(latest_page(&[], 50, 0).is_none());
    }
}
