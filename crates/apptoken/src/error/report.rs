//! An error followed by its causes, `: `-separated: what logs and the
//! command line print.

use std::fmt;

/// An error and its causes, `: `-separated (see [`Error::report`](super::Error::report)).
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(&'a (dyn std::error::Error + 'static));

impl<'a> Report<'a> {
    /// The report of any error (the crates around this one log theirs so).
    pub fn of(error: &'a (dyn std::error::Error + 'static)) -> Report<'a> {
        Report(error)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        // Bounded: a cyclic chain of a foreign error cannot loop forever.
        let mut depth = 0;
        while let Some(c) = cause {
            if depth == 16 {
                break;
            }
            write!(f, ": {c}")?;
            cause = c.source();
            depth += 1;
        }
        Ok(())
    }
}
