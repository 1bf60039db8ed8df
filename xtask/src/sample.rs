//! `cargo xtask make-sample`: the bundled Fashion-MNIST sample in `data/sample/fashion-mnist/`.
//!
//! Deterministic and class-balanced without any randomness: the first `per_class` images of each
//! class, in file order, from the real dataset (Debian's `dataset-fashion-mnist`), kept in file
//! order and written in the original gzipped IDX format.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use datasets::fashion;

#[derive(clap::Args)]
pub struct Args {
    /// The folder with the full dataset's IDX files.
    #[arg(long, default_value = fashion::DEBIAN_DIR)]
    from: PathBuf,
    /// Where to write the sample.
    #[arg(long, default_value = "data/sample/fashion-mnist")]
    out: PathBuf,
    /// Training images per class.
    #[arg(long, default_value_t = 500)]
    train_per_class: usize,
    /// Test images per class.
    #[arg(long, default_value_t = 100)]
    test_per_class: usize,
}

pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for (prefix, per_class) in [
        ("train", args.train_per_class),
        ("t10k", args.test_per_class),
    ] {
        let (images, labels) = balanced(&args.from, prefix, per_class)?;
        fashion::write_split(&args.out, prefix, &images, &labels)?;
        println!(
            "{prefix}: {} images ({per_class} per class) -> {}",
            labels.len(),
            args.out.display()
        );
    }
    Ok(())
}

fn balanced(dir: &Path, prefix: &str, per_class: usize) -> Result<(Vec<u8>, Vec<u8>)> {
    let (img_name, lbl_name) = fashion::files(prefix);
    let (n, rows, cols, pixels) = fashion::read_images(&dir.join(img_name))?;
    let labels = fashion::read_labels(&dir.join(lbl_name), 10)?;
    let size = rows * cols;
    let mut taken = [0usize; 10];
    let (mut out_px, mut out_lbl) = (Vec::new(), Vec::new());
    for i in 0..n {
        let l = usize::from(labels[i]);
        if taken[l] < per_class {
            taken[l] += 1;
            out_px.extend_from_slice(&pixels[i * size..(i + 1) * size]);
            out_lbl.push(labels[i] as u8);
        }
    }
    if let Some(c) = taken.iter().position(|&t| t < per_class) {
        bail!(
            "{prefix}: class {c} has only {} images, {per_class} wanted",
            taken[c]
        );
    }
    Ok((out_px, out_lbl))
}
