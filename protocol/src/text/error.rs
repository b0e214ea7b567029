//! [`TextError`]: what went wrong while reading flow text, naming the field
//! or action and the offending text, as `ovs-ofctl` does.

/// An error parsing `ovs-ofctl` flow syntax.
///
/// Every variant names the field (or action, or keyword) concerned and, where
/// there is one, the exact offending text, so the message can be shown to a
/// user as is: `nw_src: "10.0.0.300" is not an IPv4 address`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A `name=value` whose name is neither a field nor a keyword.
    #[error("unknown field \"{name}\"")]
    UnknownField {
        /// The unknown name.
        name: String,
    },
    /// A field or keyword given without a value (`priority`, `nw_src=`).
    #[error("{field}: missing value")]
    MissingValue {
        /// The field or keyword.
        field: String,
    },
    /// A value that does not have the field's syntax.
    #[error("{field}: \"{text}\" is not {expected}")]
    Invalid {
        /// The field, keyword or action.
        field: String,
        /// The offending text.
        text: String,
        /// What was expected ("an IPv4 address", "an integer", ...).
        expected: &'static str,
    },
    /// A well-formed number that does not fit.
    #[error("{field}: {text} out of range ({range})")]
    OutOfRange {
        /// The field or keyword.
        field: String,
        /// The offending number as written.
        text: String,
        /// The allowed range ("16 bits", "0..=254", ...).
        range: String,
    },
    /// `value/mask` on a field that cannot be masked.
    #[error("{field}: \"{text}\": field cannot be masked")]
    NotMaskable {
        /// The field.
        field: String,
        /// The offending text.
        text: String,
    },
    /// A field used without what it depends on (`nw_src` without `ip`).
    #[error("{field}: prerequisites not met (requires {requires})")]
    Prerequisite {
        /// The field.
        field: String,
        /// What must also be matched, in `ovs-ofctl` words.
        requires: &'static str,
    },
    /// A field given twice with different values, or two fields sharing
    /// storage that contradict each other (`ip,ipv6`, `tcp,udp`).
    #[error("{field}: \"{text}\" conflicts with an earlier value")]
    Conflict {
        /// The field or shorthand given second.
        field: String,
        /// Its text.
        text: String,
    },
    /// An action name that is not known.
    #[error("actions: unknown action \"{name}\"")]
    UnknownAction {
        /// The unknown name.
        name: String,
    },
    /// An action whose argument is wrong; the message says how.
    #[error("{action}: {message}")]
    Action {
        /// The action (`resubmit`, `move`, `conjunction`, ...).
        action: String,
        /// What is wrong (`table 300 out of range (0..=254)`).
        message: String,
    },
    /// A flow without `actions=`.
    #[error("must specify an action (\"actions=...\")")]
    MissingActions,
    /// Unbalanced parentheses.
    #[error("\"{text}\": unbalanced parentheses")]
    Unbalanced {
        /// The text from the opening parenthesis.
        text: String,
    },
}

impl TextError {
    pub(crate) fn invalid(field: &str, text: &str, expected: &'static str) -> TextError {
        TextError::Invalid {
            field: field.to_owned(),
            text: text.to_owned(),
            expected,
        }
    }

    pub(crate) fn range(field: &str, text: &str, range: impl Into<String>) -> TextError {
        TextError::OutOfRange {
            field: field.to_owned(),
            text: text.to_owned(),
            range: range.into(),
        }
    }

    pub(crate) fn action(action: &str, message: impl Into<String>) -> TextError {
        TextError::Action {
            action: action.to_owned(),
            message: message.into(),
        }
    }
}
