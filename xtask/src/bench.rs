//! `cargo xtask bench`: training and inference images/s of the paper's CIFAR networks (ResNet-20,
//! 56 and 110, VGG-16, DenseNet-40) with our kernels (`kernels` crate), with PyTorch (when a
//! Python with torch is found) and, for ResNet-20/56, with candle's built-in ops, side by side in
//! one run; where a training step spends its time (forward, backward, update); pruned models
//! against their unpruned ones (speed-up against FLOPs ratio); the peak memory of a ResNet-56
//! training process; and how images/s scale with batch size and thread count. Prints Markdown
//! tables and one summary line per model and mode, and writes every figure as JSON (`--json`).
//!
//! A training step is what the loop does per batch: forward in training mode, cross-entropy,
//! backward and the SGD update (momentum 0.9, weight decay 1e-4). Inference is a forward pass in
//! evaluation mode. Inputs are random 32x32 RGB images. The backends are measured one after the
//! other for each model, so a load change on a shared machine hits the ratios as little as can be.
//!
//! `--device cuda` measures candle's CUDA backend instead, and PyTorch on the same GPU. Our
//! kernels are CPU ops (the models take candle's ops for any other device, see
//! `kernels::use_ours`), so there "candle's ops" and "ours" are one measurement and the table has
//! one candle column.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, ModuleT, Tensor};
use kernels::{Backend, Backward, with_backend};
use models::{FastStep, Model, ModelConfig};
use prune_core::PfecVersion;
use serde::{Deserialize, Serialize};
use train::device::DeviceSpec;
use train::sgd::{Sgd, SgdConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Timed iterations per measurement (after the warm-up ones).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Untimed warm-up iterations per measurement (PyTorch's oneDNN needs a couple).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Rounds of the main table: ours and PyTorch measured alternately this many times per
    /// model, the median of each reported (shared vCPUs vary by tens of percent from minute to
    /// minute; every round is in the JSON).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    train_batch: usize,
    /// Inference batch size.
    #[arg(long, default_value_t = 256)]
    infer_batch: usize,
    /// The models of the main table (CIFAR-10, unpruned).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet20,resnet56,resnet110,vgg16,densenet40"
    )]
    models: Vec<String>,
    /// The Python that runs xtask/bench/torch_bench.py (else $PRUNEBENCH_PYTHON, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip PyTorch.
    #[arg(long)]
    no_torch: bool,
    /// Skip candle's built-in ops (the slowest part of the run; measured on ResNet-20/56 only).
    #[arg(long)]
    no_candle: bool,
    /// Skip the pruned-model table.
    #[arg(long)]
    no_pruned: bool,
    /// Skip the peak-memory measurement (a ResNet-56 training process, ours and PyTorch's).
    #[arg(long)]
    no_memory: bool,
    /// Skip the scaling table (images/s against batch size and thread count).
    #[arg(long)]
    no_scaling: bool,
    /// The model of the scaling table.
    #[arg(long, default_value = "resnet56")]
    scaling_model: String,
    /// The batch sizes of the scaling table (training and inference alike).
    #[arg(long, value_delimiter = ',', default_value = "32,64,128,256")]
    scaling_batches: Vec<usize>,
    /// Where the figures are written as JSON (besides the tables on stdout).
    #[arg(long, default_value = "target/bench/bench.json")]
    json: PathBuf,
    /// cpu (candle's ops against our kernels), or cuda / cuda:N (candle's CUDA backend, which
    /// needs xtask built with --features cuda; see docs/cuda.md). PyTorch runs on the same device.
    #[arg(long, value_name = "cpu|cuda|cuda:N", default_value = "cpu")]
    device: DeviceSpec,
    /// Measure in this process even when it is a debug build (by default a debug build re-runs
    /// the benchmark as `cargo run --release`: dependencies are optimised in dev builds too, but
    /// keep their debug assertions, which slow candle's ops several times over).
    #[arg(long)]
    here: bool,
    /// Internal: measure the one model of `--models` with our kernels and print its figures as
    /// one JSON line (the memory and scaling measurements run in such child processes).
    #[arg(long, hide = true)]
    probe: bool,
    /// Internal, with --probe: training only.
    #[arg(long, hide = true)]
    train_only: bool,
}

/// The models candle's built-in ops are measured on (the others would take minutes each).
const CANDLE_MODELS: [&str; 2] = ["resnet20", "resnet56"];

/// Mean seconds of the phases of a training step.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Phases {
    /// Forward in training mode and the loss.
    forward: f64,
    /// `loss.backward()`.
    backward: f64,
    /// The SGD update.
    update: f64,
}

