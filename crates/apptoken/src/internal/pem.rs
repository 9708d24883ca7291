//! PEM text: the one reader of the client-side crates, for certificates and
//! keys ([`crate::Certificate::from_pem`]), CA bundles
//! ([`crate::read_ca_file`], the Redis store's CA) and `apptoken cert show`.
//!
//! Each block is decoded by `pem-rfc7468` (RustCrypto, RFC 7468 strict);
//! that crate reads one block, so the splitting of a file into its blocks
//! is done here. Text outside the blocks (comments, `Bag Attributes`
//! lines) is ignored, a block that does not decode is an error, never a
//! panic, and no message holds a block's content.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{CredentialError, CredentialErrorKind, Result};

/// One decoded PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, …) and
/// its DER content, wiped when dropped (it may be a private key).
pub struct PemBlock {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

impl PemBlock {
    /// The label of the `-----BEGIN …-----` line.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The decoded content (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The label and the content, the content still wiped when dropped.
    pub(crate) fn into_parts(self) -> (String, Zeroizing<Vec<u8>>) {
        (self.label, self.der)
    }

    /// Whether this block holds a private key of any kind (`PRIVATE KEY`,
    /// `RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, `EC PRIVATE KEY`, …).
    pub fn is_private_key(&self) -> bool {
        self.label.ends_with("PRIVATE KEY")
    }
}

impl fmt::Debug for PemBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the content: it may be a key.
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("len", &self.der.len())
            .finish()
    }
}

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// Whether these bytes are PEM text (they hold a `-----BEGIN ` line)
/// rather than DER, such as a PFX.
pub fn looks_like_pem(bytes: &[u8]) -> bool {
    find(bytes, BEGIN).is_some()
}

/// The blocks of PEM text, in order, decoded. A last block without its
/// `-----END …-----` line is ignored; a block that does not decode is an
/// [`Error::Credential`](crate::Error::Credential) saying which block (by number and label) and why.
pub fn pem_blocks(text: &[u8]) -> Result<Vec<PemBlock>> {
    let mut out = Vec::new();
    for (i, block) in split(text).into_iter().enumerate() {
        let (label, der) = pem_rfc7468::decode_vec(block).map_err(|e| {
            // The label is safe to show (it is not the content); a block so
            // broken that it has none is named by its number alone.
            let message = match pem_rfc7468::decode_label(block) {
                Ok(label) => format!("PEM block {} ('{label}') does not decode", i + 1),
                Err(_) => format!("PEM block {} does not decode", i + 1),
            };
            CredentialError::new(CredentialErrorKind::Malformed, message).with_source(e)
        })?;
        out.push(PemBlock {
            label: label.to_string(),
            der: Zeroizing::new(der),
        });
    }
    Ok(out)
}

/// Whether PEM text holds at least one whole certificate block
/// (`-----BEGIN CERTIFICATE-----` … `-----END CERTIFICATE-----`): the
/// check of a CA bundle before it is handed to the TLS stack. Only the
/// boundaries are read here; the TLS stack decodes the certificates, and
/// it takes base64 wrapped at any width (some tools wrap at 76, not the
/// 64 of RFC 7468 that [`pem_blocks`] requires).
pub(crate) fn has_certificate(text: &[u8]) -> bool {
    split(text)
        .into_iter()
        .any(|block| pem_rfc7468::decode_label(block) == Ok("CERTIFICATE"))
}

