//! The thread a loaded model computes on.
//!
//! DataFusion evaluates scalar functions inside its tokio tasks; a forward
//! pass there would stall every other task scheduled on that worker. So each
//! loaded model owns one dedicated OS thread, and every partition and every
//! concurrent query submits its forward passes to it. The submitting side
//! waits off the async runtime ([`wait_off_runtime`]). One thread per model
//! also serialises forward passes, so two partitions never compete for the
//! same cores or device memory with two half-sized batches.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::model::ClipModel;

type Job = Box<dyn FnOnce(&ClipModel) + Send>;

/// A model and the thread that runs it.
#[derive(Debug)]
pub struct ModelWorker {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    name: String,
}

/// A submitted job's result, to be collected with [`Pending::wait`].
pub struct Pending<R> {
    receiver: mpsc::Receiver<R>,
    worker: String,
}

impl<R> Pending<R> {
    /// Wait for the result without blocking the async runtime's scheduler.
    pub fn wait(self) -> Result<R, String> {
        let worker = self.worker;
        wait_off_runtime(move || self.receiver.recv())
            .map_err(|_| format!("the model thread of {worker} stopped before answering"))
    }
}

impl ModelWorker {
    /// Start the thread for `model`; `name` names it in thread lists and errors.
    pub fn spawn(model: ClipModel, name: &str) -> Result<Arc<ModelWorker>, String> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name(format!("clip-model {name}"))
            .spawn(move || {
                // Jobs run until every sender is dropped.
                while let Ok(job) = receiver.recv() {
                    job(&model);
                }
            })
            .map_err(|e| format!("cannot start the model thread: {e}"))?;
        Ok(Arc::new(ModelWorker {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            name: name.to_string(),
        }))
    }

    /// Queue `job` on the model thread; collect its result with [`Pending::wait`].
    pub fn submit<R, F>(&self, job: F) -> Result<Pending<R>, String>
    where
        R: Send + 'static,
        F: FnOnce(&ClipModel) -> R + Send + 'static,
    {
        let (reply, receiver) = mpsc::sync_channel(1);
        let boxed: Job = Box::new(move |model| {
            // The caller may have given up (query cancelled); nothing to do then.
            let _ = reply.send(job(model));
        });
        let guard = self
            .sender
            .lock()
            .map_err(|_| format!("the model thread of {} is unavailable", self.name))?;
        guard
            .as_ref()
            .ok_or_else(|| format!("the model thread of {} was shut down", self.name))?
            .send(boxed)
            .map_err(|_| format!("the model thread of {} stopped", self.name))?;
        Ok(Pending {
            receiver,
            worker: self.name.clone(),
        })
    }

    /// Run `job` on the model thread and wait for it.
    pub fn run<R, F>(&self, job: F) -> Result<R, String>
    where
        R: Send + 'static,
        F: FnOnce(&ClipModel) -> R + Send + 'static,
    {
        self.submit(job)?.wait()
    }
}

impl Drop for ModelWorker {
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(handle) = thread.take()
        {
            let _ = handle.join();
        }
    }
}

/// Run blocking `f` from code that may be on a tokio worker thread: on a
/// multi-threaded runtime the worker hands its other tasks to a fresh thread
/// first (`block_in_place`); elsewhere `f` just runs.
pub fn wait_off_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
