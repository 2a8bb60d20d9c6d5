//! [`BufferBudget`]: how many bytes of signed aws-chunked data the requests of one connection
//! may hold at once while their chunk signatures are pending.
//!
//! [`super::VerifiedBody`] holds each signed chunk (up to [`super::chunked::MAX_SIGNED_CHUNK_SIZE`])
//! until its signature is checked. One request holding one chunk is bounded; but HTTP/2 carries
//! many requests on one connection (hyper allows 200 concurrent streams), so without a shared
//! bound one connection could make the proxy hold 200 × 16 MiB. The connection's requests
//! charge their buffered bytes to one budget, and give them back as the bytes are handed on.
//!
//! A request that would go over the budget is refused at once with `503 SlowDown`, S3's answer
//! for "retry later" that SDKs retry with backoff. Waiting for room instead could wait forever:
//! every stream may be holding part of a chunk that only more of its own data would complete.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html>

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::AuthError;

/// One connection's budget, shared by its requests through their extensions.
#[derive(Clone, Debug)]
pub struct BufferBudget(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    limit: u64,
    held: AtomicU64,
}

impl BufferBudget {
    pub fn new(limit: u64) -> Self {
        BufferBudget(Arc::new(Shared {
            limit,
            held: AtomicU64::new(0),
        }))
    }

    #[cfg(test)]
    pub(super) fn held(&self) -> u64 {
        self.0.held.load(Ordering::Acquire)
    }

    pub(super) fn charge(&self) -> Charge {
        Charge {
            budget: Some(self.clone()),
            held: 0,
        }
    }
}

/// What one request body holds of its connection's budget; all of it is given back when the
/// body is dropped.
#[derive(Debug, Default)]
pub(super) struct Charge {
    /// `None` for a body served without a budget (tests, one-shot commands).
    budget: Option<BufferBudget>,
    held: u64,
}

impl Charge {
    /// Takes `n` more bytes, or refuses if the connection's budget cannot spare them.
    pub(super) fn take(&mut self, n: u64) -> Result<(), AuthError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let shared = &budget.0;
        shared
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|&after| after <= shared.limit)
            })
            .map_err(|_| AuthError::BufferBudgetExhausted {
                limit: shared.limit,
            })?;
        self.held += n;
        Ok(())
    }

    /// Gives back up to `n` bytes (bytes handed on); never more than this body took.
    pub(super) fn give_back(&mut self, n: u64) {
        let n = n.min(self.held);
        if let (Some(budget), 1..) = (&self.budget, n) {
            budget.0.held.fetch_sub(n, Ordering::AcqRel);
            self.held -= n;
        }
    }

    pub(super) fn give_back_all(&mut self) {
        self.give_back(self.held);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.give_back_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_of_one_connection_share_the_budget() {
        let budget = BufferBudget::new(100);
        let (mut a, mut b) = (budget.charge(), budget.charge());
        a.take(60).unwrap();
        assert_eq!(
            b.take(50),
            Err(AuthError::BufferBudgetExhausted { limit: 100 })
        );
        b.take(40).unwrap();
        assert_eq!(budget.held(), 100);
        a.give_back(30);
        b.take(30).unwrap();
        // Giving back more than was taken gives back what was taken.
        a.give_back(1000);
        assert_eq!(budget.held(), 70);
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn without_a_budget_nothing_is_refused() {
        let mut unlimited = Charge::default();
        unlimited.take(u64::MAX).unwrap();
        unlimited.take(u64::MAX).unwrap();
    }
}
