//! Identifiers, the task state machine and how a task ended, shared by every component.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            #[must_use]
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Always the lowercase hyphenated form, so Redis keys are canonical.
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a registered function.
    FunctionId
);
id_type!(
    /// Identifies one execution of a function.
    TaskId
);

/// Where a task is in its life. Moves only forward: `Queued → Running → Completed | Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Waiting in the queue for an executor.
    Queued,
    /// Handed to an executor.
    Running,
    /// The function returned; the result is its value.
    Completed,
    /// The function raised, or the platform failed or cancelled the task; the result is the
    /// exception.
    Failed,
}

impl TaskStatus {
    /// The wire and storage spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
        }
    }

    /// A final status never changes again.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status string that is not one of the four known ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown task status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "QUEUED" => Ok(Self::Queued),
            "RUNNING" => Ok(Self::Running),
            "COMPLETED" => Ok(Self::Completed),
            "FAILED" => Ok(Self::Failed),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// How a task ended. Not an error type: these are all normal results, decided on in one place
/// (the dispatcher core).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutcome {
    /// The function returned; `base64(dill.dumps(value))`.
    Completed(String),
    /// The function raised; `base64(dill.dumps(exception))`. Never retried.
    Raised(String),
    /// The platform failed the task (deadline, executor died); the message says how.
    WorkerFailure(String),
    /// The worker or connection running it was lost: the task may run again (up to
    /// `--max-retries`). Never produced by an executor itself.
    Lost(String),
}

/// Microseconds since the Unix epoch: the unit of every task timestamp.
#[must_use]
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_spelling() {
        for s in [
            TaskStatus::Queued,
            TaskStatus::Running,
            TaskStatus::Completed,
            TaskStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), s);
        }
        assert!("DONE".parse::<TaskStatus>().is_err());
    }

    #[test]
    fn status_is_its_spelling_on_the_wire() {
        for s in [
            TaskStatus::Queued,
            TaskStatus::Running,
            TaskStatus::Completed,
            TaskStatus::Failed,
        ] {
            let wire = serde_json::to_string(&s).unwrap();
            assert_eq!(wire, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<TaskStatus>(&wire).unwrap(), s);
        }
        assert!(serde_json::from_str::<TaskStatus>("\"queued\"").is_err());
    }

    #[test]
    fn ids_display_canonically() {
        let id: TaskId = "A0B1C2D3-E4F5-4789-8abc-DEF012345678".parse().unwrap();
        assert_eq!(id.to_string(), "a0b1c2d3-e4f5-4789-8abc-def012345678");
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }
}
