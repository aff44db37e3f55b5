//! A `moto_server` of the test's own on a free loopback port, stopped when dropped; clients
//! for it; and tables with a `NEW_AND_OLD_IMAGES` stream.
//!
//! moto is required: a missing `moto_server` fails the test with the install command, so that
//! CI never passes by skipping the end-to-end tests.

use std::collections::HashMap;
use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};

/// A DynamoDB client for a loopback endpoint (static test credentials, us-east-1).
pub fn dynamodb_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// How long moto may take to answer on its port (a cold Python start takes 1 to 3 s).
const STARTUP: Duration = Duration::from_secs(30);

/// A running `moto_server`, killed (SIGKILL) and reaped on drop.
pub struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    /// Starts `moto_server` (or `$MOTO_SERVER`) on a free 127.0.0.1 port and waits until it
    /// accepts connections.
    ///
    /// # Panics
    /// If moto is not installed, or does not come up: a test failure that says how to fix it.
    pub fn start() -> Moto {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".to_owned());
        let port = free_port();
        let log = tempfile::tempfile().expect("a temporary file for moto's log");
        let spawned = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.try_clone().expect("a second handle on moto's log"))
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{program}` is not on PATH: these end-to-end tests need moto. Install it with \
                 `pip install 'moto[server]'` (or set MOTO_SERVER to its path)"
            ),
            Err(e) => panic!("cannot start `{program}`: {e}"),
        };
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        moto.wait_until_up(port, log);
        moto
    }

    fn wait_until_up(&mut self, port: u16, mut log: std::fs::File) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let mut text = String::new();
                let _ = std::io::Seek::rewind(&mut log);
                let _ = log.read_to_string(&mut text);
                panic!(
                    "moto_server did not come up on port {port} ({}); its output:\n{text}\n\
                     Is moto installed with its server? `pip install 'moto[server]'`",
                    exited.map_or("timed out".to_owned(), |s| s.to_string())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`: the endpoint of both DynamoDB and DynamoDB Streams.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A DynamoDB client for this server (static test credentials, us-east-1).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        dynamodb_at(&self.endpoint)
    }

    /// A DynamoDB Streams client for this server (static test credentials, us-east-1).
    pub fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        use aws_sdk_dynamodbstreams::config as c;
        let config = c::Config::builder()
            .behavior_version(c::BehaviorVersion::latest())
            .region(c::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(c::Credentials::new("test", "test", None, None, "moto"))
            .build();
        aws_sdk_dynamodbstreams::Client::from_conf(config)
    }

    /// Environment for a child process that reads this server through the default AWS
    /// configuration (credentials and region; the endpoint is passed as a flag).
    pub fn env(&self) -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
    }

    /// Creates table `name` with a string partition key `pk` (and a numeric sort key `sk` if
    /// `sort_key`), on-demand, with a `NEW_AND_OLD_IMAGES` stream; returns the stream ARN.
    pub async fn create_table(&self, name: &str, sort_key: bool) -> String {
        let mut keys = vec![("pk", KeyType::Hash, ScalarAttributeType::S)];
        if sort_key {
            keys.push(("sk", KeyType::Range, ScalarAttributeType::N));
        }
        let out = self
            .dynamodb()
            .create_table()
            .table_name(name)
            .set_key_schema(Some(
                keys.iter()
                    .map(|(n, k, _)| {
                        KeySchemaElement::builder()
                            .attribute_name(*n)
                            .key_type(k.clone())
                            .build()
                            .expect("a key schema element")
                    })
                    .collect(),
            ))
            .set_attribute_definitions(Some(
                keys.iter()
                    .map(|(n, _, t)| {
                        AttributeDefinition::builder()
                            .attribute_name(*n)
                            .attribute_type(t.clone())
                            .build()
                            .expect("an attribute definition")
                    })
                    .collect(),
            ))
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .expect("a stream specification"),
            )
            .send()
            .await
            .expect("CreateTable on moto");
        out.table_description()
            .and_then(|t| t.latest_stream_arn())
            .expect("moto returned no stream ARN")
            .to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // `Child::kill` is SIGKILL on Unix; the wait reaps the process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now. The listener is closed before moto binds it, so another
/// process could take it in between; moto then fails to start and the test says so.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The DynamoDB SDK's attribute value as the streams SDK's (two distinct types of the same
/// shape), to compare what was written with what the stream delivers.
pub fn to_stream_value(
    value: &aws_sdk_dynamodb::types::AttributeValue,
) -> aws_sdk_dynamodbstreams::types::AttributeValue {
    use aws_sdk_dynamodb::types::AttributeValue as D;
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    match value {
        D::S(s) => S::S(s.clone()),
        D::N(n) => S::N(n.clone()),
        D::B(b) => S::B(b.clone()),
        D::Bool(b) => S::Bool(*b),
        D::Null(b) => S::Null(*b),
        D::M(m) => S::M(to_stream_item(m)),
        D::L(l) => S::L(l.iter().map(to_stream_value).collect()),
        D::Ss(v) => S::Ss(v.clone()),
        D::Ns(v) => S::Ns(v.clone()),
        D::Bs(v) => S::Bs(v.clone()),
        other => panic!("no streams equivalent for {other:?}"),
    }
}

/// [`to_stream_value`] for a whole item.
pub fn to_stream_item(
    item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> dynamodb_stream::Item {
    item.iter()
        .map(|(k, v)| (k.clone(), to_stream_value(v)))
        .collect()
}
