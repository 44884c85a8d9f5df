//! The thread a loaded model computes on, and the batching of image passes
//! across callers.
//!
//! DataFusion evaluates scalar functions inside its tokio tasks; a forward
//! pass there would stall every other task scheduled on that worker. So each
//! loaded model owns one dedicated OS thread, and every partition and every
//! concurrent query submits its work to it. The submitting side waits off
//! the async runtime ([`wait_off_runtime`]).
//!
//! Image requests (already decoded pixels) are batched across callers: the
//! thread joins queued requests into one forward pass of up to the callers'
//! `clip.batch_size` rows, so eight partitions each holding a 40-row tail
//! make one pass of 320 rather than eight small ones. A partial pass waits
//! at most [`FLUSH_AFTER`] for more rows, and only while some caller that
//! is still encoding has nothing queued (it is decoding its next rows). A
//! pass that runs out of device memory is split in halves and retried, and
//! later passes stay at the size that fitted.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use clip_model::ClipModel;
use clip_model::ComputeError;
use clip_model::embed::encode_rgb;

use super::cancel::CancelCheck;
use super::error::EngineError;
use super::stage_clock;

/// Longest a partial image pass waits for other callers' rows.
pub const FLUSH_AFTER: Duration = Duration::from_millis(5);

type Call = Box<dyn FnOnce(&ClipModel) + Send>;

/// Normalised embeddings of one request, row-major (rows x dim).
pub type EmbeddingsResult = Result<Vec<f32>, EngineError>;

/// Decoded images waiting for the image tower.
pub struct ImageRequest {
    /// `rows` centre crops, each `size x size x 3` RGB bytes (HWC).
    pub rgb: Vec<u8>,
    pub rows: usize,
    pub size: usize,
    /// The caller's `clip.batch_size`: the largest pass it asks for.
    pub batch_size: usize,
    pub cancel: CancelCheck,
    reply: mpsc::SyncSender<EmbeddingsResult>,
}

enum Job {
    Images(ImageRequest),
    Call(Call),
}

/// A model and the thread that runs it.
#[derive(Debug)]
pub struct ModelWorker {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Callers inside an image-encoding call (see [`ImageCaller`]).
    image_callers: Arc<AtomicUsize>,
    /// Image forward passes run (after out-of-memory splits: attempts that
    /// produced embeddings).
    image_passes: Arc<AtomicUsize>,
    name: String,
}

/// A submitted job's result, to be collected with [`Pending::wait`].
pub struct Pending<R> {
    receiver: mpsc::Receiver<R>,
    worker: String,
}

impl<R> Pending<R> {
    /// Wait for the result without blocking the async runtime's scheduler.
    pub fn wait(self) -> Result<R, EngineError> {
        let worker = self.worker;
        wait_off_runtime(move || self.receiver.recv()).map_err(|_| EngineError::ModelThreadGone {
            model: worker,
            what: "stopped before answering",
        })
    }
}

/// Registration of a caller that will submit image requests one after
/// another; while it lives, the model thread may wait briefly for its next
/// request to fill a partial pass.
pub struct ImageCaller {
    callers: Arc<AtomicUsize>,
}

impl Drop for ImageCaller {
    fn drop(&mut self) {
        self.callers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ModelWorker {
    /// Start the thread for `model` on `device` in `dtype`; `name` names it
    /// in thread lists and errors.
    pub fn spawn(
        model: ClipModel,
        device: Device,
        dtype: DType,
        name: &str,
    ) -> Result<Arc<ModelWorker>, EngineError> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let image_callers = Arc::new(AtomicUsize::new(0));
        let image_passes = Arc::new(AtomicUsize::new(0));
        let mut thread_state = ThreadState {
            model,
            device,
            dtype,
            receiver,
            held: VecDeque::new(),
            image_callers: Arc::clone(&image_callers),
            image_passes: Arc::clone(&image_passes),
            rows_that_fit: usize::MAX,
        };
        let thread = std::thread::Builder::new()
            .name(format!("clip-model {name}"))
            .spawn(move || thread_state.run())
            .map_err(EngineError::ModelThreadSpawn)?;
        Ok(Arc::new(ModelWorker {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            image_callers,
            image_passes,
            name: name.to_string(),
        }))
    }

    fn send(&self, job: Job) -> Result<(), EngineError> {
        let gone = |what| EngineError::ModelThreadGone {
            model: self.name.clone(),
            what,
        };
        let guard = self.sender.lock().map_err(|_| gone("is unavailable"))?;
        guard
            .as_ref()
            .ok_or_else(|| gone("was shut down"))?
            .send(job)
            .map_err(|_| gone("stopped"))
    }

    /// Queue `job` on the model thread; collect its result with [`Pending::wait`].
    pub fn submit<R, F>(&self, job: F) -> Result<Pending<R>, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&ClipModel) -> R + Send + 'static,
    {
        let (reply, receiver) = mpsc::sync_channel(1);
        self.send(Job::Call(Box::new(move |model| {
            // The caller may have given up (query cancelled); nothing to do then.
            let _ = reply.send(job(model));
        })))?;
        Ok(Pending {
            receiver,
            worker: self.name.clone(),
        })
    }

