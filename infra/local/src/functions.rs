//! The four functions template.yaml deploys, run locally as the binaries cargo built, with
//! the environment template.yaml gives them (see [`crate::template`]) and what Lambda
//! itself sets (the AWS_LAMBDA_* variables, credentials, region), pointed at the emulator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::lambda_api::{FunctionSpec, LambdaFunction};
use crate::resources::{LocalUrls, Resources};
use crate::template::Template;

/// A function of template.yaml and the cargo binary that is its bootstrap
/// (`Metadata.BuildProperties.Binary`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Function {
    pub logical_id: &'static str,
    pub binary: &'static str,
}

pub const INGEST: Function = Function {
    logical_id: "IngestFunction",
    binary: "ingest",
};
pub const PIPELINE: Function = Function {
    logical_id: "PipelineFunction",
    binary: "pipeline",
};
pub const SLACK_DELIVERY: Function = Function {
    logical_id: "SlackDeliveryFunction",
    binary: "slack-delivery",
};
pub const DESTINATION_DELIVERY: Function = Function {
    logical_id: "DestinationDeliveryFunction",
    binary: "destination-delivery",
};
pub const SLACK_CONNECT: Function = Function {
    logical_id: "SlackConnectFunction",
    binary: "slack-connect",
};
pub const WAREHOUSE: Function = Function {
    logical_id: "WarehouseFunction",
    binary: "warehouse",
};
pub const FUNCTIONS: [Function; 6] = [
    INGEST,
    PIPELINE,
    SLACK_DELIVERY,
    DESTINATION_DELIVERY,
    SLACK_CONNECT,
    WAREHOUSE,
];

pub use crate::error::BUILD_HINT;

/// The warehouse event source's batching (template.yaml: `BatchSize: 100`,
/// `MaximumBatchingWindowInSeconds: 5`).
pub const WAREHOUSE_BATCHING: crate::runner::Batching = crate::runner::Batching {
    size: 100,
    window: Duration::from_secs(5),
};

/// Where cargo put the function binaries: beside this executable (`ingestlayer-local` in
/// `<target dir>/<profile>/`, a test binary in `<target dir>/<profile>/deps/`), so a
/// `CARGO_TARGET_DIR` is respected. `INGESTLAYER_FUNCTIONS_DIR` overrides it.
pub fn binary_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("INGESTLAYER_FUNCTIONS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().map_err(Error::io("finding this executable"))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| Error::invalid("this executable has no directory", None))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The function's binary; an error names the path and how to build it.
pub fn binary(f: &Function) -> Result<PathBuf> {
    let path = binary_dir()?.join(f.binary);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NoBinary {
            binary: f.binary,
            path,
        })
    }
}

/// Everything a local function needs besides template.yaml.
#[derive(Debug, Clone)]
pub struct Local {
    pub res: Resources,
    /// The emulator (`AWS_ENDPOINT_URL`).
    pub endpoint: String,
    pub urls: LocalUrls,
    /// Echo the functions' output (make dev) or keep it for error reports only (tests).
    pub echo_output: bool,
}

/// The spec of `f`: its binary, template.yaml's environment for it resolved to `local`,
/// and what Lambda sets. A variable the template does not give the function is not set.
pub fn spec(template: &Template, f: &Function, local: &Local) -> Result<FunctionSpec> {
    let mut env = template
        .function_env(f.logical_id, &local.res.local_values(&local.urls))
        .map_err(|e| match e {
            Error::Template { var, reason } => Error::Template {
                var: format!("{}: {var}", f.logical_id),
                reason,
            },
            other => other,
        })?;
    let name = format!("{}-{}", local.res.prefix, f.binary);
    let timeout = template
        .function_number(f.logical_id, "Timeout")
        .unwrap_or(3);
    let memory = template
        .function_number(f.logical_id, "MemorySize")
        .unwrap_or(128);
    let region = local.res.region.clone();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", local.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", region.clone()),
        ("AWS_DEFAULT_REGION", region.clone()),
        // One attempt and one retry, as the emulator needs (see `emulator_sdk`).
        ("AWS_MAX_ATTEMPTS", "2".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("TZ", ":UTC".to_owned()),
    ] {
        env.insert(k.to_owned(), v);
    }
    Ok(FunctionSpec {
        arn: format!(
            "arn:aws:lambda:{region}:{}:function:{name}",
            local.res.account_id()
        ),
        name,
        binary: binary(f)?,
        env,
        timeout: Duration::from_secs(timeout),
        echo_output: local.echo_output,
    })
}

/// The functions, ready to invoke (each starts at its first invocation).
pub struct Functions {
    pub ingest: Arc<LambdaFunction>,
    pub pipeline: Arc<LambdaFunction>,
    pub delivery: Arc<LambdaFunction>,
    /// Webhooks, Discord, Telegram, email and Notion.
    pub destinations: Arc<LambdaFunction>,
    pub connect: Arc<LambdaFunction>,
    /// Only when the warehouse is on (a database is connected).
    pub warehouse: Option<Arc<LambdaFunction>>,
}

impl Functions {
    /// Specs from template.yaml; `extra` adds variables per logical id, for what differs
    /// locally by nature (the connect function's public URL is http here).
    pub fn new(local: &Local, extra: &BTreeMap<&str, Vec<(&str, String)>>) -> Result<Self> {
        let template = Template::load()?;
        let make = |f: &Function| -> Result<Arc<LambdaFunction>> {
            let mut s = spec(&template, f, local)?;
            for (k, v) in extra.get(f.logical_id).into_iter().flatten() {
                s.env.insert((*k).to_owned(), v.clone());
            }
            Ok(Arc::new(LambdaFunction::new(s)))
        };
        Ok(Self {
            ingest: make(&INGEST)?,
            pipeline: make(&PIPELINE)?,
            delivery: make(&SLACK_DELIVERY)?,
            destinations: make(&DESTINATION_DELIVERY)?,
            connect: make(&SLACK_CONNECT)?,
            warehouse: if local.res.warehouse_on {
                Some(make(&WAREHOUSE)?)
            } else {
                None
            },
        })
    }

    /// Cold-starts all four; the first that fails names itself and shows its output.
    pub async fn start(&self) -> Result<()> {
        self.ingest.start().await?;
        self.pipeline.start().await?;
        self.delivery.start().await?;
        self.destinations.start().await?;
        self.connect.start().await?;
        if let Some(w) = &self.warehouse {
            w.start().await?;
        }
        Ok(())
    }
}
