//! End-to-end tests of `prunebench prune`, on freshly initialised models (`--arch`), so no
//! training is needed.

use candle_core::Device;
use models::{Model, ModelConfig};
use prune_core::Masks;

mod common;

use common::{json, prunebench, s};

fn fails_on_one_line(args: &[&str], needle: &str) {
    let out = prunebench(args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

fn pct(v: &serde_json::Value, before: &str, after: &str) -> f64 {
    let b = v[before].as_f64().unwrap();
    100.0 * (b - v[after].as_f64().unwrap()) / b
}

#[test]
fn pfec_b_on_resnet56_gives_the_published_reductions_and_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r56b");
    let v = json(&[
        "prune",
        "--arch",
        "resnet56",
        "--method",
        "pfec",
        "--version",
        "B",
        "--out",
        s(&out),
        "--format",
        "json",
    ]);
    assert_eq!(v["method"], "pfec");
    assert_eq!(v["version"], "B");
    assert_eq!(v["params_before"], 853_018);
    assert_eq!(v["flops_before"], 125_485_696);
    // Li et al. 2016: ResNet-56-B removes 13.7% of the parameters and 27.6% of the FLOPs.
    assert!(
        (pct(&v, "params_before", "params_after") - 13.7).abs() <= 0.5,
        "{v}"
    );
    assert!(
        (pct(&v, "flops_before", "flops_after") - 27.6).abs() <= 0.5,
        "{v}"
    );

    let model = Model::load(&out, &Device::Cpu).unwrap();
    assert_eq!(model.config().params(), v["params_after"].as_u64().unwrap());
    let ModelConfig::ResNet(r) = model.config() else {
        panic!("not a ResNet")
    };
    // Stage 1: int(16 * 0.4) = 6, layers 16 and 18 skipped; stage 3: int(64 * 0.9) = 57.
    assert_eq!(&r.block_widths[..9], [6, 6, 6, 6, 6, 6, 6, 16, 16]);
    assert_eq!(r.block_widths[19], 57);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    // Every block but the six skipped ones appears, with its kept filters.
    assert_eq!(plan["groups"].as_array().unwrap().len(), 27 - 6);
    assert_eq!(plan["groups"][0]["group"], "layer1.0.conv1");
    assert_eq!(
        plan["groups"][0]["keep"]["kept"].as_array().unwrap().len(),
        6
    );

    // Text output names both counts.
    let text = prunebench(&[
        "prune",
        "--arch",
        "resnet56",
        "--method",
        "pfec",
        "--version",
        "A",
        "--out",
        s(&dir.path().join("r56a")),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("853018 -> 773336"), "{text}");
}

#[test]
fn mwp_masks_ninety_percent_of_conv_weights_and_the_checkpoint_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mwp");
    let v = json(&[
        "prune",
        "--arch",
        "resnet56",
        "--method",
        "mwp",
        "--sparsity",
        "0.9",
        "--out",
        s(&out),
        "--format",
        "json",
    ]);
    assert_eq!(v["method"], "mwp");
    assert!(v["version"].is_null());
    let sparsity = v["sparsity"].as_f64().unwrap();
    assert!((0.9..0.9001).contains(&sparsity), "{sparsity}");

    let model = Model::load(&out, &Device::Cpu).unwrap();
    let tensors = model.tensors().unwrap();
    let (mut zeros, mut total) = (0usize, 0usize);
    for name in model.config().conv_weight_names() {
        let w = tensors[&name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        zeros += w.iter().filter(|&&x| x == 0.0).count();
        total += w.len();
    }
    let zero_fraction = zeros as f64 / total as f64;
    assert!(
        (zero_fraction - sparsity).abs() < 1e-9,
        "{zero_fraction} vs {sparsity}"
    );
    // params_after counts the non-zero conv weights plus every other parameter.
    assert_eq!(
        v["params_after"].as_u64().unwrap(),
        v["params_before"].as_u64().unwrap() - zeros as u64
    );
    // The masks beside the weights cover every conv and agree with the zeros.
    let masks = Masks::load(&out.join("masks.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(masks.len(), model.config().conv_weight_names().len());
    assert!((masks.sparsity().unwrap() - sparsity).abs() < 1e-12);
    let remasked = masks.apply(&tensors).unwrap();
    let w = &tensors["layer2.3.conv2.weight"];
    let diff = (w - &remasked["layer2.3.conv2.weight"])
        .unwrap()
        .abs()
        .unwrap();
    assert_eq!(diff.max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn random_methods_follow_their_counterparts_counts_and_their_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |method: &str, extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let mut args = vec![
            "prune",
            "--arch",
            "resnet56",
            "--method",
            method,
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--format", "json"]);
        let v = json(&args);
        let plan = std::fs::read_to_string(out.join("plan.json")).unwrap();
        (v, plan)
    };
    let (pfec, pfec_plan) = run("pfec", &["--version", "B"], "pfec");
    let (r1, r1_plan) = run("random-filter", &["--version", "B", "--seed", "1"], "r1");
    let (_, r1_again) = run("random-filter", &["--version", "B", "--seed", "1"], "r1b");
    let (_, r2_plan) = run("random-filter", &["--version", "B", "--seed", "2"], "r2");
    assert_eq!(r1["params_after"], pfec["params_after"]);
    assert_eq!(r1["flops_after"], pfec["flops_after"]);
    assert_eq!(r1_plan, r1_again);
    assert_ne!(r1_plan, r2_plan);
    assert_ne!(r1_plan.replace("random-filter", "pfec"), pfec_plan);

    let (rw, _) = run("random-weight", &["--sparsity", "0.5", "--seed", "1"], "rw");
    let sparsity = rw["sparsity"].as_f64().unwrap();
    assert!((0.5..0.5001).contains(&sparsity), "{sparsity}");
}

#[test]
fn plan_only_writes_just_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan");
    let v = json(&[
        "prune",
        "--arch",
        "resnet110",
        "--method",
        "pfec",
        "--version",
        "A",
        "--out",
        s(&out),
        "--plan-only",
        "--format",
        "json",
    ]);
    assert_eq!(v["params_after"], 1_688_522);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["plan.json"]);
}

#[test]
fn a_saved_plan_can_be_inspected_edited_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let planned = dir.path().join("planned");
    let base = ["prune", "--arch", "resnet56", "--init-seed", "4"];
    let mut args = base.to_vec();
    args.extend([
        "--method",
        "pfec",
        "--version",
        "B",
        "--plan-only",
        "--out",
        s(&planned),
    ]);
    assert!(prunebench(&args).status.success());
    let plan_file = planned.join("plan.json");

    let applied = dir.path().join("applied");
    let mut args = base.to_vec();
    args.extend([
        "--plan",
        s(&plan_file),
        "--out",
        s(&applied),
        "--format",
        "json",
    ]);
    let v = json(&args);
    assert_eq!(v["method"], "pfec");
    assert_eq!(v["params_after"], 735_712);
    let model = Model::load(&applied, &Device::Cpu).unwrap();
    assert_eq!(model.config().params(), 735_712);

    // Edit: keep one more filter in layer1.0.conv1 (6 -> 7) and apply again.
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_file).unwrap()).unwrap();
    let kept = plan["groups"][0]["keep"]["kept"].as_array_mut().unwrap();
    let missing = (0..16u64)
        .find(|i| !kept.iter().any(|k| k.as_u64() == Some(*i)))
        .unwrap();
    kept.push(missing.into());
    let edited = dir.path().join("edited.json");
    std::fs::write(&edited, plan.to_string()).unwrap();
    let mut args = base.to_vec();
    let out = dir.path().join("edited");
    args.extend(["--plan", s(&edited), "--out", s(&out), "--format", "json"]);
    let v = json(&args);
    // One more filter: 16 * 9 weights in conv1, 16 * 9 in conv2, two BatchNorm values.
    assert_eq!(v["params_after"], 735_712 + 2 * 16 * 9 + 2);

    // An out-of-range channel, and an unstructured plan, are refused.
    plan["groups"][0]["keep"]["kept"][0] = 99.into();
    std::fs::write(&edited, plan.to_string()).unwrap();
    let mut args = base.to_vec();
    args.extend(["--plan", s(&edited), "--out", s(&out)]);
    fails_on_one_line(&args, "out of range");
    let sparse = dir.path().join("sparse");
    let mut args = base.to_vec();
    args.extend([
        "--method",
        "mwp",
        "--sparsity",
        "0.5",
        "--plan-only",
        "--out",
        s(&sparse),
    ]);
    assert!(prunebench(&args).status.success());
    let mut args = base.to_vec();
    let sparse_plan = sparse.join("plan.json");
    args.extend(["--plan", s(&sparse_plan), "--out", s(&out)]);
    fails_on_one_line(&args, "no channel groups");
}

