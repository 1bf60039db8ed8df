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

mod cache;
pub mod card;
mod client;
mod error;
mod http;
mod source;
#[cfg(any(test, feature = "stub"))]
pub mod stub;

pub use client::{CARD_FILE, Hub, HubOptions, PushOptions, Pushed, check_checkpoint};
pub use error::{Error, Result};
pub use http::{TIMEOUT_ENV, Timeouts};
pub use source::{CheckpointSource, RepoRef, SCHEME};

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use candle_core::{Device, ModuleT, Tensor};
    use models::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
    use models::{Model, ModelConfig};

    use super::*;
    use crate::stub::{Access, Hostile, Silent, Stub};

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
            timeouts: Some(Timeouts::parse("2").unwrap()),
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

    /// Every entry under `root` (links not followed), with its kind and, for files, content.
    fn tree(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                let what = if m.file_type().is_symlink() {
                    format!("link -> {}", fs::read_link(&p).unwrap().display())
                } else if m.is_dir() {
                    stack.push(p.clone());
                    "dir".to_string()
                } else {
                    format!("file {:?}", fs::read(&p).unwrap())
                };
                out.insert(p, what);
            }
        }
        out
    }

    /// A checkpoint on a stub, a victim folder beside the cache, and the tree outside the cache
    /// as it was before anything ran.
    struct Scene {
        tmp: tempfile::TempDir,
        stub: Stub,
        victim: std::path::PathBuf,
        before: std::collections::BTreeMap<std::path::PathBuf, String>,
    }

    impl Scene {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let ckpt = tmp.path().join("ckpt");
            small_model(&ckpt);
            let stub = Stub::start().unwrap();
            for f in [WEIGHTS_FILE, CONFIG_FILE] {
                stub.add_file("o/n", f, fs::read(ckpt.join(f)).unwrap());
            }
            let victim = tmp.path().join("victim");
            fs::create_dir(&victim).unwrap();
            for f in [WEIGHTS_FILE, CONFIG_FILE, "data.bin"] {
                fs::write(victim.join(f), format!("precious {f}")).unwrap();
            }
            fs::create_dir(tmp.path().join("cache")).unwrap();
            let before = Self::outside(tmp.path());
            Self {
                tmp,
                stub,
                victim,
                before,
            }
        }

        fn outside(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
            let cache = root.join("cache");
            tree(root)
                .into_iter()
                .filter(|(p, _)| !p.starts_with(&cache))
                .collect()
        }

        fn cache(&self) -> std::path::PathBuf {
            self.tmp.path().join("cache")
        }

        fn hub(&self, offline: bool) -> Hub {
            hub(&self.stub, &self.cache(), None, offline)
        }

        fn lie(&self, file: &str, header: &str, value: &str, after_heads: usize) {
            self.stub.hostile(Hostile {
                file: file.into(),
                method: "HEAD".into(),
                header: header.into(),
                value: value.into(),
                after_heads,
            });
        }

        /// Nothing outside the cache was created, changed, removed or linked.
        fn untouched(&self) {
            assert_eq!(Self::outside(self.tmp.path()), self.before);
        }
    }

    /// The error and its causes as the CLI prints them (`{:#}`).
    fn chain(err: &Error) -> String {
        let mut msg = err.to_string();
        let mut cur: &dyn std::error::Error = err;
        while let Some(next) = cur.source() {
            msg = format!("{msg}: {next}");
            cur = next;
        }
        msg
    }

    /// One line, naming the endpoint at most once.
    fn one_line(err: &Error, endpoint: &str) -> String {
        let msg = chain(err);
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.matches(endpoint).count() <= 1, "{msg}");
        msg
    }

    #[test]
    fn header_values_that_are_paths_are_refused_and_nothing_outside_the_cache_is_touched() {
        let repo: RepoRef = "o/n".parse().unwrap();
        fn abs(s: &Scene, f: &str) -> String {
            s.victim.join(f).display().to_string()
        }
        type Lie = fn(&Scene) -> Vec<(&'static str, &'static str, String)>;
        let cases: [(&str, Lie); 6] = [
            // The issue's deletion: an ETag naming an existing file, with a wrong size.
            ("etag-abs", |s| {
                vec![
                    (CONFIG_FILE, "ETag", format!("\"{}\"", abs(s, CONFIG_FILE))),
                    (CONFIG_FILE, "Content-Length", "1".into()),
                ]
            }),
            ("linked-etag-dotdot", |_| {
                vec![(
                    WEIGHTS_FILE,
                    "X-Linked-Etag",
                    "\"../../../victim/data.bin\"".into(),
                )]
            }),
            ("etag-weak-dotdot", |_| {
                vec![(CONFIG_FILE, "ETag", "W/\"../..\"".into())]
            }),
            // The issue's replacement: a commit naming a directory outside the cache.
            ("commit-abs", |s| {
                vec![(
                    WEIGHTS_FILE,
                    "X-Repo-Commit",
                    s.victim.display().to_string(),
                )]
            }),
            ("commit-dotdot", |_| {
                vec![(WEIGHTS_FILE, "X-Repo-Commit", "../../x".into())]
            }),
            ("commit-dotdot-config", |_| {
                vec![(CONFIG_FILE, "X-Repo-Commit", "../../../x".into())]
            }),
        ];
        for (name, lies) in cases {
            let scene = Scene::new();
            for (file, header, value) in lies(&scene) {
                scene.lie(file, header, &value, 0);
            }
            let err = scene.hub(false).fetch_checkpoint(&repo).unwrap_err();
            let msg = one_line(&err, &scene.stub.endpoint());
            assert!(matches!(err, Error::BadAnswer { .. }), "{name}: {msg}");
            assert!(msg.contains("nothing was written"), "{name}: {msg}");
            scene.untouched();
            for f in [WEIGHTS_FILE, CONFIG_FILE, "data.bin"] {
                assert_eq!(
                    fs::read_to_string(scene.victim.join(f)).unwrap(),
                    format!("precious {f}"),
                    "{name}"
                );
            }
            // pull refuses the same way and writes nothing.
            let out = scene.tmp.path().join("out");
            assert!(scene.hub(false).pull(&repo, &out).is_err(), "{name}");
            assert!(!out.exists(), "{name}");
            scene.untouched();
        }
    }

    #[test]
    fn a_second_head_that_lies_is_refused_and_the_cached_copy_survives() {
        let scene = Scene::new();
        let repo: RepoRef = "o/n".parse().unwrap();
        let dir = scene.hub(false).fetch_checkpoint(&repo).unwrap();
        assert!(dir.starts_with(fs::canonicalize(scene.cache()).unwrap()));
        scene.lie(
            WEIGHTS_FILE,
            "X-Repo-Commit",
            &scene.victim.display().to_string(),
            1,
        );
        scene.lie(
            CONFIG_FILE,
            "ETag",
            &scene.victim.join("data.bin").display().to_string(),
            1,
        );
        let err = scene.hub(false).fetch_checkpoint(&repo).unwrap_err();
        assert!(matches!(err, Error::BadAnswer { .. }), "{err}");
        assert!(err.to_string().contains("X-Repo-Commit"), "{err}");
        scene.untouched();
        // What was fetched honestly is still whole for offline use.
        let again = scene.hub(true).fetch_checkpoint(&repo).unwrap();
        assert_eq!(again, dir);
        scene.untouched();
    }

    #[test]
    fn the_get_answers_own_headers_and_a_wrong_size_cannot_steer_a_write() {
        let repo: RepoRef = "o/n".parse().unwrap();
        // The GET's headers are not read: lies there change nothing.
        let scene = Scene::new();
        for (file, header) in [(CONFIG_FILE, "ETag"), (WEIGHTS_FILE, "X-Repo-Commit")] {
            scene.stub.hostile(Hostile {
                file: file.into(),
                method: "GET".into(),
                header: header.into(),
                value: scene.victim.display().to_string(),
                after_heads: 0,
            });
        }
        scene.hub(false).fetch_checkpoint(&repo).unwrap();
        scene.untouched();
        // A HEAD size larger or smaller than the body: refused, and no blob is left.
        for (size, found) in [("100000000", "got "), ("3", "got more")] {
            let scene = Scene::new();
            scene.lie(CONFIG_FILE, "Content-Length", size, 0);
            let err = scene.hub(false).fetch_file(&repo, CONFIG_FILE).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::Integrity { .. }), "{msg}");
            assert!(
                msg.contains(&format!("expected {size} bytes, {found}")),
                "{msg}"
            );
            let blobs = fs::canonicalize(scene.cache())
                .unwrap()
                .join("models--o--n/blobs");
            assert_eq!(fs::read_dir(&blobs).unwrap().count(), 0, "no partial blob");
            scene.untouched();
        }
        // A size beyond any file is refused before anything is downloaded.
        let scene = Scene::new();
        scene.lie(CONFIG_FILE, "Content-Length", "18446744073709551615", 0);
        let err = scene.hub(false).fetch_file(&repo, CONFIG_FILE).unwrap_err();
        assert!(matches!(err, Error::BadAnswer { .. }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_poisoned_by_hf_hub_is_not_followed_nor_deleted_through() {
        let scene = Scene::new();
        let repo: RepoRef = "o/n".parse().unwrap();
        let root = scene.cache().join("models--o--n");
        let commit = "a".repeat(40);
        // As hf-hub 1.0.0 leaves a cache after a hostile answer: a ref holding a path, and a
        // snapshot entry linking to a file outside.
        fs::create_dir_all(root.join("refs")).unwrap();
        fs::write(root.join("refs/main"), scene.victim.display().to_string()).unwrap();
        let err = chain(&scene.hub(true).fetch_checkpoint(&repo).unwrap_err());
        assert!(err.contains("refs/main"), "{err}");
        fs::write(root.join("refs/main"), &commit).unwrap();
        let snap = root.join("snapshots").join(&commit);
        fs::create_dir_all(&snap).unwrap();
        fs::create_dir_all(root.join("blobs")).unwrap();
        std::os::unix::fs::symlink(scene.victim.join(WEIGHTS_FILE), snap.join(WEIGHTS_FILE))
            .unwrap();
        let before = Scene::outside(scene.tmp.path());
        for offline in [true, false] {
            let err = scene.hub(offline).fetch_checkpoint(&repo);
            if offline {
                let err = chain(&err.unwrap_err());
                assert!(err.contains("not to a blob"), "{err}");
            }
            assert_eq!(Scene::outside(scene.tmp.path()), before);
        }
        // A commit-pinned fetch of a repo never fetched with a symlinked snapshots/ is refused.
        let other = scene.cache().join("models--o--m");
        fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&scene.victim, other.join("snapshots")).unwrap();
        let pinned: RepoRef = format!("o/m@{commit}").parse().unwrap();
        assert!(scene.hub(true).fetch_checkpoint(&pinned).is_err());
        scene.untouched();
    }

    #[test]
    fn a_hub_that_never_answers_times_out_with_one_line_naming_it() {
        let silent = Silent::start().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let h = Hub::new(&HubOptions {
            endpoint: Some(silent.endpoint()),
            cache_dir: Some(tmp.path().join("cache")),
            timeouts: Some(Timeouts::parse("1").unwrap()),
            ..HubOptions::default()
        })
        .unwrap();
        let start = std::time::Instant::now();
        let err = h.fetch_checkpoint(&"o/n".parse().unwrap()).unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        let msg = one_line(&err, &silent.endpoint());
        assert!(matches!(err, Error::Timeout { .. }), "{msg}");
        assert!(
            msg.contains(&silent.endpoint())
                && msg.contains("within 1 s")
                && msg.contains(TIMEOUT_ENV),
            "{msg}"
        );
        // The push goes through hf-hub, with the same client and timeouts.
        let ckpt = tmp.path().join("ckpt");
        small_model(&ckpt);
        let start = std::time::Instant::now();
        let err = h
            .push(&ckpt, &"o/n".parse().unwrap(), &PushOptions::default())
            .unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(15));
        let msg = one_line(&err, &silent.endpoint());
        assert!(matches!(err, Error::Timeout { .. }), "{msg}");

        // A body that stops halfway: the read timeout, and no partial blob.
        let scene = Scene::new();
        scene.stub.stall(WEIGHTS_FILE);
        let start = std::time::Instant::now();
        let err = scene
            .hub(false)
            .fetch_file(&"o/n".parse().unwrap(), WEIGHTS_FILE)
            .unwrap_err();
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        assert!(
            matches!(
                err,
                Error::Timeout {
                    phase: "for an answer",
                    ..
                }
            ),
            "{err}"
        );
        let blobs = fs::canonicalize(scene.cache())
            .unwrap()
            .join("models--o--n/blobs");
        assert_eq!(fs::read_dir(&blobs).unwrap().count(), 0, "no partial blob");
        scene.untouched();
        // A refused connection: one line, the cause once.
        let err = hub_at("http://127.0.0.1:9", &tmp.path().join("c2"), None, false)
            .fetch_file(&"o/n".parse().unwrap(), CONFIG_FILE)
            .unwrap_err();
        let msg = one_line(&err, "http://127.0.0.1:9");
        assert!(matches!(err, Error::Unreachable { .. }), "{msg}");
        assert_eq!(msg.matches("refused").count(), 1, "{msg}");
    }

    #[test]
    fn a_bad_timeout_setting_is_refused_by_name() {
        let err = Timeouts::parse("soon").unwrap_err().to_string();
        assert!(err.starts_with("PRUNEBENCH_HUB_TIMEOUT=\"soon\""), "{err}");
    }
}
