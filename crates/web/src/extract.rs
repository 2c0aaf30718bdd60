//! Extractors that turn every malformed request into our error shape.
//!
//! axum's own extractors answer bad input with plain-text bodies; these wrap
//! them so clients always get `{"error": {...}}` with a stable code, and the
//! offending field named where serde can tell.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body. The target type should `deny_unknown_fields`.
pub struct ApiJson<T>(pub T);

/// Raw JSON body bytes plus the parsed value, for hashing requests.
pub struct ApiJsonWithBytes<T>(pub T, pub Bytes);

fn is_json(req: &Request) -> bool {
    req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(
        |mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        },
    )
}

async fn read_json<T: DeserializeOwned, S: Send + Sync>(req: Request, state: &S) -> Result<(T, Bytes), ApiError> {
    if !is_json(&req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON with Content-Type: application/json",
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
    let value = parse_json(&bytes)?;
    Ok((value, bytes))
}

/// Parses JSON, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {inner}"))
            }
            Category::Data => {
                let message = inner.to_string();
                let code = if message.starts_with("unknown field") { "unknown_field" } else { "invalid_field" };
                let err = ApiError::unprocessable(code, message);
                if path == "." { err } else { err.field(path) }
            }
        }
    })
}

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
    } else {
        ApiError::bad_request("unreadable_body", "the request body could not be read")
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(|(v, _)| ApiJson(v))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJsonWithBytes<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(|(v, b)| ApiJsonWithBytes(v, b))
    }
}

/// The raw body, for signed requests whose signature covers the exact bytes.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(body_error)
    }
}

/// Query string parameters.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|_: PathRejection| ApiError::not_found("resource"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be parsed")]
    struct Body {
        quantity: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields exist to be parsed")]
    struct Inner {
        name: String,
    }

    #[test]
    fn classifies_json_errors() {
        let e = parse_json::<Body>(b"{\"quantity\": ").expect_err("truncated");
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "malformed_json"));
        let e = parse_json::<Body>(br#"{"quantity": "3"}"#).expect_err("wrong type");
        assert_eq!((e.code, e.field.as_deref()), ("invalid_field", Some("quantity")));
        let e = parse_json::<Body>(br#"{"quantity": 3, "price": 1}"#).expect_err("unknown");
        assert_eq!(e.code, "unknown_field");
        let e = parse_json::<Body>(br#"{"quantity": 3, "inner": {"name": 5}}"#).expect_err("nested");
        assert_eq!(e.field.as_deref(), Some("inner.name"));
        let e = parse_json::<Body>(br#"{"quantity": -1}"#).expect_err("negative");
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
