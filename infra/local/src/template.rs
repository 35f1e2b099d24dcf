//! The functions' environment as template.yaml sets it, resolved to a local stack.
//!
//! Each function gets `Globals.Function.Environment.Variables` overlaid with its own
//! `Environment.Variables`. `!Ref`, `!GetAtt` and `!Sub` (short or long form) of the
//! template's parameters, resources and pseudo parameters are resolved through a
//! [`LocalValues`] table; anything the table does not know is an error naming it, so a
//! variable is never silently empty and a variable the template forgets is never supplied
//! by the local stack in its place.

use std::collections::{BTreeMap, HashMap};

use serde_norway::Value;

use crate::error::{Error, Result};

/// The template at the repository root.
pub const TEMPLATE_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");

/// How template.yaml spells the HTTP API's base URL in `!Sub`; locally it is the local
/// server's URL.
pub const API_URL_SUB: &str = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";

/// What the template's logical ids, attributes and pseudo parameters stand for locally.
#[derive(Debug, Clone, Default)]
pub struct LocalValues {
    /// `!Ref <logical id>`: a table's name, a queue's URL, a secret's ARN, a key's id.
    pub refs: HashMap<String, String>,
    /// `!GetAtt <logical id>.<attribute>`, keyed `"<logical id>.<attribute>"`.
    pub attributes: HashMap<String, String>,
    /// Parameters given a local value; others take their `Default`.
    pub parameters: HashMap<String, String>,
    /// `AWS::StackName`, `AWS::Region`, …
    pub pseudo: HashMap<String, String>,
    /// Replaces [`API_URL_SUB`] at the start of a `!Sub`.
    pub api_url: String,
}

