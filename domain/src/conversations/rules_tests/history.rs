//! How history pages are read, and when the history cache may answer for the store.

use std::sync::Arc;

use super::{query, talk};
use crate::conversations::{Appended, ConversationError, MAX_PAGE_SIZE};
use crate::testing::UncheckedHistoryCache;

#[tokio::test]
async fn history_is_ascending_whichever_way_it_is_read() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    for n in 1..=5 {
        talk.send(alice, id, &format!("m{n}")).await;
    }
    let newest = talk
        .service
        .history(alice, id, query(None, None, 2))
        .await
        .expect("page");
    assert_eq!(
        newest.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(newest.has_more);
    assert_eq!(
        talk.seqs(alice, id, query(None, Some(1), 2)).await,
        vec![2, 3]
    );
    assert_eq!(
        talk.seqs(alice, id, query(Some(3), None, 5)).await,
        vec![1, 2]
    );
    let last = talk
        .service
        .history(alice, id, query(Some(3), None, 2))
        .await
        .expect("page");
    assert!(!last.has_more, "nothing lies before seq 1");
}

#[tokio::test]
async fn history_refuses_negative_seqs_and_pages_out_of_bounds() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    let bad = [
        query(Some(-1), None, 10),
        query(None, Some(-1), 10),
        query(None, None, 0),
        query(None, None, MAX_PAGE_SIZE + 1),
    ];
    for bad in bad {
        let page = talk.service.history(alice, id, bad).await;
        assert!(
            matches!(page, Err(ConversationError::Invalid(_))),
            "{bad:?}: {page:?}"
        );
    }
}

#[tokio::test]
async fn only_a_new_message_is_written_through_to_the_history_cache() {
    let talk = talk();
    let cache = Arc::new(UncheckedHistoryCache::new(50));
    let with_cache = talk.service_with_cache(cache.clone());
    let (alice, _bob, id) = talk.alice_and_bob().await;
    let send = |client_msg_id: &str| with_cache.send(alice, id, client_msg_id.into(), "hi".into());
    send("m1").await.expect("sent");
    let replay = send("m1").await.expect("replayed");
    assert!(matches!(replay, Appended::Replayed(_)), "{replay:?}");
    send("m2").await.expect("sent");
    assert_eq!(
        cache.written(),
        vec![1, 2],
        "the replay was not written again"
    );
}

#[tokio::test]
async fn a_cache_miss_fills_a_whole_cache_page() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    for n in 1..=5 {
        talk.send(alice, id, &format!("m{n}")).await;
    }
    let cache = Arc::new(UncheckedHistoryCache::new(4));
    let service = talk.service_with_cache(cache.clone());
    let page = service
        .history(alice, id, query(None, None, 2))
        .await
        .expect("page");
    assert_eq!(
        page.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(
        cache.seqs(id),
        vec![2, 3, 4, 5],
        "the newest capacity's worth"
    );
}

#[tokio::test]
async fn a_cached_page_that_is_not_provably_the_newest_is_not_used() {
    let talk = talk();
    let (alice, _bob, id) = talk.alice_and_bob().await;
    // Two messages reach the cache, the third's write-through is lost.
    let cache = Arc::new(UncheckedHistoryCache::new(50));
    let with_cache = talk.service_with_cache(cache.clone());
    with_cache
        .send(alice, id, "m1".into(), "one".into())
        .await
        .expect("sent");
    with_cache
        .send(alice, id, "m2".into(), "two".into())
        .await
        .expect("sent");
    talk.send(alice, id, "m3").await;
    assert_eq!(cache.seqs(id), vec![1, 2]);
    let page = with_cache
        .history(alice, id, query(None, None, 10))
        .await
        .expect("page");
    assert_eq!(
        page.items.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}
