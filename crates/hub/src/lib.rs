//! Pruned checkpoints on the Hugging Face hub: `hf://owner/name[@revision]` wherever a checkpoint
//! directory is accepted, `pull` into a directory, and `push` with a generated model card.
//!
//! A separate crate so that `models` stays free of the network stack: hf-hub brings reqwest,
//! tokio, rustls and hf-xet (~190 crates), which a user of `models` alone should not compile.
//!
//! Downloads land in the hf cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`) and are checked before
//! use: the size against the hub's, the content against the ETag (sha256 for LFS files, git's
//! blob sha1 for regular ones), and `config.json` against the weights. Offline, only the cache is
//! read.
//!
//! ```no_run
//! use hub::{CheckpointSource, Hub, HubOptions};
//!
//! let hub = Hub::new(&HubOptions::from_env())?;
//! let source = CheckpointSource::parse("hf://prunebench/resnet56-pfec-b")?;
//! let dir = hub.resolve(&source)?; // the cached snapshot: model.safetensors + config.json
//! let model = models::Model::load(&dir, &candle_core::Device::Cpu)?;
//! println!("{} with {} parameters", model.config().name(), model.config().params());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod card;
mod client;
mod error;
mod source;
#[cfg(any(test, feature = "stub"))]
pub mod stub;

