//! Before measuring: register the run's users, open conversations between random pairs, and
//! decide who sends what. Handles carry a random run id, so runs never collide on one server.

use std::collections::HashSet;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use rand::Rng;

use crate::client::{BenchUser, Client};

/// Registrations and logins in flight at once (argon2 makes each one expensive).
const SETUP_CONCURRENCY: usize = 16;

/// A conversation of the run, by the indexes of its two users.
#[derive(Debug, Clone)]
pub struct BenchConversation {
    pub id: String,
    pub members: [usize; 2],
}

/// The users and conversations a run sends between.
pub struct Population {
    pub users: Vec<BenchUser>,
    pub conversations: Vec<BenchConversation>,
}

/// Six characters of `[a-z0-9]` naming this run in handles and scratch tables.
pub fn new_run_id(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// `count` distinct unordered pairs of `0..users`, in random order. The caller guarantees
/// `users >= 2` and `count <= users * (users - 1) / 2`.
pub fn pick_pairs(users: usize, count: usize, rng: &mut impl Rng) -> Vec<[usize; 2]> {
    let mut seen = HashSet::with_capacity(count);
    let mut pairs = Vec::with_capacity(count);
    while pairs.len() < count {
        let a = rng.random_range(0..users);
        let b = rng.random_range(0..users);
        if a != b && seen.insert((a.min(b), a.max(b))) {
            pairs.push([a, b]);
        }
    }
    pairs
}

/// Which conversation message `index` goes to, and which member sends it: conversations in
/// turn, and within one the two members alternate, so every user both sends and receives.
pub fn route(index: u64, conversations: usize) -> (usize, usize) {
    let n = conversations as u64;
    ((index % n) as usize, ((index / n) % 2) as usize)
}

/// The users that get a socket: the first `sockets` of them, in the order conversations
/// name them, so the bounded set still covers as many conversations as it can.
pub fn socket_owners(conversations: &[BenchConversation], sockets: usize) -> Vec<usize> {
    let mut owners = Vec::new();
    let mut seen = HashSet::new();
    for member in conversations.iter().flat_map(|c| c.members) {
        if owners.len() == sockets {
            break;
        }
        if seen.insert(member) {
            owners.push(member);
        }
    }
    owners
}

/// Registers `users` users and opens `conversations` conversations between random pairs.
///
/// # Errors
/// The first registration, login or opening that fails.
pub async fn populate(
    client: &Client,
    run_id: &str,
    users: u32,
    conversations: u32,
) -> anyhow::Result<Population> {
    let password = format!("bench-password-{run_id}");
    let registered: Vec<BenchUser> = futures::stream::iter(0..users)
        .map(|i| {
            let handle = format!("bench{run_id}_{i}");
            let password = password.clone();
            async move { client.register(&handle, &password).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("registering the bench users")?;
    let pairs = pick_pairs(registered.len(), conversations as usize, &mut rand::rng());
    let opened: Vec<BenchConversation> = futures::stream::iter(pairs)
        .map(|members| {
            let registered = &registered;
            async move {
                let id = client
                    .open(&registered[members[0]], &registered[members[1]])
                    .await?;
                anyhow::Ok(BenchConversation { id, members })
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
        .context("opening the bench conversations")?;
    Ok(Population {
        users: registered,
        conversations: opened,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn pairs_are_distinct_and_never_a_user_with_themself() {
        let mut rng = StdRng::seed_from_u64(7);
        // Every pair of 5 users: the sampler must not loop forever on the last ones.
        let pairs = pick_pairs(5, 10, &mut rng);
        let unordered: HashSet<_> = pairs.iter().map(|[a, b]| (*a.min(b), *a.max(b))).collect();
        assert_eq!(unordered.len(), 10);
        assert!(pairs.iter().all(|[a, b]| a != b && *a < 5 && *b < 5));
    }

    #[test]
    fn run_ids_fit_handles() {
        let id = new_run_id(&mut StdRng::seed_from_u64(1));
        assert_eq!(id.len(), 6);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        // The longest handle: run id plus the millionth user stays within 32 characters.
        assert!(format!("bench{id}_999999").len() <= 32);
    }

    #[test]
    fn messages_visit_every_conversation_and_alternate_senders() {
        let routes: Vec<_> = (0..6).map(|i| route(i, 3)).collect();
        assert_eq!(routes, [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]);
    }

    #[test]
    fn a_bounded_set_of_sockets_follows_the_conversations() {
        let conversation = |a, b| BenchConversation {
            id: String::new(),
            members: [a, b],
        };
        let conversations = [conversation(4, 1), conversation(1, 2), conversation(0, 3)];
        assert_eq!(socket_owners(&conversations, 3), [4, 1, 2]);
        assert_eq!(socket_owners(&conversations, 10), [4, 1, 2, 0, 3]);
    }
}
