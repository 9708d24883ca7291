//! Azure Arc's challenge (`apptoken::fuzzing::arc_challenge`, over
//! `managed_identity/arc.rs`): whatever `WWW-Authenticate` the agent's port
//! sends, the client reads a key file only when the challenge names one
//! directly in the token directory, ending in `.key`, a regular file of at
//! most 4,096 bytes — never a panic, never another file, and no error
//! quotes a key.
//!
//! The token directory is made once per process under the temporary
//! directory (`apptoken-fuzz-arc/`): `agent.key` (the one readable key),
//! `big.key` (over the limit), `other.txt`, a directory `dir.key` and a
//! link `link.key` to `agent.key`; the secret `outside.key` lies next to
//! the directory. Input: the challenge, as UTF-8 (lossy), with `$DIR`
//! replaced by the token directory's path (so that the committed seeds
//! reach the files wherever the temporary directory is).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const KEY: &str = "fuzz-agent-key-3f9c1d7e";
const OUTSIDE: &str = "fuzz-outside-secret-8b2a";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::temp_dir().join("apptoken-fuzz-arc");
        let dir = root.join("tokens");
        std::fs::create_dir_all(dir.join("dir.key")).expect("make the token directory");
        std::fs::write(dir.join("agent.key"), KEY).expect("write agent.key");
        std::fs::write(dir.join("big.key"), "k".repeat(5000)).expect("write big.key");
        std::fs::write(dir.join("other.txt"), KEY).expect("write other.txt");
        std::fs::write(root.join("outside.key"), OUTSIDE).expect("write outside.key");
        let link = dir.join("link.key");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(dir.join("agent.key"), &link).expect("make link.key");
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let challenge = String::from_utf8_lossy(data).replace("$DIR", &dir().display().to_string());
    match apptoken::fuzzing::arc_challenge(&challenge, dir()) {
        Ok(key) => {
            assert_eq!(key, KEY, "read a file other than agent.key for {challenge:?}");
            assert!(
                challenge.contains("agent.key"),
                "read agent.key for a challenge that does not name it: {challenge:?}"
            );
        }
        Err(e) => {
            let text = format!("{e} {e:?}");
            assert!(!text.contains(KEY), "the error quotes the key: {text}");
            assert!(!text.contains(OUTSIDE), "the error quotes a file: {text}");
            assert!(matches!(e, apptoken::Error::InvalidResponse { .. }), "{e:?}");
        }
    }
});
