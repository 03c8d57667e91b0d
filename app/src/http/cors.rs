//! CORS for browser clients on other origins (`server.cors_origins`).
//!
//! poem's [`Cors`] answers preflights and adds the `Access-Control-*` headers, but it refuses
//! a request from any origin it does not allow with a 403, which would break requests that
//! merely carry an `Origin` (a browser sends one on a same-origin POST too, e.g. from
//! `/docs`). So only requests from an allowed origin go through it; any other request is
//! served as if CORS were off: no `Access-Control-Allow-Origin`, and the browser keeps the
//! answer from the page, as it should. Every answer says `Vary: Origin`, so a cache never
//! hands one origin's answer to another.
//!
//! Duet authenticates with a bearer header, never cookies: no credentials mode, and `*` is
//! safe to allow (another site cannot ride on a user's session; it would need their token).

use std::collections::HashSet;
use std::sync::Arc;

use poem::http::{HeaderValue, Method, header};
use poem::middleware::{Cors, CorsEndpoint};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: i32 = 3600;

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Every origin (`*` in the list).
    Any,
    /// Exactly these, as browsers send them (`https://app.example.com`, no trailing `/`).
    Only(HashSet<HeaderValue>),
}

impl AllowedOrigins {
    /// `None` for an empty list: no CORS at all.
    ///
    /// # Errors
    /// An entry that is neither `*` nor an origin (`scheme://host[:port]`), naming it.
    pub fn from_config(origins: &[String]) -> anyhow::Result<Option<Self>> {
        if origins.is_empty() {
            return Ok(None);
        }
        if origins.iter().any(|origin| origin == "*") {
            return Ok(Some(Self::Any));
        }
        let mut allowed = HashSet::new();
        for origin in origins {
            allowed.insert(parse_origin(origin)?);
        }
        Ok(Some(Self::Only(allowed)))
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Self::Any => true,
            Self::Only(allowed) => allowed.contains(origin),
        }
    }
}

/// An origin as a browser writes it in the `Origin` header.
fn parse_origin(origin: &str) -> anyhow::Result<HeaderValue> {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .filter(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ', '*']));
    anyhow::ensure!(
        host.is_some() && origin.is_ascii(),
        "server.cors_origins: {origin:?} is not an origin: write `*` or \
         `scheme://host[:port]`, without a path or trailing `/`"
    );
    Ok(HeaderValue::from_str(&origin.to_ascii_lowercase())?)
}

/// The middleware: poem's [`Cors`] for allowed origins, nothing for the rest.
pub struct CorsForAllowed {
    allowed: AllowedOrigins,
}

impl CorsForAllowed {
    pub fn new(allowed: AllowedOrigins) -> Self {
        Self { allowed }
    }

    /// The methods and headers the API uses; `Retry-After` readable by scripts (429, 503).
    fn cors(&self) -> Cors {
        let cors = Cors::new()
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_header(header::RETRY_AFTER)
            .max_age(PREFLIGHT_MAX_AGE);
        match &self.allowed {
            // No origin listed: poem's Cors allows every one.
            AllowedOrigins::Any => cors,
            AllowedOrigins::Only(origins) => cors.allow_origins(origins.iter().cloned()),
        }
    }
}

impl<E: Endpoint> Middleware<E> for CorsForAllowed {
    type Output = CorsForAllowedEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        let plain = Arc::new(ep);
        CorsForAllowedEndpoint {
            allowed: self.allowed.clone(),
            with_cors: self.cors().transform(Arc::clone(&plain)),
            plain,
        }
    }
}

/// See [`CorsForAllowed`].
pub struct CorsForAllowedEndpoint<E> {
    allowed: AllowedOrigins,
    with_cors: CorsEndpoint<Arc<E>>,
    plain: Arc<E>,
}

impl<E: Endpoint> Endpoint for CorsForAllowedEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let allowed = req
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| self.allowed.allows(origin));
        let mut resp = if allowed {
            self.with_cors.get_response(req).await
        } else {
            self.plain.get_response(req).await
        };
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        Ok(resp.into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> anyhow::Result<Option<AllowedOrigins>> {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        AllowedOrigins::from_config(&list)
    }

    #[test]
    fn an_empty_list_turns_cors_off_and_a_star_allows_every_origin() {
        assert_eq!(origins(&[]).ok(), Some(None));
        assert_eq!(
            origins(&["https://a.example", "*"]).ok(),
            Some(Some(AllowedOrigins::Any))
        );
    }

    #[test]
    fn listed_origins_are_allowed_exactly() {
        let allowed = origins(&["https://app.example.com", "http://localhost:5173"])
            .expect("valid")
            .expect("on");
        assert!(allowed.allows(&HeaderValue::from_static("https://app.example.com")));
        assert!(allowed.allows(&HeaderValue::from_static("http://localhost:5173")));
        assert!(!allowed.allows(&HeaderValue::from_static("http://app.example.com")));
        assert!(!allowed.allows(&HeaderValue::from_static("http://localhost:5174")));
    }

    #[test]
    fn what_is_not_an_origin_is_refused_naming_the_key() {
        for bad in [
            "https://app.example.com/",
            "app.example.com",
            "https://",
            "https://a.example/path",
            "ftp://a.example",
            "https://*.example.com",
        ] {
            let err = origins(&[bad]).expect_err(bad);
            assert!(err.to_string().contains("server.cors_origins"), "{err}");
        }
    }
}
