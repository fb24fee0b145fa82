//! Few-shot examples in the gateway: a route's library retrieved into its calls, and
//! the libraries kept up to date.
//!
//! The decision that shapes it: examples are inserted into the canonical request before
//! anything else sees it (token counting, the pipeline, every attempt and fallback), as
//! earlier user/assistant turns right after the call's system messages, so every target
//! gets the same prompt and the ledger can say which examples a call carried. The
//! libraries (`holdfast_quality::fewshot::Libraries`) are built from the attached
//! engine's store; a background loop catches them up with the store every
//! [`REFRESH`] (what another node approved) and writes usage counts every [`FLUSH`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use holdfast_config::{FewShot, FewShotMode};
use holdfast_llm::openai::{AssistantMessage, ChatRequest, Content, Message, UserMessage};
use holdfast_quality::fewshot::{Libraries, Mode, Similarity};
use serde::Serialize;

use crate::gateway::Gateway;
use crate::live::Live;

/// How often the libraries catch up with the store: an approval on another node is
/// retrieved here within this.
pub(crate) const REFRESH: Duration = Duration::from_millis(250);

/// How often usage counts are written.
const FLUSH: Duration = Duration::from_secs(1);

/// The examples a call carried, as its ledger entry records them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Used {
    /// The library.
    pub(crate) library: String,
    /// The examples' ids, in the order they were inserted.
    pub(crate) examples: Vec<u64>,
    /// The call's input (its last user message): what a correction of the call pairs
    /// with the right answer. Kept for feedback, never shown.
    #[serde(skip)]
    pub(crate) input: String,
    /// About how many bytes the examples added to the request's JSON: the prompt's
    /// token count is bounded by the body's size, which no longer holds them.
    #[serde(skip)]
    pub(crate) added_bytes: usize,
}

/// The JSON a user/assistant pair takes besides its two texts.
const TURN_PAIR_BYTES: usize = 64;

/// The bytes `used` added to a request, if any.
pub(crate) fn added_bytes(used: Option<&Arc<Used>>) -> usize {
    used.map_or(0, |u| u.added_bytes)
}

impl Used {
    /// The bytes it holds, for the ledger's bound.
    pub(crate) fn size(&self) -> usize {
        size_of::<Used>() + self.library.len() + self.input.len() + 8 * self.examples.len()
    }
}

/// Inserts `route`'s examples for `tenant` into `request`; returns what was inserted
/// (with no example, the call's input all the same, for feedback), or `None` when the
/// route keeps no library or no library is attached.
pub(crate) async fn insert(
    libraries: Option<&Arc<Libraries>>,
    few_shot: Option<&FewShot>,
    tenant: &str,
    request: &mut ChatRequest,
    now_ms: u64,
) -> Option<Used> {
    let (libraries, few_shot) = (libraries?, few_shot?);
    let input = request
        .messages
        .iter()
        .rev()
        .find_map(|m| match m {
            Message::User(u) => Some(u.content.text()),
            _ => None,
        })
        .unwrap_or_default();
    let mode = match few_shot.mode {
        FewShotMode::Similar => Mode::Similar,
        FewShotMode::Fixed => Mode::Fixed,
    };
    let (library, k) = (&few_shot.library, few_shot.k as usize);
    let shots = (libraries.retrieve_for(tenant, library, &input, k, mode, now_ms)).await;
    let at = request
        .messages
        .iter()
        .position(|m| !matches!(m, Message::System(_) | Message::Developer(_)))
        .unwrap_or(request.messages.len());
    let turns = shots.iter().flat_map(|shot| {
        [
            Message::User(UserMessage {
                content: Content::Text(shot.input.clone()),
                name: None,
                extra: Default::default(),
            }),
            Message::Assistant(AssistantMessage {
                content: Some(Content::Text(shot.output.clone())),
                ..AssistantMessage::default()
            }),
        ]
    });
    request.messages.splice(at..at, turns);
    // Escaping may double a text's bytes in JSON.
    let added_bytes = shots
        .iter()
        .map(|s| 2 * (s.input.len() + s.output.len()) + TURN_PAIR_BYTES)
        .sum();
    Some(Used {
        library: few_shot.library.clone(),
        examples: shots.iter().map(|s| s.id).collect(),
        input,
        added_bytes,
    })
}

impl Gateway {
    /// The example libraries, once an engine (and so a store) is attached.
    pub(crate) fn libraries(&self) -> Option<&Arc<Libraries>> {
        self.inner.libraries.get()
    }
}

/// The loop that keeps the libraries current, stopped when dropped.
pub(crate) struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts keeping `gateway`'s libraries current on the current runtime, when it has
/// libraries.
pub(crate) fn start(gateway: &Gateway) -> Option<Running> {
    gateway.libraries()?;
    Some(Running(tokio::spawn(run(Arc::clone(&gateway.live)))))
}

async fn run(live: Arc<Live>) {
    let mut since_flush = Duration::ZERO;
    loop {
        let current = live.current();
        let clock = Arc::clone(&current.clock);
        if let Some(libraries) = current.libraries.get().cloned() {
            libraries.configure(similarity(&current.few_shot_embeddings));
            if let Err(e) = libraries.refresh().await {
                tracing::warn!(error = %e, "the example libraries could not catch up with the store");
            }
            if since_flush >= FLUSH {
                since_flush = Duration::ZERO;
                if let Err(e) = libraries.flush_uses().await {
                    tracing::warn!(error = %e, "example usage counts could not be written");
                }
            }
        }
        drop(current);
        clock.sleep_until(clock.now() + REFRESH).await;
        since_flush += REFRESH;
    }
}

/// The libraries' similarity as configured: library → embedding route.
pub(crate) fn similarity(embeddings: &BTreeMap<String, String>) -> HashMap<String, Similarity> {
    let embed = |route: &String| Similarity::Embeddings {
        route: route.clone(),
    };
    embeddings
        .iter()
        .map(|(l, route)| (l.clone(), embed(route)))
        .collect()
}
