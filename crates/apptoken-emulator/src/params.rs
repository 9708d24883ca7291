//! `application/x-www-form-urlencoded` parameters, from a request body or a
//! query string: the first value of a name wins; invalid UTF-8 is replaced.

#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(text: &[u8]) -> Params {
        Params(
            url::form_urlencoded::parse(text)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A query string's parameters (none without one).
    pub(crate) fn of_query(uri: &axum::http::Uri) -> Params {
        Params::parse(uri.query().unwrap_or_default().as_bytes())
    }

    /// The first value of `name`, as sent (possibly empty).
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
