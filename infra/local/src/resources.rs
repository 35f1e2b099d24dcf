//! Creates in the emulator the resources template.yaml declares, under a name prefix.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::error::{Error, Result};
use crate::template::LocalValues;

/// Names and addresses of one local stack's resources.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The stack's name: every resource is named `<prefix>-…` or `<prefix>/…`.
    pub prefix: String,
    pub region: String,
    pub events_table: String,
    pub api_keys_table: String,
    pub pipelines_table: String,
    pub entities_table: String,
    pub channels_table: String,
    pub deliveries_table: String,
    pub connections_table: String,
    /// Each event's journey (template.yaml's `JourneyTable`: event id + step, and the
    /// `by_pipeline` index).
    pub journey_table: String,
    /// What stateful steps remember (template.yaml's `StateTable`: `pk`, and the `by_due`
    /// index of heartbeats).
    pub state_table: String,
    /// Busy Slack channels' backlogs (template.yaml's `BufferTable`).
    pub buffer_table: String,
    pub events_queue_url: String,
    pub events_dlq_url: String,
    pub slack_queue_url: String,
    /// Busy channels' drain tickets (template.yaml's `SlackDrainQueue`).
    pub slack_drain_queue_url: String,
    pub slack_dlq_url: String,
    /// Messages for destinations beyond Slack (template.yaml's `DestinationsQueue`).
    pub destinations_queue_url: String,
    pub destinations_dlq_url: String,
    /// Destination secrets are named `<this>/<name>` (`DESTINATION_SECRET_PREFIX`).
    pub destination_secret_prefix: String,
    /// Every routed event on its way to the warehouse (template.yaml's `WarehouseQueue`).
    pub warehouse_queue_url: String,
    pub warehouse_dlq_url: String,
    /// The warehouse's connection string (`WarehouseSecret`; [`Resources::connect_warehouse`]).
    pub warehouse_secret_arn: String,
    /// template.yaml's `Warehouse` parameter: on once a database is connected.
    pub warehouse_on: bool,
    pub kms_key_id: String,
    pub slack_token_secret_arn: String,
    pub link_secret_arn: String,
    /// The Slack app's `{"client_id", "client_secret", "signing_secret"}`.
    pub slack_app_secret_arn: String,
    /// Workspace token secrets are named `<this>/<team id>`.
    pub token_secret_prefix: String,
    /// Webhook sources are secrets named `<this><source>`.
    pub webhook_secret_prefix: String,
    /// The destinations page's admin token (a plain string, as template.yaml generates it).
    pub admin_token_secret_arn: String,
}

/// The addresses that are not AWS resources: the local HTTP API and Slack's two hosts.
#[derive(Debug, Clone)]
pub struct LocalUrls {
    /// Where the local HTTP API is served (template.yaml's
    /// `https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}`).
    pub api_url: String,
    /// The `SlackApiUrl` parameter: the stand-in's Web API, or Slack's.
    pub slack_api_url: String,
    /// The `SlackAuthorizeUrl` parameter.
    pub slack_authorize_url: String,
    /// The `DiscordApiUrl`, `TelegramApiUrl` and `NotionApiUrl` parameters: the stand-ins
    /// (`None`: template.yaml's defaults, the real platforms).
    pub discord_api_url: Option<String>,
    pub telegram_api_url: Option<String>,
    pub notion_api_url: Option<String>,
}

/// Visibility timeout of the local queues, in seconds (the template sets 6× the
/// function timeout; locally a failed message comes back sooner).
pub const LOCAL_VISIBILITY_SECONDS: &str = "30";

/// Creating `what` failed (a call to the emulator, or a request the SDK could not build).
fn fail<E>(what: &str) -> impl FnOnce(E) -> Error + '_
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| Error::aws(format!("creating {what} failed"), e)
}

