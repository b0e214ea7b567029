//! The ovs-ofctl flow text syntax (in progress).
