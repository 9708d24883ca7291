//! A setting named by a word (`post`, `PS256`, `managed-identity`): the
//! `FromStr` and `serde::Deserialize` of an enum that has
//! `fn from_name(&str) -> Result<Self, String>`, so the environment and a
//! configuration file refuse a bad word with the same message (the file's
//! with its line and column, the environment's naming the setting).

/// Implements both for `$ty`; `$setting` names the setting in errors.
macro_rules! named_setting {
    ($ty:ty, $setting:literal, $what:literal) => {
        #[doc = concat!("Parses ", $what, ".")]
        impl std::str::FromStr for $ty {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<$ty> {
                <$ty>::from_name(s).map_err(|m| {
                    $crate::error::ConfigError::new($crate::error::ConfigErrorKind::Invalid, m)
                        .with_setting($setting)
                        .into()
                })
            }
        }

        #[doc = concat!("In a configuration file: ", $what, ", as [`std::str::FromStr`].")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::from_name(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use named_setting;