impl Resources {
    /// Creates (or finds, when they exist) every resource named `<prefix>-…`; the bot token
    /// secret holds `bot_token`.
    pub async fn create(
        sdk: &aws_config::SdkConfig,
        prefix: &str,
        bot_token: &str,
        app_secret: &str,
    ) -> Result<Self> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let kms = aws_sdk_kms::Client::new(sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);

        let events_table = format!("{prefix}-events");
        let api_keys_table = format!("{prefix}-api-keys");
        let pipelines_table = format!("{prefix}-pipelines");
        let entities_table = format!("{prefix}-entities");
        let channels_table = format!("{prefix}-channels");
        let deliveries_table = format!("{prefix}-deliveries");
        let connections_table = format!("{prefix}-connections");
        let journey_table = format!("{prefix}-journey");
        let state_table = format!("{prefix}-state");
        let buffer_table = format!("{prefix}-buffer");
        create_keyed_table(&dynamo, &buffer_table, "pk", Some("sk")).await?;
        for (table, key) in [
            (&events_table, "id"),
            (&api_keys_table, "key_hash"),
            (&pipelines_table, "id"),
            (&entities_table, "pk"),
            (&channels_table, "pk"),
            (&deliveries_table, "pk"),
            (&connections_table, "pk"),
        ] {
            create_table(&dynamo, table, key).await?;
        }
        create_indexed_table(
            &dynamo,
            &journey_table,
            ("event_id", Some("step")),
            (ingestlayer::journey::BY_PIPELINE, "pipeline", "at_ms"),
        )
        .await?;
        create_indexed_table(
            &dynamo,
            &state_table,
            ("pk", None),
            (ingestlayer::routing::state::BY_DUE, "due_shard", "due_ms"),
        )
        .await?;
        for table in [&events_table, &journey_table, &state_table, &buffer_table] {
            let ttl = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(fail("a table's TTL"))?;
            let _ = dynamo
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(ttl)
                .send()
                .await;
        }

        let events_dlq_url =
            create_queue(&sqs, &format!("{prefix}-events-dlq"), false, None).await?;
        let events_queue_url = create_queue(
            &sqs,
            &format!("{prefix}-events"),
            false,
            Some((&events_dlq_url, 5)),
        )
        .await?;
        let warehouse_dlq_url =
            create_queue(&sqs, &format!("{prefix}-warehouse-dlq"), false, None).await?;
        let warehouse_queue_url = create_queue(
            &sqs,
            &format!("{prefix}-warehouse"),
            false,
            Some((&warehouse_dlq_url, 40)),
        )
        .await?;
        let slack_dlq_url =
            create_queue(&sqs, &format!("{prefix}-slack-dlq.fifo"), true, None).await?;
        let slack_queue_url = create_queue(
            &sqs,
            &format!("{prefix}-slack.fifo"),
            true,
            Some((&slack_dlq_url, 1000)),
        )
        .await?;
        let slack_drain_queue_url =
            create_queue(&sqs, &format!("{prefix}-slack-drains.fifo"), true, None).await?;
        let destinations_dlq_url =
            create_queue(&sqs, &format!("{prefix}-destinations-dlq.fifo"), true, None).await?;
        let destinations_queue_url = create_queue(
            &sqs,
            &format!("{prefix}-destinations.fifo"),
            true,
            Some((&destinations_dlq_url, 1000)),
        )
        .await?;

        let key = kms
            .create_key()
            .description(format!("{prefix} stack key"))
            .send()
            .await
            .map_err(fail("KMS key"))?;
        let kms_key_id = key.key_metadata.map(|m| m.key_id).unwrap_or_default();
        // template.yaml's StackKeyAlias; an alias left by an earlier run is pointed here.
        let alias = format!("alias/{prefix}");
        if kms
            .create_alias()
            .alias_name(&alias)
            .target_key_id(&kms_key_id)
            .send()
            .await
            .is_err()
        {
            kms.update_alias()
                .alias_name(&alias)
                .target_key_id(&kms_key_id)
                .send()
                .await
                .map_err(fail("KMS alias"))?;
        }

