//! A stand-in for the Hugging Face hub on 127.0.0.1, for tests (feature `stub`).
//!
//! It speaks the part of the protocol hf-hub 1.0 uses for model repos: `HEAD`/`GET
//! /{owner}/{name}/resolve/{rev}/{file}` with `ETag`, `X-Repo-Commit`, `Content-Length` and
//! `Range` for regular files (the ETag is git's blob sha1), and for LFS files (here: every
//! `.safetensors`) a 302 to `/lfs/{sha256}` carrying `X-Linked-Etag` (the sha256),
//! `X-Linked-Size` and `X-Repo-Commit`, as the hub redirects to its storage; `POST /api/repos/create`; `POST /api/models/{owner}/{name}/preupload/{rev}` (every
//! file "regular"); `POST /api/models/{owner}/{name}/commit/{rev}` (x-ndjson, base64 files). One
//! thread per connection, `Connection: close` on every answer.
//!
//! Knobs for error paths: tokens with an access level (401 without a known token, 403 when it
//! lacks the rights), files whose body is served corrupted (same length, one byte flipped) or
//! short, and a hostile hub: any header of a file's answers replaced ([`Hostile`]: an ETag or
//! `X-Repo-Commit` that is a path, a wrong size, from the second `HEAD` on), a body that stalls
//! halfway ([`Stub::stall`]); and [`Silent`], a server that accepts connections and never
//! answers.
//!
//! ```
//! let stub = hub::stub::Stub::start()?;
//! stub.add_file("owner/name", "config.json", b"{}".to_vec());
//! assert!(stub.endpoint().starts_with("http://127.0.0.1:"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nothing: every request answers 403.
    None,
    /// Download only: pushes answer 403.
    Read,
    /// Download and push.
    Write,
}

#[derive(Debug, Default)]
struct Repo {
    commit: String,
    files: BTreeMap<String, Vec<u8>>,
    private: bool,
}

#[derive(Debug, Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    /// Empty: no authentication at all.
    tokens: HashMap<String, Access>,
    corrupt: BTreeSet<String>,
    truncate: BTreeSet<String>,
    stall: BTreeSet<String>,
    hostile: Vec<Hostile>,
    /// `HEAD`s answered per file name.
    heads: HashMap<String, usize>,
}

/// A header the stub answers falsely for one file (in every repo), as a hostile hub or a man in
/// the middle would.
#[derive(Debug, Clone, Default)]
pub struct Hostile {
    /// The file whose answers are changed.
    pub file: String,
    /// `HEAD`, `GET`, or empty for both.
    pub method: String,
    /// The header to set (replacing one of the same name): `ETag`, `X-Linked-Etag`,
    /// `X-Repo-Commit`, `Content-Length`, `X-Linked-Size`, ...
    pub header: String,
    /// Its value.
    pub value: String,
    /// `HEAD`s of the file answered truthfully first (1: the second `HEAD` lies).
    pub after_heads: usize,
}

