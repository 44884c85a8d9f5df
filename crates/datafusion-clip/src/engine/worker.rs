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

use candle_core::{DType, Device, Tensor};
use clip_model::ClipModel;
use clip_model::ComputeError;
use clip_model::image::{CLIP_MEAN, CLIP_STD};

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

/// Embed `rows` RGB crops: bytes go to the device as they are (a quarter of
/// the f32 size), are normalised there with CLIP's mean and std in f32,
/// then cast to the model's dtype. Rows come back L2-normalised.
pub fn encode_rgb(
    model: &ClipModel,
    device: &Device,
    dtype: DType,
    rgb: &[u8],
    rows: usize,
    size: usize,
) -> candle_core::Result<Vec<f32>> {
    let x = Tensor::from_slice(rgb, (rows, size, size, 3), &Device::Cpu)?.to_device(device)?;
    let pixels = normalise_on_device(&x)?.to_dtype(dtype)?;
    embeddings_to_host(&model.encode_image(&pixels)?)
}

/// (n, h, w, 3) bytes to (n, 3, h, w) f32 normalised as CLIP's
/// preprocessing does: `(v / 255 - mean) / std`, in that order and in f32,
/// so the result equals the CPU preprocessing's bit for bit.
pub fn normalise_on_device(rgb: &Tensor) -> candle_core::Result<Tensor> {
    let device = rgb.device();
    let mean = Tensor::from_slice(&CLIP_MEAN, (1, 3, 1, 1), device)?;
    let std = Tensor::from_slice(&CLIP_STD, (1, 3, 1, 1), device)?;
    let full_scale = Tensor::new(255f32, device)?;
    rgb.to_dtype(DType::F32)?
        .permute((0, 3, 1, 2))?
        .broadcast_div(&full_scale)?
        .broadcast_sub(&mean)?
        .broadcast_div(&std)?
        .contiguous()
}

/// Copy a (rows, dim) tensor to host f32 with each row L2-normalised.
/// Normalising in f32 on the host keeps half-precision models from
/// rounding the norm.
pub fn embeddings_to_host(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    let (_, dim) = t.dims2()?;
    let mut values = t
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for row in values.chunks_exact_mut(dim) {
        normalize_in_place(row);
    }
    Ok(values)
}

/// Scale `v` to unit length; a zero vector stays zero.
pub fn normalize_in_place(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
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
