//! Stopping CLIP work that is already running.
//!
//! A CLIP function call is synchronous inside DataFusion's stream: a query
//! that is dropped only stops once the call in progress returns, and one
//! call can hold thousands of images. Two things end a call early, each
//! before its next forward pass, with an error that ends the call's stream:
//!
//! - the call's own query was dropped ([`QueryCancel`]): the plan rewrite
//!   in `crate::query_cancel` gives every query a token, cancels it when
//!   the query's output is dropped unfinished, and marks the calls made on
//!   the query's behalf with [`QueryCancel::enter`]. Other queries, in this
//!   session or any other, run on untouched;
//! - [`cancel_running_work`], which stops every call in the process (a
//!   shell's Ctrl-C, a service shutting down).
//!
//! Calls that start afterwards are unaffected by either.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::error::EngineError;

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Make every CLIP call running in this process stop before its next
/// forward pass, failing its query with a "cancelled" error.
pub fn cancel_running_work() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// One query's cancellation flag, shared by every CLIP call made for it.
#[derive(Debug, Clone, Default)]
pub struct QueryCancel(Arc<AtomicBool>);

thread_local! {
    /// The query whose plan this thread is running a piece of, if any.
    static CURRENT_QUERY: RefCell<Option<QueryCancel>> = const { RefCell::new(None) };
}

impl QueryCancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop the calls made for this query before their next forward pass.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Mark CLIP calls made on this thread, until the guard is dropped, as
    /// made for this query. Scopes nest: the guard puts back what was there.
    pub fn enter(&self) -> QueryScope {
        let previous = CURRENT_QUERY.with(|current| current.replace(Some(self.clone())));
        QueryScope { previous }
    }

    /// The query this thread is working for, if it is inside a scope.
    pub fn current() -> Option<QueryCancel> {
        CURRENT_QUERY.with(|current| current.borrow().clone())
    }
}

/// While alive, CLIP calls on this thread belong to a query; see
/// [`QueryCancel::enter`].
#[must_use = "the scope ends when the guard is dropped"]
pub struct QueryScope {
    previous: Option<QueryCancel>,
}

impl Drop for QueryScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT_QUERY.with(|current| *current.borrow_mut() = previous);
    }
}

/// Taken when a call starts; says whether it has been cancelled since,
/// process-wide or through its query.
#[derive(Debug, Clone)]
pub struct CancelCheck {
    generation: u64,
    query: Option<QueryCancel>,
}

impl CancelCheck {
    /// The state now, for a call made on this thread (inside its query's
    /// scope, if it has one).
    pub fn now() -> Self {
        CancelCheck {
            generation: GENERATION.load(Ordering::SeqCst),
            query: QueryCancel::current(),
        }
    }

    /// `Err` once [`cancel_running_work`] was called after [`Self::now`], or
    /// once the call's query was dropped.
    pub fn check(&self) -> Result<(), EngineError> {
        if GENERATION.load(Ordering::SeqCst) != self.generation {
            return Err(EngineError::Cancelled);
        }
        match &self.query {
            Some(query) if query.is_cancelled() => Err(EngineError::QueryDropped),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_sees_only_its_own_query_cancelled() {
        let (a, b) = (QueryCancel::new(), QueryCancel::new());
        let check_a = {
            let _scope = a.enter();
            CancelCheck::now()
        };
        let check_b = {
            let _scope = b.enter();
            CancelCheck::now()
        };
        let outside = CancelCheck::now();
        a.cancel();
        assert!(matches!(check_a.check(), Err(EngineError::QueryDropped)));
        assert!(check_b.check().is_ok());
        assert!(outside.check().is_ok());
    }

    #[test]
    fn scopes_nest_and_end_with_their_guard() {
        let (outer, inner) = (QueryCancel::new(), QueryCancel::new());
        assert!(QueryCancel::current().is_none());
        let _outer = outer.enter();
        {
            let _inner = inner.enter();
            inner.cancel();
            assert!(QueryCancel::current().unwrap().is_cancelled());
        }
        assert!(!QueryCancel::current().unwrap().is_cancelled());
    }
}
