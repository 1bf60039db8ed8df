//! Helpers shared by the fuzz targets: a scratch folder for readers that only take a path, the
//! input split of two-file targets, and the small model that plans and masks are applied to.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use models::{Model, ModelConfig, ResNetConfig};

/// A folder of this process, in memory where the machine has `/dev/shm` (every execution writes
/// its input there; a disk would be the bottleneck). Emptied and reused by each call, so a long
/// run leaves one folder behind, not millions of files.
pub fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        base.join(format!("prunebench-fuzz-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("cannot create the fuzz scratch folder");
    dir.clone()
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("cannot write a fuzz input file");
    path
}

/// Splits a two-part input: a little-endian u16 length, that many bytes of the first part (fewer
/// if the input ends first), the rest the second part. `join` builds such an input.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let rest = &data[2..];
    rest.split_at(n.min(rest.len()))
}

/// The input `split` turns into `(first, second)`; `first` is cut to 65,535 bytes.
pub fn join(first: &[u8], second: &[u8]) -> Vec<u8> {
    let first = &first[..first.len().min(usize::from(u16::MAX))];
    let mut out = (first.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(first);
    out.extend_from_slice(second);
    out
}

/// The config of the small model plans and masks are applied to: ResNet-8 on one input channel
/// with 2-channel blocks, about 4,000 weights, so one execution stays well under a millisecond.
pub fn small_config() -> ModelConfig {
    ModelConfig::ResNet(ResNetConfig {
        depth: 8,
        in_channels: 1,
        num_classes: 2,
        block_widths: vec![2, 2, 2],
        detach_shortcut: false,
    })
}

/// The small model, built once per process (seed 0, CPU).
pub fn small_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::init(&small_config(), 0, &Device::Cpu).expect("the small model must build")
    })
}

/// The IDX checks shared by the raw and the gzip target.
pub mod idx {
    use std::path::{Path, PathBuf};

    use datasets::fashion::{read_images, read_labels, read_split};

    /// Reads the file `write(dir, name)` writes (the input, compressed or not, as `dir/name` or
    /// `dir/name.gz`) as an image file and as a label file, then as the images of a `train`
    /// split beside a labels file that matches their count.
    pub fn check(dir: &Path, write: impl Fn(&Path, &str) -> PathBuf) {
        let path = write(dir, "train-images-idx3-ubyte");
        let images = read_images(&path);
        let _ = read_labels(&path, 10);
        if let Ok((n, 28, 28, _)) = images {
            // n is bounded by the input's size here: the reader checked 16 + n * 784 bytes.
            let mut labels = Vec::with_capacity(8 + n);
            labels.extend_from_slice(&0x0000_0801u32.to_be_bytes());
            labels.extend_from_slice(&(n as u32).to_be_bytes());
            labels.resize(8 + n, 0);
            crate::put(dir, "train-labels-idx1-ubyte", &labels);
            let _ = read_split(dir, "train");
        }
    }
}
