//! The `discord-standin` binary as `make dev` runs it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

#[tokio::test]
async fn the_binary_serves_the_default_webhook_and_prints_accepted_messages() {
    // Port 0: the binary binds a free port and logs its URL (a port found free and
    // released first could be taken by a parallel test before the binary binds it).
    let mut child = Command::new(env!("CARGO_BIN_EXE_discord-standin"))
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_secs(30)) {
        let ready = line.contains("discord stand-in listening");
        seen.push(line);
        if ready {
            break;
        }
    }
    let start_line = seen
        .iter()
        .find(|l| l.contains("discord stand-in listening"))
        .cloned()
        .unwrap_or_else(|| panic!("no start-up line: {seen:?}"));
    let api = start_line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("discord_api_url="))
        .unwrap_or_else(|| panic!("no API URL: {start_line}"))
        .to_owned();
    assert!(
        api.starts_with("http://127.0.0.1:") && api.ends_with("/api/v10"),
        "{start_line}"
    );
    assert!(
        !start_line.contains('\u{1b}'),
        "colour codes in the log: {start_line}"
    );

    let url = format!("{api}/webhooks/1000000000000000001/standin-token?wait=true");
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({"content": "deploy finished", "allowed_mentions": {"parse": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // SIGTERM (kill sends SIGKILL; use the `kill` command for a clean stop).
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(stdout.contains("deploy finished"), "{stdout}");
    assert!(!stdout.contains("standin-token"), "{stdout}");
}
