//! The README's walkthrough, run as written: every shell block of "A five-minute
//! walkthrough" against the built binary, with each `# …` line of expected output checked.
//!
//! The blocks run in one shell, in order, as a reader pastes them into terminal 3: a block
//! tagged `sh daemon` is the daemon (started here instead, on a free port and a private
//! copy of the demo config), one tagged `sh receiver` runs in the background, and one tagged
//! `sh poll` is a read that may be repeated until what it expects has happened (a reader is
//! slower than the delivery worker; this test is not). The commands are changed in only
//! three ways: the ports, the config's path, and `cargo run --release -q --`, which becomes
//! the binary under test.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use support::free_port;

const README: &str = include_str!("../README.md");
const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
const SECTION: &str = "## A five-minute walkthrough";

/// One fenced shell block of the walkthrough.
#[derive(Debug)]
struct Block {
    tag: String,
    text: String,
    /// The `# ` lines: what the block prints, `…` standing for anything.
    expected: Vec<String>,
}

/// The shell blocks of the walkthrough section, in order.
fn walkthrough_blocks(readme: &str) -> Vec<Block> {
    let start = readme
        .find(SECTION)
        .expect("the README has the walkthrough");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```sh") else {
            continue;
        };
        let mut text = String::new();
        let mut expected = Vec::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            if let Some(output) = line.strip_prefix("# ") {
                expected.push(output.to_owned());
            }
            text.push_str(line);
            text.push('\n');
        }
        blocks.push(Block {
            tag: info.trim().to_owned(),
            text,
            expected,
        });
    }
    blocks
}

/// Whether `output` holds every expected line's pieces in order (`…` matches anything).
fn matches_in_order(output: &str, expected: &[String]) -> bool {
    let mut at = 0;
    for piece in expected.iter().flat_map(|line| line.split('…')) {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        match output[at..].find(piece) {
            Some(found) => at += found + piece.len(),
            None => return false,
        }
    }
    true
}

/// A child process killed when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Terminal 3: one shell that keeps its variables and functions from block to block.
struct Shell {
    _child: Reaped,
    stdin: ChildStdin,
    lines: Receiver<String>,
    blocks_run: usize,
}

impl Shell {
    fn start(root: &Path) -> Shell {
        let mut child = Command::new("bash")
            .args(["--norc", "--noprofile"])
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        writeln!(stdin, "exec 2>&1").expect("the shell takes input");
        Shell {
            _child: Reaped(child),
            stdin,
            lines,
            blocks_run: 0,
        }
    }

    /// Runs `text` and returns all it printed.
    fn run(&mut self, text: &str) -> String {
        self.blocks_run += 1;
        let marker = format!("__walkthrough_block_{}_done__", self.blocks_run);
        write!(self.stdin, "{text}\necho; echo {marker}\n").expect("the shell takes input");
        self.stdin.flush().expect("the shell takes input");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut output = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == marker => return output,
                Ok(line) => {
                    output.push_str(&line);
                    output.push('\n');
                }
                Err(_) => panic!(
                    "block did not finish within 2 minutes:\n{text}\noutput so far:\n{output}"
                ),
            }
        }
    }
}

fn wait_until_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let healthy = Command::new("curl")
            .args(["-sf", &format!("{base}/healthz")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if healthy {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon did not answer /healthz at {base} within 30 s");
}

#[test]
#[cfg_attr(
    not(walkthrough_tests),
    ignore = "needs bash, curl and python3 on the PATH (found when the tests were built)"
)]
fn the_readme_walkthrough_runs_as_written_and_prints_what_it_shows() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = env!("CARGO_BIN_EXE_channel-bridge");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (daemon_port, receiver_port) = (free_port(), free_port());
    let daemon_address = format!("127.0.0.1:{daemon_port}");
    let config_path = dir.path().join("demo.toml");
    let database = dir.path().join("demo.db");
    let config = DEMO_CONFIG
        .replace("127.0.0.1:8080", &daemon_address)
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{receiver_port}"))
        .replace(
            "sqlite://data/demo.db",
            &format!("sqlite://{}", database.display()),
        );
    assert_ne!(
        config, DEMO_CONFIG,
        "the demo config names its ports and file"
    );
    std::fs::write(&config_path, config).expect("the config copy is written");

    let as_run_here = |text: &str| {
        text.replace("127.0.0.1:8080", &daemon_address)
            .replace("--port 9000", &format!("--port {receiver_port}"))
            .replace("config/demo.toml", &config_path.display().to_string())
            .replace("cargo run --release -q --", binary)
    };

    let blocks = walkthrough_blocks(README);
    assert!(blocks.iter().any(|b| b.tag == "daemon"), "{blocks:?}");
    assert!(blocks.iter().any(|b| b.tag == "receiver"), "{blocks:?}");
    let mut shell = Shell::start(&root);
    let mut background = Vec::new();
    let mut checked = 0;
    for block in &blocks {
        match block.tag.as_str() {
            "daemon" => {
                assert!(
                    block.text.contains("cargo run --release"),
                    "the daemon block starts the daemon: {}",
                    block.text
                );
                let daemon = Command::new(binary)
                    .env("CHANNEL_BRIDGE_CONFIG", &config_path)
                    .current_dir(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("the daemon starts");
                background.push(Reaped(daemon));
                wait_until_healthy(&format!("http://{daemon_address}"));
            }
            "receiver" => {
                let receiver = Command::new("bash")
                    .args(["-c", &as_run_here(&block.text)])
                    .current_dir(&root)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("the receiver starts");
                background.push(Reaped(receiver));
                // The receiver is up once it accepts connections.
                let deadline = Instant::now() + Duration::from_secs(10);
                while std::net::TcpStream::connect(("127.0.0.1", receiver_port)).is_err() {
                    assert!(Instant::now() < deadline, "the receiver did not start");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            tag => {
                let tries = if tag == "poll" { 100 } else { 1 };
                let text = as_run_here(&block.text);
                let mut output = String::new();
                for _ in 0..tries {
                    output = shell.run(&text);
                    if matches_in_order(&output, &block.expected) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                assert!(
                    matches_in_order(&output, &block.expected),
                    "the walkthrough block\n{}\nprinted\n{output}\nnot what it shows:\n{}",
                    block.text,
                    block.expected.join("\n")
                );
                checked += block.expected.len();
            }
        }
    }
    assert!(checked >= 15, "only {checked} expected lines were checked");
}

#[test]
fn expected_output_matches_in_order_with_ellipses_for_anything() {
    let output = r#"{"id":"alice","status":"online","assigned":0} [200]"#;
    let yes = |s: &str| matches_in_order(output, &[s.to_owned()]);
    assert!(yes(r#"{"id":"alice",…"assigned":0} [200]"#));
    assert!(!yes(r#"{"id":"alice",…"assigned":1} [200]"#));
    assert!(
        !yes(r#""assigned":0…{"id":"alice""#),
        "pieces must come in order"
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut found = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.push(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The Markdown files a reader is sent to: the README, the guides, the platform pages.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "RELIABILITY.md", "BENCHMARKS.md"]
        .iter()
        .map(|name| root.join(name))
        .collect();
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)
            .expect("docs/ is readable")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn every_relative_link_in_the_docs_names_a_file_and_heading_that_exist() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    for file in documents(&root) {
        let text = std::fs::read_to_string(&file).expect("a doc is readable");
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = &rest[..end];
            if target.contains(' ') || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a doc is in a folder").join(path)
            };
            let name = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            if !linked.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
            } else if !fragment.is_empty() && linked.extension().is_some_and(|e| e == "md") {
                let linked_text = std::fs::read_to_string(&linked).expect("a doc is readable");
                if !anchors(&linked_text).iter().any(|a| a == fragment) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
