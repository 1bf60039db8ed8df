//! Typed pruning requests (issue 15): their canonical text, checks before any work, pruning by
//! a ratio on any architecture, and refusals that say what is possible.

use candle_core::Device;
use experiments::prune::{FilterAmount, PruneRequest, Pruning, prune_model};
use models::{Model, ModelConfig};
use prune_core::{FilterSaliency, PfecVersion, WeightSaliency};

fn resnet20() -> Model {
    let config = ModelConfig::from_name("resnet20", 10, 1).unwrap();
    Model::init(&config, 1, &Device::Cpu).unwrap()
}

fn request<'a>(how: &'a Pruning, out: &'a std::path::Path) -> PruneRequest<'a> {
    PruneRequest {
        how,
        out,
        source: None,
        plan_only: false,
        data: None,
    }
}

#[test]
fn requests_have_one_canonical_text() {
    let cases = [
        (Pruning::pfec(Some(PfecVersion::B)), "pfec:B"),
        (Pruning::pfec(None), "pfec"),
        (
            Pruning::Filters {
                saliency: FilterSaliency::L1,
                amount: FilterAmount::Ratio(0.5),
            },
            "pfec:ratio=0.5",
        ),
        (
            Pruning::Filters {
                saliency: FilterSaliency::Random { seed: 3 },
                amount: FilterAmount::Version(Some(PfecVersion::A)),
            },
            "random-filter:A:seed=3",
        ),
        (Pruning::mwp(0.9), "mwp:sparsity=0.9"),
        (
            Pruning::Weights {
                saliency: WeightSaliency::Random { seed: 2 },
                sparsity: 0.5,
            },
            "random-weight:sparsity=0.5:seed=2",
        ),
    ];
    for (how, text) in cases {
        assert_eq!(how.to_string(), text);
    }
}

#[test]
fn out_of_range_amounts_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let model = resnet20();
    for how in [
        Pruning::mwp(1.0),
        Pruning::mwp(-0.1),
        Pruning::Filters {
            saliency: FilterSaliency::L1,
            amount: FilterAmount::Ratio(1.5),
        },
    ] {
        let e = prune_model(&model, &request(&how, &out)).unwrap_err();
        assert!(e.to_string().contains("[0, 1)"), "{e}");
        assert!(!out.exists(), "{how}: nothing written");
    }
}

#[test]
fn pruning_into_a_run_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("state.json"), "{}").unwrap();
    let how = Pruning::mwp(0.5);
    let e = prune_model(&resnet20(), &request(&how, &run)).unwrap_err();
    assert!(e.to_string().contains("training run's directory"), "{e}");
    assert!(!run.join("plan.json").exists());
}

#[test]
fn any_resnet_prunes_by_a_ratio_and_a_version_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let model = resnet20();
    // PFEC's versions exist for ResNet-56/110 only: the refusal names the way that works.
    let e = prune_model(
        &model,
        &request(&Pruning::pfec(Some(PfecVersion::A)), &tmp.path().join("a")),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--ratio"), "{e}");
    let half = Pruning::Filters {
        saliency: FilterSaliency::L1,
        amount: FilterAmount::Ratio(0.5),
    };
    let out = tmp.path().join("half");
    let outcome = prune_model(&model, &request(&half, &out)).unwrap();
    assert!(outcome.structured);
    // Every block's first conv keeps int(n / 2) filters: 8 of 16, 16 of 32, 32 of 64.
    let groups = model.config().channel_groups();
    assert_eq!(outcome.plan.groups().len(), groups.len());
    for (d, g) in outcome.plan.groups().iter().zip(&groups) {
        assert_eq!(d.keep.len(), g.channels / 2, "{}", g.name);
    }
    let pruned = Model::load(&out, &Device::Cpu).unwrap();
    assert_eq!(pruned.config(), &outcome.config_after);
    assert!(outcome.config_after.flops() < model.config().flops());
    assert_eq!(outcome.plan.version.as_deref(), Some("ratio=0.5"));
}

