//! The `notion-standin` binary as `make dev` runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use notion_standin::DEFAULT_TOKEN;

use crate::{event_page, VERSION};

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
}

fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test]
async fn the_binary_serves_the_events_database_prints_pages_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_notion-standin"))
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(child.stderr.take().unwrap());
    let stdout = lines(child.stdout.take().unwrap());

    let mut seen = Vec::new();
    let mut ready = None;
    while let Ok(line) = stderr.recv_timeout(Duration::from_secs(30)) {
        seen.push(line.clone());
        if line.contains("notion stand-in listening") {
            ready = Some(line);
            break;
        }
    }
    let ready = ready.unwrap_or_else(|| panic!("no start-up line: {seen:?}"));
    assert!(
        !ready.contains('\u{1b}'),
        "colour codes in the log: {ready}"
    );
    let api_url = field(&ready, "notion_api_url").unwrap();
    let data_source_id = field(&ready, "data_source_id").unwrap();
    assert!(field(&ready, "database_id").is_some());

    let response = reqwest::Client::new()
        .post(format!("{api_url}/v1/pages"))
        .bearer_auth(DEFAULT_TOKEN)
        .header("Notion-Version", VERSION)
        .json(&event_page(data_source_id, "evt_binary"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let printed = stdout.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(printed.contains("ingestlayer events"), "{printed}");
    assert!(printed.contains("Event ID=evt_binary"), "{printed}");
    assert!(!printed.contains(DEFAULT_TOKEN));

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut status = None;
    for _ in 0..300 {
        if let Some(done) = child.try_wait().unwrap() {
            status = Some(done);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the binary did not stop on SIGTERM")
    });
    assert!(status.success(), "{status:?}");
}
