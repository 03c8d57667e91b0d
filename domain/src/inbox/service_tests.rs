//! The rules `InboxService` keeps (paging, cursors, bad input, entries without a peer),
//! proven against in-memory fakes.

use std::sync::Arc;

use chrono::Utc;

use super::{FeedEventBody, InboxError, InboxService, InboxStore};
use crate::accounts::Caller;
use crate::conversations::Message;
use crate::testing::{MemoryAccountStore, MemoryInbox};
use crate::{ConversationId, MessageId, UserId};

struct Inboxes {
    service: InboxService,
    accounts: Arc<MemoryAccountStore>,
    inbox: Arc<MemoryInbox>,
}

fn inboxes() -> Inboxes {
    let accounts = Arc::new(MemoryAccountStore::default());
    let inbox = Arc::new(MemoryInbox::default());
    let service = InboxService::new(accounts.clone(), inbox.clone());
    Inboxes {
        service,
        accounts,
        inbox,
    }
}

impl Inboxes {
    /// A user who has opened a conversation with each of `peers`, in order; returns them
    /// and the conversation ids.
    async fn with_peers(&self, peers: &[&str]) -> (Caller, Vec<ConversationId>) {
        let me = self.accounts.add("alice").id;
        let mut ids = Vec::new();
        for peer in peers {
            let peer = self.accounts.add(peer).id;
            let id = ConversationId::between(me, peer);
            self.inbox
                .open_entry(me, id, peer, Utc::now())
                .await
                .expect("opened");
            ids.push(id);
        }
        (Caller { user_id: me }, ids)
    }

    /// Delivers a message from `me`'s peer in conversation `id` to `me`'s inbox.
    async fn receive(&self, me: Caller, id: ConversationId, seq: i64) {
        let entry = self
            .inbox
            .entry(me.user_id, id)
            .await
            .expect("read")
            .expect("an entry");
        let message = Message {
            id: MessageId::generate(),
            conversation_id: id,
            seq,
            sender_id: entry.peer_id,
            client_msg_id: format!("c{seq}"),
            body: "hi".into(),
            created_at: Utc::now(),
        };
        let event = FeedEventBody::MessageCreated { message };
        let applied = self
            .inbox
            .apply(me.user_id, entry.peer_id, &event, Utc::now())
            .await;
        applied.expect("applied").expect("a change");
    }

    /// Every page of the list, `limit` at a time, as conversation ids.
    async fn pages(&self, me: Caller, limit: u32) -> Vec<Vec<ConversationId>> {
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.service.list(me, cursor, limit).await.expect("a page");
            pages.push(page.items.iter().map(|c| c.id).collect());
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
    }
}

#[tokio::test]
async fn the_list_pages_through_newest_activity_first() {
    let inboxes = inboxes();
    let (me, ids) = inboxes
        .with_peers(&["bob", "carol", "dave", "erin", "frank"])
        .await;
    inboxes.receive(me, ids[0], 1).await;
    let pages = inboxes.pages(me, 2).await;
    let expected = vec![vec![ids[0], ids[4]], vec![ids[3], ids[2]], vec![ids[1]]];
    assert_eq!(pages, expected);
}

#[tokio::test]
async fn a_full_last_page_says_there_is_no_next_page() {
    let inboxes = inboxes();
    let (me, ids) = inboxes.with_peers(&["bob", "carol", "dave", "erin"]).await;
    let pages = inboxes.pages(me, 2).await;
    assert_eq!(pages, vec![vec![ids[3], ids[2]], vec![ids[1], ids[0]]]);
}

#[tokio::test]
async fn sync_resumes_from_the_cursor_of_the_last_change_it_returned() {
    let inboxes = inboxes();
    let (me, ids) = inboxes.with_peers(&["bob", "carol", "dave"]).await;
    let first = inboxes.service.sync(me, 0, 2).await.expect("a page");
    assert_eq!(
        first.changes.iter().map(|c| c.id).collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(first.has_more);
    assert_eq!(first.cursor, first.changes[1].version);
    inboxes.receive(me, ids[0], 1).await;
    let second = inboxes
        .service
        .sync(me, first.cursor, 2)
        .await
        .expect("a page");
    assert_eq!(
        second.changes.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[2], ids[0]]
    );
    assert!(!second.has_more);
    let idle = inboxes
        .service
        .sync(me, second.cursor, 2)
        .await
        .expect("a page");
    assert!(idle.changes.is_empty());
    assert_eq!(
        idle.cursor, second.cursor,
        "no change keeps the cursor where it was"
    );
}

#[tokio::test]
async fn negative_cursors_and_pages_out_of_bounds_are_refused() {
    let inboxes = inboxes();
    let (me, _) = inboxes.with_peers(&["bob"]).await;
    let service = &inboxes.service;
    let refused = [
        service.list(me, Some(-1), 10).await.err(),
        service.list(me, None, 0).await.err(),
        service.list(me, None, 201).await.err(),
        service.sync(me, -1, 10).await.err(),
        service.sync(me, 0, 0).await.err(),
        service.replay(me, -1, 10).await.err(),
    ];
    for (n, error) in refused.into_iter().enumerate() {
        assert!(
            matches!(error, Some(InboxError::Invalid(_))),
            "case {n}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_conversation_whose_peer_is_missing_is_left_out_of_the_page() {
    let inboxes = inboxes();
    let (me, ids) = inboxes.with_peers(&["bob"]).await;
    let ghost = UserId::generate();
    let haunted = ConversationId::between(me.user_id, ghost);
    let opened = inboxes
        .inbox
        .open_entry(me.user_id, haunted, ghost, Utc::now())
        .await;
    opened.expect("opened");
    let page = inboxes
        .service
        .list(me, None, 10)
        .await
        .expect("the rest of the page");
    assert_eq!(page.items.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
}