/// HRank and Taylor through the request type: scored on the spec's training batches, refused
/// without data, recorded with their batches in the canonical text; HRank keeps the filters
/// whose maps have the highest mean rank on exactly those batches.
#[test]
fn data_criteria_score_on_the_specs_training_batches() {
    use experiments::prune::{DataCriterion, Ranking, Scoring};
    let tmp = tempfile::tempdir().unwrap();
    datasets::fixtures::write_bars(tmp.path(), 40, 8).unwrap();
    let model = resnet20();
    let mut spec = experiments::ExperimentSpec::paper(
        datasets::DatasetKind::FashionMnist,
        model.config().clone(),
    );
    spec.data_dir = Some(tmp.path().to_path_buf());
    let scoring = Scoring {
        batches: 2,
        batch_size: 8,
        seed: 1,
    };
    for criterion in [DataCriterion::Hrank, DataCriterion::Taylor] {
        let how = Pruning::Scored {
            criterion,
            amount: FilterAmount::Ratio(0.5),
            scoring,
            ranking: Ranking::PerLayer,
        };
        let name = criterion.name();
        assert_eq!(
            how.to_string(),
            format!("{name}:ratio=0.5:batches=2x8:seed=1")
        );
        let out = tmp.path().join(name);
        let err = prune_model(&model, &request(&how, &out))
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains("--dataset"), "{err}");
        assert!(!out.exists(), "a refused request writes nothing");
        let req = PruneRequest {
            data: Some(&spec),
            ..request(&how, &out)
        };
        let outcome = prune_model(&model, &req).unwrap();
        assert_eq!(outcome.plan.method, name);
        let ModelConfig::ResNet(after) = &outcome.config_after else {
            panic!("a ResNet stays a ResNet");
        };
        assert!(
            after
                .block_widths
                .iter()
                .all(|&w| w == 8 || w == 16 || w == 32)
        );
        assert!(out.join("model.safetensors").exists());
        if criterion == DataCriterion::Hrank {
            let batches = train::engine::scoring_batches(&spec, 2, 8, 1, &Device::Cpu).unwrap();
            let scores =
                models::scores::hrank_scores(&model, batches.into_iter().map(|(x, _)| Ok(x)))
                    .unwrap();
            for d in outcome.plan.groups() {
                let want = prune_core::select_top(&d.group, &scores.scores[&d.group], d.keep.len())
                    .unwrap();
                assert_eq!(d.keep, want, "{}", d.group);
            }
        }
    }
    // Globally: half of all the ranked filters stay, layers keep different counts, and the
    // kept filters are the best half on one scale.
    let how = Pruning::Scored {
        criterion: DataCriterion::Taylor,
        amount: FilterAmount::RatioOf {
            ratio: 0.5,
            layers: vec!["layer1".into(), "layer3".into()],
        },
        scoring,
        ranking: Ranking::Global,
    };
    assert_eq!(
        how.to_string(),
        "taylor:ratio=0.5:layers=layer1+layer3:global:batches=2x8:seed=1"
    );
    let out = tmp.path().join("global");
    let req = PruneRequest {
        data: Some(&spec),
        ..request(&how, &out)
    };
    let outcome = prune_model(&model, &req).unwrap();
    let kept: usize = outcome.plan.groups().iter().map(|d| d.keep.len()).sum();
    let whole: usize = 3 * 16 + 3 * 64;
    let listed: usize = outcome
        .plan
        .groups()
        .iter()
        .map(|d| d.keep.channels())
        .sum();
    assert_eq!(kept + (whole - listed), whole / 2, "{:?}", outcome.plan);
    assert!(
        outcome
            .plan
            .groups()
            .iter()
            .all(|d| !d.group.starts_with("layer2"))
    );
    // Zero batches, or a global ranking to a PFEC version, are refused before any work.
    for how in [
        Pruning::Scored {
            criterion: DataCriterion::Hrank,
            amount: FilterAmount::Ratio(0.5),
            scoring: Scoring {
                batches: 0,
                ..scoring
            },
            ranking: Ranking::PerLayer,
        },
        Pruning::Scored {
            criterion: DataCriterion::Hrank,
            amount: FilterAmount::Version(None),
            scoring,
            ranking: Ranking::Global,
        },
    ] {
        assert!(how.check().is_err(), "{how}");
    }
}
