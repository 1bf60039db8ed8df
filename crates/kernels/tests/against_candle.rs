//! Our kernels against candle's built-in ops (values and gradients, f32 and f64) and against
//! finite differences (f64), on the odd shapes pruning leaves: one channel, widths that are no
//! multiple of 16, stride 2, padding 0 and 1, batch 1, 1x1 convs; each on every [`Isa`] path
//! this CPU runs.

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::BatchNorm;
use kernels::{BatchNormConfig, Isa, batch_norm_eval, batch_norm_train, conv2d, with_isa};

/// The paths to compare on this CPU, narrowest first; says on stderr which it lacks, so that a
/// pass here is not read as a check of those.
fn paths(test: &str) -> Vec<Isa> {
    let (run, missing): (Vec<Isa>, Vec<Isa>) = Isa::ALL.into_iter().partition(|i| i.supported());
    if !missing.is_empty() {
        eprintln!("{test}: this CPU lacks {missing:?}: only {run:?} checked");
    }
    run
}

/// (batch, in channels, height, width, out channels, kernel, stride, padding)
type ConvShape = (usize, usize, usize, usize, usize, usize, usize, usize);

const CONV_SHAPES: &[ConvShape] = &[
    (1, 1, 5, 5, 1, 3, 1, 1),
    (2, 3, 7, 9, 5, 3, 2, 1),
    (3, 13, 8, 8, 17, 3, 1, 1),
    (2, 6, 9, 7, 11, 1, 1, 0),
    (2, 6, 9, 7, 11, 1, 2, 0),
    (1, 4, 6, 6, 3, 3, 2, 0),
    (2, 5, 4, 4, 7, 3, 1, 0),
    (5, 16, 16, 16, 10, 3, 1, 1),
    (17, 9, 8, 8, 24, 3, 2, 1),
    // Wide enough for the windowed (im2col-free) GEMM on AVX-512 CPUs: no padding, and a 5x5
    // kernel on an odd-sized image.
    (2, 3, 12, 13, 9, 3, 1, 0),
    (2, 4, 11, 10, 13, 5, 1, 2),
    // On AVX-512, 8x8 maps with 16 input channels (k = 144): the forward and the flipped input
    // gradient go through stacks of images side by side (`Stacks`, 9 images as 4 + 4 + 1 and three zero
    // images), the weight gradient through im2row; with stride 2 (k = 108 on 5x5 outputs),
    // image groups (`forward_grouped`, one group of 9) and padding at the border; a 1x1 conv
    // with 100 input channels, im2row unpadded.
    (9, 16, 8, 8, 12, 3, 1, 1),
    (9, 12, 9, 9, 10, 3, 2, 1),
    (5, 100, 6, 6, 8, 1, 1, 0),
    // 32 output channels or more: on AVX-512 the weight gradient is vectorised over them
    // (`window_grads`), 35 of them in 48 lanes (three vectors), 80 as 4 + 1 vectors, and a
    // stride-2 one through phase planes with 64 (four).
    (5, 7, 9, 9, 35, 3, 1, 1),
    (2, 3, 6, 6, 80, 3, 1, 1),
    (3, 6, 10, 10, 64, 3, 2, 1),
];

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let b = b.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .max(1e-12);
    let diff = (a - b).unwrap().abs().unwrap().max(0).unwrap();
    diff.to_scalar::<f64>().unwrap() / scale
}

