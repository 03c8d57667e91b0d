//! The rules `ConversationService` keeps, proven against in-memory fakes: who may open,
//! send, read and type where (`access`), how history pages are read and when the history
//! cache may answer (`history`), and what a send pushes live, and when (`live`). The
//! stores' own rules (seq, dedupe, forward-only reads) are proven against the real stores
//! by `duet-adapters`' tests and `tests/`.

mod access;
mod history;
mod live;

use std::sync::Arc;

use super::{Appended, ConversationService, HistoryQuery};
use crate::ConversationId;
use crate::accounts::Caller;
use crate::testing::{
    FakeClock, Journal, MemoryAccountStore, MemoryConversationStore, MemoryInbox, RecordingLiveBus,
    UncheckedHistoryCache,
};

/// A conversation service on fakes, and the fakes. The store and the bus share `journal`.
pub(super) struct Talk {
    pub(super) service: ConversationService,
    pub(super) accounts: Arc<MemoryAccountStore>,
    pub(super) conversations: Arc<MemoryConversationStore>,
    pub(super) inbox: Arc<MemoryInbox>,
    pub(super) live: Arc<RecordingLiveBus>,
    pub(super) clock: Arc<FakeClock>,
    pub(super) journal: Journal,
}

pub(super) fn talk() -> Talk {
    let accounts = Arc::new(MemoryAccountStore::default());
    let journal = Journal::default();
    let conversations = Arc::new(MemoryConversationStore::recording_into(journal.clone()));
    let inbox = Arc::new(MemoryInbox::default());
    let live = Arc::new(RecordingLiveBus::recording_into(journal.clone()));
    let clock = Arc::new(FakeClock::new());
    let service = ConversationService::new(
        accounts.clone(),
        conversations.clone(),
        inbox.clone(),
        live.clone(),
    )
    .with_clock(clock.clone());
    Talk {
        service,
        accounts,
        conversations,
        inbox,
        live,
        clock,
        journal,
    }
}

/// As [`talk`], with a store that delivers each new message to both inboxes itself and
/// answers their feed events for the service to push, as the SQL stores do inline.
pub(super) fn talk_delivering_inline() -> Talk {
    let talk = talk();
    talk.conversations.deliver_inline_to(talk.inbox.clone());
    talk
}

impl Talk {
    pub(super) fn user(&self, handle: &str) -> Caller {
        Caller {
            user_id: self.accounts.add(handle).id,
        }
    }

    /// Alice and Bob with a conversation Alice opened.
    pub(super) async fn alice_and_bob(&self) -> (Caller, Caller, ConversationId) {
        let (alice, bob) = (self.user("alice"), self.user("bob"));
        let (view, _) = self.service.open(alice, "bob").await.expect("opened");
        (alice, bob, view.id)
    }

    pub(super) async fn send(
        &self,
        from: Caller,
        id: ConversationId,
        client_msg_id: &str,
    ) -> Appended {
        let body = format!("body of {client_msg_id}");
        let sent = self
            .service
            .send(from, id, client_msg_id.into(), body)
            .await;
        sent.expect("sent")
    }

    /// Another service over the same stores, with `cache`.
    pub(super) fn service_with_cache(
        &self,
        cache: Arc<UncheckedHistoryCache>,
    ) -> ConversationService {
        ConversationService::new(
            self.accounts.clone(),
            self.conversations.clone(),
            self.inbox.clone(),
            self.live.clone(),
        )
        .with_clock(self.clock.clone())
        .with_history_cache(cache)
    }

    pub(super) async fn seqs(
        &self,
        caller: Caller,
        id: ConversationId,
        query: HistoryQuery,
    ) -> Vec<i64> {
        let page = self
            .service
            .history(caller, id, query)
            .await
            .expect("a page");
        page.items.iter().map(|m| m.seq).collect()
    }
}

pub(super) fn query(before_seq: Option<i64>, after_seq: Option<i64>, limit: u32) -> HistoryQuery {
    HistoryQuery {
        before_seq,
        after_seq,
        limit,
    }
}
