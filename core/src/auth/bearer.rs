//! The bearer-token and authenticate steps: the token from the
//! `Authorization` header, verified into the caller's [`Principal`].

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use super::jwt::{AuthError, Principal, Verifier};

/// Extracts the bearer token. Exactly one `Authorization` header with the
/// `Bearer` scheme (any case, RFC 9110) followed by one space.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::Missing);
    };
    if values.next().is_some() {
        return Err(AuthError::Malformed(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization header is not ASCII".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Malformed("Authorization is not \"Bearer <token>\"".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(format!(
            "Authorization scheme {scheme:?} is not Bearer"
        )));
    }
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed(
            "Authorization is not \"Bearer <token>\" with a single space".into(),
        ));
    }
    Ok(token)
}

/// The authenticate step: the caller behind the request's bearer token.
pub async fn authenticate(
    verifier: &Verifier,
    headers: &HeaderMap,
) -> Result<Arc<Principal>, AuthError> {
    verifier.verify(bearer_token(headers)?).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), Err(AuthError::Missing));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer_token(&h), Ok("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc"),
        );
        assert!(bearer_token(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer_token(&h).is_err());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer def"),
        );
        assert!(bearer_token(&h).is_err());
    }
}