fn randn(shape: &[usize], dtype: DType, seed: u64) -> Tensor {
    // A cheap deterministic generator: the tests must not depend on candle's global RNG.
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// Output, input gradient and weight gradient of `sum(conv(x, w) * r)`.
fn conv_run(
    x: &Var,
    w: &Var,
    r: &Tensor,
    stride: usize,
    pad: usize,
    ours: bool,
) -> (Tensor, Tensor, Tensor) {
    let y = if ours {
        conv2d(x.as_tensor(), w.as_tensor(), stride, pad).unwrap()
    } else {
        x.as_tensor()
            .conv2d(w.as_tensor(), pad, stride, 1, 1)
            .unwrap()
    };
    let g = (&y * r).unwrap().sum_all().unwrap().backward().unwrap();
    (
        y,
        g.get(x.as_tensor()).unwrap().clone(),
        g.get(w.as_tensor()).unwrap().clone(),
    )
}

#[test]
fn conv_matches_candle_values_and_gradients() {
    for isa in paths("conv against candle") {
        with_isa(isa, || conv_matches_candle(isa));
    }
}

fn conv_matches_candle(isa: Isa) {
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 2e-5 } else { 1e-12 };
        for (i, &(b, cin, h, w, cout, k, stride, pad)) in CONV_SHAPES.iter().enumerate() {
            let x = Var::from_tensor(&randn(&[b, cin, h, w], dtype, i as u64)).unwrap();
            let wt = Var::from_tensor(&randn(&[cout, cin, k, k], dtype, 100 + i as u64)).unwrap();
            let y_shape = x
                .as_tensor()
                .conv2d(wt.as_tensor(), pad, stride, 1, 1)
                .unwrap();
            let r = randn(y_shape.dims(), dtype, 200 + i as u64);
            let ours = conv_run(&x, &wt, &r, stride, pad, true);
            let theirs = conv_run(&x, &wt, &r, stride, pad, false);
            for (what, a, b) in [
                ("output", &ours.0, &theirs.0),
                ("input grad", &ours.1, &theirs.1),
                ("weight grad", &ours.2, &theirs.2),
            ] {
                let d = max_rel_diff(a, b);
                assert!(d < tol, "{isa} {dtype:?} shape #{i} {what}: rel diff {d}");
            }
        }
    }
}

/// Checks `<grad, v>` against the central difference of `loss` along `v`, for each input.
fn check_directional(
    loss: &dyn Fn(&[Tensor]) -> f64,
    inputs: &[Tensor],
    grads: &[Tensor],
    what: &str,
) {
    let h = 1e-6;
    for k in 0..inputs.len() {
        let v = randn(inputs[k].dims(), DType::F64, 999 + k as u64);
        let shifted = |s: f64| {
            let mut xs = inputs.to_vec();
            xs[k] = (&inputs[k] + (&v * s).unwrap()).unwrap();
            loss(&xs)
        };
        let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
        let an = (&grads[k] * &v)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(
            (fd - an).abs() <= 1e-6 * (1.0 + an.abs()),
            "{what} input {k}: finite difference {fd}, analytic {an}"
        );
    }
}

