//! The binaries people run by hand: `ingestlayer-local dev` (what `make dev` runs) and the
//! operator tools, as processes with their output going to a pipe, as into a log file.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An address nothing listens on: connections to it are refused at once.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";

struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `ingestlayer-local` to its exit (killed after `limit`), its output collected.
fn run_local(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ingestlayer-local"));
    let remember = std::env::temp_dir().join(format!(
        "ingestlayer-dev-{}-{}.env",
        std::process::id(),
        ulid::Ulid::new()
    ));
    command.args(args);
    if args.first() == Some(&"dev") {
        // The repository's pipelines; remembered secrets in a file of this run's own.
        command
            .arg("--pipelines")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines"))
            .arg("--remember")
            .arg(&remember);
    }
    command
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("INGESTLAYER_ADMIN_TOKEN")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("SLACK_API_URL")
        .env_remove("PORT")
        .env_remove("SLACK_STANDIN_PORT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn make_dev_refuses_an_admin_token_under_16_characters_and_says_why() {
    let standin_port = free_port().to_string();
    let run = run_local(
        &[
            "dev",
            "--endpoint",
            DEAD_ENDPOINT,
            "--port",
            &free_port().to_string(),
            "--standin-port",
            &standin_port,
        ],
        &[("INGESTLAYER_ADMIN_TOKEN", "short-token")],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("INGESTLAYER_ADMIN_TOKEN has 11 characters")
            && run.stderr.contains("at least 16"),
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("ingestlayer is running"));
}

#[test]
fn a_busy_stand_in_port_stops_make_dev_naming_the_port_and_its_variable() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap().port().to_string();
    let run = run_local(
        &[
            "dev",
            "--endpoint",
            DEAD_ENDPOINT,
            "--port",
            &free_port().to_string(),
            "--standin-port",
            &busy,
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{busy}"))
            && run.stderr.contains("set SLACK_STANDIN_PORT to a free port"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_busy_api_port_stops_make_dev_naming_the_port_and_its_variable() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = held.local_addr().unwrap().port().to_string();
    let prefix = format!("busy-{}", ulid::Ulid::new().to_string().to_lowercase());
    let run = run_local(
        &[
            "dev",
            "--endpoint",
            &crate::harness::endpoint(),
            "--prefix",
            &prefix,
            "--port",
            &busy,
            "--standin-port",
            &free_port().to_string(),
        ],
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(run.code, Some(2), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{busy}"))
            && run.stderr.contains("set PORT to a free port"),
        "{}",
        run.stderr
    );
}

#[test]
fn logs_written_to_a_pipe_or_file_carry_no_colour_codes() {
    // Debug level: the AWS SDK logs its attempts at the dead endpoint before the stack
    // gives up, so there are log lines whatever else changes.
    let run = run_local(
        &[
            "dev",
            "--endpoint",
            DEAD_ENDPOINT,
            "--port",
            &free_port().to_string(),
            "--standin-port",
            &free_port().to_string(),
        ],
        &[("RUST_LOG", "debug")],
        Duration::from_secs(60),
    );
    let output = format!("{}{}", run.stdout, run.stderr);
    assert!(output.contains("DEBUG"), "no log lines: {output}");
    assert!(
        !output.contains('\u{1b}'),
        "colour codes in the log: {output}"
    );
}

/// The names of template.yaml's stack outputs.
fn template_outputs() -> Vec<String> {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .unwrap();
    let mut outputs = Vec::new();
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == "Outputs:";
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if inside && !name.starts_with(' ') && !name.starts_with('#') {
                outputs.push(name.to_owned());
            }
        }
    }
    outputs
}

#[test]
fn every_tool_names_stack_outputs_that_template_yaml_declares() {
    let outputs = template_outputs();
    assert!(outputs.iter().any(|o| o == "SlackDLQUrl"), "{outputs:?}");
    let mut named = 0;
    for (tool, help) in [
        (env!("CARGO_BIN_EXE_ingestlayer-dlq"), &["--help"][..]),
        (env!("CARGO_BIN_EXE_ingestlayer-keys"), &["--help"][..]),
        (env!("CARGO_BIN_EXE_ingestlayer-webhooks"), &["--help"][..]),
        (
            env!("CARGO_BIN_EXE_ingestlayer-webhooks"),
            &["send", "--help"][..],
        ),
    ] {
        let out = Command::new(tool).args(help).output().unwrap();
        assert!(out.status.success(), "{tool} {help:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for name in text.split("stack output ").skip(1).map(|after| {
            after
                .trim_start_matches('`')
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect::<String>()
        }) {
            named += 1;
            assert!(
                outputs.contains(&name),
                "{tool} {help:?} names stack output {name}, which template.yaml does not declare"
            );
        }
    }
    // dlq: the DLQ, the queue, the channels table; keys: the table; webhooks: the secret
    // prefix and the key.
    assert!(
        named >= 6,
        "only {named} stack outputs named in the help texts"
    );
}