/// (Every architecture pruned by a ratio: `pfec_by_ratio_cuts_every_architecture_as_the_closed_forms_say`.)
#[test]
fn a_ratio_applies_to_filter_methods_only() {
    let dir = tempfile::tempdir().unwrap();
    // A ratio is not a version, and weights have a sparsity instead.
    fails_on_one_line(
        &[
            "prune",
            "--arch",
            "resnet56",
            "--method",
            "mwp",
            "--ratio",
            "0.5",
            "--out",
            s(&dir.path().join("x")),
        ],
        "--ratio apply to pfec, random-filter, hrank and taylor",
    );
}

#[test]
fn impossible_requests_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x");
    let o = s(&out);
    fails_on_one_line(
        &[
            "prune",
            "--arch",
            "vgg16",
            "--method",
            "pfec",
            "--version",
            "A",
            "--out",
            o,
        ],
        "single PFEC version",
    );
    fails_on_one_line(
        &[
            "prune",
            "--arch",
            "densenet40",
            "--method",
            "pfec",
            "--out",
            o,
        ],
        "densenet40 has no PFEC version",
    );
    fails_on_one_line(
        &[
            "prune",
            "--arch",
            "resnet20",
            "--method",
            "pfec",
            "--version",
            "B",
            "--out",
            o,
        ],
        "resnet20",
    );
    // Without a version, the refusal says what exists and what works on any architecture.
    fails_on_one_line(
        &[
            "prune", "--arch", "resnet20", "--method", "pfec", "--out", o,
        ],
        "exist for resnet56 and resnet110 only; any architecture can be pruned by a ratio",
    );
    for bad in ["1", "1.5", "-0.1"] {
        fails_on_one_line(
            &[
                "prune",
                "--arch",
                "resnet20",
                "--method",
                "mwp",
                "--sparsity",
                bad,
                "--out",
                o,
            ],
            "sparsity",
        );
    }
    fails_on_one_line(
        &["prune", "--arch", "resnet20", "--method", "mwp", "--out", o],
        "--sparsity",
    );
    fails_on_one_line(
        &[
            "prune",
            "--checkpoint",
            "/nonexistent/ckpt",
            "--method",
            "mwp",
            "--sparsity",
            "0.5",
            "--out",
            o,
        ],
        "/nonexistent/ckpt",
    );
    // PFEC-B applied again and again to its own output: stage 1 goes 16 -> 6 -> 2 -> int(0.8) = 0.
    let p1 = dir.path().join("p1");
    let p2 = dir.path().join("p2");
    for (from, to) in [(None, &p1), (Some(&p1), &p2)] {
        let mut args = vec![
            "prune",
            "--method",
            "pfec",
            "--version",
            "B",
            "--out",
            s(to),
        ];
        match from {
            Some(ckpt) => args.extend(["--checkpoint", s(ckpt)]),
            None => args.extend(["--arch", "resnet56"]),
        }
        assert!(prunebench(&args).status.success());
    }
    fails_on_one_line(
        &[
            "prune",
            "--checkpoint",
            s(&p2),
            "--method",
            "pfec",
            "--version",
            "B",
            "--out",
            o,
        ],
        "would remove all 2 channels",
    );
}

