//! One loopback endpoint in front of two servers: DynamoDB Streams calls go to the stream
//! (the simulator's `sim_server`, or moto), DynamoDB calls to moto, one at a time.
//!
//! Why one at a time: moto serves requests on threads and checks a write's condition, then
//! writes, with no lock between (`moto/dynamodb/models`): under concurrency two conditional
//! writes to one item can both succeed (measured: 4 of 30 rounds of 8 racing writers had more
//! than one winner). DynamoDB applies each conditional write atomically, and the lease
//! protocol relies on that, so the proxy restores it by sending moto one request at a time.
//! It also logs every DynamoDB call with the operation and the monotonic time it was answered.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub url: String,
    pub log: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Routes {
    streams: String,
    dynamodb: String,
    /// Keeps connections to the servers open between requests.
    client: Client<HttpConnector, Full<Bytes>>,
    serial: tokio::sync::Mutex<()>,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Proxy {
    /// Listens on a free 127.0.0.1 port; `streams` and `dynamodb` are `host:port` addresses.
    pub async fn start(streams: &str, dynamodb: &str) -> Proxy {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(Routes {
            streams: host_port(streams),
            dynamodb: host_port(dynamodb),
            client: Client::builder(TokioExecutor::new()).build_http(),
            serial: tokio::sync::Mutex::new(()),
            log: log.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let routes = routes.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| forward(routes.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Proxy { url, log, task }
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

async fn forward(
    routes: Arc<Routes>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let streams = target.starts_with("DynamoDBStreams_");
    let upstream = if streams {
        &routes.streams
    } else {
        &routes.dynamodb
    };
    let _one_at_a_time = if streams {
        None
    } else {
        Some(routes.serial.lock().await)
    };
    let answer = send(&routes.client, upstream, parts, body).await;
    if !streams {
        let op = target.rsplit('.').next().unwrap_or_default().to_owned();
        routes.log.lock().unwrap().push((Instant::now(), op));
    }
    Ok(answer.unwrap_or_else(|e| {
        let mut response = Response::new(Full::new(Bytes::from(e)));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    }))
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{upstream}{path}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let request = Request::from_parts(parts, Full::new(body));
    let response = client.request(request).await.map_err(|e| {
        eprintln!("proxy: {upstream}: {e:?}");
        e.to_string()
    })?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Response::from_parts(parts, Full::new(body)))
}
