//! A typed client of the REST API, used by `tribunectl` and the tests. Tries each known member
//! URL in turn, so one member being down does not stop an operator.

use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{ClusterDocument, StatusDocument};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no member answered: {0}")]
    Unreachable(String),
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} sent a document that could not be read: {detail}")]
    Decode { url: String, detail: String },
    #[error("could not build the HTTP client: {0}")]
    Build(String),
}

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// Base URLs (`http://host:port`), tried in order.
    bases: Vec<String>,
}

/// `http://host:port/patroni` or `host:port` -> `http://host:port`.
pub fn base_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let url = url.strip_suffix("/patroni").unwrap_or(url);
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

impl Client {
    pub fn new(urls: &[String], timeout: Duration) -> Result<Self, ClientError> {
        // reqwest is built without a default TLS provider: install ring's once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Self {
            http,
            bases: urls.iter().map(|u| base_url(u)).collect(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let mut failures = Vec::new();
        for base in &self.bases {
            let url = format!("{base}{path}");
            match self.http.get(&url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.text().await.unwrap_or_default();
                    if !(200..300).contains(&status) && path != "/patroni" {
                        return Err(ClientError::Status { url, status, body });
                    }
                    return serde_json::from_str(&body).map_err(|e| ClientError::Decode {
                        url,
                        detail: e.to_string(),
                    });
                }
                Err(err) => failures.push(format!("{url}: {err}")),
            }
        }
        Err(ClientError::Unreachable(failures.join("; ")))
    }

    pub async fn cluster(&self) -> Result<ClusterDocument, ClientError> {
        self.get("/cluster").await
    }

    pub async fn status(&self) -> Result<StatusDocument, ClientError> {
        self.get("/patroni").await
    }
}
