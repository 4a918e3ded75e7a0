//! The one-click unsubscribe endpoint (`missive serve`): the organization's side of the link
//! every message carries, answered over HTTP/1.1 behind the organization's HTTPS proxy.
//!
//! Each [`Site`] is one campaign at the path of its `[unsubscribe] url`. A request must carry a
//! link as [`crate::unsubscribe`] writes it (`?c=&e=&t=`), checked in constant time under the
//! secret; then:
//! - GET (and HEAD) never unsubscribes: link scanners and previews fetch every URL. It shows a
//!   page ([`pages`]) whose one button POSTs the one-click form back to the same URL.
//! - POST with the RFC 8058 body ([`form`]) adds the address to the campaign's unsubscribed
//!   file through the group commit ([`commit`]) and answers 200 only once it is durable; a
//!   second POST answers the same and writes nothing. No cookie, no redirect, no login.
//! - Anything else gets a plain 4xx page that says nothing about what was wrong with the link.
//!
//! The server is built to face the internet: requests are bounded (header count and size,
//! body size), slow clients time out, connections are counted against a ceiling, no input can
//! make it panic, and shutdown (the `shutdown` future the binary makes of SIGINT and SIGTERM)
//! stops accepting, lets requests in flight finish and their addresses reach the disk.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::suppression::{Appender, Reason, SuppressionError};
use crate::unsubscribe::{Secret, link_language, verify_link};

mod commit;
mod form;
mod pages;

use commit::Committer;
pub use pages::PageText;

/// The largest request body read: the one-click form is 26 bytes, a browser's multipart
/// version a few hundred.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Headers a request may have (a browser sends about 15), and their size with the request line.
pub const MAX_HEADERS: usize = 48;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A client must send its request head within this, and then its body within as much again.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 8192;
/// How long shutdown waits for requests in flight before it gives up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// One campaign the endpoint answers for.
#[derive(Debug, Clone)]
pub struct Site {
    pub campaign_id: String,
    /// The path of the campaign's `[unsubscribe] url` (several campaigns may share one).
    pub path: String,
    pub text: PageText,
    /// The file unsubscribed addresses are appended to.
    pub unsubscribed: PathBuf,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Suppression(#[from] SuppressionError),
    #[error("two campaigns given have the id {0:?}: each link names its campaign by id")]
    SameId(String),
    #[error("cannot start the thread that writes unsubscribes: {0}")]
    Thread(std::io::Error),
}

/// What the endpoint needs to answer a request; shared by every connection.
struct Endpoint {
    sites: Vec<Site>,
    by_path: HashMap<String, Vec<usize>>,
    secret: Secret,
    committer: Committer,
}

/// The endpoint, ready to answer: every site's file open, the commit thread started.
pub struct Server {
    endpoint: Arc<Endpoint>,
    commit_thread: JoinHandle<()>,
}

impl Server {
    /// Opens each site's unsubscribed file (creating it when missing) and starts the thread
    /// that writes to them. Fails on a file that cannot be opened or read, and on two sites of
    /// one campaign id (a link could not say which file it means).
    pub fn new(sites: Vec<Site>, secret: Secret) -> Result<Server, ServeError> {
        let mut by_path: HashMap<String, Vec<usize>> = HashMap::new();
        let mut appenders = Vec::with_capacity(sites.len());
        for (index, site) in sites.iter().enumerate() {
            if sites[..index]
                .iter()
                .any(|s| s.campaign_id == site.campaign_id)
            {
                return Err(ServeError::SameId(site.campaign_id.clone()));
            }
            by_path.entry(site.path.clone()).or_default().push(index);
            appenders.push(Appender::open(&site.unsubscribed, Reason::Unsubscribed)?);
        }
        let (committer, commit_thread) = Committer::start(appenders).map_err(ServeError::Thread)?;
        let endpoint = Arc::new(Endpoint {
            sites,
            by_path,
            secret,
            committer,
        });
        Ok(Server {
            endpoint,
            commit_thread,
        })
    }

    /// Answers on `listener` until `shutdown` resolves; then finishes the requests in flight
    /// (for at most [`SHUTDOWN_GRACE`]) and returns once every address accepted is on disk.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Server {
            endpoint,
            commit_thread,
        } = self;
        serve(endpoint, commit_thread, listener, shutdown).await;
    }
}