/// Splits PEM text into its `-----BEGIN …-----` … `-----END …-----` blocks.
fn split(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN) {
        let after = &rest[start..];
        let Some(end_marker) = find(after, END) else {
            break;
        };
        let tail = &after[end_marker + END.len()..];
        let Some(close) = find(tail, DASHES) else {
            break;
        };
        let block_len = end_marker + END.len() + close + DASHES.len();
        out.push(&after[..block_len]);
        rest = &after[block_len..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}{name}")).unwrap()
    }

    #[test]
    fn blocks_are_split_decoded_and_text_between_them_ignored() {
        let text = b"junk\n-----BEGIN A-----\nQQ==\n-----END A-----\nmore\n-----BEGIN B-----\nQg==\n-----END B-----";
        let blocks = pem_blocks(text).unwrap();
        let got: Vec<(&str, &[u8])> = blocks.iter().map(|b| (b.label(), b.der())).collect();
        assert_eq!(got, [("A", &b"A"[..]), ("B", &b"B"[..])]);
        // An unterminated last block is ignored, as is text with no block.
        assert!(pem_blocks(b"-----BEGIN X-----\nno end").unwrap().is_empty());
        assert!(pem_blocks(b"").unwrap().is_empty());
        assert!(pem_blocks(b"\xff\xfe not pem").unwrap().is_empty());
    }

    #[test]
    fn a_chain_and_its_key_are_read_in_order() {
        let blocks = pem_blocks(&fixture("leaf.combined.pem")).unwrap();
        let labels: Vec<&str> = blocks.iter().map(PemBlock::label).collect();
        assert!(labels.contains(&"CERTIFICATE"), "{labels:?}");
        assert!(blocks.iter().any(PemBlock::is_private_key), "{labels:?}");
        let ca = pem_blocks(&fixture("ca.cert.pem")).unwrap();
        assert_eq!(ca.len(), 1);
        assert_eq!(ca[0].label(), "CERTIFICATE");
        assert!(!ca[0].is_private_key());
        // DER of a certificate: a SEQUENCE.
        assert_eq!(ca[0].der().first(), Some(&0x30));
    }

    #[test]
    fn junk_in_a_block_is_an_error_naming_the_block_not_its_content() {
        let text = b"-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n\
                     -----BEGIN PRIVATE KEY-----\ns3cr3t!!\n-----END PRIVATE KEY-----\n";
        let e = pem_blocks(text).unwrap_err().to_string();
        assert!(e.contains("PEM block 2 ('PRIVATE KEY')"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        // Mismatched labels, a lone END, a BEGIN inside a block: errors, never panics.
        for junk in [
            &b"-----BEGIN A-----\nQQ==\n-----END B-----"[..],
            b"-----BEGIN -----\n-----END -----",
            b"-----BEGIN A-----\n-----BEGIN B-----\nQQ==\n-----END B-----",
            b"-----BEGIN A----------END A-----",
            b"-----BEGIN \x00-----\n-----END \x00-----",
        ] {
            let _ = pem_blocks(junk);
        }
        assert!(
            pem_blocks(b"-----BEGIN A-----\n-----BEGIN B-----\nQQ==\n-----END B-----").is_err()
        );
    }

    #[test]
    fn a_ca_bundle_needs_a_certificate() {
        assert!(has_certificate(&fixture("ca.cert.pem")));
        assert!(has_certificate(&fixture("leaf.chain.pem")));
        // A certificate block after other text and blocks, with CRLF lines.
        assert!(has_certificate(
            b"# comment\r\n-----BEGIN PRIVATE KEY-----\r\nQQ==\r\n-----END PRIVATE KEY-----\r\n\
              -----BEGIN CERTIFICATE-----\r\nQQ==\r\n-----END CERTIFICATE-----\r\n"
        ));
        // Base64 wrapped at 76 (the TLS stack reads it; pem_blocks does not).
        let wide = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            "QUFB".repeat(19)
        );
        assert!(has_certificate(wide.as_bytes()));
        assert!(pem_blocks(wide.as_bytes()).is_err());

        assert!(!has_certificate(b""));
        assert!(!has_certificate(b"hello"));
        assert!(!has_certificate(&fixture("leaf.pkcs8.pem")));
        // The words alone, an unterminated block, a mismatched END, a TRUSTED CERTIFICATE.
        assert!(!has_certificate(
            b"see -----BEGIN CERTIFICATE----- in the docs"
        ));
        assert!(!has_certificate(b"-----BEGIN CERTIFICATE-----\nQQ==\n"));
        assert!(!has_certificate(
            b"-----BEGIN CERTIFICATE-----\nQQ==\n-----END PRIVATE KEY-----\n"
        ));
        assert!(!has_certificate(
            b"-----BEGIN TRUSTED CERTIFICATE-----\nQQ==\n-----END TRUSTED CERTIFICATE-----\n"
        ));
    }

    #[test]
    fn pem_is_told_from_der() {
        assert!(looks_like_pem(&fixture("leaf.cert.pem")));
        assert!(looks_like_pem(
            b"Bag Attributes\n-----BEGIN CERTIFICATE-----\n"
        ));
        assert!(!looks_like_pem(b"\x30\x82\x01\x00"));
        assert!(!looks_like_pem(b"-----BEGIN"));
        assert!(!looks_like_pem(b""));
    }
}