/// Images per second of a training step and of inference, and how the step spent its time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Speed {
    train: f64,
    /// None when only training was measured.
    infer: Option<f64>,
    /// PyTorch's inference with the BatchNorms that follow a conv folded into it (ResNet, VGG),
    /// as our ResNet inference folds them; None for ours and where nothing folds.
    #[serde(default)]
    infer_folded: Option<f64>,
    /// Process CPU seconds per wall-clock second over the timed training steps (2.0 = two busy
    /// cores); None where /proc is unavailable or on a GPU.
    cores_busy: Option<f64>,
    phases: Phases,
    /// The process's peak resident memory (Linux `VmHWM`, PyTorch's `ru_maxrss`), where a
    /// process of its own measured the model.
    peak_rss_bytes: Option<u64>,
    /// The same figure just before the model was built (the program and its libraries).
    baseline_rss_bytes: Option<u64>,
}

/// User plus system CPU seconds of this process so far, from /proc (Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// This process's peak resident set size, from /proc (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// What one measurement runs: batch sizes and iteration counts, and whether inference is timed.
#[derive(Clone, Copy, Debug)]
struct Plan {
    train_batch: usize,
    infer_batch: usize,
    iters: usize,
    warmup: usize,
    infer: bool,
}

impl Plan {
    fn of(args: &Args) -> Self {
        Self {
            train_batch: args.train_batch,
            infer_batch: args.infer_batch,
            iters: args.iters,
            warmup: args.warmup,
            infer: !args.train_only,
        }
    }

    fn batch(self, batch: usize) -> Self {
        Self {
            train_batch: batch,
            infer_batch: batch,
            ..self
        }
    }
}

/// Times `config` on `device`. The backend matters on the CPU only: `kernels::use_ours` is false
/// for other devices, so there both backends run candle's ops.
fn measure(
    config: &ModelConfig,
    backend: Backend,
    backward: Backward,
    plan: Plan,
    device: &Device,
) -> Result<Speed> {
    with_backend(backend, || -> Result<Speed> {
        let model = Model::init(config, 1, device)?;
        let mut sgd = Sgd::new(model.trainable_vars(), SgdConfig::default())?;
        let c = config.in_channels();
        let x = Tensor::randn(0f32, 1.0, (plan.train_batch, c, 32, 32), device)?;
        let classes = config.num_classes() as u32;
        let labels: Vec<u32> = (0..plan.train_batch as u32).map(|i| i % classes).collect();
        let y = Tensor::from_vec(labels, plan.train_batch, device)?;
        let mut phases = Phases::default();
        let mut fast = FastStep::new();
        // With `sync`, each phase waits for the GPU before the clock is read.
        let mut step = |timed: bool, sync: bool| -> Result<()> {
            let wait = || if sync { device.synchronize() } else { Ok(()) };
            let t0 = Instant::now();
            let ours = match backward {
                Backward::Ours => fast.step(&model, &x, &y)?,
                Backward::Candle => None,
            };
            let (grads, t1) = match ours {
                Some(s) => (s.grads, t0 + Duration::from_secs_f64(s.forward_seconds)),
                None => {
                    let logits = model.forward_t(&x, true)?;
                    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                    wait()?;
                    let t1 = Instant::now();
                    (loss.backward()?, t1)
                }
            };
            wait()?;
            let t2 = Instant::now();
            sgd.step(&grads, 0.01, None)?;
            wait()?;
            if timed {
                phases.forward += (t1 - t0).as_secs_f64();
                phases.backward += (t2 - t1).as_secs_f64();
                phases.update += t2.elapsed().as_secs_f64();
            }
            Ok(())
        };
        for _ in 0..plan.warmup {
            step(false, false)?;
        }
        // A GPU runs the queued steps after the calls return: wait for them around the clock.
        device.synchronize()?;
        // On the CPU the phases are timed in the timed loop (the clock costs nothing); a GPU
        // needs a synchronisation per phase, so there they get a second pass.
        let cpu = device.is_cpu();
        let (t, cpu0) = (Instant::now(), cpu_seconds());
        for _ in 0..plan.iters {
            step(cpu, false)?;
        }
        device.synchronize()?;
        let wall = t.elapsed().as_secs_f64();
        let cores_busy = if cpu {
            cpu0.zip(cpu_seconds()).map(|(a, b)| (b - a) / wall)
        } else {
            for _ in 0..plan.iters {
                step(true, true)?;
            }
            None
        };
        let n = plan.iters as f64;
        let phases = Phases {
            forward: phases.forward / n,
            backward: phases.backward / n,
            update: phases.update / n,
        };
        let train = (plan.iters * plan.train_batch) as f64 / wall;
        let infer = if plan.infer {
            let xi = Tensor::randn(0f32, 1.0, (plan.infer_batch, c, 32, 32), device)?;
            let infer = || -> Result<f32> {
                Ok(model
                    .infer(&xi)?
                    .to_dtype(DType::F32)?
                    .sum_all()?
                    .to_scalar::<f32>()?)
            };
            // `to_scalar` copies the result back, which waits for the GPU.
            for _ in 0..plan.warmup {
                infer()?;
            }
            device.synchronize()?;
            let t = Instant::now();
            for _ in 0..plan.iters {
                infer()?;
            }
            Some((plan.iters * plan.infer_batch) as f64 / t.elapsed().as_secs_f64())
        } else {
            None
        };
        Ok(Speed {
            train,
            infer,
            infer_folded: None,
            cores_busy,
            phases,
            peak_rss_bytes: None,
            baseline_rss_bytes: None,
        })
    })
}

