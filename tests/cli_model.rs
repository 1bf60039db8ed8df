//! End-to-end tests of `prunebench model info`.

mod common;

use common::{json, prunebench};

#[test]
fn resnet56_reports_the_published_parameter_count() {
    let v = json(&["model", "info", "resnet56", "--format", "json"]);
    assert_eq!(v["arch"], "resnet56");
    assert_eq!(v["params"], 853_018);
    assert_eq!(v["flops"], 125_485_696);
    assert_eq!(v["config"]["block_widths"].as_array().unwrap().len(), 27);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers[0]["name"], "conv1");
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(sum, 853_018);
}

#[test]
fn classes_and_channels_change_the_head_and_stem() {
    let v = json(&[
        "model",
        "info",
        "vgg16",
        "--classes",
        "100",
        "--in-channels",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(v["arch"], "vgg16");
    // VGG-16 on CIFAR-10 has 14,987,722; 90 more classes add 90 * 513, one input channel
    // fewer removes 2 * 64 * 9.
    assert_eq!(v["params"], 14_987_722 + 90 * 513 - 2 * 64 * 9);
}

#[test]
fn a_config_file_describes_a_pruned_model() {
    let dir = std::env::temp_dir().join(format!("cli_model_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    let widths: Vec<usize> = [8, 8, 8, 32, 32, 32, 64, 64, 64].to_vec();
    let config = serde_json::json!({
        "arch": "resnet", "depth": 20, "in_channels": 3, "num_classes": 10,
        "block_widths": widths,
    });
    std::fs::write(&path, config.to_string()).unwrap();
    let v = json(&[
        "model",
        "info",
        "--config",
        path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(v["arch"], "resnet20-pruned");
    // Three stage-1 blocks lose 8 filters each: 2 * 8 * 16 * 9 weights and 16 BN values apiece.
    assert_eq!(v["params"], 269_722 - 3 * (2 * 8 * 16 * 9 + 16));
    let text = prunebench(&["model", "info", "--config", path.to_str().unwrap()]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("layer1.0.conv1") && text.contains("params"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn text_output_lists_layers_and_bad_input_fails_on_one_line() {
    let out = prunebench(&["model", "info", "densenet40"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1059298"), "{text}");
    assert!(text.contains("trans2.conv1"), "{text}");

    let out = prunebench(&["model", "info", "resnet57"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("resnet57") || err.contains("6n+2"), "{err}");

    let out = prunebench(&["model", "info", "--config", "/nonexistent/config.json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("/nonexistent/config.json")
    );
}
