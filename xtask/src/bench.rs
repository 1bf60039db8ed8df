//! `cargo xtask bench`: training and inference images/s of CIFAR ResNet-20/56 with candle's
//! built-in ops, with our kernels (`kernels` crate) and with PyTorch (when a Python with torch is
//! found), side by side in one run; then pruned models against their unpruned ones (speed-up
//! against FLOPs ratio). Prints Markdown tables.
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
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, ModuleT, Tensor};
use kernels::{Backend, with_backend};
use models::{Model, ModelConfig};
use prune_core::PfecVersion;
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
    /// Training batch size.
    #[arg(long, default_value_t = 64)]
    train_batch: usize,
    /// Inference batch size.
    #[arg(long, default_value_t = 256)]
    infer_batch: usize,
    /// The Python that runs xtask/bench/torch_bench.py (else $PRUNEBENCH_PYTHON, else python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip PyTorch.
    #[arg(long)]
    no_torch: bool,
    /// Skip candle's built-in ops (the slowest part of the run).
    #[arg(long)]
    no_candle: bool,
    /// Skip the pruned-model table.
    #[arg(long)]
    no_pruned: bool,
    /// cpu (candle's ops against our kernels), or cuda / cuda:N (candle's CUDA backend, which
    /// needs xtask built with --features cuda; see docs/cuda.md). PyTorch runs on the same device.
    #[arg(long, value_name = "cpu|cuda|cuda:N", default_value = "cpu")]
    device: DeviceSpec,
    /// Measure in this process even when it is a debug build (by default a debug build re-runs
    /// the benchmark as `cargo run --release`: dependencies are optimised in dev builds too, but
    /// keep their debug assertions, which slow candle's ops several times over).
    #[arg(long)]
    here: bool,
}

