//! `fetch` against a small HTTP server on 127.0.0.1 started by the test, serving a CIFAR-format
//! tarball the test builds: success, a wrong checksum, a truncated download and no network.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use datasets::fetch::{Archive, Fetched, fetch};
use datasets::{DatasetKind, Error};
use md5::{Digest, Md5};

/// A gzipped tarball holding `cifar-10-batches-bin/` with five train batches and a test batch.
fn tarball() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, records: usize| {
        let mut data = Vec::new();
        for i in 0..records {
            data.push((i % 10) as u8);
            data.extend(std::iter::repeat_n((i % 256) as u8, 3072));
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(
            &mut header,
            format!("cifar-10-batches-bin/{name}"),
            &data[..],
        )
        .unwrap();
    };
    for i in 1..=5 {
        add(&format!("data_batch_{i}.bin"), 4);
    }
    add("test_batch.bin", 3);
    tar.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Serves `body` (announcing `announced` bytes) to `connections` requests, then stops.
fn serve(body: Vec<u8>, announced: usize, connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let mut stream = stream.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {announced}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}/cifar-10-binary.tar.gz")
}

fn archive(url: String, md5: String) -> Archive {
    Archive {
        url,
        md5,
        folder: "cifar-10-batches-bin".into(),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn downloads_verifies_and_extracts_then_reads() {
    let body = tarball();
    let md5 = md5_hex(&body);
    let url = serve(body.clone(), body.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let mut seen = (0, None);
    let got = fetch(
        &archive(url.clone(), md5.clone()),
        dir.path(),
        &mut |d, t| seen = (d, t),
    )
    .unwrap();
    assert_eq!(
        got,
        Fetched::Extracted(dir.path().join("cifar-10-batches-bin"))
    );
    assert_eq!(seen, (body.len() as u64, Some(body.len() as u64)));
    assert_eq!(names(dir.path()), ["cifar-10-batches-bin"]);
    let data = datasets::load(DatasetKind::Cifar10, Some(dir.path())).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (20, 3));
    // A second fetch finds the folder and asks nothing of the (now stopped) server.
    let again = fetch(&archive(url, md5), dir.path(), &mut |_, _| {}).unwrap();
    assert!(matches!(again, Fetched::AlreadyPresent(_)));
}

#[test]
fn a_wrong_checksum_extracts_nothing() {
    let body = tarball();
    let url = serve(body.clone(), body.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let e = fetch(&archive(url, "0".repeat(32)), dir.path(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::Checksum { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("MD5 {}", md5_hex(&body))),
        "{e}"
    );
    assert!(
        names(dir.path()).is_empty(),
        "left behind: {:?}",
        names(dir.path())
    );
}

#[test]
fn a_truncated_download_extracts_nothing() {
    let body = tarball();
    let md5 = md5_hex(&body);
    let half = body[..body.len() / 2].to_vec();
    let url = serve(half, body.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let e = fetch(&archive(url, md5), dir.path(), &mut |_, _| {}).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Download { .. }), "{text}");
    assert!(
        names(dir.path()).is_empty(),
        "left behind: {:?}",
        names(dir.path())
    );
}

#[test]
fn offline_says_where_to_put_the_files() {
    // A port nothing listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let e = fetch(
        &archive(url.clone(), "0".repeat(32)),
        dir.path(),
        &mut |_, _| {},
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&format!("cannot download {url}")), "{text}");
    assert!(
        text.contains("by hand") && text.contains("cifar-10-batches-bin"),
        "{text}"
    );
    assert!(names(dir.path()).is_empty());
}

#[test]
fn official_addresses_and_checksums() {
    let a = Archive::cifar(datasets::cifar::Cifar::Ten);
    assert_eq!(
        a.url,
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    );
    assert_eq!(a.md5, "c32a1d4ab5d03f1284b67883e8d87530");
    let b = Archive::cifar(datasets::cifar::Cifar::Hundred);
    assert_eq!(b.md5, "03b5dce01913d631647c71ecec9e9cb8");
    assert_eq!(b.folder, "cifar-100-binary");
}