pub use client::{CARD_FILE, Hub, HubOptions, PushOptions, Pushed, check_checkpoint};
pub use error::{Error, Result};
pub use source::{CheckpointSource, RepoRef, SCHEME};

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use candle_core::{Device, ModuleT, Tensor};
    use models::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
    use models::{Model, ModelConfig};

    use super::*;
    use crate::stub::{Access, Stub};

    fn small_model(dir: &Path) -> Model {
        let config = ModelConfig::from_name("resnet20", 10, 1).unwrap();
        let model = Model::init(&config, 7, &Device::Cpu).unwrap();
        model.save(dir).unwrap();
        model
    }

    fn hub(stub: &Stub, cache: &Path, token: Option<&str>, offline: bool) -> Hub {
        hub_at(&stub.endpoint(), cache, token, offline)
    }

    fn hub_at(endpoint: &str, cache: &Path, token: Option<&str>, offline: bool) -> Hub {
        Hub::new(&HubOptions {
            endpoint: Some(endpoint.to_string()),
            cache_dir: Some(cache.to_path_buf()),
            token: token.map(str::to_string),
            offline,
        })
        .unwrap()
    }

    fn logits(model: &Model) -> Vec<f32> {
        let x = Tensor::arange(0f32, 2.0 * 32.0 * 32.0, &Device::Cpu)
            .unwrap()
            .affine(1e-3, -0.5)
            .unwrap()
            .reshape((2, 1, 32, 32))
            .unwrap();
        model
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn push_pull_load_round_trip_gives_identical_logits_and_offline_works_after() {
        let tmp = tempfile::tempdir().unwrap();
        let (ckpt, cache, out) = (
            tmp.path().join("ckpt"),
            tmp.path().join("cache"),
            tmp.path().join("out"),
        );
        let model = small_model(&ckpt);
        let stub = Stub::start().unwrap();
        stub.add_token("write", Access::Write);
        let repo: RepoRef = "tester/r20".parse().unwrap();
        let hub_w = hub(&stub, &cache, Some("write"), false);
        let pushed = hub_w.push(&ckpt, &repo, &PushOptions::default()).unwrap();
        assert_eq!(
            pushed.files,
            ["model.safetensors", "config.json", "README.md"]
        );
        assert_eq!(
            stub.file("tester/r20", WEIGHTS_FILE).unwrap(),
            fs::read(ckpt.join(WEIGHTS_FILE)).unwrap()
        );
        assert_eq!(stub.repo_private("tester/r20"), Some(false));
        assert_eq!(pushed.commit, stub.commit("tester/r20"));

        let written = hub_w.pull(&repo, &out).unwrap();
        assert_eq!(written.len(), 3, "weights, config and the card");
        let pulled = Model::load(&out, &Device::Cpu).unwrap();
        assert_eq!(logits(&pulled), logits(&model), "bit-identical logits");
        let card = fs::read_to_string(out.join("README.md")).unwrap();
        assert!(
            card.starts_with("---\nlibrary_name: prunebench\n"),
            "{card}"
        );

        // With the stub gone, the cache alone serves the checkpoint when offline.
        let before = stub.requests();
        stub.stop();
        let offline = hub_at("http://127.0.0.1:9", &cache, None, true);
        let dir = offline
            .resolve(&CheckpointSource::parse("hf://tester/r20").unwrap())
            .unwrap();
        assert!(dir.starts_with(&cache));
        assert_eq!(
            logits(&Model::load(&dir, &Device::Cpu).unwrap()),
            logits(&model)
        );
        assert!(before > 0, "the stub answered the push and the pull");
        // A repo never fetched is a clear error, not a request.
        let err = offline
            .fetch_checkpoint(&"tester/other".parse().unwrap())
            .unwrap_err();
        assert!(matches!(err, Error::NotCached { .. }), "{err}");
        assert!(err.to_string().contains("tester/other"), "{err}");
    }

    #[test]
    fn a_corrupted_body_is_rejected_and_removed_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let (ckpt, cache) = (tmp.path().join("ckpt"), tmp.path().join("cache"));
        small_model(&ckpt);
        let stub = Stub::start().unwrap();
        for f in [WEIGHTS_FILE, CONFIG_FILE] {
            stub.add_file("t/m", f, fs::read(ckpt.join(f)).unwrap());
        }
        stub.corrupt(WEIGHTS_FILE);
        let h = hub(&stub, &cache, None, false);
        let repo: RepoRef = "t/m".parse().unwrap();
        let err = h.fetch_checkpoint(&repo).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Integrity { .. }), "{msg}");
        assert!(
            msg.contains("model.safetensors") && msg.contains("sha256"),
            "{msg}"
        );
        // Nothing corrupt is left for an offline load to pick up.
        let offline = hub(&stub, &cache, None, true);
        assert!(matches!(
            offline.fetch_checkpoint(&repo).unwrap_err(),
            Error::NotCached { .. }
        ));
        // The regular file's check is git's blob sha1.
        stub.corrupt(CONFIG_FILE);
        let err = h.fetch_file(&repo, CONFIG_FILE).unwrap_err().to_string();
        assert!(err.contains("git blob sha1"), "{err}");
        // A short body fails on its size before its hash is computed.
        stub.add_file("t/short", CONFIG_FILE, b"{\"a\": 1}".to_vec());
        stub.truncate(CONFIG_FILE);
        let err = h
            .fetch_file(&"t/short".parse().unwrap(), CONFIG_FILE)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("size (expected 8 bytes, got 7 bytes)"),
            "{err}"
        );
    }

    #[test]
    fn http_errors_name_the_repo_the_file_and_the_status() {
        let tmp = tempfile::tempdir().unwrap();
        let stub = Stub::start().unwrap();
        stub.add_token("reader", Access::Read);
        stub.add_token("nobody", Access::None);
        stub.add_file("t/m", CONFIG_FILE, b"{}".to_vec());
        let repo: RepoRef = "t/m".parse().unwrap();
        let cache = tmp.path().join("cache");

        let err = hub(&stub, &cache, None, false)
            .fetch_file(&repo, CONFIG_FILE)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("401") && err.contains("t/m") && err.contains("HF_TOKEN"),
            "{err}"
        );
        let err = hub(&stub, &cache, Some("nobody"), false)
            .fetch_file(&repo, CONFIG_FILE)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("403") && err.contains("lacks the rights"),
            "{err}"
        );
        let err = hub(&stub, &cache, Some("reader"), false)
            .fetch_file(&repo, WEIGHTS_FILE)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("404") && err.contains("t/m") && err.contains(WEIGHTS_FILE),
            "{err}"
        );
        let err = hub(&stub, &cache, Some("reader"), false)
            .fetch_file(&"t/none".parse().unwrap(), CONFIG_FILE)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("404") && err.contains("t/none"), "{err}");
        // A read token cannot push.
        let ckpt = tmp.path().join("ckpt");
        small_model(&ckpt);
        let err = hub(&stub, &cache, Some("reader"), false)
            .push(&ckpt, &"t/new".parse().unwrap(), &PushOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("403") && err.contains("t/new"), "{err}");
    }

    #[test]
    fn a_config_that_does_not_fit_the_weights_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ckpt = tmp.path().join("ckpt");
        small_model(&ckpt);
        let other = ModelConfig::from_name("resnet32", 10, 1).unwrap();
        fs::write(ckpt.join(CONFIG_FILE), other.to_json()).unwrap();
        let err = check_checkpoint(&ckpt).unwrap_err().to_string();
        assert!(
            err.contains("config.json does not match the weights"),
            "{err}"
        );

        let stub = Stub::start().unwrap();
        for f in [WEIGHTS_FILE, CONFIG_FILE] {
            stub.add_file("t/bad", f, fs::read(ckpt.join(f)).unwrap());
        }
        let h = hub(&stub, &tmp.path().join("cache"), None, false);
        let err = h
            .fetch_checkpoint(&"t/bad".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match the weights"), "{err}");
    }

    #[test]
    fn the_stub_serves_ranges_and_redirects_lfs_files() {
        let stub = Stub::start().unwrap();
        stub.add_file("t/m", "x.bin", (0u8..100).collect());
        let h = hub(
            &stub,
            &tempfile::tempdir().unwrap().path().join("c"),
            None,
            false,
        );
        let bytes = h
            .client_for_tests()
            .model("t", "m")
            .download_file_to_bytes()
            .filename("x.bin")
            .range(10..20)
            .send()
            .unwrap();
        assert_eq!(bytes.as_ref(), (10u8..20).collect::<Vec<_>>().as_slice());
        // Through the LFS redirect too, as the hub sends weights.
        stub.add_file("t/m", "w.safetensors", (0u8..100).rev().collect());
        let bytes = h
            .client_for_tests()
            .model("t", "m")
            .download_file_to_bytes()
            .filename("w.safetensors")
            .range(0..3)
            .send()
            .unwrap();
        assert_eq!(bytes.as_ref(), [99, 98, 97]);
    }
}
