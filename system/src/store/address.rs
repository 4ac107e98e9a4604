//! Where the store's Redis is: a plain `redis://` URL, or a primary that Redis Sentinels
//! name, so that the platform follows a failover by itself.
//!
//! A Sentinel address is `redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE`: the
//! Sentinels to ask (without authentication) and the service they monitor; `PASSWORD` is the
//! primary's. Each connection asks the Sentinels for the current primary when it is made, and
//! [`super::Store`] keeps asking while it runs (see [`RedisAddress::watch_every`]).

use std::time::Duration;

use super::StoreError;

/// The scheme of Sentinel addresses.
const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAddress {
    /// A server by URL.
    Direct(String),
    /// The primary of `service`, as the Sentinels at `sentinels` (`host:port`) name it.
    Sentinel {
        sentinels: Vec<String>,
        service: String,
        password: Option<String>,
    },
}

impl RedisAddress {
    /// Parses a `redis://`, `rediss://`, `unix://` or `redis+sentinel://` URL.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) else {
            return Ok(Self::Direct(url.to_owned()));
        };
        let bad = |reason: &str| StoreError::Address(format!("{SENTINEL_SCHEME} URL: {reason}"));
        let (authority, service) = rest
            .split_once('/')
            .ok_or_else(|| bad("no /SERVICE after the Sentinels"))?;
        let (password, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => {
                let password = credentials.strip_prefix(':').unwrap_or(credentials);
                (Some(password.to_owned()), hosts)
            }
            None => (None, authority),
        };
        let sentinels: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if sentinels.is_empty() || sentinels.iter().any(|h| !h.contains(':')) {
            return Err(bad("the Sentinels must be HOST:PORT, comma-separated"));
        }
        if service.is_empty() {
            return Err(bad("the service name is empty"));
        }
        Ok(Self::Sentinel {
            sentinels,
            service: service.to_owned(),
            password: password.filter(|p| !p.is_empty()),
        })
    }

    /// How often a store asks again where the primary is; `None` for a direct address.
    #[must_use]
    pub fn watch_every(&self) -> Option<Duration> {
        match self {
            Self::Direct(_) => None,
            Self::Sentinel { .. } => Some(Duration::from_millis(250)),
        }
    }

    /// The URL of the server to use now: the direct one, or the primary the first Sentinel
    /// that answers names.
    pub async fn current(&self) -> Result<String, StoreError> {
        let (sentinels, service, password) = match self {
            Self::Direct(url) => return Ok(url.clone()),
            Self::Sentinel {
                sentinels,
                service,
                password,
            } => (sentinels, service, password),
        };
        let mut failures = Vec::new();
        for sentinel in sentinels {
            match ask(sentinel, service).await {
                Ok((host, port)) => {
                    let auth = password
                        .as_deref()
                        .map(|p| format!(":{p}@"))
                        .unwrap_or_default();
                    return Ok(format!("redis://{auth}{host}:{port}"));
                }
                Err(e) => failures.push(format!("{sentinel}: {e}")),
            }
        }
        Err(StoreError::NoPrimary {
            service: service.clone(),
            reasons: failures.join("; "),
        })
    }
}

/// What the Sentinel at `sentinel` says the primary of `service` is.
async fn ask(sentinel: &str, service: &str) -> Result<(String, u16), redis::RedisError> {
    let client = redis::Client::open(format!("redis://{sentinel}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let named: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(service)
        .query_async(&mut conn)
        .await?;
    named.ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::Client,
            "the Sentinel does not monitor this service",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_direct_or_sentinel_addresses() {
        assert_eq!(
            RedisAddress::parse("redis://:pw@127.0.0.1:6379").unwrap(),
            RedisAddress::Direct("redis://:pw@127.0.0.1:6379".into())
        );
        assert_eq!(
            RedisAddress::parse("redis+sentinel://:pw@a:1,b:2/faas").unwrap(),
            RedisAddress::Sentinel {
                sentinels: vec!["a:1".into(), "b:2".into()],
                service: "faas".into(),
                password: Some("pw".into()),
            }
        );
        assert_eq!(
            RedisAddress::parse("redis+sentinel://a:1/faas").unwrap(),
            RedisAddress::Sentinel {
                sentinels: vec!["a:1".into()],
                service: "faas".into(),
                password: None,
            }
        );
        for bad in [
            "redis+sentinel://a:1",
            "redis+sentinel://a:1/",
            "redis+sentinel:///faas",
            "redis+sentinel://nohost/faas",
        ] {
            assert!(RedisAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
