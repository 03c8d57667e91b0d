//! Live feed events may arrive a little out of cursor order: two sends committed in one
//! group-commit batch each push their own events, from their own tasks, and across processes
//! NATS carries events from whichever process applied them. A cursor that skips ahead is
//! usually followed, within moments, by the one it skipped. Rather than read the feed from
//! the database at every such skip, a session holds the early events here briefly and sends
//! them in order as the gap fills; only a gap still open after [`REORDER_WAIT`] (or more than
//! [`MAX_HELD`] early events) is read from the feed. The feed stays the truth: nothing is
//! dropped here that the catch-up would not send.

use std::collections::BTreeMap;
use std::time::Duration;

use duet_domain::inbox::FeedEvent;
use tokio::time::Instant;

/// How long an early event waits for the cursors before it to arrive live.
pub(super) const REORDER_WAIT: Duration = Duration::from_millis(20);
/// Early events held at most; one more and the session catches up from the feed at once.
pub(super) const MAX_HELD: usize = 64;

/// Feed events that arrived ahead of the next cursor the client needs.
#[derive(Debug, Default)]
pub(super) struct Reorder {
    held: BTreeMap<i64, FeedEvent>,
    /// When the oldest open gap stops being waited for.
    deadline: Option<Instant>,
}

impl Reorder {
    /// Holds an event that arrived ahead of its turn. Returns `false` when more are held than
    /// [`MAX_HELD`]: the caller should catch up from the feed now.
    pub(super) fn hold(&mut self, event: FeedEvent, now: Instant) -> bool {
        self.held.insert(event.cursor, event);
        self.deadline.get_or_insert(now + REORDER_WAIT);
        self.held.len() <= MAX_HELD
    }

    /// The held event that comes right after `last_sent`, if any; held events the client
    /// already has (at or before `last_sent`) are discarded on the way.
    pub(super) fn next_after(&mut self, last_sent: i64) -> Option<FeedEvent> {
        while let Some(entry) = self.held.first_entry() {
            match *entry.key() {
                cursor if cursor <= last_sent => {
                    entry.remove();
                }
                cursor if cursor == last_sent + 1 => return Some(entry.remove()),
                _ => return None,
            }
        }
        None
    }

    /// After the session sent what it could: no deadline when nothing is held, a fresh one
    /// when a gap is still open after the last one passed.
    pub(super) fn settle(&mut self, now: Instant) {
        if self.held.is_empty() {
            self.deadline = None;
        } else if self.deadline.is_none_or(|at| at <= now) {
            self.deadline = Some(now + REORDER_WAIT);
        }
    }

    /// When the session should stop waiting and read the gap from the feed.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use duet_domain::inbox::FeedEventBody;
    use duet_domain::{ConversationId, UserId};

    use super::*;

    fn event(cursor: i64) -> FeedEvent {
        FeedEvent {
            cursor,
            body: FeedEventBody::ConversationRead {
                conversation_id: ConversationId::between(UserId::generate(), UserId::generate()),
                reader_id: UserId::generate(),
                read_seq: cursor,
            },
            created_at: Utc::now(),
        }
    }

    #[test]
    fn early_events_come_out_in_cursor_order_once_the_gap_fills() {
        let now = Instant::now();
        let mut reorder = Reorder::default();
        assert!(reorder.hold(event(7), now));
        assert!(reorder.hold(event(6), now));
        assert_eq!(reorder.deadline(), Some(now + REORDER_WAIT));
        // Cursor 5 is still missing: nothing is ready after 4.
        assert!(reorder.next_after(4).is_none());
        // 5 arrived live and was sent: 6, then 7.
        assert_eq!(reorder.next_after(5).map(|e| e.cursor), Some(6));
        assert_eq!(reorder.next_after(6).map(|e| e.cursor), Some(7));
        assert!(reorder.next_after(7).is_none());
        reorder.settle(now);
        assert_eq!(
            reorder.deadline(),
            None,
            "nothing held, nothing to wait for"
        );
    }

    #[test]
    fn events_the_client_already_has_are_discarded() {
        let now = Instant::now();
        let mut reorder = Reorder::default();
        reorder.hold(event(3), now);
        reorder.hold(event(9), now);
        // A catch-up sent everything up to 8.
        assert_eq!(reorder.next_after(8).map(|e| e.cursor), Some(9));
    }

    #[test]
    fn a_gap_still_open_after_the_wait_is_waited_for_again() {
        let now = Instant::now();
        let mut reorder = Reorder::default();
        reorder.hold(event(10), now);
        let later = now + REORDER_WAIT * 2;
        // The catch-up at the deadline did not reach 9 (say, a lagging replica).
        assert!(reorder.next_after(7).is_none());
        reorder.settle(later);
        assert_eq!(reorder.deadline(), Some(later + REORDER_WAIT));
        // A deadline not yet passed stays as it is.
        reorder.settle(later + Duration::from_millis(1));
        assert_eq!(reorder.deadline(), Some(later + REORDER_WAIT));
    }

    #[test]
    fn too_many_early_events_ask_for_a_catch_up() {
        let now = Instant::now();
        let mut reorder = Reorder::default();
        for cursor in 0..MAX_HELD {
            assert!(reorder.hold(event(100 + cursor as i64), now));
        }
        assert!(!reorder.hold(event(1_000), now));
    }
}
