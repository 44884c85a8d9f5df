//! Dropping a query stops its own CLIP work within one forward pass, and
//! nobody else's.
//!
//! A CLIP function call is synchronous: it runs inside the poll of the
//! plan node that evaluates it, on a tokio task, for as long as its images
//! take. A service that drops a query (a client disconnected) aborts that
//! query's tasks, but an abort only takes effect when the task's poll
//! returns, so without help the call runs on to its end.
//! [`CancelDroppedQueries`], a physical optimizer rule that [`crate::register`]
//! installs, rewrites every plan that calls a model:
//!
//! - each node that evaluates a model function (`clip_embed_image`,
//!   `clip_embed_text`, `clip_zero_shot`, `clip_zero_shot_probs`, anywhere
//!   in its expressions: projection, filter, aggregate input, sort key, join
//!   condition) is wrapped in a [`ClipQueryScopeExec`], whose stream marks
//!   the calls made while it is polled as this query's
//!   ([`QueryCancel::enter`]);
//! - the root is wrapped in a [`ClipCancelOnDropExec`], which runs each
//!   output partition on a task of its own, so the consumer's side never
//!   blocks in a call and can always be dropped at once; when the last of
//!   its output streams is dropped and one of them unfinished, the query's
//!   token is cancelled and its calls stop before their next forward pass.
//!
//! Why not DataFusion's `AsyncScalarUDFImpl`, whose future would be
//! dropped with the stream: in DataFusion 55 the planner takes async
//! functions only in projections, filters and aggregate inputs (not in
//! `ORDER BY` keys, as in the README's text search, nor in join
//! conditions), calls with literal arguments are no longer folded to constants,
//! and the FFI that carries the functions into datafusion-python has no
//! async functions. The rewrite keeps every function synchronous and works
//! wherever one can appear.
//!
//! On a Ballista cluster the scheduler plans without this rule; each
//! executor task gets the rewrite instead, and a cancelled task cancels
//! its run ([`crate::distributed::executor::ClipExecutionEngine`], feature
//! `ballista`), while a client that drops a query cancels its job
//! ([`crate::distributed::job_cancel`]).
//!
//! Not covered: plans that skip this session's physical optimizer (a
//! datafusion-python session through the FFI), and a call made on a task
//! the node itself spawns. [`crate::engine::cancel_running_work`] still
//! stops those.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::{Stream, StreamExt};

use crate::engine::cancel::QueryCancel;
use crate::functions::MODEL_FUNCTIONS;

/// The physical optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct CancelDroppedQueries;

impl CancelDroppedQueries {
    pub const NAME: &'static str = "clip_cancel_dropped_queries";
}

impl PhysicalOptimizerRule for CancelDroppedQueries {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Self::rewrite(plan)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}

impl CancelDroppedQueries {
    /// `plan` with its model-evaluating nodes scoped and its root
    /// cancelling on drop; unchanged when it calls no model or already is.
    pub fn rewrite(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let already_rewritten = (plan.as_ref() as &dyn Any).is::<ClipCancelOnDropExec>();
        if already_rewritten || !calls_a_model(&plan)? {
            return Ok(plan);
        }
        let query = Arc::new(QueryState::default());
        let scoped = plan
            .transform_up(|node| {
                if evaluates_a_model_function(node.as_ref())? {
                    let scope = ClipQueryScopeExec::new(node, Arc::clone(&query));
                    Ok(Transformed::yes(Arc::new(scope) as Arc<dyn ExecutionPlan>))
                } else {
                    Ok(Transformed::no(node))
                }
            })?
            .data;
        Ok(Arc::new(ClipCancelOnDropExec::new(scoped, query)))
    }
}