async fn serve(
    endpoint: Arc<Endpoint>,
    commit_thread: JoinHandle<()>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES.max(8192) + MAX_BODY_BYTES);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // wait a little rather than spin, and go on.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let endpoint = Arc::clone(&endpoint);
        let service = hyper::service::service_fn(move |request| {
            let endpoint = Arc::clone(&endpoint);
            async move { Ok::<_, Infallible>(answer(&endpoint, request, peer).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away or sends garbage ends its own connection, nothing more.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("stopping: finishing the requests in flight");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}: abandoned unanswered");
        return;
    }
    // Every connection is done: the last committer goes, and the thread ends once it has
    // written what it was handed.
    drop(endpoint);
    let _ = tokio::task::spawn_blocking(move || commit_thread.join()).await;
}

type Page = Response<Full<Bytes>>;

async fn answer(endpoint: &Endpoint, request: Request<Incoming>, peer: SocketAddr) -> Page {
    let Some(candidates) = endpoint.by_path.get(request.uri().path()) else {
        return page(StatusCode::NOT_FOUND, pages::invalid(&english()));
    };
    // The reader's language, when the link names it (a campaign with [letters]): the pages
    // speak the letter's language rather than the campaign's default.
    let language = request.uri().query().and_then(link_language);
    let text = &in_language(&endpoint.sites[candidates[0]].text, language.as_deref());
    let method = request.method().clone();
    if ![Method::GET, Method::HEAD, Method::POST].contains(&method) {
        let mut response = page(StatusCode::METHOD_NOT_ALLOWED, pages::invalid(text));
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
        return response;
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // A whole URL, so that the query is never itself read as one.
    let verified = verify_link(
        &endpoint.secret,
        &format!("http://endpoint.invalid{path_and_query}"),
    );
    let Some((index, verified)) = verified.ok().and_then(|verified| {
        let index = candidates
            .iter()
            .copied()
            .find(|&i| endpoint.sites[i].campaign_id == verified.campaign_id)?;
        // The appender writes what it is given: only an address, never a line break, although
        // missive never issues a token for anything else.
        verified.address.parse::<lettre::Address>().ok()?;
        Some((index, verified))
    }) else {
        tracing::debug!(%peer, "refused an invalid link");
        return page(StatusCode::BAD_REQUEST, pages::invalid(text));
    };
    let site = &endpoint.sites[index];
    let site_text = in_language(&site.text, language.as_deref());
    if method != Method::POST {
        return page(
            StatusCode::OK,
            pages::confirm(&site_text, &verified.address, &path_and_query),
        );
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = Limited::new(request.into_body(), MAX_BODY_BYTES);
    let body = match tokio::time::timeout(READ_TIMEOUT, body.collect()).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return page(StatusCode::PAYLOAD_TOO_LARGE, pages::invalid(&site_text));
        }
        Ok(Err(_)) => return page(StatusCode::BAD_REQUEST, pages::invalid(&site_text)),
        Err(_) => return page(StatusCode::REQUEST_TIMEOUT, pages::invalid(&site_text)),
    };
    if !form::is_one_click(content_type.as_deref(), &body) {
        return page(StatusCode::BAD_REQUEST, pages::invalid(&site_text));
    }
    match endpoint
        .committer
        .add(index, verified.address.clone())
        .await
    {
        Ok(added) => {
            tracing::debug!(campaign = %site.campaign_id, added, "unsubscribed");
            page(StatusCode::OK, pages::done(&site_text, &verified.address))
        }
        Err(error) => {
            tracing::error!(campaign = %site.campaign_id, "cannot record an unsubscribe: {error}");
            let mut response = page(StatusCode::SERVICE_UNAVAILABLE, pages::failed(&site_text));
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            response
        }
    }
}

/// `text` in `language`, when a link names one.
fn in_language(text: &PageText, language: Option<&str>) -> PageText {
    match language {
        Some(language) => PageText {
            language: language.to_owned(),
            ..text.clone()
        },
        None => text.clone(),
    }
}

/// The words of a page for a path no campaign is served at.
fn english() -> PageText {
    PageText {
        language: "en".into(),
        organization: "missive".into(),
        contact: String::new(),
    }
}

/// A page with the headers every answer carries: nothing may be loaded from elsewhere, run,
/// framed, cached, or told where the reader came from.
fn page(status: StatusCode, markup: maud::Markup) -> Page {
    let mut response = Response::new(Full::new(Bytes::from(markup.into_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    response
}