        let secret_value = serde_json::json!({ "bot_token": bot_token }).to_string();
        let slack_token_secret_arn = put_secret(
            &secrets,
            &format!("{prefix}/slack-bot-token"),
            &kms_key_id,
            &secret_value,
        )
        .await?;
        let slack_app_secret_arn = put_secret(
            &secrets,
            &format!("{prefix}/slack-app"),
            &kms_key_id,
            app_secret,
        )
        .await?;
        let link_key: String = {
            use rand::distr::{Alphanumeric, SampleString};
            Alphanumeric.sample_string(&mut rand::rng(), 48)
        };
        let admin_token: String = {
            use rand::distr::{Alphanumeric, SampleString};
            Alphanumeric.sample_string(&mut rand::rng(), 40)
        };
        let admin_token_secret_arn = put_secret(
            &secrets,
            &format!("{prefix}/admin-token"),
            &kms_key_id,
            &admin_token,
        )
        .await?;
        let warehouse_secret_arn = put_secret(
            &secrets,
            &format!("{prefix}/warehouse"),
            &kms_key_id,
            r#"{"url": ""}"#,
        )
        .await?;
        let link_secret_arn = put_secret(
            &secrets,
            &format!("{prefix}/event-link-key"),
            &kms_key_id,
            &serde_json::json!({ "key": link_key }).to_string(),
        )
        .await?;