/// Parameters and multiply-adds of a CIFAR ResNet (3 input channels, 10 classes, option-A
/// shortcuts) whose blocks' first convs have widths `firsts`, in closed form: conv k*k*cin*cout
/// weights (no bias) times the output positions, BatchNorm 2 per channel and no FLOPs, the
/// classifier 64*10 + 10. Written from the architecture, not from `models`.
fn resnet_counts(n: usize, firsts: &[usize]) -> (u64, u64) {
    let (mut p, mut f) = (9 * 3 * 16 + 2 * 16, 9 * 3 * 16 * 32 * 32);
    let mut cin = 16;
    for (b, &first) in firsts.iter().enumerate() {
        let stage = b / n;
        let (w, size) = (16 << stage, 32 >> stage);
        p += 9 * cin * first + 2 * first + 9 * first * w + 2 * w;
        f += (9 * cin * first + 9 * first * w) * size * size;
        cin = w;
    }
    ((p + 64 * 10 + 10) as u64, (f + 64 * 10) as u64)
}

/// VGG-16 (PFEC's CIFAR variant: 13 bias-free 3x3 convs, a 512-512 linear, BatchNorm1d and the
/// 512-10 linear) whose convs have widths `convs`.
fn vgg16_counts(convs: &[usize]) -> (u64, u64) {
    let sizes = [32, 32, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 2];
    let (mut p, mut f, mut cin) = (0, 0, 3);
    for (&w, &size) in convs.iter().zip(&sizes) {
        p += 9 * cin * w + 2 * w;
        f += 9 * cin * w * size * size;
        cin = w;
    }
    p += cin * 512 + 512 + 2 * 512 + 512 * 10 + 10;
    f += cin * 512 + 512 * 10;
    (p as u64, f as u64)
}