/// `--probe`: measures the one model of `--models` with our kernels and prints one JSON line.
fn probe(args: &Args, device: &Device) -> Result<()> {
    let [name] = args.models.as_slice() else {
        bail!("--probe measures one model, got --models {:?}", args.models);
    };
    let config = ModelConfig::from_name(name, 10, 3)?;
    let baseline = peak_rss_bytes();
    let mut speed = measure(
        &config,
        Backend::Ours,
        Backward::current(),
        Plan::of(args),
        device,
    )?;
    speed.peak_rss_bytes = peak_rss_bytes();
    speed.baseline_rss_bytes = baseline;
    println!("{}", serde_json::to_string(&speed)?);
    Ok(())
}

/// Our figures for `name` from a child process of this binary (`--probe`) with `threads` rayon
/// threads: a clean process for the peak memory, and a thread count set before any pool exists.
fn spawn_probe(args: &Args, name: &str, threads: usize, plan: Plan) -> Result<Speed> {
    let exe = std::env::current_exe().context("finding this binary for a --probe run")?;
    let mut cmd = Command::new(&exe);
    cmd.args(["bench", "--here", "--probe", "--models", name])
        .args(["--iters", &plan.iters.to_string()])
        .args(["--warmup", &plan.warmup.to_string()])
        .args(["--train-batch", &plan.train_batch.to_string()])
        .args(["--infer-batch", &plan.infer_batch.to_string()])
        .args(["--device", &args.device.to_string()])
        .env("RAYON_NUM_THREADS", threads.to_string());
    if !plan.infer {
        cmd.arg("--train-only");
    }
    let (v, line) = last_json_line(cmd, &format!("bench --probe {name}"))?;
    serde_json::from_value(v).with_context(|| format!("bench --probe output: {line}"))
}

/// Runs `cmd` (a child that prints its figures as JSON) and parses its last line of output.
fn last_json_line(mut cmd: Command, what: &str) -> Result<(serde_json::Value, String)> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .with_context(|| format!("{what} printed nothing"))?
        .to_string();
    let v = serde_json::from_str(&line).with_context(|| format!("{what} output: {line}"))?;
    Ok((v, line))
}