#[test]
fn conv_gradients_match_finite_differences() {
    for (i, &(b, cin, h, w, cout, k, stride, pad)) in CONV_SHAPES.iter().take(7).enumerate() {
        let x = randn(&[b, cin, h, w], DType::F64, i as u64);
        let wt = randn(&[cout, cin, k, k], DType::F64, 50 + i as u64);
        let y = conv2d(&x, &wt, stride, pad).unwrap();
        let r = randn(y.dims(), DType::F64, 70 + i as u64);
        let loss = |xs: &[Tensor]| {
            (conv2d(&xs[0], &xs[1], stride, pad).unwrap() * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let (xv, wv) = (
            Var::from_tensor(&x).unwrap(),
            Var::from_tensor(&wt).unwrap(),
        );
        let (_, gx, gw) = conv_run(&xv, &wv, &r, stride, pad, true);
        check_directional(&loss, &[x, wt], &[gx, gw], &format!("conv shape #{i}"));
    }
}

/// (shape, relu): BatchNorm2d and BatchNorm1d inputs, odd channel counts, batch 1 with space.
const BN_SHAPES: &[(&[usize], bool)] = &[
    (&[4, 3, 5, 5], false),
    (&[4, 3, 5, 5], true),
    (&[1, 7, 3, 4], true),
    (&[2, 1, 8, 8], false),
    (&[16, 10], false),
    (&[4, 512], true),
    (&[9, 33, 2, 2], true),
    (&[64, 16, 8, 8], true),
];

fn bn_params(c: usize, dtype: DType, seed: u64) -> (Var, Var, Tensor, Tensor) {
    let gamma = (randn(&[c], dtype, seed) + 1.5).unwrap();
    let beta = randn(&[c], dtype, seed + 1);
    let rm = randn(&[c], dtype, seed + 2);
    let rv = (randn(&[c], dtype, seed + 3).abs().unwrap() + 0.5).unwrap();
    (
        Var::from_tensor(&gamma).unwrap(),
        Var::from_tensor(&beta).unwrap(),
        rm,
        rv,
    )
}

#[test]
fn batch_norm_matches_candle_in_training_and_evaluation() {
    for isa in paths("batch norm against candle") {
        with_isa(isa, || batch_norm_matches_candle(isa));
    }
}

fn batch_norm_matches_candle(isa: Isa) {
    for dtype in [DType::F32, DType::F64] {
        let tol = if dtype == DType::F32 { 5e-5 } else { 1e-10 };
        for (i, &(shape, relu)) in BN_SHAPES.iter().enumerate() {
            let c = shape[1];
            let (gamma, beta, rm, rv) = bn_params(c, dtype, 10 * i as u64);
            let x = Var::from_tensor(&(randn(shape, dtype, i as u64).affine(3.0, 0.7)).unwrap())
                .unwrap();
            let r = randn(shape, dtype, 300 + i as u64);
            for train in [true, false] {
                // Each side gets its own copies of the running statistics.
                let ours_rm = Var::from_tensor(&rm.copy().unwrap()).unwrap();
                let ours_rv = Var::from_tensor(&rv.copy().unwrap()).unwrap();
                let config = BatchNormConfig {
                    relu,
                    ..Default::default()
                };
                let y_ours = if train {
                    batch_norm_train(
                        x.as_tensor(),
                        gamma.as_tensor(),
                        beta.as_tensor(),
                        &ours_rm,
                        &ours_rv,
                        config,
                    )
                } else {
                    batch_norm_eval(
                        x.as_tensor(),
                        gamma.as_tensor(),
                        beta.as_tensor(),
                        ours_rm.as_tensor(),
                        ours_rv.as_tensor(),
                        config,
                    )
                }
                .unwrap();
                let candle_bn = BatchNorm::new_with_momentum(
                    c,
                    rm.copy().unwrap(),
                    rv.copy().unwrap(),
                    gamma.as_tensor().clone(),
                    beta.as_tensor().clone(),
                    1e-5,
                    0.1,
                )
                .unwrap();
                let mut y_theirs = candle_bn.forward_t(x.as_tensor(), train).unwrap();
                if relu {
                    y_theirs = y_theirs.relu().unwrap();
                }
                let what = format!("{isa} {dtype:?} {shape:?} relu {relu} train {train}");
                assert!(max_rel_diff(&y_ours, &y_theirs) < tol, "{what}: output");
                assert!(
                    max_rel_diff(ours_rm.as_tensor(), candle_bn.running_mean()) < tol,
                    "{what}: running mean"
                );
                assert!(
                    max_rel_diff(ours_rv.as_tensor(), candle_bn.running_var()) < tol,
                    "{what}: running var"
                );
                let g_ours = (&y_ours * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let g_theirs = (&y_theirs * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                for v in [&x, &gamma, &beta] {
                    let d = max_rel_diff(
                        g_ours.get(v.as_tensor()).unwrap(),
                        g_theirs.get(v.as_tensor()).unwrap(),
                    );
                    assert!(d < tol, "{what}: gradient rel diff {d}");
                }
                assert!(
                    g_ours.get(ours_rm.as_tensor()).is_none(),
                    "running stats get no gradient"
                );
            }
        }
    }
}

#[test]
fn batch_norm_gradients_match_finite_differences() {
    for (i, &(shape, relu)) in BN_SHAPES.iter().take(6).enumerate() {
        let c = shape[1];
        let (gamma, beta, rm, rv) = bn_params(c, DType::F64, 20 * i as u64);
        let x = (randn(shape, DType::F64, 40 + i as u64) * 2.0).unwrap();
        let r = randn(shape, DType::F64, 60 + i as u64);
        for train in [true, false] {
            let config = BatchNormConfig {
                relu,
                ..Default::default()
            };
            let forward = |xs: &[Tensor]| {
                let (m, v) = (
                    Var::from_tensor(&rm.copy().unwrap()).unwrap(),
                    Var::from_tensor(&rv.copy().unwrap()).unwrap(),
                );
                if train {
                    batch_norm_train(&xs[0], &xs[1], &xs[2], &m, &v, config).unwrap()
                } else {
                    batch_norm_eval(&xs[0], &xs[1], &xs[2], &rm, &rv, config).unwrap()
                }
            };
            let loss = |xs: &[Tensor]| {
                (forward(xs) * &r)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let xv = Var::from_tensor(&x).unwrap();
            let inputs = [
                xv.as_tensor().clone(),
                gamma.as_tensor().clone(),
                beta.as_tensor().clone(),
            ];
            let g = (forward(&inputs) * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grads: Vec<Tensor> = inputs.iter().map(|t| g.get(t).unwrap().clone()).collect();
            let plain: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
            check_directional(
                &loss,
                &plain,
                &grads,
                &format!("bn {shape:?} relu {relu} train {train}"),
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // 10x10 images: wide enough for the windowed GEMM on AVX-512, so every path is checked;
    // 8x8 with 16 channels: stacks of images and the im2row weight gradient.
    for isa in paths("thread count") {
        same_bits_on_1_and_3_threads(isa, 12, 10, 20);
        same_bits_on_1_and_3_threads(isa, 16, 8, 20);
        // 40 output channels: the weight gradient vectorised over them.
        same_bits_on_1_and_3_threads(isa, 16, 8, 40);
    }
}

fn same_bits_on_1_and_3_threads(isa: Isa, cin: usize, hw: usize, cout: usize) {
    let x = Var::from_tensor(&randn(&[19, cin, hw, hw], DType::F32, 1)).unwrap();
    let w = Var::from_tensor(&randn(&[cout, cin, 3, 3], DType::F32, 2)).unwrap();
    let (gamma, beta, rm, rv) = bn_params(cout, DType::F32, 3);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // `install` runs the closure on a pool thread, where no ceiling is set: set it there,
        // where the ops are recorded (they carry it to the threads they run on).
        pool.install(|| {
            with_isa(isa, || {
                let (m, v) = (
                    Var::from_tensor(&rm.copy().unwrap()).unwrap(),
                    Var::from_tensor(&rv.copy().unwrap()).unwrap(),
                );
                let y = conv2d(x.as_tensor(), w.as_tensor(), 1, 1).unwrap();
                let config = BatchNormConfig {
                    relu: true,
                    ..Default::default()
                };
                let z = batch_norm_train(&y, gamma.as_tensor(), beta.as_tensor(), &m, &v, config)
                    .unwrap();
                let g = z.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                [
                    z,
                    g.get(x.as_tensor()).unwrap().clone(),
                    g.get(w.as_tensor()).unwrap().clone(),
                    g.get(gamma.as_tensor()).unwrap().clone(),
                    m.as_tensor().clone(),
                    v.as_tensor().clone(),
                ]
                .map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            })
        })
    };
    let one = run(1);
    assert_eq!(one, run(3), "{isa}: bitwise equal on 1 and 3 threads");
    assert_eq!(one, run(1), "{isa}: and from run to run");
}

#[test]
fn conv_agrees_with_candle_nn_conv2d_module() {
    // The models used candle_nn::Conv2d: same argument order (stride, padding) as its config.
    let x = randn(&[2, 3, 6, 6], DType::F32, 5);
    let w = randn(&[4, 3, 3, 3], DType::F32, 6);
    let conv = candle_nn::Conv2d::new(
        w.clone(),
        None,
        candle_nn::Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        },
    );
    let d = max_rel_diff(&conv2d(&x, &w, 2, 1).unwrap(), &conv.forward(&x).unwrap());
    assert!(d < 2e-5, "{d}");
}

#[test]
fn add_relu_matches_candle_values_and_gradients() {
    for isa in paths("add_relu against candle") {
        with_isa(isa, || add_relu_matches_candle(isa));
    }
}

fn add_relu_matches_candle(isa: Isa) {
    for (i, shape) in [&[3usize, 5, 7, 7][..], &[1, 1, 2, 3], &[2, 40000]]
        .iter()
        .enumerate()
    {
        let a = Var::from_tensor(&randn(shape, DType::F32, i as u64)).unwrap();
        let b = Var::from_tensor(&randn(shape, DType::F32, 10 + i as u64)).unwrap();
        let r = randn(shape, DType::F32, 20 + i as u64);
        let ours = kernels::add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let theirs = (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap();
        assert_eq!(max_rel_diff(&ours, &theirs), 0.0);
        let go = (&ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gt = (&theirs * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&a, &b] {
            let d = max_rel_diff(
                go.get(v.as_tensor()).unwrap(),
                gt.get(v.as_tensor()).unwrap(),
            );
            assert_eq!(d, 0.0, "{isa} shape {shape:?}");
        }
    }
}

#[test]
fn gradients_reach_only_what_tracks_them() {
    // A plain input (the images) gets no gradient; the weight still does, and the same as when
    // the input is a variable.
    let x = randn(&[2, 3, 8, 8], DType::F32, 1);
    let w = Var::from_tensor(&randn(&[4, 3, 3, 3], DType::F32, 2)).unwrap();
    let g = conv2d(&x, w.as_tensor(), 1, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&x).is_none());
    let xv = Var::from_tensor(&x).unwrap();
    let gv = conv2d(xv.as_tensor(), w.as_tensor(), 1, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(gv.get(xv.as_tensor()).is_some());
    assert_eq!(
        max_rel_diff(
            g.get(w.as_tensor()).unwrap(),
            gv.get(w.as_tensor()).unwrap()
        ),
        0.0
    );
}

/// Every output and gradient of BatchNorm (training and evaluation, with and without the ReLU)
/// and of `add_relu`, as bits, on path `isa`.
fn elementwise_bits(isa: Isa, shape: &[usize], seed: u64) -> Vec<Vec<u64>> {
    with_isa(isa, || {
        let mut out = Vec::new();
        let bits = |t: &Tensor| -> Vec<u64> {
            let t = t.flatten_all().unwrap();
            match t.dtype() {
                DType::F32 => t
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| u64::from(v.to_bits()))
                    .collect(),
                _ => t
                    .to_vec1::<f64>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            }
        };
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(&randn(shape, dtype, seed)).unwrap();
            let r = randn(shape, dtype, seed + 1);
            for relu in [false, true] {
                let config = BatchNormConfig {
                    relu,
                    ..Default::default()
                };
                let (gamma, beta, rm, rv) = bn_params(shape[1], dtype, seed + 2);
                let m = Var::from_tensor(&rm.copy().unwrap()).unwrap();
                let v = Var::from_tensor(&rv.copy().unwrap()).unwrap();
                let (g, b) = (gamma.as_tensor(), beta.as_tensor());
                for y in [
                    batch_norm_train(x.as_tensor(), g, b, &m, &v, config).unwrap(),
                    batch_norm_eval(x.as_tensor(), g, b, &rm, &rv, config).unwrap(),
                ] {
                    let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
                    out.push(bits(&y));
                    for t in [x.as_tensor(), g, b] {
                        out.push(bits(grads.get(t).unwrap()));
                    }
                }
                out.push(bits(m.as_tensor()));
                out.push(bits(v.as_tensor()));
            }
            let b = Var::from_tensor(&randn(shape, dtype, seed + 3)).unwrap();
            let y = kernels::add_relu(x.as_tensor(), b.as_tensor()).unwrap();
            let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            out.push(bits(&y));
            out.push(bits(grads.get(x.as_tensor()).unwrap()));
        }
        out
    })
}

#[test]
fn avx2_and_avx512_copies_give_the_bits_of_the_portable_code() {
    if !Isa::Avx2.supported() {
        eprintln!("no AVX2 + FMA on this CPU: the AVX2 copies NOT compared (only portable ran)");
    }
    // Planes of every length 1..=33 (each tail of 8- and 16-wide vectors, in BatchNorm's
    // per-plane loops and sums) and longer ones, odd channel counts, and a BatchNorm1d input.
    let mut shapes: Vec<Vec<usize>> = (1..=33).map(|hw| vec![2, 3, 1, hw]).collect();
    shapes.extend([
        vec![3, 5, 7, 9],
        vec![2, 4, 32, 33],
        vec![33, 7],
        vec![1, 2, 20001],
    ]);
    for (i, shape) in shapes.iter().enumerate() {
        let portable = elementwise_bits(Isa::Portable, shape, 500 + i as u64);
        if Isa::Avx2.supported() {
            let avx2 = elementwise_bits(Isa::Avx2, shape, 500 + i as u64);
            assert!(
                portable == avx2,
                "shape {shape:?}: AVX2 and portable bits differ"
            );
        }
        if Isa::Avx512.supported() {
            let avx512 = elementwise_bits(Isa::Avx512, shape, 500 + i as u64);
            assert!(
                portable == avx512,
                "shape {shape:?}: AVX-512 and portable bits differ"
            );
        }
    }
}

/// The fused forward pass (`raw::ConvShape::forward_fused`) against the plain one followed by
/// the epilogue written out, `relu(conv + bias + residual)` in that order: equal bit for bit on
/// every shape and path (the epilogue is applied as the plain pass copies its output out, so
/// it must not change a value), with each part alone and all together.
#[test]
fn fused_forward_is_the_forward_then_its_epilogue() {
    use kernels::raw::{ConvShape as Shape, Epilogue};
    let f32s = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    for isa in paths("fused forward") {
        with_isa(isa, || {
            for (i, &(b, cin, h, w, cout, k, stride, pad)) in CONV_SHAPES.iter().enumerate() {
                let shape = Shape::new([b, cin, h, w], [cout, cin, k, k], stride, pad).unwrap();
                let x = f32s(&randn(&[b, cin, h, w], DType::F32, i as u64));
                let wt = f32s(&randn(&[cout, cin, k, k], DType::F32, 40 + i as u64));
                let mut plain = vec![0f32; shape.output_dims().iter().product()];
                shape.forward(&x, &wt, &mut plain).unwrap();
                let bias = f32s(&randn(&[cout], DType::F32, 80 + i as u64));
                let res = f32s(&randn(&shape.output_dims(), DType::F32, 90 + i as u64));
                let plane = plain.len() / (b * cout);
                for (use_bias, use_res, relu) in [
                    (true, false, false),
                    (false, true, false),
                    (false, false, true),
                    (true, true, true),
                ] {
                    let want: Vec<f32> = plain
                        .iter()
                        .enumerate()
                        .map(|(j, &v)| {
                            let mut s = v;
                            if use_bias {
                                s += bias[(j / plane) % cout];
                            }
                            if use_res {
                                s += res[j];
                            }
                            if relu && s <= 0.0 { 0.0 } else { s }
                        })
                        .collect();
                    let epilogue = Epilogue {
                        bias: use_bias.then_some(&bias[..]),
                        residual: use_res.then_some(&res[..]),
                        relu,
                    };
                    let mut got = vec![f32::NAN; plain.len()];
                    shape.forward_fused(&x, &wt, epilogue, &mut got).unwrap();
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{isa:?} shape #{i} bias {use_bias} residual {use_res} relu {relu}"
                    );
                }
                // A bias of the wrong length is an error, not a panic.
                let short = Epilogue {
                    bias: Some(&bias[..cout - 1]),
                    ..Default::default()
                };
                let mut out = vec![0f32; plain.len()];
                assert!(shape.forward_fused(&x, &wt, short, &mut out).is_err());
            }
        });
    }
}

/// The fused steps of a residual block's training step against the unfused ones they
/// replace, bit for bit on every path: BatchNorm, add and ReLU as one forward pass
/// (`batch_norm_train_add_relu_into` against `batch_norm_train_into` then `add_relu_into`),
/// the closing ReLU's backward pass folded into the
/// BatchNorm's (`backward_after_relu` against `relu_grad_into` then `backward`), and the
/// shortcut's gradient added as the first conv's input gradient is written (`input_grad_plus`
/// against `input_grad` then `+=`), at stride 1 (fused) and stride 2 (added after).
#[test]
fn fused_backward_steps_are_the_unfused_ones() {
    use kernels::raw::{
        ConvShape as Shape, add_relu_into, batch_norm_train_add_relu_into, batch_norm_train_into,
        relu_grad_into,
    };
    let f32s = |shape: &[usize], seed: u64| {
        randn(shape, DType::F32, seed)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for isa in paths("fused backward steps") {
        with_isa(isa, || {
            for (i, &(shape, _)) in BN_SHAPES.iter().enumerate() {
                let (b, c) = (shape[0], shape[1]);
                let hw: usize = shape[2..].iter().product();
                let x = f32s(shape, 500 + i as u64);
                let (gamma, beta) = (f32s(&[c], 510 + i as u64), f32s(&[c], 520 + i as u64));
                let mut bn_out = vec![0f32; x.len()];
                let saved = batch_norm_train_into(
                    &x,
                    (b, c, hw),
                    &gamma,
                    &beta,
                    BatchNormConfig::default(),
                    &mut bn_out,
                )
                .unwrap();
                // y = relu(bn(x) + residual), about half of it zero: the fused forward pass
                // against the BatchNorm then `add_relu_into`.
                let residual = f32s(shape, 530 + i as u64);
                let mut y = vec![0f32; x.len()];
                add_relu_into(&bn_out, &residual, &mut y).unwrap();
                let mut fused = vec![f32::NAN; x.len()];
                let fused_saved = batch_norm_train_add_relu_into(
                    &x,
                    (b, c, hw),
                    &gamma,
                    &beta,
                    BatchNormConfig::default(),
                    &residual,
                    &mut fused,
                )
                .unwrap();
                assert_eq!(bits(&fused), bits(&y), "{isa:?} bn #{i}: fused forward");
                let dy = f32s(shape, 540 + i as u64);
                let (mut dz, mut dx) = (vec![0f32; x.len()], vec![0f32; x.len()]);
                relu_grad_into(&y, &dy, &mut dz).unwrap();
                let want = saved.backward(&x, &dz, &mut dx).unwrap();
                let (mut dz2, mut dx2) = (vec![f32::NAN; x.len()], vec![f32::NAN; x.len()]);
                // From the fused forward's saved statistics, as the fast step runs it.
                let got = fused_saved
                    .backward_after_relu(&x, &dy, &y, &mut dz2, &mut dx2)
                    .unwrap();
                assert_eq!(bits(&dz2), bits(&dz), "{isa:?} bn #{i}: dz");
                assert_eq!(bits(&dx2), bits(&dx), "{isa:?} bn #{i}: dx");
                assert_eq!(got, want, "{isa:?} bn #{i}: dgamma, dbeta");
            }
            for (i, &(b, cin, h, w, cout, k, stride, pad)) in CONV_SHAPES.iter().enumerate() {
                let shape = Shape::new([b, cin, h, w], [cout, cin, k, k], stride, pad).unwrap();
                let n_out: usize = shape.output_dims().iter().product();
                let dy = f32s(&shape.output_dims(), 600 + i as u64);
                let wt = f32s(&[cout, cin, k, k], 610 + i as u64);
                let add = f32s(&[b, cin, h, w], 620 + i as u64);
                let mut want = vec![0f32; add.len()];
                shape.input_grad(&dy, &wt, &mut want).unwrap();
                for (d, a) in want.iter_mut().zip(&add) {
                    *d += *a;
                }
                let mut got = vec![f32::NAN; add.len()];
                shape.input_grad_plus(&dy, &wt, &add, &mut got).unwrap();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{isa:?} conv #{i} ({n_out} outputs)"
                );
            }
        });
    }
}

/// BatchNorm's statistics and gradients are the same bits on every path this CPU runs: the
/// AVX-512 lane sums (`avx512::lane_products`) do the portable loop's operations in its order.
#[test]
fn batch_norm_bits_agree_across_paths() {
    use kernels::raw::batch_norm_train_into;
    let runs: Vec<(Isa, Vec<u32>)> = paths("batch norm bits")
        .into_iter()
        .map(|isa| {
            let mut bits = Vec::new();
            with_isa(isa, || {
                for (i, &(shape, relu)) in BN_SHAPES.iter().enumerate() {
                    let (b, c) = (shape[0], shape[1]);
                    let hw: usize = shape[2..].iter().product();
                    let f32s = |seed: u64, len: &[usize]| {
                        randn(len, DType::F32, seed)
                            .affine(2.0, 0.3)
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap()
                    };
                    let (x, dy) = (f32s(700 + i as u64, shape), f32s(710 + i as u64, shape));
                    let (gamma, beta) = (f32s(720, &[c]), f32s(730, &[c]));
                    let config = BatchNormConfig {
                        relu,
                        ..Default::default()
                    };
                    let mut y = vec![0f32; x.len()];
                    let saved =
                        batch_norm_train_into(&x, (b, c, hw), &gamma, &beta, config, &mut y)
                            .unwrap();
                    let mut dx = vec![0f32; x.len()];
                    let (dg, db) = saved.backward(&x, &dy, &mut dx).unwrap();
                    for v in y.iter().chain(&dx).chain(&dg).chain(&db) {
                        bits.push(v.to_bits());
                    }
                }
            });
            (isa, bits)
        })
        .collect();
    for (isa, bits) in &runs[1..] {
        assert!(bits == &runs[0].1, "{isa:?} differs from {:?}", runs[0].0);
    }
}
