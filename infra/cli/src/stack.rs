//! Which stack a command talks to, and its resources.
//!
//! A deployed stack is found by name (`--stack`, or `INGESTLAYER_STACK`) in CloudFormation, and
//! its resources are read from the stack's outputs, the same keys template.yaml declares. The
//! local stack of `make dev` registers itself in the emulator's CloudFormation under the same
//! keys (`ingestlayer-dev` by default), so `--local` is the same lookup against the emulator:
//! one code path for both.

use std::collections::BTreeMap;

use aws_config::BehaviorVersion;

use aws_smithy_runtime_api::client::result::SdkError;

use crate::error::CliError;

/// The name `make dev` registers its stack under.
pub const LOCAL_STACK: &str = "ingestlayer-dev";
/// The emulator `make dev` starts, unless `AWS_ENDPOINT_URL` says otherwise.
pub const LOCAL_ENDPOINT: &str = "http://127.0.0.1:4566";

/// Where the command was told to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A deployed stack, in `region` (or the AWS configuration's region).
    Deployed {
        name: String,
        region: Option<String>,
    },
    /// A local stack in the emulator at `endpoint`.
    Local { name: String, endpoint: String },
}

impl Target {
    /// Chooses the target from the flags and the environment: `--local` (or `AWS_ENDPOINT_URL`
    /// set) targets the emulator; otherwise `--stack`, then `INGESTLAYER_STACK`.
    pub fn choose(
        stack: Option<String>,
        region: Option<String>,
        local: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, CliError> {
        let endpoint = env("AWS_ENDPOINT_URL").filter(|e| !e.is_empty());
        if local || endpoint.is_some() {
            return Ok(Target::Local {
                name: stack.unwrap_or_else(|| LOCAL_STACK.to_owned()),
                endpoint: endpoint.unwrap_or_else(|| LOCAL_ENDPOINT.to_owned()),
            });
        }
        match stack.or_else(|| env("INGESTLAYER_STACK").filter(|s| !s.is_empty())) {
            Some(name) => Ok(Target::Deployed { name, region }),
            None => Err(CliError::Usage(
                "which stack? Give --stack NAME (or set INGESTLAYER_STACK) for a deployed stack, \
                 or --local for the one `make dev` runs"
                    .into(),
            )),
        }
    }

    /// How the target is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Target::Deployed { name, region } => match region {
                Some(r) => format!("stack {name} in {r}"),
                None => format!("stack {name}"),
            },
            Target::Local { name, endpoint } => {
                format!("local stack {name} in the emulator at {endpoint}")
            }
        }
    }

    /// The command-line flags that name this target, to print a command the operator can
    /// run as it is (`--local`, `--local --stack it-1`, `--stack prod --region eu-west-1`).
    pub fn flags(&self) -> String {
        match self {
            Target::Local { name, .. } if name == LOCAL_STACK => "--local".to_owned(),
            Target::Local { name, .. } => format!("--local --stack {name}"),
            Target::Deployed { name, region } => match region {
                Some(r) => format!("--stack {name} --region {r}"),
                None => format!("--stack {name}"),
            },
        }
    }

    /// Whether this is an emulator (which lacks CloudWatch's SQS metrics and
    /// StartMessageMoveTask).
    pub fn is_local(&self) -> bool {
        matches!(self, Target::Local { .. })
    }

    /// What to do when the target cannot be reached.
    pub fn reach_hint(&self) -> &'static str {
        match self {
            Target::Deployed { .. } => {
                "check the network and the AWS credentials (AWS_PROFILE, AWS_REGION)"
            }
            Target::Local { .. } => {
                "start it with `make dev`, or set AWS_ENDPOINT_URL to the emulator it runs"
            }
        }
    }
}

/// A resolved stack: the SDK configuration to reach it and its outputs.
#[derive(Debug, Clone)]
pub struct Stack {
    pub target: Target,
    pub sdk: aws_config::SdkConfig,
    outputs: BTreeMap<String, String>,
}

impl Stack {
    /// Finds the stack and reads its outputs.
    pub async fn resolve(target: Target) -> Result<Self, CliError> {
        let sdk = sdk_for(&target).await;
        let name = match &target {
            Target::Deployed { name, .. } | Target::Local { name, .. } => name.clone(),
        };
        let cfn = aws_sdk_cloudformation::Client::new(&sdk);
        let answer = cfn.describe_stacks().stack_name(&name).send().await;
        let stacks = match answer {
            Ok(a) => a.stacks.unwrap_or_default(),
            Err(e) if is_missing_stack(&e) => {
                return Err(CliError::Stack(match &target {
                    Target::Deployed { .. } => format!(
                        "{} was not found: deploy it with `sam deploy`, or give the right \
                         --stack and --region",
                        target.describe()
                    ),
                    Target::Local { .. } => format!(
                        "{} was not found: the emulator answers, but `make dev` has not \
                         created the stack (still starting, or a different emulator)",
                        target.describe()
                    ),
                }))
            }
            Err(e) => return Err(reach(&target, "reading the stack's outputs", e)),
        };
        let outputs = stacks
            .into_iter()
            .next()
            .and_then(|s| s.outputs)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| Some((o.output_key?, o.output_value?)))
            .collect();
        Ok(Self {
            target,
            sdk,
            outputs,
        })
    }

    /// A stack built from known outputs (for tests and for the local stack itself).
    pub fn from_outputs(
        target: Target,
        sdk: aws_config::SdkConfig,
        outputs: BTreeMap<String, String>,
    ) -> Self {
        Self {
            target,
            sdk,
            outputs,
        }
    }

    /// An output of the stack, e.g. `PipelinesTableName`.
    pub fn output(&self, key: &str) -> Result<&str, CliError> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| {
            CliError::Stack(format!(
                "{} has no output {key}: deploy this version's template.yaml",
                self.target.describe()
            ))
        })
    }

    pub fn outputs(&self) -> &BTreeMap<String, String> {
        &self.outputs
    }

    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk)
    }

    /// A library call's failure, worded for the operator: see [`explain`].
    pub fn explain(&self, e: ingestlayer::error::Error) -> CliError {
        explain(&self.target, e)
    }
}