/// A running stub; stopped when dropped.
#[derive(Debug)]
pub struct Stub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking handler thread must not take the other tests' answers with it.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Stub {
    /// Starts a stub on a free port of 127.0.0.1.
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, requests, stop) = (state.clone(), requests.clone(), stop.clone());
            std::thread::Builder::new()
                .name("hub-stub".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let (state, requests) = (state.clone(), requests.clone());
                        let _ = std::thread::Builder::new().spawn(move || {
                            let _ = serve(conn, addr, &state, &requests);
                        });
                    }
                })?
        };
        Ok(Self {
            addr,
            state,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// The base URL to give hf-hub (`HF_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Accepts `token` with `access`. Once a token is known, a request without a known token
    /// answers 401.
    pub fn add_token(&self, token: &str, access: Access) {
        lock(&self.state).tokens.insert(token.to_string(), access);
    }

    /// Serves `file` (in every repo) with one byte flipped from now on.
    pub fn corrupt(&self, file: &str) {
        lock(&self.state).corrupt.insert(file.to_string());
    }

    /// Serves `file` (in every repo) one byte short from now on, while `HEAD` still announces
    /// the full size.
    pub fn truncate(&self, file: &str) {
        lock(&self.state).truncate.insert(file.to_string());
    }

    /// Answers a header falsely from now on (see [`Hostile`]).
    pub fn hostile(&self, h: Hostile) {
        lock(&self.state).hostile.push(h);
    }

    /// Serves `file` (in every repo) by sending the headers and half the body, then nothing
    /// more while the connection stays open (about 30 s).
    pub fn stall(&self, file: &str) {
        lock(&self.state).stall.insert(file.to_string());
    }

    /// Adds (or replaces) a file, creating the repo if needed; a new commit.
    pub fn add_file(&self, repo: &str, file: &str, bytes: Vec<u8>) {
        let mut st = lock(&self.state);
        let r = st.repos.entry(repo.to_string()).or_default();
        r.files.insert(file.to_string(), bytes);
        r.commit = next_commit(&r.commit, file);
    }

    /// A file's bytes as the stub holds them.
    pub fn file(&self, repo: &str, file: &str) -> Option<Vec<u8>> {
        lock(&self.state).repos.get(repo)?.files.get(file).cloned()
    }

    /// Whether a repo exists, and whether it is private.
    pub fn repo_private(&self, repo: &str) -> Option<bool> {
        lock(&self.state).repos.get(repo).map(|r| r.private)
    }

    /// The head commit of a repo.
    pub fn commit(&self, repo: &str) -> Option<String> {
        lock(&self.state).repos.get(repo).map(|r| r.commit.clone())
    }

    /// Stops accepting connections and waits for the listener thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A server on 127.0.0.1 that accepts every connection and never answers (for timeouts).
#[derive(Debug)]
pub struct Silent {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Silent {
    /// Starts one on a free port.
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hub-silent".into())
            .spawn(move || {
                // Held open, unread and unanswered, until the server stops.
                let mut held = Vec::new();
                for conn in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(c) = conn {
                        held.push(c);
                    }
                }
            })?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The base URL to give as `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn next_commit(prev: &str, what: &str) -> String {
    hex(&Sha1::digest(format!("{prev}\n{what}").as_bytes()))
}

/// The hub's ETag: sha256 for LFS files (weights), the git blob id for the others.
pub fn etag(file: &str, bytes: &[u8]) -> String {
    if file.ends_with(".safetensors") {
        hex(&Sha256::digest(bytes))
    } else {
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", bytes.len()).as_bytes());
        h.update(bytes);
        hex(&h.finalize())
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        let mut r = Self::json(status, &serde_json::json!({ "error": message }));
        r.headers.push(("X-Error-Code".into(), code.into()));
        r.headers.push(("X-Error-Message".into(), message.into()));
        r
    }
}

fn read_request(conn: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn serve(
    conn: TcpStream,
    addr: SocketAddr,
    state: &Mutex<State>,
    requests: &AtomicUsize,
) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let Some(req) = read_request(&mut reader)? else {
        return Ok(());
    };
    requests.fetch_add(1, Ordering::SeqCst);
    let mut resp = route(&req, addr, state);
    let stall = lie(&req, &mut resp, state);
    let reason = match resp.status {
        200 => "OK",
        302 => "Found",
        206 => "Partial Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        416 => "Range Not Satisfiable",
        _ => "Bad Request",
    };
    let mut out = conn;
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !resp.headers.iter().any(|(k, _)| k == "Content-Length") {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    out.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        if stall {
            out.write_all(&resp.body[..resp.body.len() / 2])?;
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_secs(30));
            return Ok(());
        }
        out.write_all(&resp.body)?;
    }
    out.flush()
}

/// The file a `resolve` or LFS request is for (by name; LFS by its sha256).
fn requested_file(req: &Request, st: &State) -> Option<String> {
    let path = req.path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        [_, _, "resolve", _, file @ ..] if !file.is_empty() => Some(
            file.iter()
                .map(|f| percent_decode(f))
                .collect::<Vec<_>>()
                .join("/"),
        ),
        ["lfs", sha] => st.repos.values().find_map(|r| {
            r.files
                .iter()
                .find(|(name, bytes)| etag(name, bytes) == *sha)
                .map(|(name, _)| name.clone())
        }),
        _ => None,
    }
}

/// Applies the [`Hostile`] rules to an answer; whether its body should stall.
fn lie(req: &Request, resp: &mut Response, state: &Mutex<State>) -> bool {
    let mut st = lock(state);
    let Some(file) = requested_file(req, &st) else {
        return false;
    };
    let heads = if req.method == "HEAD" {
        let n = st.heads.entry(file.clone()).or_default();
        *n += 1;
        *n - 1
    } else {
        usize::MAX
    };
    for h in st.hostile.iter().filter(|h| h.file == file) {
        let method_ok = h.method.is_empty() || h.method.eq_ignore_ascii_case(&req.method);
        let turn_ok = req.method != "HEAD" || heads >= h.after_heads;
        if method_ok && turn_ok {
            resp.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case(&h.header));
            resp.headers.push((h.header.clone(), h.value.clone()));
        }
    }
    req.method == "GET" && st.stall.contains(&file) && resp.status < 300
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(pair) = b.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(&String::from_utf8_lossy(pair), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// 401/403 from the token, or `None` to go on.
fn authorize(req: &Request, st: &State, write: bool) -> Option<Response> {
    if st.tokens.is_empty() {
        return None;
    }
    let token = req
        .headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| st.tokens.get(t)) {
        None => Some(Response::error(
            401,
            "Unauthorized",
            "Invalid credentials in Authorization header",
        )),
        Some(Access::None) => Some(Response::error(403, "Forbidden", "no access to this repo")),
        Some(Access::Read) if write => Some(Response::error(
            403,
            "Forbidden",
            "You don't have the rights to create a model under this namespace",
        )),
        Some(_) => None,
    }
}

fn route(req: &Request, addr: SocketAddr, state: &Mutex<State>) -> Response {
    let mut st = lock(state);
    let path = req.path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let post = req.method == "POST";
    // Storage URLs are signed on the hub: no token is asked for there.
    if segs.first() != Some(&"lfs")
        && let Some(denied) = authorize(req, &st, post)
    {
        return denied;
    }
    match (req.method.as_str(), segs.as_slice()) {
        ("HEAD" | "GET", [owner, name, "resolve", rev, file @ ..]) if !file.is_empty() => {
            let repo = format!("{owner}/{name}");
            let file: Vec<String> = file.iter().map(|f| percent_decode(f)).collect();
            resolve(req, &st, addr, &repo, &percent_decode(rev), &file.join("/"))
        }
        ("HEAD" | "GET", ["lfs", sha]) => {
            let found = st.repos.values().find_map(|r| {
                r.files.iter().find(|(name, bytes)| {
                    name.ends_with(".safetensors") && etag(name, bytes) == *sha
                })
            });
            match found {
                Some((name, bytes)) => serve_bytes(req, &st, name, bytes, Vec::new()),
                None => Response::error(404, "NotFound", "no such object"),
            }
        }
        ("POST", ["api", "repos", "create"]) => {
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                return Response::error(400, "BadRequest", "body is not JSON");
            };
            let name = body["name"].as_str().unwrap_or_default();
            let Some(owner) = body["organization"].as_str() else {
                return Response::error(400, "BadRequest", "no organization");
            };
            let id = format!("{owner}/{name}");
            if st.repos.contains_key(&id) {
                return Response::error(409, "Conflict", "You already created this model repo");
            }
            st.repos.insert(
                id.clone(),
                Repo {
                    commit: next_commit("", &id),
                    files: BTreeMap::new(),
                    private: body["private"].as_bool().unwrap_or(false),
                },
            );
            Response::json(
                200,
                &serde_json::json!({ "url": format!("http://{addr}/{id}") }),
            )
        }
        ("POST", ["api", "models", owner, name, "preupload", _rev]) => {
            let id = format!("{owner}/{name}");
            if !st.repos.contains_key(&id) {
                return Response::error(404, "RepoNotFound", "Repository not found");
            }
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                return Response::error(400, "BadRequest", "body is not JSON");
            };
            let files: Vec<serde_json::Value> = body["files"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| serde_json::json!({ "path": f["path"], "uploadMode": "regular" }))
                        .collect()
                })
                .unwrap_or_default();
            Response::json(200, &serde_json::json!({ "files": files }))
        }
        ("POST", ["api", "models", owner, name, "commit", _rev]) => {
            let id = format!("{owner}/{name}");
            commit(req, &mut st, &id, addr)
        }
        _ => Response::error(404, "NotFound", "no such endpoint in the stub"),
    }
}

fn resolve(
    req: &Request,
    st: &State,
    addr: SocketAddr,
    repo: &str,
    rev: &str,
    file: &str,
) -> Response {
    let Some(r) = st.repos.get(repo) else {
        return Response::error(404, "RepoNotFound", "Repository not found");
    };
    if rev != "main" && rev != r.commit {
        return Response::error(404, "RevisionNotFound", "Invalid rev id");
    }
    let Some(bytes) = r.files.get(file) else {
        let mut resp = Response::error(404, "EntryNotFound", "Entry not found");
        resp.headers
            .push(("X-Repo-Commit".into(), r.commit.clone()));
        return resp;
    };
    if file.ends_with(".safetensors") {
        let sha = etag(file, bytes);
        return Response {
            status: 302,
            headers: vec![
                ("Location".into(), format!("http://{addr}/lfs/{sha}")),
                ("X-Linked-Etag".into(), format!("\"{sha}\"")),
                ("X-Linked-Size".into(), bytes.len().to_string()),
                ("X-Repo-Commit".into(), r.commit.clone()),
            ],
            body: Vec::new(),
        };
    }
    let commit = vec![("X-Repo-Commit".to_string(), r.commit.clone())];
    serve_bytes(req, st, file, bytes, commit)
}

/// A file's bytes with its ETag, `Range` honoured, corrupted if asked.
fn serve_bytes(
    req: &Request,
    st: &State,
    file: &str,
    bytes: &[u8],
    extra: Vec<(String, String)>,
) -> Response {
    let mut body = bytes.to_vec();
    if st.corrupt.contains(file)
        && let Some(b) = body.get_mut(bytes.len() / 2)
    {
        *b ^= 0xff;
    }
    if st.truncate.contains(file) {
        body.pop();
    }
    let len = body.len();
    let mut headers = vec![
        ("ETag".to_string(), format!("\"{}\"", etag(file, bytes))),
        ("Accept-Ranges".to_string(), "bytes".to_string()),
    ];
    headers.extend(extra);
    let range = req
        .headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'));
    if let Some((a, b)) = range {
        let start: usize = a.parse().unwrap_or(0);
        let end: usize = b.parse().map_or(len.saturating_sub(1), |e: usize| {
            e.min(len.saturating_sub(1))
        });
        if start >= len || start > end {
            headers.push(("Content-Range".into(), format!("bytes */{len}")));
            return Response {
                status: 416,
                headers,
                body: Vec::new(),
            };
        }
        headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
        return Response {
            status: 206,
            headers,
            body: body[start..=end].to_vec(),
        };
    }
    if req.method == "HEAD" {
        // No body follows, but the size is announced as the hub does.
        headers.push(("Content-Length".into(), bytes.len().to_string()));
    }
    Response {
        status: 200,
        headers,
        body,
    }
}

fn commit(req: &Request, st: &mut State, id: &str, addr: SocketAddr) -> Response {
    let Some(repo) = st.repos.get_mut(id) else {
        return Response::error(404, "RepoNotFound", "Repository not found");
    };
    let mut summary = String::new();
    let mut added = Vec::new();
    for line in req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            return Response::error(400, "BadRequest", "a line is not JSON");
        };
        match v["key"].as_str() {
            Some("header") => {
                summary = v["value"]["summary"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
            }
            Some("file") => {
                let (Some(path), Some(content)) =
                    (v["value"]["path"].as_str(), v["value"]["content"].as_str())
                else {
                    return Response::error(400, "BadRequest", "a file line lacks path or content");
                };
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(content) else {
                    return Response::error(400, "BadRequest", "content is not base64");
                };
                added.push((path.to_string(), bytes));
            }
            Some("deletedFile") => {
                if let Some(path) = v["value"]["path"].as_str() {
                    repo.files.remove(path);
                }
            }
            _ => return Response::error(400, "BadRequest", "unsupported commit line"),
        }
    }
    for (path, bytes) in added {
        repo.commit = next_commit(&repo.commit, &etag(&path, &bytes));
        repo.files.insert(path, bytes);
    }
    Response::json(
        200,
        &serde_json::json!({
            "commitUrl": format!("http://{addr}/{id}/commit/{}", repo.commit),
            "commitOid": repo.commit,
            "commitMessage": summary,
        }),
    )
}