/// DenseNet-40 (growth 12, 12 layers a block, transitions without compression): a stem conv of
/// `stem` filters, dense convs of `growth` filters each (BatchNorm before each conv over its
/// whole input), transitions' 1x1 convs of `trans[0]` and `trans[1]` filters, then BatchNorm and
/// the classifier.
fn densenet40_counts(stem: usize, growth: usize, trans: [usize; 2]) -> (u64, u64) {
    let (mut p, mut f) = (9 * 3 * stem, 9 * 3 * stem * 32 * 32);
    let mut c = stem;
    for block in 0..3 {
        let size = 32 >> block;
        for _ in 0..12 {
            p += 2 * c + 9 * c * growth;
            f += 9 * c * growth * size * size;
            c += growth;
        }
        if let Some(&out) = trans.get(block) {
            p += 2 * c + c * out;
            f += c * out * size * size;
            c = out;
        }
    }
    p += 2 * c + c * 10 + 10;
    f += c * 10;
    (p as u64, f as u64)
}

#[test]
fn pfec_by_ratio_cuts_every_architecture_as_the_closed_forms_say() {
    let dir = tempfile::tempdir().unwrap();
    // (arch, counts before, counts after half of every channel group's filters are removed).
    let cases = [
        (
            "resnet20",
            resnet_counts(3, &[16, 16, 16, 32, 32, 32, 64, 64, 64]),
            resnet_counts(3, &[8, 8, 8, 16, 16, 16, 32, 32, 32]),
        ),
        (
            "resnet56",
            resnet_counts(9, &[[16; 9], [32; 9], [64; 9]].concat()),
            resnet_counts(9, &[[8; 9], [16; 9], [32; 9]].concat()),
        ),
        (
            "vgg16",
            vgg16_counts(&[
                64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512,
            ]),
            vgg16_counts(&[32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256, 256]),
        ),
        (
            "densenet40",
            densenet40_counts(24, 12, [168, 312]),
            // Stem 24 -> 12, dense convs 12 -> 6, transitions int(168 / 2) and int(312 / 2).
            densenet40_counts(12, 6, [84, 156]),
        ),
    ];
    // The closed forms reproduce the published sizes: ResNet-56 853,018 parameters (README).
    assert_eq!(cases[1].1.0, 853_018);
    for (arch, before, after) in cases {
        let out = dir.path().join(arch);
        let v = json(&[
            "prune",
            "--arch",
            arch,
            "--method",
            "pfec",
            "--ratio",
            "0.5",
            "--out",
            s(&out),
            "--format",
            "json",
        ]);
        let got = |k: &str| v[k].as_u64().unwrap();
        assert_eq!(
            (got("params_before"), got("flops_before")),
            before,
            "{arch} before"
        );
        assert_eq!(
            (got("params_after"), got("flops_after")),
            after,
            "{arch} after"
        );
        assert_eq!(v["version"], "ratio=0.5", "{arch}");
        // The checkpoint written is the model the numbers describe.
        let m = Model::load(&out, &Device::Cpu).unwrap();
        assert_eq!(m.config().params(), after.0, "{arch}");
        assert_eq!(m.config().flops(), after.1, "{arch}");
    }
}