/// A library call's failure, worded for the operator: when its cause is an endpoint that
/// did not answer (the library keeps the SDK error as its source), the message names the
/// target and what to start or set, as [`reach`] does; anything else keeps the library's
/// message.
pub fn explain(target: &Target, e: ingestlayer::error::Error) -> CliError {
    use aws_smithy_runtime_api::client::result::ConnectorError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(c) = cause {
        if c.downcast_ref::<ConnectorError>().is_some() {
            let what = match &e {
                ingestlayer::error::Error::Aws { what, .. } => what.as_str(),
                _ => "calling AWS",
            };
            return CliError::Stack(format!(
                "{what}: could not reach the {}: {}",
                target.describe(),
                target.reach_hint()
            ));
        }
        cause = c.source();
    }
    CliError::Lib(e)
}

/// The SDK configuration for a target: the emulator's endpoint and test credentials for a
/// local stack (unless the environment sets them), the usual chain for a deployed one.
pub async fn sdk_for(target: &Target) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    match target {
        Target::Deployed { region, .. } => {
            if let Some(r) = region {
                loader = loader.region(aws_config::Region::new(r.clone()));
            }
        }
        Target::Local { endpoint, .. } => {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "testing", "testing", None, None, "local",
                ));
            }
            if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
        }
    }
    loader.load().await
}

fn is_missing_stack<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata,
{
    e.as_service_error().is_some_and(|s| {
        s.code() == Some("ValidationError")
            && s.message().is_some_and(|m| m.contains("does not exist"))
    })
}

/// An AWS call's failure, worded for the operator: an endpoint that does not answer names the
/// target and what to start or set; anything else keeps the service's message.
pub fn reach<E, R>(target: &Target, what: &str, e: SdkError<E, R>) -> CliError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => CliError::Stack(format!(
            "{what}: could not reach the {}: {}",
            target.describe(),
            target.reach_hint()
        )),
        _ => CliError::Lib(ingestlayer::error::Error::aws(what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn local_is_chosen_by_the_flag_or_by_an_emulator_endpoint() {
        let t = Target::choose(None, None, true, &env(&[])).unwrap();
        assert_eq!(
            t,
            Target::Local {
                name: LOCAL_STACK.into(),
                endpoint: LOCAL_ENDPOINT.into()
            }
        );
        let t = Target::choose(
            None,
            None,
            false,
            &env(&[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
                ("INGESTLAYER_STACK", "prod"),
            ]),
        )
        .unwrap();
        assert_eq!(
            t,
            Target::Local {
                name: LOCAL_STACK.into(),
                endpoint: "http://127.0.0.1:5000".into()
            }
        );
    }

    #[test]
    fn a_deployed_stack_comes_from_the_flag_then_the_environment() {
        let t = Target::choose(
            Some("a".into()),
            Some("eu-west-1".into()),
            false,
            &env(&[("INGESTLAYER_STACK", "b")]),
        )
        .unwrap();
        assert_eq!(
            t,
            Target::Deployed {
                name: "a".into(),
                region: Some("eu-west-1".into())
            }
        );
        let t = Target::choose(None, None, false, &env(&[("INGESTLAYER_STACK", "b")])).unwrap();
        assert_eq!(
            t,
            Target::Deployed {
                name: "b".into(),
                region: None
            }
        );
    }

    #[test]
    fn a_target_prints_as_the_flags_that_name_it() {
        let local = |name: &str| Target::Local {
            name: name.into(),
            endpoint: LOCAL_ENDPOINT.into(),
        };
        assert_eq!(local(LOCAL_STACK).flags(), "--local");
        assert_eq!(local("it-1").flags(), "--local --stack it-1");
        let deployed = Target::Deployed {
            name: "prod".into(),
            region: Some("eu-west-1".into()),
        };
        assert_eq!(deployed.flags(), "--stack prod --region eu-west-1");
    }

    #[test]
    fn a_library_call_that_could_not_reach_the_emulator_names_it_and_what_to_start() {
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let e: SdkError<
            aws_sdk_sqs::operation::receive_message::ReceiveMessageError,
            HttpResponse,
        > = SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        let target = Target::Local {
            name: LOCAL_STACK.into(),
            endpoint: "http://127.0.0.1:9".into(),
        };
        let m = explain(
            &target,
            ingestlayer::error::Error::aws("reading the DLQ", e),
        )
        .to_string();
        assert_eq!(
            m,
            "reading the DLQ: could not reach the local stack ingestlayer-dev in the emulator at \
             http://127.0.0.1:9: start it with `make dev`, or set AWS_ENDPOINT_URL to the emulator it runs"
        );
        let other = ingestlayer::error::Error::NotFound("no such thing".into());
        assert_eq!(explain(&target, other).to_string(), "no such thing");
    }

    #[test]
    fn no_stack_at_all_says_how_to_name_one() {
        let e = Target::choose(None, None, false, &env(&[])).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("--stack") && m.contains("INGESTLAYER_STACK") && m.contains("--local"));
    }
}
