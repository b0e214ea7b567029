//! Flow keys, masks, matches and actions (in progress).