/// Images per second of a training step and of inference, and the CPU time used per wall second.
#[derive(Clone, Copy, Debug)]
struct Speed {
    train: f64,
    infer: f64,
    /// Process CPU seconds per wall-clock second over the timed training steps (2.0 = two busy
    /// cores); None where /proc is unavailable.
    cores_busy: Option<f64>,
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let v: Vec<&str> = s.split_whitespace().take(3).collect();
            (v.len() == 3).then(|| v.join(" "))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Times `config` on `device`. The backend matters on the CPU only: `kernels::use_ours` is false
/// for other devices, so there both backends run candle's ops.
fn measure(config: &ModelConfig, backend: Backend, args: &Args, device: &Device) -> Result<Speed> {
    with_backend(backend, || -> Result<Speed> {
        let model = Model::init(config, 1, device)?;
        let mut sgd = Sgd::new(model.trainable_vars(), SgdConfig::default())?;
        let c = config.in_channels();
        let x = Tensor::randn(0f32, 1.0, (args.train_batch, c, 32, 32), device)?;
        let classes = config.num_classes() as u32;
        let labels: Vec<u32> = (0..args.train_batch as u32).map(|i| i % classes).collect();
        let y = Tensor::from_vec(labels, args.train_batch, device)?;
        let mut step = || -> Result<()> {
            let logits = model.forward_t(&x, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            sgd.step(&loss.backward()?, 0.01, None)?;
            Ok(())
        };
        for _ in 0..args.warmup {
            step()?;
        }
        // A GPU runs the queued steps after the calls return: wait for them around the clock.
        device.synchronize()?;
        let (t, cpu0) = (Instant::now(), cpu_seconds());
        for _ in 0..args.iters {
            step()?;
        }
        device.synchronize()?;
        let wall = t.elapsed().as_secs_f64();
        let cores_busy = if device.is_cpu() {
            cpu0.zip(cpu_seconds()).map(|(a, b)| (b - a) / wall)
        } else {
            None
        };
        let train = (args.iters * args.train_batch) as f64 / wall;

        let xi = Tensor::randn(0f32, 1.0, (args.infer_batch, c, 32, 32), device)?;
        let infer = || -> Result<f32> {
            Ok(model
                .forward_t(&xi, false)?
                .to_dtype(DType::F32)?
                .sum_all()?
                .to_scalar::<f32>()?)
        };
        // `to_scalar` copies the result back, which waits for the GPU.
        for _ in 0..args.warmup {
            infer()?;
        }
        device.synchronize()?;
        let t = Instant::now();
        for _ in 0..args.iters {
            infer()?;
        }
        let infer = (args.iters * args.infer_batch) as f64 / t.elapsed().as_secs_f64();
        Ok(Speed {
            train,
            infer,
            cores_busy,
        })
    })
}

fn python(args: &Args) -> PathBuf {
    args.python
        .clone()
        .or_else(|| std::env::var_os("PRUNEBENCH_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Whether `python -c "import torch"` works.
fn torch_available(python: &PathBuf) -> bool {
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
struct TorchRun {
    version: String,
    /// channels_last (CPU) or contiguous (CUDA).
    memory_format: String,
    /// `cpu`, or the GPU's name.
    device_name: String,
}

/// PyTorch's speed on `model` when `torch` is available (keeping the run's description in
/// `last`), else None.
fn torch_speed(
    torch: bool,
    python: &PathBuf,
    model: &str,
    args: &Args,
    last: &mut Option<TorchRun>,
) -> Result<Option<Speed>> {
    if !torch {
        return Ok(None);
    }
    let (speed, run) = measure_torch(python, model, args)?;
    *last = Some(run);
    Ok(Some(speed))
}

fn measure_torch(python: &PathBuf, model: &str, args: &Args) -> Result<(Speed, TorchRun)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new(python)
        .arg(torch_script())
        .args(["--models", model])
        .args(["--iters", &args.iters.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--train-batch", &args.train_batch.to_string()])
        .args(["--infer-batch", &args.infer_batch.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--device", &args.device.to_string()])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "torch_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .context("torch_bench.py printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(line).context("torch_bench.py output")?;
    let num = |k: &str| v[k].as_f64().with_context(|| format!("{k} in {line}"));
    let text = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    Ok((
        Speed {
            train: num("train_images_per_sec")?,
            infer: num("inference_images_per_sec")?,
            cores_busy: None,
        },
        TorchRun {
            version: text("torch"),
            memory_format: text("memory_format"),
            device_name: text("device_name"),
        },
    ))
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

/// Reads one mode's number (training or inference) from a measurement.
type Pick = fn(&Speed) -> f64;

/// The two rows of a model: training and inference.
const MODES: [(&str, Pick); 2] = [
    ("train", |s: &Speed| s.train),
    ("infer", |s: &Speed| s.infer),
];

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
    if args.iters == 0 || args.train_batch < 2 || args.infer_batch == 0 {
        bail!("--iters must be >= 1, --train-batch >= 2 (BatchNorm), --infer-batch >= 1");
    }
    let py = python(&args);
    let torch = !args.no_torch && torch_available(&py);
    if device.is_cpu() {
        bench_cpu(&args, &py, torch)?;
    } else {
        bench_gpu(&args, &device, &py, torch)?;
    }
    if args.no_pruned {
        return Ok(());
    }
    let what = if device.is_cpu() {
        "our kernels".to_string()
    } else {
        format!("candle on {}", args.device)
    };
    println!("\nPruned (PFEC) against unpruned, {what}:\n");
    println!(
        "| model | params | FLOPs | train img/s | infer img/s | train speed-up | infer speed-up | FLOPs ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, version) in [("resnet56", Some(PfecVersion::B)), ("vgg16", None)] {
        let full = ModelConfig::from_name(name, 10, 3)?;
        let pruned = experiments::prune::pfec_config(&full, version)?;
        let base = measure(&full, Backend::Ours, &args, &device)?;
        let small = measure(&pruned, Backend::Ours, &args, &device)?;
        let label = match version {
            Some(v) => format!("{name}-{v}"),
            None => format!("{name} (PFEC)"),
        };
        for (label, config, s) in [(name.to_string(), &full, base), (label, &pruned, small)] {
            println!(
                "| {label} | {} | {:.1}M | {:.1} | {:.1} | {:.2}x | {:.2}x | {:.2}x |",
                config.params(),
                config.flops() as f64 / 1e6,
                s.train,
                s.infer,
                s.train / base.train,
                s.infer / base.infer,
                full.flops() as f64 / config.flops() as f64,
            );
        }
    }
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

/// The CPU table: candle's built-in ops, our kernels and PyTorch.
fn bench_cpu(args: &Args, py: &PathBuf, torch: bool) -> Result<()> {
    let device = Device::Cpu;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "CPU, {threads} threads; {} timed iterations after {} warm-up; training batch {}, inference batch {}; load average at start: {}",
        args.iters,
        args.warmup,
        args.train_batch,
        args.infer_batch,
        load_average()
    );
    torch_missing(args, py, torch);
    println!();
    println!(
        "| model | mode | candle img/s | ours img/s | ours / candle | PyTorch img/s | ours / PyTorch | cores busy (ours, train) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let mut torch_run = None;
    for name in ["resnet20", "resnet56"] {
        let config = ModelConfig::from_name(name, 10, 3)?;
        let candle = (!args.no_candle)
            .then(|| measure(&config, Backend::Candle, args, &device))
            .transpose()?;
        let ours = measure(&config, Backend::Ours, args, &device)?;
        let pt = torch_speed(torch, py, name, args, &mut torch_run)?;
        for (mode, pick) in MODES {
            let (c, o, p) = (
                candle.as_ref().map(pick),
                Some(pick(&ours)),
                pt.as_ref().map(pick),
            );
            let busy = if mode == "train" {
                cell(ours.cores_busy, 2)
            } else {
                String::new()
            };
            println!(
                "| {name} | {mode} | {} | {} | {} | {} | {} | {busy} |",
                cell(c, 1),
                cell(o, 1),
                ratio(o, c),
                cell(p, 1),
                ratio(o, p),
            );
        }
    }
    if let Some(r) = torch_run {
        println!(
            "\nPyTorch {}, {}, {threads} threads ({}).",
            r.version,
            r.memory_format,
            py.display()
        );
    }
    println!("\nload average at end: {}", load_average());
    Ok(())
}

/// The GPU table: candle's CUDA ops (our kernels are CPU ops, so "ours" is candle there) and
/// PyTorch on the same GPU.
fn bench_gpu(args: &Args, device: &Device, py: &PathBuf, torch: bool) -> Result<()> {
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
    let mut torch_run = None;
    for name in ["resnet20", "resnet56"] {
        let config = ModelConfig::from_name(name, 10, 3)?;
        let candle = measure(&config, Backend::Ours, args, device)?;
        let pt = torch_speed(torch, py, name, args, &mut torch_run)?;
        for (mode, pick) in MODES {
            let (c, p) = (Some(pick(&candle)), pt.as_ref().map(pick));
            println!(
                "| {name} | {mode} | {} | {} | {} |",
                cell(c, 1),
                cell(p, 1),
                ratio(c, p),
            );
        }
    }
    if let Some(r) = torch_run {
        println!(
            "\nPyTorch {} on {} ({}), {}, TF32 off (full f32, as candle) ({}).",
            r.version,
            args.device,
            r.device_name,
            r.memory_format,
            py.display()
        );
    }
    Ok(())
}