#[test]
fn ratio_on_chosen_layers_prunes_those_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("early");
    let v = json(&[
        "prune",
        "--arch",
        "resnet20",
        "--method",
        "pfec",
        "--ratio",
        "0.5",
        "--layers",
        "layer1,layer3.2.conv1",
        "--out",
        s(&out),
        "--format",
        "json",
    ]);
    let after = resnet_counts(3, &[8, 8, 8, 32, 32, 32, 64, 64, 32]);
    assert_eq!(v["params_after"].as_u64().unwrap(), after.0);
    assert_eq!(v["flops_after"].as_u64().unwrap(), after.1);
    assert_eq!(v["version"], "ratio=0.5:layers=layer1+layer3.2.conv1");
    // A prefix is dotted: `layer` alone names no group, and the refusal lists the groups.
    fails_on_one_line(
        &[
            "prune",
            "--arch",
            "resnet20",
            "--method",
            "pfec",
            "--ratio",
            "0.5",
            "--layers",
            "layer",
            "--out",
            s(&dir.path().join("x")),
        ],
        "layer1.0.conv1",
    );
    // --layers needs --ratio.
    let e = prunebench(&[
        "prune",
        "--arch",
        "resnet20",
        "--method",
        "pfec",
        "--layers",
        "layer1",
        "--out",
        s(&dir.path().join("y")),
    ]);
    assert!(!e.status.success());
}

/// `--method hrank` and `taylor` score on `--dataset` (real IDX bytes written by the datasets
/// crate's fixture writer), keep PFEC's per-layer counts, and refuse to run without data or with
/// a dataset that does not fit the model.
#[test]
fn hrank_and_taylor_score_on_a_dataset_with_pfec_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bars");
    std::fs::create_dir_all(&data).unwrap();
    datasets::fixtures::write_bars(&data, 40, 8).unwrap();
    for method in ["hrank", "taylor"] {
        let out = dir.path().join(method);
        let v = json(&[
            "prune",
            "--arch",
            "resnet20",
            "--in-channels",
            "1",
            "--method",
            method,
            "--ratio",
            "0.5",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            s(&data),
            "--score-batches",
            "2",
            "--score-batch-size",
            "8",
            "--out",
            s(&out),
            "--format",
            "json",
        ]);
        assert_eq!(v["method"], method, "{v}");
        assert_eq!(v["version"], "ratio=0.5", "{v}");
        let model = Model::load(&out, &Device::Cpu).unwrap();
        let ModelConfig::ResNet(r) = model.config() else {
            panic!("not a ResNet")
        };
        assert_eq!(r.block_widths, [8, 8, 8, 16, 16, 16, 32, 32, 32]);
        fails_on_one_line(
            &[
                "prune",
                "--arch",
                "resnet20",
                "--method",
                method,
                "--ratio",
                "0.5",
                "--out",
                s(&dir.path().join("none")),
            ],
            "--dataset",
        );
        // Three input channels against Fashion-MNIST's one.
        fails_on_one_line(
            &[
                "prune",
                "--arch",
                "resnet20",
                "--method",
                method,
                "--ratio",
                "0.5",
                "--dataset",
                "fashion-mnist",
                "--data-dir",
                s(&data),
                "--out",
                s(&dir.path().join("bad")),
            ],
            "channels",
        );
    }
    fails_on_one_line(
        &[
            "prune",
            "--arch",
            "resnet20",
            "--method",
            "pfec",
            "--ratio",
            "0.5",
            "--dataset",
            "fashion-mnist",
            "--out",
            s(&dir.path().join("p")),
        ],
        "--dataset applies to hrank and taylor",
    );
}
