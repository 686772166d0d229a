//! Pure-Rust DNS for the Bot API client.
//!
//! The release binary is linked statically against glibc. glibc's `getaddrinfo` then
//! still tries to `dlopen` the NSS modules named in `/etc/nsswitch.conf`, which needs
//! the very shared glibc of the same version that static linking meant to do without
//! (and is absent in a `FROM scratch` image). So the HTTP client never calls it:
//! [`PureResolver`] resolves with `hickory-resolver`, which reads `/etc/hosts` and
//! `/etc/resolv.conf` itself and speaks DNS over UDP/TCP from Rust.
//!
//! Plug it into hyper with
//! `HttpConnector::new_with_resolver(PureResolver::from_system()?)`.
//!
//! Decisions:
//! - IP literals (`127.0.0.1`, `::1`, `[::1]`) are answered without any lookup, so a
//!   Bot API URL with an address (the fake API in tests, a local Bot API server) never
//!   depends on DNS.
//! - `/etc/hosts` is consulted first and, like glibc's `hosts: files dns`, a name it
//!   lists is answered from it alone. hickory would still ask DNS for the family the
//!   file lacks (an IPv4-only entry sends an AAAA query), which stalls every lookup
//!   for the full timeout when DNS is unreachable. A missing hosts file counts as
//!   empty; hickory answers `localhost` itself either way, per RFC 6761.
//! - When `/etc/resolv.conf` does not exist (a bare chroot, a scratch image run
//!   without the runtime's injected file), it falls back to the public resolvers of
//!   Cloudflare (1.1.1.1) and Google (8.8.8.8) over UDP and TCP and logs a warning:
//!   the bot needs exactly one name, `api.telegram.org`, which any public resolver
//!   answers, and refusing to start would be worse than a documented fallback.
//!   glibc's own fallback, a server on 127.0.0.1, is absent in exactly those places.
//!   Whoever wants no third-party resolver provides a `resolv.conf` (hosts have one;
//!   Docker, Podman and Kubernetes inject one into every container). A `resolv.conf` that exists but cannot be read
//!   or names no server is an error, not a fallback: that is a misconfiguration to fix.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use hickory_resolver::config::{CLOUDFLARE, GOOGLE, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::lookup_ip::LookupIp;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name as DnsName, RecordType};
use hickory_resolver::system_conf::parse_resolv_conf;
use hickory_resolver::{Hosts, TokioResolver};
use hyper_util::client::legacy::connect::dns::Name;

/// Where the system keeps its resolver configuration on Linux.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Where the system keeps its static names on Linux.
const HOSTS: &str = "/etc/hosts";

/// Errors from building the resolver or resolving a name.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolverError {
    /// The resolver configuration exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The resolver configuration could not be used (for example: it names no server).
    #[error("invalid resolver configuration in {}: {source}", path.display())]
    Config {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        source: NetError,
    },
    /// hickory refused the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Build(#[source] NetError),
    /// The lookup itself failed (no such name, no answer, timeout).
    #[error("cannot resolve {host}: {source}")]
    Lookup {
        /// The name that was looked up.
        host: String,
        /// Why.
        source: NetError,
    },
}

/// A DNS resolver for hyper's `HttpConnector` that never calls into libc's resolver.
///
/// Cheap to clone: clones share one cache and one set of name-server connections.
#[derive(Clone)]
pub(crate) struct PureResolver {
    inner: TokioResolver,
    hosts: Arc<Hosts>,
}

impl PureResolver {
    /// Builds a resolver from `/etc/resolv.conf` and `/etc/hosts`, falling back to
    /// public resolvers when `/etc/resolv.conf` is missing (see the module docs).
    ///
    /// # Errors
    ///
    /// When `/etc/resolv.conf` or `/etc/hosts` exists but cannot be read, or
    /// `/etc/resolv.conf` names no usable name server.
    pub(crate) fn from_system() -> Result<PureResolver, ResolverError> {
        Self::from_files(Path::new(RESOLV_CONF), Path::new(HOSTS))
    }

