//! `application/x-www-form-urlencoded` parameters, from a request body or a
//! query string: the first value of a name wins; invalid UTF-8 is replaced.
//! Also the decoding of one such component on its own (the `Basic`
//! credentials of the token endpoint are encoded that way).
//!
//! Invariants: one decoder for everything form-encoded (`url`'s), so a
//! value decodes the same wherever it is sent: `+` is a space, `%XX` a
//! byte (either case), any other `%` stays as written.

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

/// Decodes one `application/x-www-form-urlencoded` component, exactly as
/// [`Params::parse`] decodes a name or a value: `+` is a space, `%XX` a
/// byte, an invalid or cut-short escape stays as written, invalid UTF-8 is
/// replaced. `&` and `=` are kept (they separate fields only in a whole form).
pub(crate) fn decode_component(text: &str) -> String {
    // Escaped, the separators come back as themselves and the component
    // reads as one name without a value. An escape's `%` never follows
    // an unfinished escape in a way that changes it: `%2` then `%26` is
    // `%2` (not hex) then `&`.
    let escaped = text.replace('&', "%26").replace('=', "%3D");
    url::form_urlencoded::parse(escaped.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases pinned on the token endpoint's former hand-written decoder
    /// (`form_decode` in the former `token.rs`) before it was replaced by this one.
    #[test]
    fn component_decoding() {
        assert_eq!(decode_component("a%3Ab+c%7E"), "a:b c~");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
        assert_eq!(decode_component("%FF"), "\u{FFFD}");
        assert_eq!(decode_component(""), "");
        assert_eq!(decode_component("+++"), "   ");
        assert_eq!(decode_component("%2b%2B%20"), "++ ");
        assert_eq!(decode_component("%41"), "A");
        assert_eq!(decode_component("%"), "%");
        assert_eq!(decode_component("%%41"), "%A");
        assert_eq!(decode_component("%4g%g4"), "%4g%g4");
        assert_eq!(decode_component("%\u{e9}9"), "%\u{e9}9");
        assert_eq!(decode_component("\u{e9}%C3%A9"), "\u{e9}\u{e9}");
        assert_eq!(decode_component("a=b&c;d"), "a=b&c;d");
        assert_eq!(decode_component("%00"), "\0");
        assert_eq!(decode_component("%2&%26="), "%2&&=");
        // The one input decoded differently: the old decoder read `%+1` as
        // the byte 0x01 (`u8::from_str_radix` takes a leading `+`); here, as
        // in a form body, it is not an escape and `+` is a space.
        assert_eq!(decode_component("%+1"), "% 1");
    }

    #[test]
    fn a_component_decodes_as_a_form_value_does() {
        for text in [
            "a%3Ab+c%7E",
            "100%",
            "%zz%4",
            "%FF",
            "%%41",
            "%+1",
            "%\u{e9}9",
        ] {
            let form = Params::parse(format!("v={text}").as_bytes());
            assert_eq!(
                form.first("v"),
                Some(decode_component(text).as_str()),
                "{text}"
            );
        }
    }
}