        let region = sdk
            .region()
            .map_or_else(|| "us-east-1".to_owned(), ToString::to_string);
        Ok(Self {
            prefix: prefix.to_owned(),
            region,
            admin_token_secret_arn,
            events_table,
            api_keys_table,
            pipelines_table,
            entities_table,
            channels_table,
            deliveries_table,
            connections_table,
            journey_table,
            state_table,
            buffer_table,
            events_queue_url,
            events_dlq_url,
            slack_queue_url,
            slack_drain_queue_url,
            slack_dlq_url,
            destinations_queue_url,
            destinations_dlq_url,
            destination_secret_prefix: format!("{prefix}/destinations"),
            warehouse_queue_url,
            warehouse_dlq_url,
            warehouse_secret_arn,
            warehouse_on: false,
            kms_key_id,
            slack_token_secret_arn,
            link_secret_arn,
            slack_app_secret_arn,
            token_secret_prefix: format!("{prefix}/slack"),
            webhook_secret_prefix: format!("{prefix}/webhooks/"),
        })
    }

    /// Puts the warehouse database's connection string in its secret and turns the
    /// warehouse on (as `ingestlayer warehouse connect` and `Warehouse=on` do on AWS).
    pub async fn connect_warehouse(
        &mut self,
        sdk: &aws_config::SdkConfig,
        database_url: &str,
    ) -> Result<()> {
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        put_secret(
            &secrets,
            &self.warehouse_secret_arn,
            &self.kms_key_id,
            database_url,
        )
        .await?;
        self.warehouse_on = true;
        Ok(())
    }

    /// Stores a destination secret (a Discord webhook URL, a bot or integration token, a
    /// webhook signing secret) as a pipeline names it, under the stack's prefix and key.
    pub async fn put_destination_secret(
        &self,
        sdk: &aws_config::SdkConfig,
        name: &str,
        value: &str,
    ) -> Result<()> {
        ingestlayer::dispatch::secrets::put_secret(
            &aws_sdk_secretsmanager::Client::new(sdk),
            &self.destination_secret_prefix,
            name,
            value,
            Some(&self.kms_key_id),
        )
        .await
        .map_err(|e| Error::invalid(format!("storing the secret {name}"), Some(e.into())))
    }

    /// Puts `token` as the destinations page's admin token.
    pub async fn put_admin_token(&self, sdk: &aws_config::SdkConfig, token: &str) -> Result<()> {
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        put_secret(
            &secrets,
            &format!("{}/admin-token", self.prefix),
            &self.kms_key_id,
            token,
        )
        .await
        .map(|_| ())
    }

    /// Registers this stack in the emulator's CloudFormation under its prefix, with
    /// template.yaml's outputs resolved locally, so `ingestlayer --local` (and `--stack
    /// <prefix>` against the emulator) finds it exactly as it finds a deployed stack. A stack
    /// of that name left by an earlier run is replaced. Returns the outputs.
    pub async fn register_stack(
        &self,
        sdk: &aws_config::SdkConfig,
        urls: &LocalUrls,
    ) -> Result<BTreeMap<String, String>> {
        let template = crate::template::Template::load()?;
        let outputs = template.outputs(&self.local_values(urls))?;
        register_outputs(sdk, &self.prefix, &outputs).await?;
        Ok(outputs)
    }

    /// The emulator's account, read from an ARN it issued (never assumed).
    pub fn account_id(&self) -> String {
        self.link_secret_arn
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_owned()
    }

    /// What template.yaml's logical ids, attributes, parameters and pseudo parameters
    /// stand for in this local stack. A logical id missing here fails
    /// [`crate::template::Template::function_env`] with its name: add the resource to
    /// [`Resources::create`] and here.
    pub fn local_values(&self, urls: &LocalUrls) -> LocalValues {
        let account = self.account_id();
        let region = &self.region;
        let queue_name = |url: &str| url.rsplit('/').next().unwrap_or_default().to_owned();
        let refs = [
            ("EventsTable", self.events_table.clone()),
            ("ApiKeysTable", self.api_keys_table.clone()),
            ("PipelinesTable", self.pipelines_table.clone()),
            ("EntitiesTable", self.entities_table.clone()),
            ("ChannelsTable", self.channels_table.clone()),
            ("DeliveriesTable", self.deliveries_table.clone()),
            ("ConnectionsTable", self.connections_table.clone()),
            ("JourneyTable", self.journey_table.clone()),
            ("StateTable", self.state_table.clone()),
            ("BufferTable", self.buffer_table.clone()),
            ("EventsQueue", self.events_queue_url.clone()),
            ("EventsDLQ", self.events_dlq_url.clone()),
            ("SlackQueue", self.slack_queue_url.clone()),
            ("SlackDrainQueue", self.slack_drain_queue_url.clone()),
            ("SlackDLQ", self.slack_dlq_url.clone()),
            ("DestinationsQueue", self.destinations_queue_url.clone()),
            ("DestinationsDLQ", self.destinations_dlq_url.clone()),
            ("WarehouseQueue", self.warehouse_queue_url.clone()),
            ("WarehouseDLQ", self.warehouse_dlq_url.clone()),
            ("WarehouseSecret", self.warehouse_secret_arn.clone()),
            ("StackKey", self.kms_key_id.clone()),
            ("SlackTokenSecret", self.slack_token_secret_arn.clone()),
            ("SlackAppSecret", self.slack_app_secret_arn.clone()),
            ("LinkSigningSecret", self.link_secret_arn.clone()),
            ("AdminTokenSecret", self.admin_token_secret_arn.clone()),
            ("StackKeyAlias", format!("alias/{}", self.prefix)),
            // Not created locally (the emulator raises no alarms); named as on AWS.
            (
                "AlarmTopic",
                format!("arn:aws:sns:{region}:{account}:{}-alarms", self.prefix),
            ),
            ("Dashboard", format!("ingestlayer-{}", self.prefix)),
            ("IngestFunction", "IngestFunction".to_owned()),
            ("PipelineFunction", "PipelineFunction".to_owned()),
            ("SlackDeliveryFunction", "SlackDeliveryFunction".to_owned()),
            (
                "DestinationDeliveryFunction",
                "DestinationDeliveryFunction".to_owned(),
            ),
            ("SlackConnectFunction", "SlackConnectFunction".to_owned()),
            ("WarehouseFunction", "WarehouseFunction".to_owned()),
        ];
        let mut attributes = HashMap::new();
        for (id, table) in [
            ("EventsTable", &self.events_table),
            ("ApiKeysTable", &self.api_keys_table),
            ("PipelinesTable", &self.pipelines_table),
            ("EntitiesTable", &self.entities_table),
            ("ChannelsTable", &self.channels_table),
            ("DeliveriesTable", &self.deliveries_table),
            ("ConnectionsTable", &self.connections_table),
            ("JourneyTable", &self.journey_table),
            ("StateTable", &self.state_table),
            ("BufferTable", &self.buffer_table),
        ] {
            attributes.insert(
                format!("{id}.Arn"),
                format!("arn:aws:dynamodb:{region}:{account}:table/{table}"),
            );
        }
        for (id, url) in [
            ("EventsQueue", &self.events_queue_url),
            ("EventsDLQ", &self.events_dlq_url),
            ("SlackQueue", &self.slack_queue_url),
            ("SlackDrainQueue", &self.slack_drain_queue_url),
            ("SlackDLQ", &self.slack_dlq_url),
            ("DestinationsQueue", &self.destinations_queue_url),
            ("DestinationsDLQ", &self.destinations_dlq_url),
            ("WarehouseQueue", &self.warehouse_queue_url),
            ("WarehouseDLQ", &self.warehouse_dlq_url),
        ] {
            let name = queue_name(url);
            attributes.insert(
                format!("{id}.Arn"),
                format!("arn:aws:sqs:{region}:{account}:{name}"),
            );
            attributes.insert(format!("{id}.QueueName"), name);
        }
        attributes.insert(
            "StackKey.Arn".to_owned(),
            format!("arn:aws:kms:{region}:{account}:key/{}", self.kms_key_id),
        );
        LocalValues {
            refs: refs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            attributes,
            parameters: HashMap::from([
                // make dev's operations channel (template.yaml's default sends no notices).
                ("OpsChannel".to_owned(), "#ingestlayer-ops".to_owned()),
                ("SlackApiUrl".to_owned(), urls.slack_api_url.clone()),
                (
                    "Warehouse".to_owned(),
                    if self.warehouse_on { "on" } else { "off" }.to_owned(),
                ),
                (
                    "SlackAuthorizeUrl".to_owned(),
                    urls.slack_authorize_url.clone(),
                ),
            ])
            .into_iter()
            .chain(
                [
                    ("DiscordApiUrl", &urls.discord_api_url),
                    ("TelegramApiUrl", &urls.telegram_api_url),
                    ("NotionApiUrl", &urls.notion_api_url),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?))),
            )
            .collect(),
            pseudo: HashMap::from([
                ("AWS::StackName".to_owned(), self.prefix.clone()),
                ("AWS::Region".to_owned(), region.clone()),
                ("AWS::AccountId".to_owned(), account),
                ("AWS::Partition".to_owned(), "aws".to_owned()),
                ("AWS::URLSuffix".to_owned(), "amazonaws.com".to_owned()),
            ]),
            api_url: urls.api_url.clone(),
        }
    }
}