/// The parsed template.
pub struct Template {
    root: Value,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let root: Value = serde_norway::from_str(text).map_err(Error::TemplateParse)?;
        Ok(Self { root })
    }

    /// Reads the repository's template.yaml.
    pub fn load() -> Result<Self> {
        let text = std::fs::read_to_string(TEMPLATE_PATH)
            .map_err(Error::io(format!("reading {TEMPLATE_PATH}")))?;
        Self::parse(&text)
    }

    /// The environment template.yaml gives the function `logical_id`, resolved locally.
    pub fn function_env(
        &self,
        logical_id: &str,
        local: &LocalValues,
    ) -> Result<BTreeMap<String, String>> {
        let function = self
            .root
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .filter(|f| f.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
            .ok_or_else(|| Error::NoFunction(logical_id.to_owned()))?;
        let globals = self
            .root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(variables);
        let own = function.get("Properties").and_then(variables);
        let mut env = BTreeMap::new();
        for vars in [globals, own].into_iter().flatten() {
            for (k, v) in vars {
                let name = k.as_str().ok_or_else(|| {
                    invalid(&format!("{k:?}"), "a variable name must be a string")
                })?;
                env.insert(name.to_owned(), self.resolve(name, v, local)?);
            }
        }
        Ok(env)
    }

    /// The stack's outputs (`Outputs.<key>.Value`), resolved locally: the same keys a deployed
    /// stack has, which `ingestlayer --local` reads from the emulator's CloudFormation.
    pub fn outputs(&self, local: &LocalValues) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for (k, v) in self
            .root
            .get("Outputs")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let key = k.as_str().unwrap_or_default();
            let value = v
                .get("Value")
                .ok_or_else(|| invalid(key, "an output needs a Value"))?;
            out.insert(key.to_owned(), self.resolve(key, value, local)?);
        }
        Ok(out)
    }

    /// A numeric property of the function (`Timeout`, `MemorySize`), or the Globals' one.
    pub fn function_number(&self, logical_id: &str, key: &str) -> Option<u64> {
        let own = self
            .root
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get(key));
        let global = self
            .root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get(key));
        own.or(global).and_then(Value::as_u64)
    }

    /// The most concurrent invocations the function's event `event` allows
    /// (`ScalingConfig.MaximumConcurrency`): a number, or a `!Ref` to a parameter's default.
    pub fn event_max_concurrency(&self, logical_id: &str, event: &str) -> Option<u64> {
        let value = self
            .root
            .get("Resources")?
            .get(logical_id)?
            .get("Properties")?
            .get("Events")?
            .get(event)?
            .get("Properties")?
            .get("ScalingConfig")?
            .get("MaximumConcurrency")?;
        match value {
            Value::Tagged(t) if t.tag == "Ref" => self.parameter_default(t.value.as_str()?),
            Value::Mapping(m) => self.parameter_default(m.get("Ref")?.as_str()?),
            v => v.as_u64(),
        }
    }

    /// A numeric parameter's `Default`.
    fn parameter_default(&self, name: &str) -> Option<u64> {
        self.root
            .get("Parameters")?
            .get(name)?
            .get("Default")?
            .as_u64()
    }

    /// The paths of the function's `HttpApi` events, as the template spells them.
    pub fn http_routes(&self, logical_id: &str) -> Vec<(String, String)> {
        let events = self
            .root
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping);
        events
            .into_iter()
            .flatten()
            .filter(|(_, e)| e.get("Type").and_then(Value::as_str) == Some("HttpApi"))
            .filter_map(|(_, e)| {
                let p = e.get("Properties")?;
                Some((
                    p.get("Method")?.as_str()?.to_uppercase(),
                    p.get("Path")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    }

    fn resolve(&self, var: &str, value: &Value, local: &LocalValues) -> Result<String> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(t) => {
                let tag = t.tag.to_string();
                self.intrinsic(var, tag.trim_start_matches('!'), &t.value, local)
            }
            Value::Mapping(m) if m.len() == 1 => {
                let (k, v) = m
                    .iter()
                    .next()
                    .ok_or_else(|| invalid(var, "empty mapping"))?;
                let name = k.as_str().unwrap_or_default();
                let short = if name == "Ref" {
                    "Ref"
                } else if let Some(f) = name.strip_prefix("Fn::") {
                    f
                } else {
                    return Err(invalid(var, "a mapping is not a value"));
                };
                self.intrinsic(var, short, v, local)
            }
            Value::Null => Err(invalid(var, "the value is empty")),
            _ => Err(invalid(var, "the value is not a scalar or an intrinsic")),
        }
    }

    fn intrinsic(&self, var: &str, name: &str, arg: &Value, local: &LocalValues) -> Result<String> {
        match name {
            "Ref" => {
                let target = arg
                    .as_str()
                    .ok_or_else(|| invalid(var, "!Ref takes a name"))?;
                self.reference(var, target, local)
            }
            "GetAtt" => {
                let dotted = match arg {
                    Value::String(s) => s.clone(),
                    Value::Sequence(parts) => parts
                        .iter()
                        .map(|p| p.as_str().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("."),
                    _ => return Err(invalid(var, "!GetAtt takes Name.Attribute")),
                };
                attribute(var, &dotted, local)
            }
            "Sub" => match arg {
                Value::String(s) => self.substitute(var, s, &HashMap::new(), local),
                Value::Sequence(parts) if parts.len() == 2 => {
                    let text = parts[0]
                        .as_str()
                        .ok_or_else(|| invalid(var, "!Sub's first item is the text"))?;
                    let mut vars = HashMap::new();
                    for (k, v) in parts[1].as_mapping().into_iter().flatten() {
                        let key = k.as_str().unwrap_or_default().to_owned();
                        vars.insert(key, self.resolve(var, v, local)?);
                    }
                    self.substitute(var, text, &vars, local)
                }
                _ => Err(invalid(var, "!Sub takes a text or [text, variables]")),
            },
            other => Err(invalid(
                var,
                &format!("the intrinsic {other} is not supported locally"),
            )),
        }
    }

    fn reference(&self, var: &str, name: &str, local: &LocalValues) -> Result<String> {
        if name.starts_with("AWS::") {
            return local
                .pseudo
                .get(name)
                .cloned()
                .ok_or_else(|| unknown_ref(var, name));
        }
        if let Some(p) = self.root.get("Parameters").and_then(|p| p.get(name)) {
            if let Some(v) = local.parameters.get(name) {
                return Ok(v.clone());
            }
            return match p.get("Default") {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Number(n)) => Ok(n.to_string()),
                Some(Value::Bool(b)) => Ok(b.to_string()),
                _ => Err(invalid(
                    var,
                    &format!("the parameter {name} has neither a local value nor a Default"),
                )),
            };
        }
        local
            .refs
            .get(name)
            .cloned()
            .ok_or_else(|| unknown_ref(var, name))
    }

    /// `${Name}`, `${Name.Attribute}` and `${!Literal}` in `text`.
    fn substitute(
        &self,
        var: &str,
        text: &str,
        vars: &HashMap<String, String>,
        local: &LocalValues,
    ) -> Result<String> {
        let (mut out, mut rest) = match text.strip_prefix(API_URL_SUB) {
            Some(tail) => (local.api_url.trim_end_matches('/').to_owned(), tail),
            None => (String::new(), text),
        };
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(var, "!Sub has an unclosed ${"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if name.contains('.') && !name.starts_with("AWS::") {
                out.push_str(&attribute(var, name, local)?);
            } else {
                out.push_str(&self.reference(var, name, local)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn variables(holder: &Value) -> Option<&serde_norway::Mapping> {
    holder
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
}

fn attribute(var: &str, dotted: &str, local: &LocalValues) -> Result<String> {
    local.attributes.get(dotted).cloned().ok_or_else(|| {
        invalid(
            var,
            &format!(
                "!GetAtt {dotted} is not mapped to a local value (add it to the local values table)"
            ),
        )
    })
}

fn unknown_ref(var: &str, name: &str) -> Error {
    invalid(
        var,
        &format!(
            "!Ref {name} names nothing the local stack maps (add it to the local values table)"
        ),
    )
}

fn invalid(var: &str, reason: &str) -> Error {
    Error::Template {
        var: var.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  LogLevel:
    Type: String
    Default: info
  Days:
    Type: Number
    Default: 7
  NoDefault:
    Type: String
Globals:
  Function:
    Environment:
      Variables:
        RUST_LOG: !Ref LogLevel
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          TABLE: !Ref Table
          LONG: { "Ref": "Table" }
          QUEUE_NAME: !GetAtt Queue.QueueName
          PREFIX: !Sub ${AWS::StackName}/webhooks/
          LITERAL: !Sub "${!Keep}-${Table}"
          API: !Sub https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/x
          DAYS: !Ref Days
          PLAIN: "30"
"#;

    fn local() -> LocalValues {
        LocalValues {
            refs: HashMap::from([("Table".into(), "local-table".into())]),
            attributes: HashMap::from([("Queue.QueueName".into(), "local-queue".into())]),
            parameters: HashMap::from([("LogLevel".into(), "debug".into())]),
            pseudo: HashMap::from([("AWS::StackName".into(), "stack".into())]),
            api_url: "http://127.0.0.1:3000/".into(),
        }
    }

    #[test]
    fn resolves_refs_attributes_subs_parameters_and_literals() {
        let env = Template::parse(TEMPLATE)
            .unwrap()
            .function_env("Fn", &local())
            .unwrap();
        let want: BTreeMap<String, String> = [
            ("RUST_LOG", "debug"),
            ("TABLE", "local-table"),
            ("LONG", "local-table"),
            ("QUEUE_NAME", "local-queue"),
            ("PREFIX", "stack/webhooks/"),
            ("LITERAL", "${Keep}-local-table"),
            ("API", "http://127.0.0.1:3000/x"),
            ("DAYS", "7"),
            ("PLAIN", "30"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, want);
    }

    fn error_for(line: &str) -> String {
        let text = TEMPLATE.replace("          PLAIN: \"30\"", &format!("          {line}"));
        Template::parse(&text)
            .unwrap()
            .function_env("Fn", &local())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_event_sources_concurrency_is_its_number_or_its_parameters_default() {
        let t = Template::parse(
            r#"
Parameters:
  Busy:
    Type: Number
    Default: 25
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        ByRef:
          Type: SQS
          Properties:
            ScalingConfig:
              MaximumConcurrency: !Ref Busy
        Long:
          Type: SQS
          Properties:
            ScalingConfig:
              MaximumConcurrency: { "Ref": "Busy" }
        Plain:
          Type: SQS
          Properties:
            ScalingConfig:
              MaximumConcurrency: 5
        Unbounded:
          Type: SQS
          Properties: {}
"#,
        )
        .unwrap();
        assert_eq!(t.event_max_concurrency("Fn", "ByRef"), Some(25));
        assert_eq!(t.event_max_concurrency("Fn", "Long"), Some(25));
        assert_eq!(t.event_max_concurrency("Fn", "Plain"), Some(5));
        assert_eq!(t.event_max_concurrency("Fn", "Unbounded"), None);
        assert_eq!(t.event_max_concurrency("Nope", "Plain"), None);
        // The shipped template: what the burst bench runs slack-delivery with.
        let shipped = Template::load().unwrap();
        assert_eq!(
            shipped.event_max_concurrency("SlackDeliveryFunction", "Slack"),
            Some(10)
        );
        assert_eq!(
            shipped.event_max_concurrency("SlackDeliveryFunction", "Drains"),
            Some(10)
        );
    }

    #[test]
    fn an_unknown_logical_id_is_an_error_naming_it() {
        assert_eq!(
            error_for("X: !Ref SessionsTable"),
            "X: !Ref SessionsTable names nothing the local stack maps (add it to the local values table)"
        );
        assert!(error_for("X: !Sub ${Nope}/x").contains("Nope"));
        assert!(error_for("X: !Sub ${AWS::AccountId}").contains("AWS::AccountId"));
    }

    #[test]
    fn an_unknown_attribute_or_intrinsic_or_parameter_without_value_is_an_error() {
        assert_eq!(
            error_for("X: !GetAtt Table.Arn"),
            "X: !GetAtt Table.Arn is not mapped to a local value (add it to the local values table)"
        );
        assert_eq!(
            error_for("X: !Join ['', [a, b]]"),
            "X: the intrinsic Join is not supported locally"
        );
        assert_eq!(
            error_for("X: !Ref NoDefault"),
            "X: the parameter NoDefault has neither a local value nor a Default"
        );
        assert_eq!(error_for("X:"), "X: the value is empty");
    }

    #[test]
    fn a_missing_function_is_an_error() {
        let t = Template::parse(TEMPLATE).unwrap();
        assert!(matches!(
            t.function_env("Table", &local()).unwrap_err(),
            Error::NoFunction(f) if f == "Table"
        ));
    }

    #[test]
    fn the_repository_template_resolves_for_every_function_to_local_resources() {
        let res = crate::resources::Resources {
            prefix: "stack".into(),
            region: "us-east-1".into(),
            events_table: "stack-events".into(),
            api_keys_table: "stack-api-keys".into(),
            pipelines_table: "stack-pipelines".into(),
            entities_table: "stack-entities".into(),
            channels_table: "stack-channels".into(),
            deliveries_table: "stack-deliveries".into(),
            connections_table: "stack-connections".into(),
            journey_table: "stack-journey".into(),
            state_table: "stack-state".into(),
            buffer_table: "stack-buffer".into(),
            events_queue_url: "http://q/1/stack-events".into(),
            events_dlq_url: "http://q/1/stack-events-dlq".into(),
            slack_queue_url: "http://q/1/stack-slack.fifo".into(),
            slack_drain_queue_url: "http://q/1/stack-slack-drains.fifo".into(),
            slack_dlq_url: "http://q/1/stack-slack-dlq.fifo".into(),
            destinations_queue_url: "http://q/1/stack-destinations.fifo".into(),
            destinations_dlq_url: "http://q/1/stack-destinations-dlq.fifo".into(),
            destination_secret_prefix: "stack/destinations".into(),
            warehouse_queue_url: "http://q/1/stack-warehouse".into(),
            warehouse_dlq_url: "http://q/1/stack-warehouse-dlq".into(),
            warehouse_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:warehouse".into(),
            warehouse_on: true,
            kms_key_id: "key-1".into(),
            slack_token_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:bot".into(),
            link_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:link".into(),
            slack_app_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:app".into(),
            token_secret_prefix: "stack/slack".into(),
            webhook_secret_prefix: "stack/webhooks/".into(),
            admin_token_secret_arn: "arn:aws:secretsmanager:us-east-1:1:secret:admin".into(),
        };
        let local = res.local_values(&crate::resources::LocalUrls {
            api_url: "http://127.0.0.1:3000".into(),
            slack_api_url: "http://standin/api".into(),
            slack_authorize_url: "http://standin".into(),
            discord_api_url: Some("http://127.0.0.1:3002/api/v10".into()),
            telegram_api_url: None,
            notion_api_url: None,
        });
        let t = Template::load().unwrap();
        for f in crate::functions::FUNCTIONS {
            let env = t
                .function_env(f.logical_id, &local)
                .unwrap_or_else(|e| panic!("{}: {e}", f.logical_id));
            assert_eq!(env["RUST_LOG"], "info", "{}", f.logical_id);
        }
        let ingest = t.function_env("IngestFunction", &local).unwrap();
        assert_eq!(ingest["EVENTS_TABLE"], "stack-events");
        assert_eq!(ingest["WEBHOOK_SECRET_PREFIX"], res.webhook_secret_prefix);
        let pipeline = t.function_env("PipelineFunction", &local).unwrap();
        assert_eq!(pipeline["PUBLIC_API_URL"], "http://127.0.0.1:3000");
        assert_eq!(pipeline["WAREHOUSE"], "on");
        assert_eq!(pipeline["WAREHOUSE_QUEUE_URL"], res.warehouse_queue_url);
        let warehouse = t.function_env("WarehouseFunction", &local).unwrap();
        assert_eq!(warehouse["WAREHOUSE_SECRET_ARN"], res.warehouse_secret_arn);
        assert_eq!(warehouse["WAREHOUSE_DLQ_URL"], res.warehouse_dlq_url);
        let delivery = t.function_env("SlackDeliveryFunction", &local).unwrap();
        assert_eq!(delivery["SLACK_API_URL"], "http://standin/api");
        assert_eq!(
            delivery["SLACK_TOKEN_SECRET_PREFIX"],
            res.token_secret_prefix
        );
        assert_eq!(delivery["KMS_KEY_ID"], "key-1");
        assert_eq!(delivery["SLACK_DRAIN_QUEUE_URL"], res.slack_drain_queue_url);
        let connect = t.function_env("SlackConnectFunction", &local).unwrap();
        assert_eq!(
            connect["ADMIN_TOKEN_SECRET_ARN"],
            res.admin_token_secret_arn
        );
        assert_eq!(connect["SLACK_AUTHORIZE_URL"], "http://standin");
        let destinations = t
            .function_env("DestinationDeliveryFunction", &local)
            .unwrap();
        assert_eq!(
            destinations["DESTINATIONS_QUEUE_URL"],
            res.destinations_queue_url
        );
        assert_eq!(
            destinations["DESTINATIONS_DLQ_URL"],
            res.destinations_dlq_url
        );
        assert_eq!(
            destinations["DESTINATION_SECRET_PREFIX"],
            res.destination_secret_prefix
        );
        assert_eq!(
            destinations["DISCORD_API_URL"],
            "http://127.0.0.1:3002/api/v10"
        );
        // A parameter make dev does not set keeps template.yaml's default, the platform's.
        assert_eq!(destinations["TELEGRAM_API_URL"], "https://api.telegram.org");
        // The local-development switch is never in the template.
        assert!(!destinations.contains_key("WEBHOOK_ALLOW_LOCAL"));
        assert_eq!(
            pipeline["DESTINATIONS_QUEUE_URL"],
            res.destinations_queue_url
        );
    }
}