    fn from_files(resolv_conf: &Path, hosts: &Path) -> Result<PureResolver, ResolverError> {
        let (config, options) = system_config(resolv_conf)?;
        Self::with_config(config, options, hosts_file(hosts)?)
    }

    fn with_config(
        config: ResolverConfig,
        mut options: ResolverOpts,
        hosts: Hosts,
    ) -> Result<PureResolver, ResolverError> {
        // The hosts file is answered in `call`, before hickory sees the name.
        options.use_hosts_file = ResolveHosts::Never;
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        *builder.options_mut() = options;
        let inner = builder.build().map_err(ResolverError::Build)?;
        Ok(PureResolver {
            inner,
            hosts: Arc::new(hosts),
        })
    }
}

/// Reads a hosts file; a missing one (a scratch image) is simply empty.
fn hosts_file(path: &Path) -> Result<Hosts, ResolverError> {
    let read_error = |source| ResolverError::Read {
        path: path.to_owned(),
        source,
    };
    let mut hosts = Hosts::default();
    match std::fs::File::open(path) {
        Ok(file) => hosts.read_hosts_conf(file).map_err(read_error)?,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(read_error(err)),
    }
    Ok(hosts)
}

/// Reads a `resolv.conf`, or the public fallback when the file does not exist.
fn system_config(path: &Path) -> Result<(ResolverConfig, ResolverOpts), ResolverError> {
    match std::fs::read(path) {
        Ok(bytes) => parse_resolv_conf(bytes).map_err(|source| ResolverError::Config {
            path: path.to_owned(),
            source,
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(
                path = %path.display(),
                "no resolver configuration; using the public resolvers 1.1.1.1 and 8.8.8.8"
            );
            Ok((fallback_config(), ResolverOpts::default()))
        }
        Err(source) => Err(ResolverError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

fn fallback_config() -> ResolverConfig {
    let servers = CLOUDFLARE
        .udp_and_tcp()
        .chain(GOOGLE.udp_and_tcp())
        .collect();
    ResolverConfig::from_parts(None, Vec::new(), servers)
}

/// Every address the hosts file lists for `host`, or `None` if it does not name it.
fn from_hosts(hosts: &Hosts, host: &str) -> Option<Vec<IpAddr>> {
    let name = DnsName::from_str(host).ok()?;
    let ips: Vec<IpAddr> = [RecordType::AAAA, RecordType::A]
        .into_iter()
        .filter_map(|kind| hosts.lookup_static_host(&Query::query(name.clone(), kind)))
        .flat_map(|lookup| LookupIp::from(lookup).iter().collect::<Vec<_>>())
        .collect();
    (!ips.is_empty()).then_some(ips)
}

/// hyper's connector asks for addresses and puts the port in itself, so every address
/// here carries port 0.
fn with_port_zero(ips: impl IntoIterator<Item = IpAddr>) -> std::vec::IntoIter<SocketAddr> {
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, 0))
        .collect::<Vec<_>>()
        .into_iter()
}

impl tower_service::Service<Name> for PureResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolverError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hickory multiplexes any number of lookups; there is no capacity to wait for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.inner.clone();
        let hosts = Arc::clone(&self.hosts);
        Box::pin(async move {
            let host = name.as_str();
            // URLs bracket IPv6 literals; `Name` may still carry the brackets.
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = bare.parse::<IpAddr>() {
                return Ok(with_port_zero([ip]));
            }
            if let Some(ips) = from_hosts(&hosts, host) {
                return Ok(with_port_zero(ips));
            }
            let lookup =
                resolver
                    .lookup_ip(host)
                    .await
                    .map_err(|source| ResolverError::Lookup {
                        host: host.to_owned(),
                        source,
                    })?;
            Ok(with_port_zero(lookup.iter()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::{Duration, Instant};
    use tower_service::Service;

    /// A resolver with no name server and an empty hosts file: anything it answers
    /// came without a lookup.
    fn offline() -> PureResolver {
        PureResolver::with_config(
            ResolverConfig::from_parts(None, Vec::new(), Vec::new()),
            ResolverOpts::default(),
            Hosts::default(),
        )
        .expect("resolver without servers")
    }

    async fn resolve(resolver: &mut PureResolver, host: &str) -> Vec<SocketAddr> {
        let name = Name::from_str(host).expect("valid name");
        resolver.call(name).await.expect("resolves").collect()
    }

    #[tokio::test]
    async fn names_resolve_from_the_hosts_file_without_dns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let resolv_conf = dir.path().join("resolv.conf");
        let hosts = dir.path().join("hosts");
        // A server nobody answers on: a DNS query would time out, not succeed.
        std::fs::write(&resolv_conf, "nameserver 192.0.2.53\n").expect("write");
        std::fs::write(
            &hosts,
            "127.0.0.1 localhost\n::1 localhost\n192.0.2.10 api.telegram.test\n",
        )
        .expect("write");
        let mut resolver = PureResolver::from_files(&resolv_conf, &hosts).expect("resolver");
        let started = Instant::now();
        let localhost = resolve(&mut resolver, "localhost").await;
        assert!(!localhost.is_empty());
        assert!(
            localhost
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 0)
        );
        assert_eq!(
            resolve(&mut resolver, "api.telegram.test").await,
            [SocketAddr::from((Ipv4Addr::new(192, 0, 2, 10), 0))]
        );
        // No AAAA query went to the dead server for the IPv4-only entry: that would
        // have waited for its timeout (5 s, twice).
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn system_resolver_answers_localhost() {
        let mut resolver = PureResolver::from_system().expect("system resolver");
        let addrs = resolve(&mut resolver, "localhost").await;
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn plugs_into_the_hyper_client() {
        // Compiles only if the resolver meets every bound hyper puts on it.
        let connector = HttpConnector::new_with_resolver(offline());
        let _client = Client::builder(TokioExecutor::new())
            .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
    }

    #[tokio::test]
    async fn ip_literals_need_no_lookup() {
        let mut resolver = offline();
        assert_eq!(
            resolve(&mut resolver, "192.0.2.7").await,
            [SocketAddr::from((Ipv4Addr::new(192, 0, 2, 7), 0))]
        );
        assert_eq!(
            resolve(&mut resolver, "[2001:db8::1]").await,
            [SocketAddr::from((
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                0
            ))]
        );
    }

    #[tokio::test]
    async fn names_outside_the_hosts_file_need_dns() {
        // Proves the test resolver above is really offline, so the literal test means
        // something. `.invalid` is reserved and never in a hosts file.
        let name = Name::from_str("edgebot.invalid").expect("valid name");
        let err = offline().call(name).await.expect_err("no server to ask");
        assert!(matches!(err, ResolverError::Lookup { .. }), "{err}");
    }

    #[test]
    fn missing_resolv_conf_falls_back_to_public_resolvers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, _) = system_config(&dir.path().join("resolv.conf")).expect("fallback");
        let ips: Vec<IpAddr> = config.name_servers().iter().map(|s| s.ip).collect();
        assert!(ips.contains(&IpAddr::from([1, 1, 1, 1])), "{ips:?}");
        assert!(ips.contains(&IpAddr::from([8, 8, 8, 8])), "{ips:?}");
    }

    #[test]
    fn resolv_conf_without_servers_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "search example.org\n").expect("write");
        assert!(matches!(
            system_config(&path),
            Err(ResolverError::Config { .. })
        ));
    }

    #[test]
    fn resolv_conf_servers_are_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.53\noptions timeout:1\n").expect("write");
        let (config, options) = system_config(&path).expect("parses");
        let ips: Vec<IpAddr> = config.name_servers().iter().map(|s| s.ip).collect();
        assert_eq!(ips, [IpAddr::from([192, 0, 2, 53])]);
        assert_eq!(options.timeout, Duration::from_secs(1));
    }
}
