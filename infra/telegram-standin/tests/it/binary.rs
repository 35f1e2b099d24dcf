//! The `telegram-standin` binary as `make dev` runs it: it logs its base URL, takes a message
//! on its default bot and chats, prints it, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

/// Lines of a child's output, read on a thread.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The first line containing `needle`, within 30 s.
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> Option<String> {
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        if line.contains(needle) {
            return Some(line);
        }
    }
    None
}

#[tokio::test]
async fn the_binary_serves_its_default_bot_and_chats_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_telegram-standin"))
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());

    let started = wait_for(&stderr, "telegram stand-in listening").unwrap();
    assert!(
        !started.contains('\u{1b}'),
        "colour codes in the log: {started}"
    );
    let base = started
        .split_whitespace()
        .find_map(|field| field.strip_prefix("telegram_api_url="))
        .unwrap()
        .to_owned();
    assert!(started.contains("private_chat_id=1001") && started.contains("group_chat_id=-1002"));

    let response = reqwest::Client::new()
        .post(format!("{base}/bot{}/sendMessage", telegram_standin::DEFAULT_TOKEN))
        .json(&json!({"chat_id": -1002, "text": "<b>hello</b> from the binary", "parse_mode": "HTML"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let printed = wait_for(&stdout, "hello from the binary").unwrap();
    assert!(printed.contains("-1002"), "{printed}");
    assert!(!printed.contains("standin-token"), "{printed}");

    let terminated = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
