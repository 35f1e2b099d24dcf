//! The command line's one error type. Every message says what was tried and what to do; an
//! AWS call that could not reach its endpoint names the endpoint or stack and what to start or
//! set, never the SDK's dispatch error alone.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line itself is wrong.
    #[error("{0}")]
    Usage(String),
    /// The stack cannot be found or reached, or lacks what the command needs.
    #[error("{0}")]
    Stack(String),
    /// Pipeline files that do not validate, one line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Files(Vec<FileError>),
    /// Someone else changed what this command read before it wrote.
    #[error("{0}")]
    Conflict(String),
    /// A file or folder could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A call failed after the stack was reached.
    #[error(transparent)]
    Lib(#[from] ingestlayer::error::Error),
}

impl CliError {
    /// Whether running the command again may succeed: a stack that could not be reached, a
    /// file that could not be read, a transient library failure. Wrong input, a conflict
    /// (read again first) and invalid files stay so.
    pub fn is_retryable(&self) -> bool {
        match self {
            CliError::Stack(_) | CliError::Io { .. } => true,
            CliError::Lib(e) => e.is_retryable(),
            CliError::Usage(_) | CliError::Files(_) | CliError::Conflict(_) => false,
        }
    }

    /// The process exit code: 1 for failures, 2 for input that is wrong.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Files(_) => 2,
            _ => 1,
        }
    }
}

/// A pipeline file's problem: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    /// 1-based, when the field could be found in the file.
    pub line: Option<usize>,
    /// The failing field, e.g. `steps[1].expr`, or `<file>`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(
                f,
                "{}:{l}: {}: {}",
                self.path.display(),
                self.field,
                self.message
            ),
            None => write!(
                f,
                "{}: {}: {}",
                self.path.display(),
                self.field,
                self.message
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_error_reads_like_a_compiler_message() {
        let e = FileError {
            path: "pipelines/a.yaml".into(),
            line: Some(7),
            field: "steps[0].expr".into(),
            message: "unknown field".into(),
        };
        assert_eq!(
            e.to_string(),
            "pipelines/a.yaml:7: steps[0].expr: unknown field"
        );
    }

    #[test]
    fn an_unreachable_stack_is_worth_retrying_and_wrong_input_is_not() {
        assert!(CliError::Stack("could not reach the emulator".into()).is_retryable());
        assert!(!CliError::Usage("no API key".into()).is_retryable());
        assert!(!CliError::Conflict("changed since read".into()).is_retryable());
        let transient = ingestlayer::error::Error::Upstream {
            what: "x".into(),
            detail: "y".into(),
            retryable: true,
        };
        assert!(CliError::Lib(transient).is_retryable());
        assert!(!CliError::Lib(ingestlayer::error::Error::NotFound("x".into())).is_retryable());
    }
}