/// Creates the secret under the KMS key, or puts a new value when it exists.
async fn put_secret(
    secrets: &aws_sdk_secretsmanager::Client,
    name: &str,
    kms_key_id: &str,
    value: &str,
) -> Result<String> {
    match secrets
        .create_secret()
        .name(name)
        .kms_key_id(kms_key_id)
        .secret_string(value)
        .send()
        .await
    {
        Ok(out) => Ok(out.arn.unwrap_or_default()),
        Err(_) => {
            let out = secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .map_err(fail(name))?;
            Ok(out.arn.unwrap_or_default())
        }
    }
}

async fn create_table(dynamo: &aws_sdk_dynamodb::Client, table: &str, key: &str) -> Result<()> {
    create_keyed_table(dynamo, table, key, None).await
}

/// A table keyed by a string hash key and, when given, a string range key.
async fn create_keyed_table(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    hash: &str,
    range: Option<&str>,
) -> Result<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(fail(table))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(fail(table))
    };
    let mut create = dynamo
        .create_table()
        .table_name(table)
        .attribute_definitions(attr(hash)?)
        .key_schema(key(hash, KeyType::Hash)?)
        .billing_mode(BillingMode::PayPerRequest);
    if let Some(range) = range {
        create = create
            .attribute_definitions(attr(range)?)
            .key_schema(key(range, KeyType::Range)?);
    }
    created_or_there(create.send().await, table)
}