fn python(args: &Args) -> PathBuf {
    args.python
        .clone()
        .or_else(|| std::env::var_os("PRUNEBENCH_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether `python -c "import torch"` works.
fn torch_available(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn torch_script() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_bench.py");
    if built.is_file() {
        built
    } else {
        // A binary carried to another machine (a GPU one, which has no Rust): the checkout
        // it runs from.
        PathBuf::from("xtask/bench/torch_bench.py")
    }
}

/// What the PyTorch side reports besides its speeds: its version and how it ran.
#[derive(Clone, Debug, Serialize)]
struct TorchRun {
    version: String,
    /// channels_last (CPU) or contiguous (CUDA).
    memory_format: String,
    /// `cpu`, or the GPU's name.
    device_name: String,
}

/// PyTorch's figures for `config` (with `threads` threads on the CPU) from one run of
/// torch_bench.py: a process of its own, so its peak memory is this model's.
fn measure_torch(
    python: &Path,
    config: &ModelConfig,
    threads: usize,
    plan: Plan,
    device: &DeviceSpec,
) -> Result<(Speed, TorchRun)> {
    let mut cmd = Command::new(python);
    cmd.arg(torch_script())
        .args(["--config", &serde_json::to_string(config)?])
        .args(["--iters", &plan.iters.to_string()])
        .args(["--warmup", &plan.warmup.to_string()])
        .args(["--train-batch", &plan.train_batch.to_string()])
        .args(["--infer-batch", &plan.infer_batch.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--device", &device.to_string()]);
    if !plan.infer {
        cmd.arg("--train-only");
    }
    let (v, line) = last_json_line(cmd, &format!("{} torch_bench.py", python.display()))?;
    let line = line.as_str();
    let num = |k: &str| v[k].as_f64().with_context(|| format!("{k} in {line}"));
    let phase = |k: &str| {
        v["phase_seconds"][k]
            .as_f64()
            .with_context(|| format!("phase_seconds.{k} in {line}"))
    };
    let text = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    Ok((
        Speed {
            train: num("train_images_per_sec")?,
            infer: if plan.infer {
                Some(num("inference_images_per_sec")?)
            } else {
                None
            },
            infer_folded: v["inference_folded_images_per_sec"].as_f64(),
            cores_busy: None,
            phases: Phases {
                forward: phase("forward")?,
                backward: phase("backward")?,
                update: phase("update")?,
            },
            peak_rss_bytes: v["peak_rss_bytes"].as_u64(),
            baseline_rss_bytes: v["baseline_rss_bytes"].as_u64(),
        },
        TorchRun {
            version: text("torch"),
            memory_format: text("memory_format"),
            device_name: text("device_name"),
        },
    ))
}

/// PyTorch's figures for a main-table model when torch is available, keeping how it ran in the
/// report.
fn torch_row(
    torch: bool,
    py: &Path,
    config: &ModelConfig,
    plan: Plan,
    args: &Args,
    report: &mut Report,
) -> Result<Option<Speed>> {
    if !torch {
        return Ok(None);
    }
    let (speed, run) = measure_torch(py, config, report.threads, plan, &args.device)?;
    report.torch = Some(run);
    Ok(Some(speed))
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn mib(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Reads one mode's number (training or inference) from a measurement.
type Pick = fn(&Speed) -> Option<f64>;

/// The two rows of a model: training and inference.
const MODES: [(&str, Pick); 2] = [
    ("train", |s: &Speed| Some(s.train)),
    ("infer", |s: &Speed| s.infer),
];

/// One model of the main table.
#[derive(Clone, Debug, Serialize)]
struct ModelRow {
    model: String,
    params: u64,
    flops: u64,
    candle: Option<Speed>,
    /// Our kernels with the backward pass `PRUNEBENCH_BACKWARD` chooses.
    ours: Speed,
    /// Our kernels under candle's autograd, where `ours` ran our own backward pass.
    ours_autograd: Option<Speed>,
    torch: Option<Speed>,
    /// Every round of `ours` and `torch` (`--rounds`), in the order measured.
    ours_rounds: Vec<Speed>,
    torch_rounds: Vec<Speed>,
}

/// A main-table model measured `--rounds` times, ours and PyTorch's alternately, with the
/// medians.
struct Rounds {
    ours: Speed,
    torch: Option<Speed>,
    ours_rounds: Vec<Speed>,
    torch_rounds: Vec<Speed>,
}

impl Rounds {
    #[allow(clippy::too_many_arguments)]
    fn measure(
        config: &ModelConfig,
        backward: Backward,
        plan: Plan,
        device: &Device,
        torch: bool,
        py: &Path,
        args: &Args,
        report: &mut Report,
    ) -> Result<Self> {
        let (mut ours_rounds, mut torch_rounds) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            ours_rounds.push(measure(config, Backend::Ours, backward, plan, device)?);
            torch_rounds.extend(torch_row(torch, py, config, plan, args, report)?);
        }
        Ok(Self {
            ours: median_speed(&ours_rounds).context("no round measured")?,
            torch: median_speed(&torch_rounds),
            ours_rounds,
            torch_rounds,
        })
    }
}

/// The median round (by training images/s), with inference images/s the median of its own.
fn median_speed(rounds: &[Speed]) -> Option<Speed> {
    if rounds.is_empty() {
        return None;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let train = median(rounds.iter().map(|s| s.train).collect());
    let mut out = *rounds.iter().find(|s| s.train == train)?;
    let infer: Vec<f64> = rounds.iter().filter_map(|s| s.infer).collect();
    out.infer = (!infer.is_empty()).then(|| median(infer));
    let folded: Vec<f64> = rounds.iter().filter_map(|s| s.infer_folded).collect();
    out.infer_folded = (!folded.is_empty()).then(|| median(folded));
    Some(out)
}

/// A pruned model against its unpruned one (ours).
#[derive(Clone, Debug, Serialize)]
struct PrunedRow {
    model: String,
    unpruned: String,
    params: u64,
    flops: u64,
    ours: Speed,
    train_speedup: f64,
    infer_speedup: Option<f64>,
    flops_ratio: f64,
}

/// Peak resident memory of a training process.
#[derive(Clone, Debug, Serialize)]
struct Memory {
    model: String,
    train_batch: usize,
    ours_peak_rss_bytes: Option<u64>,
    torch_peak_rss_bytes: Option<u64>,
    /// Peak minus the process's resident memory before the model was built.
    ours_above_start_bytes: Option<u64>,
    torch_above_start_bytes: Option<u64>,
}

/// One cell of the scaling table.
#[derive(Clone, Debug, Serialize)]
struct ScalingRow {
    threads: usize,
    batch: usize,
    ours: Speed,
    torch: Option<Speed>,
}

/// Everything one bench run measured, as written to `--json`.
#[derive(Debug, Serialize)]
struct Report {
    host: experiments::provenance::Host,
    device: String,
    threads: usize,
    iters: usize,
    warmup: usize,
    rounds: usize,
    train_batch: usize,
    infer_batch: usize,
    load_average_start: String,
    load_average_end: String,
    torch: Option<TorchRun>,
    models: Vec<ModelRow>,
    pruned: Vec<PrunedRow>,
    memory: Option<Memory>,
    scaling: Vec<ScalingRow>,
}

pub fn run(args: Args) -> Result<()> {
    // Before anything is built or measured: a device this build cannot open fails here, with
    // the reason (no CUDA in this build, no such GPU).
    let device = crate::open_device(args.device)?;
    if cfg!(debug_assertions) && !args.here {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut release = Command::new(cargo);
        release.args(["run", "--release", "--quiet", "--package", "xtask"]);
        // The release build needs the CUDA backend this one has.
        if cfg!(feature = "cuda") {
            release.args(["--features", "cuda"]);
        }
        let status = release
            .args(["--", "bench", "--here"])
            .args(std::env::args_os().skip(2))
            .status()
            .context(
                "re-running the benchmark as a release build (where there is no cargo, pass \
                 --here to measure this build)",
            )?;
        if !status.success() {
            bail!("the release build of the benchmark failed ({status})");
        }
        return Ok(());
    }
    if args.iters == 0 || args.rounds == 0 || args.train_batch < 2 || args.infer_batch == 0 {
        bail!(
            "--iters and --rounds must be >= 1, --train-batch >= 2 (BatchNorm), --infer-batch >= 1"
        );
    }
    if args.scaling_batches.iter().any(|&b| b < 2) {
        bail!("--scaling-batches must all be >= 2 (BatchNorm)");
    }
    // Names are checked before anything is measured.
    for name in args.models.iter().chain([&args.scaling_model]) {
        ModelConfig::from_name(name, 10, 3)?;
    }
    if args.probe {
        return probe(&args, &device);
    }
    let py = python(&args);
    let torch = !args.no_torch && torch_available(&py);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = Report {
        host: experiments::provenance::Host::current(if device.is_cpu() { "cpu" } else { "gpu" }),
        device: args.device.to_string(),
        threads,
        iters: args.iters,
        warmup: args.warmup,
        rounds: args.rounds,
        train_batch: args.train_batch,
        infer_batch: args.infer_batch,
        load_average_start: load_average(),
        load_average_end: String::new(),
        torch: None,
        models: Vec::new(),
        pruned: Vec::new(),
        memory: None,
        scaling: Vec::new(),
    };
    if device.is_cpu() {
        bench_cpu(&args, &py, torch, &mut report)?;
    } else {
        bench_gpu(&args, &device, &py, torch, &mut report)?;
    }
    if !args.no_pruned {
        bench_pruned(&args, &device, &mut report)?;
    }
    if device.is_cpu() {
        if !args.no_memory {
            bench_memory(&args, &py, torch, &mut report)?;
        }
        if !args.no_scaling {
            bench_scaling(&args, &py, torch, &mut report)?;
        }
    }
    report.load_average_end = load_average();
    println!("\nload average at end: {}\n", report.load_average_end);
    for row in &report.models {
        for (mode, pick) in MODES {
            let (o, p) = (pick(&row.ours), row.torch.as_ref().and_then(pick));
            match (o, p) {
                (Some(o), Some(p)) => println!(
                    "{} {mode}: ours {o:.1} img/s, PyTorch {p:.1} img/s, {:.2}x",
                    row.model,
                    o / p
                ),
                (Some(o), None) => println!("{} {mode}: ours {o:.1} img/s, no PyTorch", row.model),
                _ => {}
            }
        }
    }
    print_folded(&report);
    if let Some(dir) = args.json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(&report)?;
    text.push('\n');
    files::write_atomic(&args.json, text.as_bytes())
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("\nfigures as JSON: {}", args.json.display());
    Ok(())
}

fn torch_missing(args: &Args, py: &Path, torch: bool) {
    if !args.no_torch && !torch {
        println!(
            "PyTorch: not available with {} (set PRUNEBENCH_PYTHON or --python)",
            py.display()
        );
    }
}

fn torch_note(report: &Report, py: &Path) {
    if let Some(r) = &report.torch {
        println!(
            "\nPyTorch {}, {}, {} threads on {} ({}).",
            r.version,
            r.memory_format,
            report.threads,
            r.device_name,
            py.display()
        );
    }
}

/// Our inference against PyTorch's with its BatchNorms folded into the convs (ours folds them
/// in the ResNets): the fairer comparison for a user who would fold them in PyTorch too.
fn print_folded(report: &Report) {
    for row in &report.models {
        let p = row.torch.as_ref().and_then(|t| t.infer_folded);
        if let (Some(o), Some(p)) = (row.ours.infer, p) {
            println!(
                "{} infer, PyTorch with BatchNorm folded: ours {o:.1} img/s, PyTorch {p:.1} img/s, {:.2}x",
                row.model,
                o / p
            );
        }
    }
}

/// The phases of a training step, ours and PyTorch's, in milliseconds.
fn print_phases(report: &Report) {
    println!(
        "\nWhere a training step goes (ms per step: forward with the loss, backward, update):\n"
    );
    println!(
        "| model | ours forward | ours backward | ours update | PyTorch forward | PyTorch backward | PyTorch update |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let ms = |p: Option<&Phases>, f: fn(&Phases) -> f64| cell(p.map(|p| f(p) * 1e3), 1);
    for row in &report.models {
        let (o, t) = (
            Some(&row.ours.phases),
            row.torch.as_ref().map(|t| &t.phases),
        );
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.model,
            ms(o, |p| p.forward),
            ms(o, |p| p.backward),
            ms(o, |p| p.update),
            ms(t, |p| p.forward),
            ms(t, |p| p.backward),
            ms(t, |p| p.update),
        );
    }
}

/// The CPU table: candle's built-in ops (ResNet-20/56), our kernels and PyTorch.
fn bench_cpu(args: &Args, py: &Path, torch: bool, report: &mut Report) -> Result<()> {
    let device = Device::Cpu;
    let plan = Plan::of(args);
    println!(
        "CPU ({}), {} threads; {} timed iterations after {} warm-up, {} round(s) (medians); training batch {}, inference batch {}; load average at start: {}",
        report.host.machine,
        report.threads,
        args.iters,
        args.warmup,
        args.rounds,
        args.train_batch,
        args.infer_batch,
        report.load_average_start
    );
    torch_missing(args, py, torch);
    println!();
    println!(
        "Backward pass (`{}`): {}.",
        kernels::BACKWARD_VAR,
        match Backward::current() {
            Backward::Ours =>
                "our own for the ResNets (the autograd column: candle's over our kernels), candle's autograd for the others",
            Backward::Candle => "candle's autograd over our kernels",
        }
    );
    println!();
    println!(
        "| model | mode | candle img/s | ours img/s | ours / candle | PyTorch img/s | ours / PyTorch | cores busy (ours, train) | ours with candle's autograd img/s |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for name in &args.models {
        let config = ModelConfig::from_name(name, 10, 3)?;
        let candle = (!args.no_candle && CANDLE_MODELS.contains(&name.as_str()))
            .then(|| measure(&config, Backend::Candle, Backward::Candle, plan, &device))
            .transpose()?;
        let rounds = Rounds::measure(
            &config,
            Backward::current(),
            plan,
            &device,
            torch,
            py,
            args,
            report,
        )?;
        let (ours, pt) = (rounds.ours, rounds.torch);
        // Our kernels under candle's autograd too, where our own backward pass applies.
        let autograd = (Backward::current() == Backward::Ours
            && matches!(config, ModelConfig::ResNet(_)))
        .then(|| measure(&config, Backend::Ours, Backward::Candle, plan, &device))
        .transpose()?;
        for (mode, pick) in MODES {
            let (c, o, p) = (
                candle.as_ref().and_then(pick),
                pick(&ours),
                pt.as_ref().and_then(pick),
            );
            let (busy, auto) = if mode == "train" {
                (
                    cell(ours.cores_busy, 2),
                    cell(autograd.as_ref().map(|s| s.train), 1),
                )
            } else {
                (String::new(), String::new())
            };
            println!(
                "| {name} | {mode} | {} | {} | {} | {} | {} | {busy} | {auto} |",
                cell(c, 1),
                cell(o, 1),
                ratio(o, c),
                cell(p, 1),
                ratio(o, p),
            );
        }
        report.models.push(ModelRow {
            model: name.clone(),
            params: config.params(),
            flops: config.flops(),
            candle,
            ours,
            ours_autograd: autograd,
            torch: pt,
            ours_rounds: rounds.ours_rounds,
            torch_rounds: rounds.torch_rounds,
        });
    }
    torch_note(report, py);
    print_phases(report);
    Ok(())
}

/// Pruned (PFEC) models against their unpruned ones, with our kernels (candle's on a GPU): the
/// speed-up set beside the FLOPs ratio. An unpruned model the main table measured is not
/// measured again.
fn bench_pruned(args: &Args, device: &Device, report: &mut Report) -> Result<()> {
    let what = if device.is_cpu() {
        "our kernels".to_string()
    } else {
        format!("candle on {}", args.device)
    };
    println!("\nPruned (PFEC) against unpruned, {what}:\n");
    println!(
        "| model | params | FLOPs | train img/s | infer img/s | train speed-up | infer speed-up | FLOPs ratio | train speed-up / FLOPs ratio | infer speed-up / FLOPs ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let plan = Plan::of(args);
    for (name, version) in [
        ("resnet56", Some(PfecVersion::B)),
        ("resnet110", Some(PfecVersion::B)),
        ("vgg16", None),
    ] {
        let full = ModelConfig::from_name(name, 10, 3)?;
        let pruned = experiments::prune::pfec_config(&full, version)?;
        let base = match report.models.iter().find(|r| r.model == name) {
            Some(row) => row.ours,
            None => measure(&full, Backend::Ours, Backward::current(), plan, device)?,
        };
        let small = measure(&pruned, Backend::Ours, Backward::current(), plan, device)?;
        let label = match version {
            Some(v) => format!("{name}-{v}"),
            None => format!("{name} (PFEC)"),
        };
        let flops_ratio = full.flops() as f64 / pruned.flops() as f64;
        let infer_speedup = small.infer.zip(base.infer).map(|(s, b)| s / b);
        let train_speedup = small.train / base.train;
        for (label, config, s, train_up, infer_up, fr) in [
            (name.to_string(), &full, base, 1.0, Some(1.0), 1.0),
            (
                label.clone(),
                &pruned,
                small,
                train_speedup,
                infer_speedup,
                flops_ratio,
            ),
        ] {
            println!(
                "| {label} | {} | {:.1}M | {:.1} | {} | {:.2}x | {} | {:.2}x | {:.2} | {} |",
                config.params(),
                config.flops() as f64 / 1e6,
                s.train,
                cell(s.infer, 1),
                train_up,
                infer_up.map_or_else(|| "-".into(), |v| format!("{v:.2}x")),
                fr,
                train_up / fr,
                cell(infer_up.map(|v| v / fr), 2),
            );
        }
        report.pruned.push(PrunedRow {
            model: label,
            unpruned: name.to_string(),
            params: pruned.params(),
            flops: pruned.flops(),
            ours: small,
            train_speedup,
            infer_speedup,
            flops_ratio,
        });
    }
    Ok(())
}

/// Peak resident memory of a process that trains ResNet-56 at the training batch, ours and
/// PyTorch's, each in a fresh process.
fn bench_memory(args: &Args, py: &Path, torch: bool, report: &mut Report) -> Result<()> {
    let name = "resnet56";
    let plan = Plan {
        infer: false,
        ..Plan::of(args)
    };
    let ours = spawn_probe(args, name, report.threads, plan)?;
    let pt = if torch {
        let config = ModelConfig::from_name(name, 10, 3)?;
        Some(measure_torch(py, &config, report.threads, plan, &args.device)?.0)
    } else {
        None
    };
    let (o, p) = (ours.peak_rss_bytes, pt.and_then(|s| s.peak_rss_bytes));
    // Above the process's own start (the interpreter and torch's libraries for PyTorch).
    let above = |s: &Speed| {
        s.peak_rss_bytes
            .zip(s.baseline_rss_bytes)
            .map(|(a, b)| a.saturating_sub(b))
    };
    let (oa, pa) = (above(&ours), pt.as_ref().and_then(above));
    println!(
        "\nPeak resident memory of a {name} training process (batch {}, {} threads):\n",
        plan.train_batch, report.threads
    );
    println!(
        "| model | ours MiB | PyTorch MiB | ours / PyTorch | ours above start MiB | PyTorch above start MiB | ours / PyTorch |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        cell(mib(o), 0),
        cell(mib(p), 0),
        ratio(mib(o), mib(p)),
        cell(mib(oa), 0),
        cell(mib(pa), 0),
        ratio(mib(oa), mib(pa)),
    );
    report.memory = Some(Memory {
        model: name.into(),
        train_batch: plan.train_batch,
        ours_peak_rss_bytes: o,
        torch_peak_rss_bytes: p,
        ours_above_start_bytes: oa,
        torch_above_start_bytes: pa,
    });
    Ok(())
}

/// Images/s of `--scaling-model` against batch size, with 1 thread and with all of them; ours
/// in child processes (the thread count is fixed when a process starts its pools).
fn bench_scaling(args: &Args, py: &Path, torch: bool, report: &mut Report) -> Result<()> {
    let name = &args.scaling_model;
    let config = ModelConfig::from_name(name, 10, 3)?;
    let mut counts = vec![1, report.threads];
    counts.dedup();
    println!(
        "\nScaling, {name} (training and inference at the same batch size; ours in a process per cell):\n"
    );
    println!(
        "| threads | batch | ours train | PyTorch train | ours / PyTorch | ours infer | PyTorch infer | ours / PyTorch |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &threads in &counts {
        for &batch in &args.scaling_batches {
            let plan = Plan::of(args).batch(batch);
            let ours = spawn_probe(args, name, threads, plan)?;
            let pt = if torch {
                Some(measure_torch(py, &config, threads, plan, &args.device)?.0)
            } else {
                None
            };
            let (tp, ip) = (
                pt.as_ref().map(|s| s.train),
                pt.as_ref().and_then(|s| s.infer),
            );
            println!(
                "| {threads} | {batch} | {:.1} | {} | {} | {} | {} | {} |",
                ours.train,
                cell(tp, 1),
                ratio(Some(ours.train), tp),
                cell(ours.infer, 1),
                cell(ip, 1),
                ratio(ours.infer, ip),
            );
            report.scaling.push(ScalingRow {
                threads,
                batch,
                ours,
                torch: pt,
            });
        }
    }
    Ok(())
}

/// The GPU table: candle's CUDA ops (our kernels are CPU ops, so "ours" is candle there) and
/// PyTorch on the same GPU.
fn bench_gpu(
    args: &Args,
    device: &Device,
    py: &Path,
    torch: bool,
    report: &mut Report,
) -> Result<()> {
    println!(
        "{} (candle's CUDA backend, f32); {} timed iterations after {} warm-up; training batch {}, inference batch {}",
        args.device, args.iters, args.warmup, args.train_batch, args.infer_batch
    );
    println!(
        "Our kernels are CPU ops: on {} the models run candle's built-in ops, so 'candle' and 'ours' are one measurement (one column){}.",
        args.device,
        if args.no_candle {
            "; --no-candle does not apply"
        } else {
            ""
        }
    );
    torch_missing(args, py, torch);
    println!();
    println!("| model | mode | candle img/s | PyTorch img/s | candle / PyTorch |");
    println!("|---|---|---:|---:|---:|");
    let plan = Plan::of(args);
    for name in &args.models {
        let config = ModelConfig::from_name(name, 10, 3)?;
        let rounds = Rounds::measure(
            &config,
            Backward::Candle,
            plan,
            device,
            torch,
            py,
            args,
            report,
        )?;
        let (candle, pt) = (rounds.ours, rounds.torch);
        for (mode, pick) in MODES {
            let (c, p) = (pick(&candle), pt.as_ref().and_then(pick));
            println!(
                "| {name} | {mode} | {} | {} | {} |",
                cell(c, 1),
                cell(p, 1),
                ratio(c, p),
            );
        }
        report.models.push(ModelRow {
            model: name.clone(),
            params: config.params(),
            flops: config.flops(),
            candle: None,
            ours: candle,
            ours_autograd: None,
            torch: pt,
            ours_rounds: rounds.ours_rounds,
            torch_rounds: rounds.torch_rounds,
        });
    }
    if let Some(r) = &report.torch {
        println!(
            "\nPyTorch {} on {} ({}), {}, TF32 off (full f32, as candle) ({}).",
            r.version,
            args.device,
            r.device_name,
            r.memory_format,
            py.display()
        );
    }
    print_phases(report);
    Ok(())
}
