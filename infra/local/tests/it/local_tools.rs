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

/// The string literals in the `ingestlayer` command line's sources that name a stack output
/// (`SlackDLQUrl`, `ChannelsTableName`, …): capitalised, alphanumeric, ending the way
/// template.yaml's outputs end (except `QueueName`, CloudWatch's SQS dimension).
fn outputs_the_cli_reads() -> std::collections::BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../cli/src");
    let mut named = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for literal in text.split('"').skip(1).step_by(2) {
            let looks_like_output = literal.starts_with(|c: char| c.is_ascii_uppercase())
                && literal.chars().all(|c| c.is_ascii_alphanumeric())
                && ["Url", "Name", "Arn", "Id", "Prefix", "Alias"]
                    .iter()
                    .any(|end| literal.ends_with(end));
            if looks_like_output && literal != "QueueName" {
                named.insert(literal.to_owned());
            }
        }
    }
    named
}

#[test]
fn every_stack_output_the_cli_reads_is_one_template_yaml_declares() {
    let outputs = template_outputs();
    let named = outputs_the_cli_reads();
    for name in &named {
        assert!(
            outputs.contains(name),
            "infra/cli reads stack output {name}, which template.yaml does not declare"
        );
    }
    // status and dlq: the four queues and the channels table; keys: the table; webhooks: the
    // secret prefix, the key and the API.
    for needed in [
        "SlackQueueUrl",
        "SlackDLQUrl",
        "EventsQueueUrl",
        "EventsDLQUrl",
        "ChannelsTableName",
        "ApiKeysTableName",
        "WebhookSecretPrefix",
        "StackKeyId",
        "ApiUrl",
    ] {
        assert!(
            named.contains(needed),
            "infra/cli does not read {needed}: {named:?}"
        );
    }
}

/// `infra/emulator.sh` as `make dev` and `make test` source it: `script` runs after
/// `start_emulator 0`, with `$AWS_ENDPOINT_URL` set; the emulator's port is returned.
fn emulator_script(script: &str) -> u16 {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source infra/emulator.sh; unset AWS_ENDPOINT_URL; start_emulator 0 >/dev/null || exit 1; echo \"${{AWS_ENDPOINT_URL##*:}}\"; {script}"
        ))
        .current_dir(&root)
        .env("ROOT", &root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the emulator's port")
}

#[test]
fn stopping_the_emulator_removes_its_recording_and_an_empty_log_and_keeps_one_with_errors() {
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools");
    let files = |port: u16| {
        (
            tools.join(format!("moto-{port}.log")),
            tools.join(format!("moto-{port}.recording")),
        )
    };
    // A run whose emulator logged nothing and recorded requests (the recorder writes its
    // file as it records): both files are there while it runs, gone after.
    let port = emulator_script(&format!(
        "f=\"{0}/moto-${{AWS_ENDPOINT_URL##*:}}\"; touch \"$f.recording\"; test -e \"$f.log\" || exit 3; stop_emulator",
        tools.display()
    ));
    let (log, recording) = files(port);
    assert!(!log.exists(), "{} was left", log.display());
    assert!(!recording.exists(), "{} was left", recording.display());

    // A run whose emulator wrote a warning: the log stays for whoever looks into it, when
    // the shell exits (the EXIT trap stops the emulator).
    let port = emulator_script(&format!(
        "echo 'a warning' >> \"{0}/moto-${{AWS_ENDPOINT_URL##*:}}.log\"",
        tools.display()
    ));
    let (log, recording) = files(port);
    assert!(log.exists(), "a log with content was removed");
    assert!(!recording.exists(), "{} was left", recording.display());
    std::fs::remove_file(log).unwrap();
}