    /// Run `job` on the model thread and wait for it.
    pub fn run<R, F>(&self, job: F) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: FnOnce(&ClipModel) -> R + Send + 'static,
    {
        self.submit(job)?.wait()
    }

    /// Image forward passes this model has run.
    pub fn image_passes(&self) -> usize {
        self.image_passes.load(Ordering::SeqCst)
    }

    /// Callers currently inside an image-encoding call.
    pub fn image_callers(&self) -> usize {
        self.image_callers.load(Ordering::SeqCst)
    }

    /// Announce a caller that will submit image requests; hold the guard
    /// until its last request is answered.
    pub fn image_caller(&self) -> ImageCaller {
        self.image_callers.fetch_add(1, Ordering::SeqCst);
        ImageCaller {
            callers: Arc::clone(&self.image_callers),
        }
    }

    /// Queue `rows` decoded images (`rgb`: rows x size x size x 3 bytes)
    /// for the image tower; the answer is their normalised embeddings.
    pub fn submit_images(
        &self,
        rgb: Vec<u8>,
        rows: usize,
        size: usize,
        batch_size: usize,
        cancel: CancelCheck,
    ) -> Result<Pending<EmbeddingsResult>, EngineError> {
        let (reply, receiver) = mpsc::sync_channel(1);
        self.send(Job::Images(ImageRequest {
            rgb,
            rows,
            size,
            batch_size: batch_size.max(1),
            cancel,
            reply,
        }))?;
        Ok(Pending {
            receiver,
            worker: self.name.clone(),
        })
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

/// What the model thread owns.
struct ThreadState {
    model: ClipModel,
    device: Device,
    dtype: DType,
    receiver: mpsc::Receiver<Job>,
    /// Jobs taken off the channel while filling a pass that did not fit in
    /// it; they run next, in arrival order.
    held: VecDeque<Job>,
    image_callers: Arc<AtomicUsize>,
    image_passes: Arc<AtomicUsize>,
    /// After an out-of-memory failure: the largest pass that then succeeded.
    rows_that_fit: usize,
}

impl ThreadState {
    fn run(&mut self) {
        // Jobs run until every sender is dropped.
        while let Some(job) = self.next_job(None) {
            match job {
                Job::Call(call) => call(&self.model),
                Job::Images(first) => {
                    let group = self.fill_pass(first);
                    self.run_image_pass(group);
                }
            }
        }
    }

    /// The next job: held ones first, then the channel (blocking, or until
    /// `deadline`).
    fn next_job(&mut self, deadline: Option<Instant>) -> Option<Job> {
        if let Some(job) = self.held.pop_front() {
            return Some(job);
        }
        match deadline {
            None => self.receiver.recv().ok(),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.receiver.recv_timeout(left).ok()
            }
        }
    }

    /// `first` plus whatever queued image requests of the same size fit
    /// into one pass.
    fn fill_pass(&mut self, first: ImageRequest) -> Vec<ImageRequest> {
        let limit = first.batch_size.min(self.rows_that_fit).max(1);
        let mut rows = first.rows;
        let mut group = vec![first];
        let deadline = Instant::now() + FLUSH_AFTER;
        // Held jobs were already passed over once: look only at new ones.
        while rows < limit {
            // Requests already queued join at once; wait for more only
            // while a registered caller has none queued here.
            let queued = self.receiver.try_recv().ok();
            let job = match queued {
                Some(job) => job,
                None => {
                    let callers = self.image_callers.load(Ordering::SeqCst);
                    if group.len() >= callers || Instant::now() >= deadline {
                        break;
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.receiver.recv_timeout(left) {
                        Ok(job) => job,
                        Err(_) => break,
                    }
                }
            };
            match job {
                Job::Images(request)
                    if request.size == group[0].size && rows + request.rows <= limit =>
                {
                    rows += request.rows;
                    group.push(request);
                }
                other => {
                    // A job that does not fit runs after this pass.
                    self.held.push_back(other);
                    break;
                }
            }
        }
        group
    }

    /// One forward pass over `group`, answered request by request.
    fn run_image_pass(&mut self, group: Vec<ImageRequest>) {
        // Requests whose query was cancelled while queued are answered
        // with the cancellation and left out of the pass.
        let mut live = Vec::with_capacity(group.len());
        for request in group {
            match request.cancel.check() {
                Ok(()) => live.push(request),
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                }
            }
        }
        if live.is_empty() {
            return;
        }
        let size = live[0].size;
        let rows: usize = live.iter().map(|r| r.rows).sum();
        let mut rgb = Vec::with_capacity(rows * size * size * 3);
        for request in &live {
            rgb.extend_from_slice(&request.rgb);
        }
        let started = Instant::now();
        let result = self.encode_splitting_on_oom(&rgb, rows, size);
        stage_clock::add_model_pass(started, rows);
        match result {
            Ok(values) => {
                let dim = values.len() / rows.max(1);
                let mut offset = 0;
                for request in live {
                    let n = request.rows * dim;
                    let _ = request.reply.send(Ok(values[offset..offset + n].to_vec()));
                    offset += n;
                }
            }
            Err(e) => {
                // Every request of the pass gets the same failure.
                let e = Arc::new(e);
                for request in live {
                    let _ = request.reply.send(Err(EngineError::Encoder {
                        tower: "image",
                        source: Arc::clone(&e),
                    }));
                }
            }
        }
    }

    /// Embed `rows` images; on out-of-device-memory, halve and retry.
    fn encode_splitting_on_oom(
        &mut self,
        rgb: &[u8],
        rows: usize,
        size: usize,
    ) -> Result<Vec<f32>, ComputeError> {
        let per_image = size * size * 3;
        let (model, device, dtype) = (&self.model, &self.device, self.dtype);
        let passes = &self.image_passes;
        split_on_out_of_memory(0..rows, &mut self.rows_that_fit, &mut |range| {
            let bytes = &rgb[range.start * per_image..range.end * per_image];
            let values = encode_rgb(model, device, dtype, bytes, range.len(), size)?;
            passes.fetch_add(1, Ordering::SeqCst);
            Ok(values)
        })
    }
}

/// Run `pass` over `rows`; when it fails for lack of memory, run the two
/// halves instead (recursively, down to single rows), and lower
/// `rows_that_fit` to the largest size that then succeeded so later passes
/// start there. Outputs are concatenated in row order.
pub fn split_on_out_of_memory(
    rows: Range<usize>,
    rows_that_fit: &mut usize,
    pass: &mut dyn FnMut(Range<usize>) -> Result<Vec<f32>, ComputeError>,
) -> Result<Vec<f32>, ComputeError> {
    if rows.len() > *rows_that_fit {
        let mid = rows.start + *rows_that_fit;
        let mut values = split_on_out_of_memory(rows.start..mid, rows_that_fit, pass)?;
        values.extend(split_on_out_of_memory(mid..rows.end, rows_that_fit, pass)?);
        return Ok(values);
    }
    match pass(rows.clone()) {
        Err(e) if rows.len() > 1 && e.is_out_of_memory() => {
            *rows_that_fit = rows.len() / 2;
            let mid = rows.start + rows.len() / 2;
            let mut values = split_on_out_of_memory(rows.start..mid, rows_that_fit, pass)?;
            values.extend(split_on_out_of_memory(mid..rows.end, rows_that_fit, pass)?);
            Ok(values)
        }
        other => other,
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use clip_model::checkpoint::write_random_model;
    use clip_model::{ClipConfig, ModelFiles, load_model};

    use super::*;

    /// The tiny random-weight CLIP every test here runs, read through the
    /// real loading code.
    fn tiny_model() -> ClipModel {
        let dir = tempfile::tempdir().unwrap();
        write_random_model(dir.path(), &ClipConfig::tiny(), 42).unwrap();
        let files = ModelFiles::in_directory(dir.path()).unwrap();
        load_model(&files, &Device::Cpu, DType::F32).unwrap()
    }

    fn tiny_worker() -> (Arc<ModelWorker>, usize) {
        let model = tiny_model();
        let size = model.config().vision_config.image_size;
        (
            ModelWorker::spawn(model, Device::Cpu, DType::F32, "tiny").unwrap(),
            size,
        )
    }

    /// `rows` distinct `size`x`size` RGB crops, as the engine sends them.
    fn crops(size: usize, rows: usize, seed: u32) -> Vec<u8> {
        (0..rows * size * size * 3)
            .map(|i| {
                ((i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed * 7919)
                    >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn queued_requests_of_several_callers_share_one_pass() {
        let (worker, size) = tiny_worker();
        let callers: Vec<_> = (0..4).map(|_| worker.image_caller()).collect();
        // Hold the model thread until all four requests are queued.
        let (release, hold) = mpsc::channel::<()>();
        let blocker = worker.submit(move |_| hold.recv().unwrap()).unwrap();
        let requests: Vec<Vec<u8>> = (0..4).map(|c| crops(size, 3, c)).collect();
        let pending: Vec<_> = requests
            .iter()
            .map(|rgb| {
                worker
                    .submit_images(rgb.clone(), 3, size, 64, CancelCheck::now())
                    .unwrap()
            })
            .collect();
        release.send(()).unwrap();
        blocker.wait().unwrap();
        let answers: Vec<Vec<f32>> = pending
            .into_iter()
            .map(|p| p.wait().unwrap().unwrap())
            .collect();
        assert_eq!(worker.image_passes(), 1, "four 3-row requests, one pass");
        drop(callers);

        // Each caller got its own rows: the same as encoding them alone.
        let model = tiny_model();
        for (rgb, answer) in requests.iter().zip(&answers) {
            let alone = encode_rgb(&model, &Device::Cpu, DType::F32, rgb, 3, size).unwrap();
            assert_eq!(alone.len(), answer.len());
            let worst = alone
                .iter()
                .zip(answer)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "rows differ by {worst}");
        }
    }

    #[test]
    fn a_request_larger_than_the_room_left_waits_for_the_next_pass() {
        let (worker, size) = tiny_worker();
        let (release, hold) = mpsc::channel::<()>();
        let blocker = worker.submit(move |_| hold.recv().unwrap()).unwrap();
        // batch_size 8: 5 + 5 rows do not fit one pass.
        let a = worker
            .submit_images(crops(size, 5, 1), 5, size, 8, CancelCheck::now())
            .unwrap();
        let b = worker
            .submit_images(crops(size, 5, 2), 5, size, 8, CancelCheck::now())
            .unwrap();
        release.send(()).unwrap();
        blocker.wait().unwrap();
        assert_eq!(a.wait().unwrap().unwrap().len() % 5, 0);
        assert_eq!(b.wait().unwrap().unwrap().len() % 5, 0);
        assert_eq!(worker.image_passes(), 2);
    }

    #[test]
    fn concurrent_callers_get_their_own_rows() {
        let (worker, size) = tiny_worker();
        let handles: Vec<_> = (0..6u32)
            .map(|c| {
                let worker = worker.clone();
                thread::spawn(move || {
                    let _caller = worker.image_caller();
                    let rgb = crops(size, 1 + c as usize, c);
                    let got = worker
                        .submit_images(rgb.clone(), 1 + c as usize, size, 16, CancelCheck::now())
                        .unwrap()
                        .wait()
                        .unwrap()
                        .unwrap();
                    (rgb, got)
                })
            })
            .collect();
        let model = tiny_model();
        for (c, handle) in handles.into_iter().enumerate() {
            let (rgb, got) = handle.join().unwrap();
            let alone = encode_rgb(&model, &Device::Cpu, DType::F32, &rgb, 1 + c, size).unwrap();
            assert_eq!(got.len(), alone.len());
            assert!(got.iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-5));
        }
        assert!(worker.image_passes() <= 6);
    }

    /// A pass that ran out of device memory, as the model crate types it.
    fn oom() -> ComputeError {
        ComputeError::OutOfMemory(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        ))
    }

    #[test]
    fn a_pass_out_of_memory_is_halved_and_later_passes_stay_small() {
        let mut fit = usize::MAX;
        let mut sizes = Vec::new();
        // Passes of more than 5 rows "run out of memory".
        let mut pass = |rows: std::ops::Range<usize>| {
            sizes.push(rows.len());
            if rows.len() > 5 {
                Err(oom())
            } else {
                Ok(rows.map(|r| r as f32).collect())
            }
        };
        let out = split_on_out_of_memory(0..16, &mut fit, &mut pass).unwrap();
        assert_eq!(out, (0..16).map(|r| r as f32).collect::<Vec<_>>());
        assert_eq!(fit, 4, "16 -> 8 -> 4 fits");
        assert_eq!(sizes, vec![16, 8, 4, 4, 4, 4]);
        // The next pass starts at the size that fitted.
        sizes.clear();
        let mut pass = |rows: std::ops::Range<usize>| {
            sizes.push(rows.len());
            Ok(vec![0f32; rows.len()])
        };
        split_on_out_of_memory(0..10, &mut fit, &mut pass).unwrap();
        assert_eq!(sizes, vec![4, 4, 2]);
    }

    #[test]
    fn other_errors_and_single_rows_are_not_retried() {
        let mut fit = usize::MAX;
        let mut calls = 0;
        let mut pass = |_rows: std::ops::Range<usize>| {
            calls += 1;
            Err(ComputeError::Failed(candle_core::Error::Msg(
                "shape mismatch".into(),
            )))
        };
        assert!(split_on_out_of_memory(0..8, &mut fit, &mut pass).is_err());
        assert_eq!(calls, 1);
        let mut pass = |_rows: std::ops::Range<usize>| Err(oom());
        let e = split_on_out_of_memory(0..1, &mut fit, &mut pass).unwrap_err();
        assert!(e.is_out_of_memory(), "{e}");
    }
}