/// Whether any node of `plan` evaluates a model function.
fn calls_a_model(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    let mut found = false;
    plan.apply(|node| {
        found = evaluates_a_model_function(node.as_ref())?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

/// Whether `node`'s own expressions (not its children's) call a model.
fn evaluates_a_model_function(node: &dyn ExecutionPlan) -> Result<bool> {
    let mut found = false;
    node.apply_expressions(&mut |root| {
        root.apply(|expr| {
            found = is_model_call(expr);
            Ok(if found {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        })
    })?;
    Ok(found)
}

fn is_model_call(expr: &Arc<dyn PhysicalExpr>) -> bool {
    (expr.as_ref() as &dyn Any)
        .downcast_ref::<ScalarFunctionExpr>()
        .is_some_and(|call| MODEL_FUNCTIONS.contains(&call.name()))
}

/// What the scope nodes and the root of one plan share: the token of
/// the current execution and the root's open outputs.
#[derive(Debug, Default)]
pub struct QueryState {
    outputs: Mutex<Outputs>,
}

#[derive(Debug, Default)]
struct Outputs {
    /// The token of the current execution of the plan.
    cancel: QueryCancel,
    /// Output streams handed out and not yet dropped.
    live: usize,
    /// Whether one of them was dropped before its end.
    abandoned: bool,
}

impl QueryState {
    fn outputs(&self) -> std::sync::MutexGuard<'_, Outputs> {
        // The guarded state stays consistent at every step: a panic while
        // holding it leaves nothing half-done.
        self.outputs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn current(&self) -> QueryCancel {
        self.outputs().cancel.clone()
    }

    /// An output stream starts; a plan executed again after it was
    /// cancelled gets a fresh token.
    fn output_opened(&self) {
        let mut outputs = self.outputs();
        if outputs.live == 0 && outputs.cancel.is_cancelled() {
            outputs.cancel = QueryCancel::new();
            outputs.abandoned = false;
        }
        outputs.live += 1;
    }

    fn output_dropped(&self, finished: bool) {
        let mut outputs = self.outputs();
        outputs.live = outputs.live.saturating_sub(1);
        outputs.abandoned |= !finished;
        if outputs.live == 0 && outputs.abandoned {
            outputs.cancel.cancel();
        }
    }
}

/// What one of this rewrite's nodes does with its input's streams; the
/// rest of the node (a transparent wrapper) is [`QueryNode`].
pub trait NodeRole: fmt::Debug + Send + Sync + 'static {
    /// The node's name in `EXPLAIN`.
    const NAME: &'static str;

    fn execute(
        input: &Arc<dyn ExecutionPlan>,
        query: &Arc<QueryState>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream>;
}

/// A node of the rewrite around `input`, sharing its query's state with the
/// plan's other nodes; it keeps its input's properties.
#[derive(Debug)]
pub struct QueryNode<R> {
    input: Arc<dyn ExecutionPlan>,
    query: Arc<QueryState>,
    role: PhantomData<R>,
}

impl<R> QueryNode<R> {
    fn new(input: Arc<dyn ExecutionPlan>, query: Arc<QueryState>) -> Self {
        Self {
            input,
            query,
            role: PhantomData,
        }
    }
}

/// Wraps a node that evaluates model functions: CLIP calls made while its
/// output is polled belong to this query.
pub type ClipQueryScopeExec = QueryNode<Scope>;

/// The root of a plan that calls a model: each output partition runs on a
/// task of its own, and dropping the outputs unfinished cancels the
/// query's CLIP work.
pub type ClipCancelOnDropExec = QueryNode<CancelOnDrop>;

impl ClipCancelOnDropExec {
    /// A handle that stops the plan's current run from outside its
    /// streams: for a runner that abandons the run without dropping them
    /// (a Ballista executor cancelling a task: the stage's input runs on a
    /// task of the shuffle writer's own).
    pub fn run_handle(&self) -> QueryRunHandle {
        QueryRunHandle {
            query: Arc::clone(&self.query),
        }
    }
}

/// See [`ClipCancelOnDropExec::run_handle`].
#[derive(Debug, Clone)]
pub struct QueryRunHandle {
    query: Arc<QueryState>,
}

impl QueryRunHandle {
    /// Stop the CLIP calls of the plan's current run before their next
    /// forward pass; a later run of the plan gets a fresh token.
    pub fn cancel(&self) {
        self.query.outputs().cancel.cancel();
    }
}

/// The role of [`ClipQueryScopeExec`].
#[derive(Debug)]
pub struct Scope;

/// The role of [`ClipCancelOnDropExec`].
#[derive(Debug)]
pub struct CancelOnDrop;

impl<R: NodeRole> DisplayAs for QueryNode<R> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", R::NAME)
    }
}

impl<R: NodeRole> ExecutionPlan for QueryNode<R> {
    fn name(&self) -> &str {
        R::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input, Arc::clone(&self.query)))),
            _ => internal_err!("{} takes exactly one child", R::NAME),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        R::execute(&self.input, &self.query, partition, context)
    }
}

impl NodeRole for Scope {
    const NAME: &'static str = "ClipQueryScopeExec";

    fn execute(
        input: &Arc<dyn ExecutionPlan>,
        query: &Arc<QueryState>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = {
            let _scope = query.current().enter();
            input.execute(partition, context)?
        };
        Ok(Box::pin(ScopedStream {
            input: stream,
            query: Arc::clone(query),
        }))
    }
}

impl NodeRole for CancelOnDrop {
    const NAME: &'static str = "ClipCancelOnDropExec";

    fn execute(
        input: &Arc<dyn ExecutionPlan>,
        query: &Arc<QueryState>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= input.output_partitioning().partition_count() {
            return internal_err!("{} has no partition {partition}", Self::NAME);
        }
        query.output_opened();
        let opened = Arc::clone(query);
        // The input runs on its own task: the consumer only waits on a
        // channel, so dropping it takes effect at once even while a CLIP
        // call blocks the input's thread. The task is aborted with the
        // stream.
        let mut builder = RecordBatchReceiverStreamBuilder::new(input.schema(), 2);
        let sender = builder.tx();
        let input = Arc::clone(input);
        builder.spawn(async move {
            let mut stream = input.execute(partition, context)?;
            while let Some(batch) = stream.next().await {
                if sender.send(batch).await.is_err() {
                    break; // the output was dropped
                }
            }
            Ok(())
        });
        Ok(Box::pin(EndWatchedStream::new(
            builder.build(),
            Box::new(move |finished| opened.output_dropped(finished)),
        )))
    }
}

struct ScopedStream {
    input: SendableRecordBatchStream,
    query: Arc<QueryState>,
}

impl Stream for ScopedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let _scope = self.query.current().enter();
        self.input.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.input.size_hint()
    }
}

impl RecordBatchStream for ScopedStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

/// A stream that, when dropped, tells `on_drop` whether it had reached its
/// end: how a dropped query is told from a finished one.
pub(crate) struct EndWatchedStream {
    input: SendableRecordBatchStream,
    finished: bool,
    on_drop: Option<Box<dyn FnOnce(bool) + Send>>,
}

impl EndWatchedStream {
    pub(crate) fn new(
        input: SendableRecordBatchStream,
        on_drop: Box<dyn FnOnce(bool) + Send>,
    ) -> Self {
        Self {
            input,
            finished: false,
            on_drop: Some(on_drop),
        }
    }
}

impl Drop for EndWatchedStream {
    fn drop(&mut self) {
        if let Some(on_drop) = self.on_drop.take() {
            on_drop(self.finished);
        }
    }
}

impl Stream for EndWatchedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.input.poll_next_unpin(cx);
        if let Poll::Ready(None) = next {
            self.finished = true;
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.input.size_hint()
    }
}

impl RecordBatchStream for EndWatchedStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