/// A CreateTable's outcome: a table that already exists (an earlier run's) is fine.
fn created_or_there<T>(
    created: std::result::Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::create_table::CreateTableError,
        >,
    >,
    table: &str,
) -> Result<()> {
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(fail(table)(e)),
    }
}

/// template.yaml's `JourneyTable`: `event_id` + `step`, and the sparse `by_pipeline` index
/// (`pipeline`, `at_ms`).
/// A table keyed by a string hash key (and a string range key), with one global index
/// keyed by a string and a number: the journey and state tables.
async fn create_indexed_table(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    (hash, range): (&str, Option<&str>),
    (index_name, index_hash, index_range): (&str, &str, &str),
) -> Result<()> {
    let attr = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(fail(table))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(fail(table))
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(index_name)
        .key_schema(key(index_hash, KeyType::Hash)?)
        .key_schema(key(index_range, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(fail(table))?;
    let mut create = dynamo
        .create_table()
        .table_name(table)
        .attribute_definitions(attr(hash, ScalarAttributeType::S)?)
        .attribute_definitions(attr(index_hash, ScalarAttributeType::S)?)
        .attribute_definitions(attr(index_range, ScalarAttributeType::N)?)
        .key_schema(key(hash, KeyType::Hash)?)
        .global_secondary_indexes(index)
        .billing_mode(BillingMode::PayPerRequest);
    if let Some(range) = range {
        create = create
            .attribute_definitions(attr(range, ScalarAttributeType::S)?)
            .key_schema(key(range, KeyType::Range)?);
    }
    created_or_there(create.send().await, table)
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    fifo: bool,
    dlq: Option<(&str, u32)>,
) -> Result<String> {
    let mut attributes = HashMap::from([
        (QueueAttributeName::MaximumMessageSize, "1048576".to_owned()),
        (
            QueueAttributeName::MessageRetentionPeriod,
            "1209600".to_owned(),
        ),
        (
            QueueAttributeName::VisibilityTimeout,
            LOCAL_VISIBILITY_SECONDS.to_owned(),
        ),
    ]);
    if fifo {
        attributes.insert(QueueAttributeName::FifoQueue, "true".into());
        attributes.insert(
            QueueAttributeName::ContentBasedDeduplication,
            "false".into(),
        );
    }
    if let Some((dlq_url, max_receive)) = dlq {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(fail(name))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        attributes.insert(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive})
                .to_string(),
        );
    }
    let out = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(fail(name))?;
    Ok(out.queue_url.unwrap_or_default())
}

/// Registers a CloudFormation stack named `name` in the emulator whose outputs are
/// `outputs` (replacing one of that name), as the command line finds a deployed stack's.
pub async fn register_outputs(
    sdk: &aws_config::SdkConfig,
    name: &str,
    outputs: &BTreeMap<String, String>,
) -> Result<()> {
    let body = serde_json::json!({
        "Description": "The local stack of `make dev`: its outputs, for the ingestlayer command line",
        "Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": outputs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!({ "Value": v })))
            .collect::<serde_json::Map<_, _>>(),
    });
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let _ = cfn.delete_stack().stack_name(name).send().await;
    cfn.create_stack()
        .stack_name(name)
        .template_body(body.to_string())
        .send()
        .await
        .map_err(fail("the CloudFormation stack"))?;
    Ok(())
}
